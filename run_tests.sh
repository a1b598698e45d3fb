#!/usr/bin/env bash
# Install (if needed) and run the test suite: bash run_tests.sh [pytest args]
set -uo pipefail
cd "$(dirname "$0")"
bash install.sh --test || exit 1
python=".venv/bin/python"
[ "${IP2P_NO_VENV:-0}" = "1" ] && python=python3
[ -n "${IP2P_VENV:-}" ] && python="$IP2P_VENV/bin/python"

# Two workers by default (IP2P_TEST_WORKERS=N for more, 0 for one process): about 1.6 times faster on 2 cores.
"$python" -m pytest tests -n "${IP2P_TEST_WORKERS:-2}" --dist worksteal "$@"
status=$?
if [ "$status" -eq 5 ]; then
    # pytest's "no tests collected": a suite that ran nothing proves nothing.
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
