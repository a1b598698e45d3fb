#!/usr/bin/env bash
# The sharding engines on one GPU, one process each: configs/fsdp.yaml and configs/deepspeed_zero2.yaml
# beside a plain run, all three the same tiny bf16 training with EMA (20 steps with a checkpoint, then a
# resume to 30), then their saved UNets side by side. About 3 minutes on a slow GPU host; gpu_session.sh runs
# it before gpu_acceptance.sh in one lease.
#   bash benchmarks/gpu_engines.sh [REPORT.md]  # default gpu_engines.md; on the GPU machine through gpu_session.sh,
#                                               # which installs DeepSpeed from the .whl/ that gpu_wheels.sh makes here
#   GPU_ENGINES_DRY_RUN=1 bash benchmarks/gpu_engines.sh   # the whole script on CPU: DeepSpeed runs one process
#                                                          # with its CPU accelerator; FSDP is refused (GPU only)
#   GPU_ENGINES_WORK   keep the work folder (model, clips, runs, logs) here instead of a temporary one
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"

report="${1:-gpu_engines.md}"
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }
source benchmarks/tiny_chain.sh
check_machine GPU_ENGINES_DRY_RUN diffusers datasets deepspeed
if [ "${GPU_ENGINES_DRY_RUN:-0}" = 1 ]; then device="$device: no figure here is a GPU figure"; fi
work_folder "${GPU_ENGINES_WORK:-}"

{
    echo "# Engines on one process: $device"
    echo
    echo "$versions, $(date -u +%Y-%m-%d)"
    echo
} > "$report"

tiny_setup

# The three chains side by side (tiny model: the GPU and the host's 16 cores have room), each launch on its own
# port. FSDP wraps every block of over 100k parameters (the config's 1M would leave the 0.8M-parameter tiny UNet
# unwrapped), so the tiny run has the nested units of the SD-1.5 UNet's run.
precision=bf16
accelerate_launch=("$python" -m accelerate.commands.launch --num_processes 1 --mixed_precision "$precision")
tiny_chain plain "$precision" 2 "$python" & plain=$!
tiny_chain fsdp "$precision" 2 "${accelerate_launch[@]}" --config_file configs/fsdp.yaml --fsdp_min_num_params 100000 \
    --main_process_port 29511 & fsdp=$!
tiny_chain deepspeed_zero2 "$precision" 2 "${accelerate_launch[@]}" --config_file configs/deepspeed_zero2.yaml \
    --main_process_port 29512 & deepspeed=$!
wait "$plain" || true; wait "$fsdp" || true; wait "$deepspeed" || true
{
    echo "## Tiny video training, $precision, EMA, batch 8 x accumulation 2, checkpoint at 20, resumed to 30"
    echo
    echo "| engine | run | exit | seconds | last logged loss | checkpoint-20 holds |"
    echo "| --- | --- | --- | --- | --- | --- |"
    cat "$work/rows-plain.md" "$work/rows-fsdp.md" "$work/rows-deepspeed_zero2.md" 2>/dev/null
    echo
    echo "## The saved UNets (EMA weights) against the plain run's"
    echo
    "$python" benchmarks/engine_weights.py --base "$work/tiny" --reference "$work/plain" "$work/fsdp" "$work/deepspeed_zero2" 2>&1
    echo
    echo "wall time of this run: $(elapsed) s"
} >> "$report"
echo "wrote $report ($(elapsed) s)"
