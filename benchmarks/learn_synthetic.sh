#!/usr/bin/env bash
# Proof-of-learning run on a 2-core CPU, no GPU or network (14 to 14.5 minutes
# on a 2-core AMD EPYC on a slow day, less on a faster one; docs/learning.md,
# "Proof of learning"):
# synthetic clips -> tiny model with a VAE fitted on 32-pixel crops of the
# training frames (4x downsampling, so 64x64 frames give 16x16 latents) and a
# UNet that attends only in its mid block (8x8) ->
# 20-frame video model trained on the residual objective with the flow motion
# prior, clips mirrored left-right at random, on noise levels 900-999 only,
# without conditioning dropout ->
# evaluate.py on the held-out clips (one DDIM step: the model's estimate of
# the expected correction, added per pixel to the flow-warped frame or the
# last one moved with the camera, whichever the prediction agrees with,
# soft-thresholded at 6 grey levels; docs/training.md, "Where flow is wrong") against flow
# extrapolation, copy-last and the VAE rows (every row's predictions saved as
# PNG) -> loss curve. Prints the table and the wall time of each stage.
#   bash benchmarks/learn_synthetic.sh [SEED]      (outputs in learn_synthetic_out/seed-SEED)
#   RAW_DATA=DIR bash benchmarks/learn_synthetic.sh [SEED]
#       the same chain on your own raw root (numbered layout, train/ and val/), no generation
#   PYTHON=python3 ...   the interpreter; STEPS=N training steps (900); VAE_STEPS=N VAE fit steps (600); OUT=DIR output root
#   VIDEOS_PER_TASK=N VAL_VIDEOS_PER_TASK=M   generated clips per task (200 training, 32 held-out; the chain before
#                        was trained on 100 and scored on 16: more clips narrowed its gap from training to new clips)
#   LEARNING_RATE=5e-4 UNET_ATTENTION=all   the previous chain's learning rate (default 1e-3) and UNet, which also
#                        attends at the 16x16 level (download_model.py --unet-attention; about 1.5x the time per step)
#   UNET_CHANNELS=64,128 the tiny UNet's block widths (download_model.py --unet-channels; 2.9M parameters)
#   VAE_CHANNELS=32,64,64 the tiny VAE's block widths, one block per halving after the first (32,64: 2x, 32x32 latents)
#   MOTION_PRIOR=none    train without the flow-warped conditioning frame (default: flow)
#   PREDICTION_TYPE=epsilon        what the UNet predicts (default: sample, the clean correction; or v_prediction)
#   SET=easy             the first synthetic set (flat shapes, still camera, PNG) instead of the harder one
#                        (textures, sub-pixel camera drift, JPEG: create_mini_data.py --synthetic --hard)
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${1:-0}"
OUT="${OUT:-learn_synthetic_out}/seed-$SEED"
STEPS="${STEPS:-900}"
VIDEOS_PER_TASK="${VIDEOS_PER_TASK:-200}"
VAL_VIDEOS_PER_TASK="${VAL_VIDEOS_PER_TASK:-32}"
VAE_STEPS="${VAE_STEPS:-600}"
LEARNING_RATE="${LEARNING_RATE:-1e-3}"
UNET_ATTENTION="${UNET_ATTENTION:-mid}"
UNET_CHANNELS="${UNET_CHANNELS:-64,128}"
VAE_CHANNELS="${VAE_CHANNELS:-32,64,64}"
MOTION_PRIOR="${MOTION_PRIOR:-flow}"
PREDICTION_TYPE="${PREDICTION_TYPE:-sample}"
SET="${SET:-hard}"
# One DDIM step (at t=999) returns a sample-predicting model's estimate of the mean correction, so it trains
# only on the high noise levels it is asked about; an epsilon or v model's one-step estimate divides by the
# tiny signal level at t=999, so those train on every level, sample 20 steps and average 4 samples.
case "$PREDICTION_TYPE" in
    sample) sampling="--validation_inference_steps 1 --validation_samples_averaged 1 --min_train_timestep 900" ;;
    *) sampling="--validation_inference_steps 20 --validation_samples_averaged 4" ;; esac
case "$SET" in hard) set_flag=--hard ;; easy) set_flag= ;; *) echo "error: SET=$SET: use hard or easy" >&2; exit 2 ;; esac
python="${PYTHON:-.venv/bin/python}"
# Replace only this script's own earlier output: its .ip2p-owner.json lists what the script writes there (a
# killed run's staging folders are cleared first); a folder without it, or with files a user added, is refused
# with one line, and nothing is deleted. Then OUT/seed-N starts empty, marked as this script's.
"$python" benchmarks/start_output.py learn_synthetic.sh "$OUT" raw processed tiny model latent_cache eval predictions loss.png \
    data.log tiny.log train.log eval.log || exit 2
started=$SECONDS
stage() { echo "[$((SECONDS - started))s] $*"; }

if [ -n "${RAW_DATA:-}" ]; then
    [ -d "$RAW_DATA/train" ] && [ -d "$RAW_DATA/val" ] || { echo "error: RAW_DATA=$RAW_DATA needs train/ and val/ (numbered layout)" >&2; exit 2; }
    raw="$RAW_DATA"
    stage "clips from $raw"
    : > "$OUT/data.log"
else
    raw="$OUT/raw"
    stage "synthetic clips, $SET set ($VIDEOS_PER_TASK train + $VAL_VIDEOS_PER_TASK held-out per task, 64x64)"
    "$python" create_mini_data.py --synthetic $set_flag --videos-per-task "$VIDEOS_PER_TASK" \
        --val-videos-per-task "$VAL_VIDEOS_PER_TASK" --size 64 --seed "$SEED" \
        --output-dir "$raw" > "$OUT/data.log" 2>&1
fi
"$python" make_dataset.py --data-root "$raw" --output-dir "$OUT/processed" >> "$OUT/data.log" 2>&1 \
    || { tail -3 "$OUT/data.log" >&2; exit 2; }
stage "tiny model, VAE fitted on the training frames"
"$python" download_model.py --tiny --seed "$SEED" --local-dir "$OUT/tiny" --fit-vae-frames "$raw/train" --fit-vae-steps "$VAE_STEPS" \
    --vae-channels "$VAE_CHANNELS" --unet-channels "$UNET_CHANNELS" --unet-attention "$UNET_ATTENTION" > "$OUT/tiny.log" 2>&1
grep "fitted" "$OUT/tiny.log"
stage "training the 20-frame model ($STEPS steps, motion prior: $MOTION_PRIOR)"
# Guidance 1.0 / 1.0 never asks for the predictions without text or frames, so no sample is spent learning
# them (--conditioning_dropout_prob 0; the trainer's 0.05 drops the frames of one sample in ten).
"$python" train_video_ip2p.py --pretrained_model_name_or_path "$OUT/tiny" --train_data_dir "$OUT/processed" \
    --output_dir "$OUT/model" --resolution 64 --train_batch_size 16 --gradient_accumulation_steps 1 \
    --max_train_steps "$STEPS" --learning_rate "$LEARNING_RATE" --lr_warmup_steps 50 --checkpointing_steps 500 \
    --random_flip --conditioning_dropout_prob 0 --prediction_target residual --motion_prior "$MOTION_PRIOR" --prediction_type "$PREDICTION_TYPE" --latent_cache_dir "$OUT/latent_cache" --num_validation_images 4 \
    --validation_epochs 100000 --validation_guidance_scale 1.0 --validation_image_guidance_scale 1.0 \
    $sampling --validation_correction_threshold 6 \
    --seed "$SEED" > "$OUT/train.log" 2>&1
stage "evaluating on the held-out clips"
# The sampling settings saved with the model (above; guidance 1.0 / 1.0, threshold 6), deterministic DDIM:
"$python" evaluate.py --model "$OUT/model" --data "$OUT/processed" --sampler ddim --seed "$SEED" --output-dir "$OUT/eval" \
    --save-predictions "$OUT/predictions" 2> "$OUT/eval.log"
"$python" benchmarks/plot_loss.py "$OUT/model/logs" "$OUT/loss.png"
stage "done: $OUT/eval (metrics.json, grid.png), $OUT/predictions (every row's PNGs), $OUT/loss.png"
