#!/usr/bin/env bash
# Prove an installation works end to end in a few minutes, no GPU or network:
# mini data -> single-image layout (+ the 20-frame dataset and its checks) ->
# model -> 5 training steps -> a saved pipeline in test_output/; then the
# 20-frame path on generated clips with the tiny model: 5 video training steps
# -> a 4-frame rollout of a held-out clip (strip, frames, GIF, MP4).
# Uses models/instruct-pix2pix when present, else the tiny offline model (the
# 20-frame smoke run always uses the tiny one: it stays a few CPU minutes).
# Run again, it starts both runs afresh; the earlier ones move into
# test_output*/superseded-<time>/ (--overwrite_output_dir), nothing is deleted.
set -euo pipefail
cd "$(dirname "$0")"
bash install.sh
python=".venv/bin/python"
[ "${IP2P_NO_VENV:-0}" = "1" ] && python=python3
[ -n "${IP2P_VENV:-}" ] && python="$IP2P_VENV/bin/python"

echo "== data"
"$python" create_mini_data.py --output-dir dataset_mini --test-video
"$python" prepare_test_data.py --data-root dataset_mini
"$python" make_dataset.py --data-root dataset_mini --output-dir processed_dataset_seq

echo "== model"
if [ -f models/instruct-pix2pix/model_index.json ]; then
    model=models/instruct-pix2pix
    resolution=256
    echo "using the downloaded model $model"
else
    model=models/tiny-instruct-pix2pix
    resolution=64
    echo "models/instruct-pix2pix not found (python download_model.py fetches it); using the tiny offline model $model"
    "$python" download_model.py --tiny --local-dir "$model"
fi
"$python" quick_test.py --dataset processed_dataset_seq --model "$model"

echo "== training 5 steps"
"$python" train_instruct_pix2pix.py \
    --pretrained_model_name_or_path "$model" \
    --train_data_dir dataset_mini/test_data \
    --output_dir test_output --overwrite_output_dir \
    --resolution "$resolution" --train_batch_size 1 --max_train_steps 5 \
    --checkpointing_steps 5 --learning_rate 1e-4 --lr_warmup_steps 0 --seed 0 \
    --val_image_url dataset_mini/test_video/00.jpg --validation_prompt "dropping a pen onto the table" \
    --num_validation_images 1 --validation_epochs 5

echo "== the 20-frame path: generated clips, 5 video training steps, a rollout"
tiny=models/tiny-instruct-pix2pix
[ -f "$tiny/model_index.json" ] || "$python" download_model.py --tiny --local-dir "$tiny"
"$python" create_mini_data.py --synthetic --videos-per-task 2 --val-videos-per-task 1 --size 32 --output-dir dataset_mini_clips
"$python" make_dataset.py --data-root dataset_mini_clips --output-dir processed_mini_clips
"$python" train_video_ip2p.py \
    --pretrained_model_name_or_path "$tiny" --train_data_dir processed_mini_clips --output_dir test_output_video --overwrite_output_dir \
    --resolution 32 --train_batch_size 2 --gradient_accumulation_steps 1 --max_train_steps 5 --checkpointing_steps 5 \
    --learning_rate 1e-4 --lr_warmup_steps 0 --seed 0 --num_validation_images 1 --latent_cache_dir test_output_video/.latents
"$python" predict.py --model test_output_video --dataset processed_mini_clips --split test --index 0 --resolution 32 \
    --num-inference-steps 4 --num-future-frames 4 --output-dir test_output_video/rollout

echo "== done"
echo "trained pipeline:   test_output/ (StableDiffusionInstructPix2PixPipeline.from_pretrained('test_output'))"
echo "checkpoint:         test_output/checkpoint-5"
echo "validation images:  test_output/validation/"
echo "TensorBoard logs:   tensorboard --logdir test_output/logs"
echo "20-frame model:     test_output_video/ (VideoInstructPix2PixPipeline; predict.py / evaluate.py --model test_output_video)"
echo "its prediction:     test_output_video/rollout/strip.png (last observed | predicted | true next frame)"
echo "its rollout:        test_output_video/rollout/rollout.gif and rollout.mp4 (20 observed frames, then 4 predicted in red)"
