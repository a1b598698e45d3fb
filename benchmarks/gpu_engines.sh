#!/usr/bin/env bash
# The sharding engines on one GPU, one process each: configs/fsdp.yaml and configs/deepspeed_zero2.yaml
# beside a plain run, all three the same tiny bf16 training with EMA (20 steps with a checkpoint, then a
# resume to 30), then their saved UNets side by side. About 3 minutes on a slow GPU host; it fits in the
# lease after gpu_acceptance.sh.
#   bash benchmarks/gpu_engines.sh --wheels     # here, with network: DeepSpeed and its needs into .whl/
#   bash benchmarks/gpu_engines.sh [REPORT.md]  # there (default gpu_engines.md), after the .whl/ install line
#   GPU_ENGINES_DRY_RUN=1 bash benchmarks/gpu_engines.sh   # the whole script on CPU: DeepSpeed runs one process
#                                                          # with its CPU accelerator; FSDP is refused (GPU only)
# FSDP wraps every block of over 100k parameters here (the config's 1M would leave the 0.8M-parameter tiny
# UNet unwrapped), so the tiny run has the nested units of the SD-1.5 UNet's run.
#   GPU_ENGINES_WORK   keep the work folder (model, clips, runs, logs) here instead of a temporary one
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"

if [ "${1:-}" = "--wheels" ]; then
    bash ../shared/gpu/wheels.sh hjson msgpack ninja py-cpuinfo einops pydantic pydantic-core annotated-types typing-inspection
    # DeepSpeed publishes no wheel; without DS_BUILD_OPS its ops compile on first use (the fused AdamW here needs none).
    DS_BUILD_OPS=0 python3 -m pip wheel -q --no-deps -w .whl deepspeed
    ls -1 .whl | grep -i deepspeed
    exit 0
fi

report="${1:-gpu_engines.md}"
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }
if [ "${GPU_ENGINES_DRY_RUN:-0}" = 1 ]; then
    precision=bf16
    device="CPU dry run ($(nproc) cores): no figure here is a GPU figure"
else
    "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "error: no CUDA device visible; this script runs the engines on a GPU (GPU_ENGINES_DRY_RUN=1 runs it on CPU)")'
    precision=bf16
    device="$("$python" -c 'import torch; print(torch.cuda.get_device_name(0))')"
fi
"$python" -c 'import deepspeed' 2>/dev/null \
    || { echo "error: DeepSpeed is not importable; run bash benchmarks/gpu_engines.sh --wheels here and install .whl/ there" >&2; exit 1; }
if [ -n "${GPU_ENGINES_WORK:-}" ]; then
    work="$GPU_ENGINES_WORK"; mkdir -p "$work"
else
    work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
fi

{
    echo "# Engines on one process: $device"
    echo
    echo "torch $("$python" -c 'import torch; print(torch.__version__)'), accelerate $("$python" -c 'import accelerate; print(accelerate.__version__)'), deepspeed $("$python" -c 'import deepspeed; print(deepspeed.__version__)' 2>/dev/null | tail -1), $(date -u +%Y-%m-%d)"
    echo
} > "$report"

# Setup: the tiny model and clips (the same as gpu_acceptance.sh's tiny runs).
"$python" download_model.py --tiny --local-dir "$work/tiny" > "$work/model.log" 2>&1 &
model=$!
"$python" create_mini_data.py --synthetic --videos-per-task 8 --val-videos-per-task 2 --size 64 --output-dir "$work/raw" \
    > "$work/data.log" 2>&1 && "$python" make_dataset.py --data-root "$work/raw" --output-dir "$work/processed" >> "$work/data.log" 2>&1
wait "$model"
echo "setup: $(elapsed) s" >&2

# One engine's chain: train to 20 with a checkpoint, resume to 30; its table rows go to $work/rows-$1.md.
engine_chain() {
    local engine=$1 run steps extra launch code begun loss
    case "$engine" in
        plain) launch=("$python") ;;
        fsdp) launch=("$python" -m accelerate.commands.launch --config_file configs/fsdp.yaml --num_processes 1
                      --mixed_precision "$precision" --fsdp_min_num_params 100000 --main_process_port "$2") ;;
        deepspeed_zero2) launch=("$python" -m accelerate.commands.launch --config_file configs/deepspeed_zero2.yaml
                                 --num_processes 1 --mixed_precision "$precision" --main_process_port "$2") ;;
    esac
    for run in "train 20" "resume to 30"; do
        steps=20; extra=()
        [ "$run" = "resume to 30" ] && { steps=30; extra=(--resume_from_checkpoint latest); }
        begun=$(date +%s)
        set +e
        "${launch[@]}" train_video_ip2p.py --pretrained_model_name_or_path "$work/tiny" --train_data_dir "$work/processed" \
            --output_dir "$work/$engine" --resolution 64 --train_batch_size 8 --gradient_accumulation_steps 2 \
            --max_train_steps "$steps" --checkpointing_steps 20 --mixed_precision "$precision" --use_ema --seed 0 \
            --latent_cache_dir "$work/cache-$engine" --num_validation_images 1 --lr_warmup_steps 0 --logging_steps 1 \
            --report_to none "${extra[@]}" > "$work/$engine-$steps.log" 2>&1
        code=$?
        set -e
        loss="$(sed -n 's/.*step [0-9]*: loss \([0-9.a-z]*\).*/\1/p' "$work/$engine-$steps.log" | tail -1)"
        echo "| $engine | $run | $code | $(( $(date +%s) - begun )) | ${loss:--} | $(ls "$work/$engine/checkpoint-20" 2>/dev/null | tr '\n' ' ') |" >> "$work/rows-$engine.md"
        [ "$code" = 0 ] || { grep -m1 '^error' "$work/$engine-$steps.log" || grep -v '^\s*$' "$work/$engine-$steps.log" | grep -m3 -i 'error'; } \
            | sed 's/^/    /' >> "$work/rows-$engine.md" || true
        [ "$code" = 0 ] || return 0
    done
}

# The three chains side by side (tiny model: the GPU and the host's 16 cores have room), each launch on its own port.
engine_chain plain & plain=$!
engine_chain fsdp 29511 & fsdp=$!
engine_chain deepspeed_zero2 29512 & deepspeed=$!
wait "$plain" "$fsdp" "$deepspeed"
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
