#!/usr/bin/env bash
# Create .venv and install what the project needs (add --test for the test tools and the optional demo).
# Safe to re-run: it does nothing when the requirements have not changed.
#   IP2P_VENV=path       use another virtualenv folder (default .venv)
#   IP2P_NO_VENV=1       install into the current python instead
set -euo pipefail
cd "$(dirname "$0")"

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

if [ "${IP2P_NO_VENV:-0}" = "1" ]; then
    python=python3
else
    venv="${IP2P_VENV:-.venv}"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
            || { echo "error: Python 3.10 or newer is needed (found $(python3 --version))" >&2; exit 1; }
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --upgrade pip
    fi
    python="$venv/bin/python"
fi

files="requirements.txt"
[ "$want_tests" = 1 ] && files="$files requirements-test.txt requirements-demo.txt"  # the demo is tested too
stamp="$("$python" -c 'import sys; print(sys.prefix)')/.ip2p-installed"
digest="$(cat $files | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && grep -qx "$digest" "$stamp"; then
    exit 0
fi

# torch first: with 2.13.0 in place, the requirements' torch>=2.1 pulls nothing
# more; without it pip would choose a multi-GB CUDA build on its own.
if ! "$python" -c 'import torch' 2>/dev/null; then
    "$python" -m pip install --quiet "torch==2.13.0"
fi
requirement_args=""
for f in $files; do requirement_args="$requirement_args -r $f"; done
"$python" -m pip install --quiet $requirement_args
echo "$digest" >> "$stamp"
