#!/usr/bin/env bash
# The GPU check of one 15-minute lease as one command on the GPU machine, with .whl/ carried
# (benchmarks/gpu_wheels.sh made it here):
#   bash benchmarks/gpu_session.sh "$OUT"                # gpu_engines.sh (at most 4 min), then gpu_acceptance.sh
#                                                        # (at most 6 min, its budget cut to the time left)
#   bash benchmarks/gpu_session.sh "$OUT" engines        # one part only, e.g. to rerun it in the lease's time left
#   GPU_SESSION_DRY_RUN=1 bash benchmarks/gpu_session.sh OUT   # the same on CPU: both scripts' dry runs, longer limits
# It installs .whl/ (or GPU_WHEELS=DIR) into a temporary folder put first on PYTHONPATH, and writes into OUT as
# it goes: session.txt, gpu_acceptance.md and gpu_engines.md (each written as its run goes), and each part's
# logs in logs-PART/. Each part runs under a time limit of its own, so the session ends, logs copied, before
# the machine's 10 minutes for one command (GPU_SESSION_BUDGET_S, default 580 s, for the whole command).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash benchmarks/gpu_session.sh OUT [engines] [acceptance]" >&2; exit 2; }
out="$1"; shift
# The engines first: their cost is about fixed, and the acceptance's throughput table fits itself to the time left.
if [ $# -ge 1 ]; then parts=("$@"); else parts=(engines acceptance); fi
budget="${GPU_SESSION_BUDGET_S:-580}"
engines_limit=240  # about 3 minutes on a slow GPU host; the 2-core CPU dry run needs 6 to 7
acceptance_budget="${GPU_ACCEPTANCE_BUDGET_S:-360}"
if [ "${GPU_SESSION_DRY_RUN:-0}" = 1 ]; then
    export GPU_ACCEPTANCE_DRY_RUN=1 GPU_ENGINES_DRY_RUN=1
    budget="${GPU_SESSION_BUDGET_S:-1500}"; engines_limit=600
fi
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }
mkdir -p "$out"
export PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
scratch="$(mktemp -d)"; trap 'rm -rf "$scratch"' EXIT

wheels="${GPU_WHEELS:-.whl}"
if compgen -G "$wheels/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$scratch/site" "$wheels"/*.whl
    export PYTHONPATH="$scratch/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
python="$PYTHON"
source benchmarks/tiny_chain.sh
check_machine GPU_SESSION_DRY_RUN
printf 'device: %s\n%s\n' "$device" "$versions" > "$out/session.txt"
cat "$out/session.txt"
echo "installed and checked: $(elapsed) s"

status=0
for part in "${parts[@]}"; do
    case "$part" in
        acceptance) limit=$(( acceptance_budget + 30 )); work_variable=GPU_ACCEPTANCE_WORK ;;
        engines) limit=$engines_limit; work_variable=GPU_ENGINES_WORK ;;
        *) echo "error: unknown part '$part': give engines and/or acceptance" >&2; exit 2 ;;
    esac
    left=$(( budget - $(elapsed) ))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 60 ]; then
        echo "$part: not run, ${left} s left of ${budget} s" | tee -a "$out/session.txt"
        status=1; continue
    fi
    work="$scratch/$part"
    set +e
    # The acceptance's own budget sits inside its limit (the engines take no budget).
    env "$work_variable=$work" GPU_ACCEPTANCE_BUDGET_S=$(( limit - 30 )) timeout -k 10 "$limit" \
        bash "benchmarks/gpu_$part.sh" "$out/gpu_$part.md"
    code=$?
    set -e
    [ "$code" = 0 ] || status=1
    mkdir -p "$out/logs-$part"
    cp "$work"/*.log "$work"/*.json "$out/logs-$part/" 2>/dev/null || true
    echo "$part: exit $code after $(elapsed) s (limit ${limit} s)" | tee -a "$out/session.txt"
done
exit "$status"
