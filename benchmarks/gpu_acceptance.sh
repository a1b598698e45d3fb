#!/usr/bin/env bash
# GPU acceptance in one command, sized for one 15-minute GPU lease (at most
# 6 minutes on one H100/H200 whose host takes ~20 s to import diffusers):
#   bash benchmarks/gpu_acceptance.sh [REPORT.md]
#   GPU_ACCEPTANCE_DRY_RUN=1 bash benchmarks/gpu_acceptance.sh   # the whole script on CPU, tiny config for sd15
# 1. tiny end-to-end video training in bf16 and in fp16, with --use_ema and a
#    checkpoint at step 20, then a resume to step 30 (the two precisions run
#    side by side: the host has cores to spare and the tiny model needs little
#    of the GPU); 2. predict.py's 3-frame rollout of the bf16 model on the GPU;
#    beside them, benchmarks/cuda_graph_check.py: the accumulated gradients of
#    the UNet recorded as CUDA graphs (--cuda_graph_unet), and of the compiled
#    step under CUDA graphs, without them, and with inductor choosing the
#    convolutions' layout, each against eager;
# 3. the throughput table of the SD-1.5-shaped 84-channel UNet at 256x256,
#    batch 32, every row, in one process (benchmarks/throughput.py), with a
#    torch.profiler summary of the fused-AdamW row and of the --cuda_graph_unet
#    row; its clips are generated
#    while 1 and 2 run; 4. the 512x512 table, as far as the time left allows.
# The report (default gpu_acceptance.md) names the device and its own wall
# time, and is written as the run goes: a cut-off run keeps what it finished.
#   GPU_ACCEPTANCE_BUDGET_S   seconds for the whole script (default 360)
#   GPU_ACCEPTANCE_WORK       keep the work folder (clips, traces, logs) here instead of a temporary one
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"
report="${1:-gpu_acceptance.md}"
budget="${GPU_ACCEPTANCE_BUDGET_S:-360}"
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }

source benchmarks/tiny_chain.sh
check_machine GPU_ACCEPTANCE_DRY_RUN diffusers datasets av
if [ "${GPU_ACCEPTANCE_DRY_RUN:-0}" = 1 ]; then
    config=tiny; resolution=64; batch=4; large=96; predict_precision=fp32
    device="$device: the tiny config stands in for sd15; no figure here is a GPU figure"
else
    config=sd15; resolution=256; batch=32; large=512; predict_precision=bf16
fi
work_folder "${GPU_ACCEPTANCE_WORK:-}"

{
    echo "# GPU acceptance: $device"
    echo
    echo "$versions, $(date -u +%Y-%m-%d), budget ${budget} s"
    echo
} > "$report"

graph_pids=()
# Setup, three jobs at once: the throughput table's clips, the tiny model, the tiny clips.
"$python" benchmarks/throughput.py --config "$config" --resolution "$resolution" --resolution "$large" --batch-size "$batch" \
    --work-dir "$work/bench" --prepare-only > "$work/bench-prepare.log" 2>&1 &
prepare=$!
tiny_setup
# Accumulated gradients against eager (tiny model): the UNet recorded as CUDA graphs; the compiled step under
# CUDA graphs, without them, and with inductor choosing the convolutions' layout (off in the trainer: wrong on
# CPU). Their compilation overlaps the training below.
graph_checks=("capture" "reduce-overhead" "default" "default --inductor-layout")
for check in "${graph_checks[@]}"; do
    # shellcheck disable=SC2086  # $check is the mode and its flags
    "$python" benchmarks/cuda_graph_check.py --mode $check --model "$work/tiny" --data "$work/processed" \
        --output-dir "$work/graphs-${check// /}" > "$work/graphs-${check// /}.log" 2>&1 &
    graph_pids+=($!)
done

predict_rollout() {
    local begun code clip
    begun=$(date +%s)
    clip="$(find "$work/raw/val" -mindepth 2 -maxdepth 2 -type d | sort | head -1)"
    set +e
    "$python" predict.py --model "$work/bf16" --video "$clip" --instruction "moving something" --num-future-frames 3 \
        --precision "$predict_precision" --output-dir "$work/rollout" > "$work/predict.log" 2>&1
    code=$?
    set -e
    echo "| predict.py --num-future-frames 3 ($predict_precision) | $code | $(( $(date +%s) - begun )) | $(ls "$work/rollout" 2>/dev/null | tr '\n' ' ') |" > "$work/rows-predict.md"
    [ "$code" = 0 ] || tail -3 "$work/predict.log" | sed 's/^/    /' >> "$work/rows-predict.md"
}

# Tiny training, both precisions at once; then the rollout of the bf16 model.
(tiny_chain bf16 bf16 1 "$python" && predict_rollout) &
bf16=$!
tiny_chain fp16 fp16 1 "$python" &
fp16=$!
wait "$bf16" || true
wait "$fp16" || true
{
    echo "## Tiny end-to-end video training (64 px, batch 8, EMA, checkpoint at step 20, resumed to 30)"
    echo
    echo "| precision | run | exit | seconds | last logged loss | checkpoint-20 holds |"
    echo "| --- | --- | --- | --- | --- | --- |"
    cat "$work/rows-bf16.md" "$work/rows-fp16.md" 2>/dev/null
    echo
    echo "| rollout | exit | seconds | files |"
    echo "| --- | --- | --- | --- |"
    cat "$work/rows-predict.md" 2>/dev/null || echo "| predict.py | not run (the bf16 chain failed) | | |"
    echo
} >> "$report"
echo "training and rollout done: $(elapsed) s" >&2
for pid in "${graph_pids[@]}"; do wait "$pid" || true; done  # before the throughput table, which they would disturb
{
    echo "## CUDA graphs and the compiled step against eager, accumulation 2 (benchmarks/cuda_graph_check.py)"
    echo
    echo "| check | rounds | first round (s) | largest relative gradient difference | result |"
    echo "| --- | --- | --- | --- | --- |"
    for check in "${graph_checks[@]}"; do
        log="$work/graphs-${check// /}.log"
        grep '^|' "$log" | tail -1 | grep -v '^| ---' \
            || echo "| --mode $check did not finish: $(grep -m1 '^error' "$log" || tail -1 "$log") | | | | |"
    done
    echo
} >> "$report"
echo "CUDA graph check done: $(elapsed) s" >&2

# The throughput tables in one process (imports and the model paid once), in the time left: a row that would
# not fit is skipped, so the 512 table gets what the 256 table leaves (a few seconds kept for the report's end).
wait "$prepare" || echo "(the throughput clips could not be made: $(tail -1 "$work/bench-prepare.log"))" >> "$report"
left=$(( budget - $(elapsed) - 10 ))
echo "## Throughput: ${config}-shaped 84-channel UNet, batch $batch, ${left} s left of ${budget} s" >> "$report"
echo >> "$report"
"$python" benchmarks/throughput.py --config "$config" --resolution "$resolution" --resolution "$large" --batch-size "$batch" \
    --work-dir "$work/bench" --json "$work/perf.json" --budget-s "$(( left > 1 ? left : 1 ))" --profile-row "fused AdamW" --profile-row "CUDA graphs of the UNet" \
    >> "$report" 2> "$work/bench.log" || echo "(some rows failed: $(grep '^error' "$work/bench.log" | tail -1))" >> "$report"

echo "wall time of this acceptance run: $(elapsed) s (budget ${budget} s)" >> "$report"
echo "wrote $report ($(elapsed) s)"
