#!/usr/bin/env bash
# GPU acceptance in one command, within about 8 minutes on one H100/H200:
#   bash benchmarks/gpu_acceptance.sh [REPORT.md]
# 1. the tiny end-to-end video training in bf16 and in fp16, with --use_ema and
#    a checkpoint; 2. a resume from that checkpoint on the GPU; 3. the
#    throughput table of the SD-1.5-shaped 84-channel UNet at 256x256, batch 32,
#    every row. Writes one markdown report (default gpu_acceptance.md) naming
#    the device; every figure in it was measured by this run.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"
report="${1:-gpu_acceptance.md}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "error: no CUDA device visible; this script measures a GPU")'
device="$("$python" -c 'import torch; print(torch.cuda.get_device_name(0))')"
{
    echo "# GPU acceptance: $device"
    echo
    echo "torch $("$python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)'), $(date -u +%Y-%m-%d)"
    echo
} > "$report"

# The tiny model and generated clips, built here (the GPU machine has no network).
"$python" download_model.py --tiny --local-dir "$work/tiny" > "$work/model.log" 2>&1
"$python" create_mini_data.py --synthetic --videos-per-task 8 --val-videos-per-task 2 --size 64 --output-dir "$work/raw" > "$work/data.log" 2>&1
"$python" make_dataset.py --data-root "$work/raw" --output-dir "$work/processed" >> "$work/data.log" 2>&1

echo "## Tiny end-to-end video training (64 px, batch 8, EMA, checkpoint at step 20, resumed to 30)" >> "$report"
echo >> "$report"
echo "| precision | run | exit | seconds | last logged loss |" >> "$report"
echo "| --- | --- | --- | --- | --- |" >> "$report"
for precision in bf16 fp16; do
    for run in "train 20" "resume to 30"; do
        steps=20; extra=()
        [ "$run" = "resume to 30" ] && { steps=30; extra=(--resume_from_checkpoint latest); }
        started=$(date +%s)
        set +e
        "$python" train_video_ip2p.py --pretrained_model_name_or_path "$work/tiny" --train_data_dir "$work/processed" \
            --output_dir "$work/out-$precision" --resolution 64 --train_batch_size 8 --gradient_accumulation_steps 1 \
            --max_train_steps "$steps" --checkpointing_steps 20 --mixed_precision "$precision" --use_ema --seed 0 \
            --latent_cache_dir "$work/cache" --num_validation_images 1 --lr_warmup_steps 0 "${extra[@]}" \
            > "$work/train-$precision-$steps.log" 2>&1
        code=$?
        set -e
        loss="$("$python" -c "
import sys; sys.path.insert(0, '.')
from benchmarks.plot_loss import read_scalars
print(f'{read_scalars(sys.argv[1], \"train/loss\")[1][-1]:.4f}')" "$work/out-$precision/logs" 2>/dev/null || echo '-')"
        echo "| $precision | $run | $code | $(( $(date +%s) - started )) | $loss |" >> "$report"
        [ "$code" = 0 ] || { echo; tail -5 "$work/train-$precision-$steps.log"; } >> "$report"
    done
done
echo >> "$report"

echo "## Throughput: SD-1.5-shaped 84-channel UNet, 256x256, batch 32" >> "$report"
echo >> "$report"
"$python" benchmarks/throughput.py --config sd15 --resolution 256 --batch-size 32 --json "$work/perf.json" >> "$report" \
    || echo "(some rows failed; see their lines above)" >> "$report"
echo "wrote $report"
