#!/usr/bin/env bash
# Full-size single-image InstructPix2Pix fine-tuning with accelerate.
# Every value can be overridden from the environment, e.g.
#   NUM_PROCESSES=8 TRAIN_BATCH_SIZE=8 DATA_DIR=my_data bash run_train.sh
# Multi-node: set NUM_MACHINES, MACHINE_RANK, MAIN_PROCESS_IP (and PORT) on each node.
set -euo pipefail
cd "$(dirname "$0")"

MODEL="${MODEL:-models/instruct-pix2pix}"
DATA_DIR="${DATA_DIR:-dataset_root/test_data}"
OUTPUT_DIR="${OUTPUT_DIR:-output_model}"
NUM_PROCESSES="${NUM_PROCESSES:-1}"
NUM_MACHINES="${NUM_MACHINES:-1}"
MACHINE_RANK="${MACHINE_RANK:-0}"
MAIN_PROCESS_IP="${MAIN_PROCESS_IP:-127.0.0.1}"
MAIN_PROCESS_PORT="${MAIN_PROCESS_PORT:-29500}"
MIXED_PRECISION="${MIXED_PRECISION:-fp16}"
RESOLUTION="${RESOLUTION:-256}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-16}"
GRADIENT_ACCUMULATION_STEPS="${GRADIENT_ACCUMULATION_STEPS:-1}"
MAX_TRAIN_STEPS="${MAX_TRAIN_STEPS:-15000}"
LEARNING_RATE="${LEARNING_RATE:-1e-4}"
LR_WARMUP_STEPS="${LR_WARMUP_STEPS:-0}"
CHECKPOINTING_STEPS="${CHECKPOINTING_STEPS:-500}"
CHECKPOINTS_TOTAL_LIMIT="${CHECKPOINTS_TOTAL_LIMIT:-3}"
CONDITIONING_DROPOUT_PROB="${CONDITIONING_DROPOUT_PROB:-0.05}"
SEED="${SEED:-42}"
REPORT_TO="${REPORT_TO:-tensorboard}"
EXTRA_ARGS="${EXTRA_ARGS:-}"   # e.g. "--use_ema --gradient_checkpointing --val_image_url x.jpg --validation_prompt ..."

python="${PYTHON:-.venv/bin/python}"
exec "$python" -m accelerate.commands.launch \
    --num_processes "$NUM_PROCESSES" --num_machines "$NUM_MACHINES" --machine_rank "$MACHINE_RANK" \
    --main_process_ip "$MAIN_PROCESS_IP" --main_process_port "$MAIN_PROCESS_PORT" \
    --mixed_precision "$MIXED_PRECISION" \
    train_instruct_pix2pix.py \
    --pretrained_model_name_or_path "$MODEL" \
    --train_data_dir "$DATA_DIR" \
    --output_dir "$OUTPUT_DIR" \
    --resolution "$RESOLUTION" --random_flip \
    --train_batch_size "$TRAIN_BATCH_SIZE" --gradient_accumulation_steps "$GRADIENT_ACCUMULATION_STEPS" \
    --max_train_steps "$MAX_TRAIN_STEPS" --learning_rate "$LEARNING_RATE" --lr_warmup_steps "$LR_WARMUP_STEPS" \
    --conditioning_dropout_prob "$CONDITIONING_DROPOUT_PROB" \
    --checkpointing_steps "$CHECKPOINTING_STEPS" --checkpoints_total_limit "$CHECKPOINTS_TOTAL_LIMIT" \
    --resume_from_checkpoint latest \
    --mixed_precision "$MIXED_PRECISION" --seed "$SEED" --report_to "$REPORT_TO" \
    $EXTRA_ARGS
