#!/usr/bin/env bash
# Leave-one-kind-out: does what the chain learns transfer to kinds of clips it never saw?
# Three kinds of generated clips: easy (flat shapes, still camera, PNG), hard (textures, a drifting camera, JPEG)
# and physics (rigid bodies simulated by pybullet, an orbiting camera, shadows, JPEG). For each kind K, the chain
# of learn_synthetic.sh (VAE fitted on the training frames, 20-frame model, one DDIM step, the same settings for
# every fold) is trained on the other two kinds' training clips. Its fallback margin (evaluate.py
# --calibrate-fallback: where the model corrects flow by less, the output is flow's) is chosen on the held-out
# clips of those two kinds (the in-kind numbers); then K's held-out clips are scored with it (the left-out
# numbers), every margin is scored there too (reported, not used), and K's longer clips are rolled out 4 frames.
# Rows: the model, flow extrapolation, copy-last (and the VAE rows evaluate.py adds); PSNR, SSIM and
# moving-region PSNR per task and overall (docs/learning.md, "Transfer to kinds never seen"); strips of the
# worst left-out clips in worst-KIND.png. 40 minutes on a 2-core CPU (12.5 a fold, 2.5 for the clips).
#   bash benchmarks/transfer.sh [SEED]        (outputs in transfer_out/seed-SEED; the table in table.md)
#   KINDS="easy hard physics"   the kinds (at least two)
#   FOLDS="hard"         leave out only these kinds (default: each of KINDS in turn); OUT is started afresh as
#                        always, so give such a run its own OUT=... to keep a full table's folds
#   TRAIN_CLIPS=300 VAL_CLIPS=96 LONG_CLIPS=30   clips per kind (split evenly over its tasks: 3 for easy and
#                        hard, 5 for physics); LONG_CLIPS: held-out clips of 24 frames for the rollouts
#   MARGINS=0,2,4,8,12,16,24,32   the fallback margins (grey levels) the calibration chooses from
#   STEPS, VAE_STEPS, LEARNING_RATE, ...   passed on to learn_synthetic.sh (its defaults)
#   PYTHON=python3   the interpreter; OUT=DIR the output root
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${1:-0}"
OUT="${OUT:-transfer_out}/seed-$SEED"
KINDS="${KINDS:-easy hard physics}"
TRAIN_CLIPS="${TRAIN_CLIPS:-300}"
VAL_CLIPS="${VAL_CLIPS:-96}"
LONG_CLIPS="${LONG_CLIPS:-30}"
MARGINS="${MARGINS:-0,2,4,8,12,16,24,32}"
HORIZON=4
python="${PYTHON:-.venv/bin/python}"
read -r -a kinds <<< "$KINDS"
read -r -a folds <<< "${FOLDS:-$KINDS}"
[ "${#kinds[@]}" -ge 2 ] || { echo "error: KINDS=$KINDS: name at least two of easy, hard, physics" >&2; exit 2; }
entries=(kinds kinds-long table.md table.json)
for kind in "${kinds[@]}"; do
    case "$kind" in easy|hard|physics) ;; *) echo "error: KINDS: unknown kind $kind (easy, hard, physics)" >&2; exit 2 ;; esac
    entries+=("without-$kind" "worst-$kind.png")
done
for fold in "${folds[@]}"; do
    case " ${kinds[*]} " in *" $fold "*) ;; *) echo "error: FOLDS: $fold is not one of KINDS ($KINDS)" >&2; exit 2 ;; esac
done
"$python" benchmarks/start_output.py transfer.sh "$OUT" "${entries[@]}" || exit 2
started=$SECONDS
stage() { echo "[$((SECONDS - started))s] $*"; }

mkdir "$OUT/kinds" "$OUT/kinds-long"
for kind in "${kinds[@]}"; do
    case "$kind" in easy) flag= tasks=3 ;; hard) flag=--hard tasks=3 ;; physics) flag=--physics tasks=5 ;; esac
    stage "clips of kind $kind ($((TRAIN_CLIPS / tasks)) + $((VAL_CLIPS / tasks)) held-out per task, 64x64)"
    "$python" create_mini_data.py --synthetic $flag --videos-per-task $((TRAIN_CLIPS / tasks)) \
        --val-videos-per-task $((VAL_CLIPS / tasks)) --size 64 --seed "$SEED" --output-dir "$OUT/kinds/$kind" \
        > "$OUT/kinds/$kind.log" 2>&1 || { tail -3 "$OUT/kinds/$kind.log" >&2; exit 2; }
    # New clips (another seed) of 20 + HORIZON frames, held-out only, for the rollouts.
    "$python" create_mini_data.py --synthetic $flag --num-frames $((20 + HORIZON)) --videos-per-task 0 \
        --val-videos-per-task $((LONG_CLIPS / tasks)) --size 64 --seed $((SEED + 100)) \
        --output-dir "$OUT/kinds-long/$kind" > "$OUT/kinds-long/$kind.log" 2>&1 \
        || { tail -3 "$OUT/kinds-long/$kind.log" >&2; exit 2; }
done
# evaluate.py into FOLDER with LOG, its last lines on failure.
score() { local log="$1"; shift; "$python" evaluate.py --sampler ddim --seed "$SEED" "$@" > "$log" 2>&1 || { tail -3 "$log" >&2; exit 2; }; }

for left_out in "${folds[@]}"; do
    fold="$OUT/without-$left_out"
    mkdir -p "$fold"
    sources=()
    for kind in "${kinds[@]}"; do [ "$kind" = "$left_out" ] || sources+=("$kind=$OUT/kinds/$kind"); done
    stage "fold without $left_out: training on ${sources[*]%%=*}"
    "$python" benchmarks/transfer_kinds.py merge "$fold/raw" "${sources[@]}" > "$fold/merge.log"
    # The chain of learn_synthetic.sh on the merged clips; its evaluation is the in-kind one.
    OUT="$fold" RAW_DATA="$fold/raw" PYTHON="$python" bash benchmarks/learn_synthetic.sh "$SEED" | sed -u 's/^/    /'
    model="$fold/seed-$SEED/model"
    stage "fold without $left_out: choosing the fallback margin on the held-out clips of ${sources[*]%%=*}"
    score "$fold/calibration.log" --model "$model" --data "$fold/seed-$SEED/processed" --calibrate-fallback "$MARGINS" \
        --output-dir "$fold/calibration"
    margin=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["chosen_fallback_margin"])' \
        "$fold/calibration/calibration.json")
    stage "fold without $left_out: scoring the held-out clips of $left_out (fallback margin $margin)"
    score "$fold/held-out.log" --model "$model" --data "$OUT/kinds/$left_out" --fallback-margin "$margin" \
        --output-dir "$fold/held-out" --save-predictions "$fold/held-out/predictions"
    score "$fold/held-out-sweep.log" --model "$model" --data "$OUT/kinds/$left_out" --calibrate-fallback "$MARGINS" \
        --output-dir "$fold/held-out-sweep"
    stage "fold without $left_out: rolling out $HORIZON frames on longer clips of $left_out"
    score "$fold/horizon.log" --model "$model" --data "$OUT/kinds-long/$left_out" --horizon "$HORIZON" \
        --fallback-margin "$margin" --output-dir "$fold/horizon"
done
"$python" benchmarks/transfer_kinds.py table "$OUT" | tee "$OUT/table.md"
stage "done: $OUT/table.md; each fold's strips in without-KIND/held-out/grid.png, rollouts in without-KIND/horizon"
