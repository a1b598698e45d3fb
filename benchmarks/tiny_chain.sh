# Sourced by gpu_session.sh, gpu_acceptance.sh and gpu_engines.sh: the check of the machine, the work folder,
# the tiny model and clips, and the train-then-resume chain both GPU scripts run. Needs $python (and for
# tiny_setup the caller's elapsed()).

# check_machine DRY_RUN_VARIABLE MODULE...: in one Python process (torch alone takes 7.5 s to import on the GPU
# host), stop in one line, before any work, when a MODULE cannot be imported or, outside a dry run, no CUDA
# device is visible; else set $device (GPU 0's name, or "CPU dry run (N cores)") and $versions (Python, CUDA
# and the packages these scripts use).
check_machine() {
    local dry_run_variable=$1 lines
    shift
    lines="$("$python" - "$dry_run_variable" "${!dry_run_variable:-0}" "$@" <<'PY'
import importlib.metadata as metadata, importlib.util, os, platform, sys
variable, dry_run, modules = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
missing = [name for name in modules if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"error: {sys.executable} cannot import {' '.join(missing)}; on the GPU machine, make .whl/ here with "
             "bash benchmarks/gpu_wheels.sh, carry it and run bash benchmarks/gpu_session.sh, which installs it")
import torch
if not dry_run and not torch.cuda.is_available():
    sys.exit(f"error: no CUDA device visible; this script measures a GPU ({variable}=1 runs it on CPU)")
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"
names = ["torch", "diffusers", "transformers", "accelerate", "datasets", "huggingface_hub", "av", "deepspeed"]
print(f"CPU dry run ({os.cpu_count()} cores)" if dry_run else torch.cuda.get_device_name(0))
print(f"Python {platform.python_version()}, CUDA {torch.version.cuda}, " + ", ".join(f"{n} {version(n)}" for n in names))
PY
)" || exit 1
    device="${lines%%$'\n'*}"; versions="${lines#*$'\n'}"
}

# work_folder KEEP: $work is KEEP when set (kept afterwards), else a temporary folder removed on exit.
work_folder() {
    if [ -n "$1" ]; then
        work="$1"; mkdir -p "$work"
    else
        work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
    fi
}

# tiny_setup: the tiny model into $work/tiny and 64-pixel clips into $work/raw, processed into $work/processed.
tiny_setup() {
    local model
    "$python" download_model.py --tiny --local-dir "$work/tiny" > "$work/model.log" 2>&1 &
    model=$!
    "$python" create_mini_data.py --synthetic --videos-per-task 8 --val-videos-per-task 2 --size 64 --output-dir "$work/raw" \
        > "$work/data.log" 2>&1 && "$python" make_dataset.py --data-root "$work/raw" --output-dir "$work/processed" >> "$work/data.log" 2>&1
    wait "$model"
    echo "setup (tiny model and clips): $(elapsed) s" >&2
}

# tiny_chain NAME PRECISION ACCUMULATION LAUNCHER...: tiny training with EMA into $work/NAME, 20 steps with a
# checkpoint at 20, then --resume_from_checkpoint latest to 30. Each run appends a row
# "| NAME | run | exit | seconds | last logged loss | checkpoint-20 holds |" to $work/rows-NAME.md; a failed
# run adds its error line under the row and ends the chain with status 1.
tiny_chain() {
    local name=$1 precision=$2 accumulation=$3 run steps extra code begun loss
    shift 3
    for run in "train 20" "resume to 30"; do
        steps=20; extra=()
        [ "$run" = "resume to 30" ] && { steps=30; extra=(--resume_from_checkpoint latest); }
        begun=$(date +%s)
        set +e
        "$@" train_video_ip2p.py --pretrained_model_name_or_path "$work/tiny" --train_data_dir "$work/processed" \
            --output_dir "$work/$name" --resolution 64 --train_batch_size 8 --gradient_accumulation_steps "$accumulation" \
            --max_train_steps "$steps" --checkpointing_steps 20 --mixed_precision "$precision" --use_ema --seed 0 \
            --latent_cache_dir "$work/cache-$name" --num_validation_images 1 --lr_warmup_steps 0 --logging_steps 1 \
            "${extra[@]}" > "$work/$name-$steps.log" 2>&1
        code=$?
        set -e
        loss="$(sed -n 's/.*step [0-9]*: loss \([0-9.a-z]*\).*/\1/p' "$work/$name-$steps.log" | tail -1)"
        echo "| $name | $run | $code | $(( $(date +%s) - begun )) | ${loss:--} | $(ls "$work/$name/checkpoint-20" 2>/dev/null | tr '\n' ' ') |" \
            >> "$work/rows-$name.md"
        if [ "$code" != 0 ]; then
            { grep -m1 '^error' "$work/$name-$steps.log" || tail -3 "$work/$name-$steps.log"; } | sed 's/^/    /' >> "$work/rows-$name.md"
            return 1
        fi
    done
}
