#!/usr/bin/env bash
# Install (if needed) and run the test suite: bash run_tests.sh [pytest args]
set -uo pipefail
cd "$(dirname "$0")"
bash install.sh --test || exit 1
python=".venv/bin/python"
[ "${IP2P_NO_VENV:-0}" = "1" ] && python=python3
[ -n "${IP2P_VENV:-}" ] && python="$IP2P_VENV/bin/python"

"$python" -m pytest tests "$@"
status=$?
if [ "$status" -eq 5 ]; then
    # pytest's "no tests collected": a suite that ran nothing proves nothing.
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
