#!/usr/bin/env bash
# End-to-end smoke run on the embedded default, no GPU or network needed:
# generated mini data -> processed dataset -> tiny offline pipeline -> checks.
# (Training joins this run once train_video_ip2p.py lands; see README.)
set -euo pipefail
cd "$(dirname "$0")"
bash install.sh
python=".venv/bin/python"
[ "${IP2P_NO_VENV:-0}" = "1" ] && python=python3
[ -n "${IP2P_VENV:-}" ] && python="$IP2P_VENV/bin/python"

"$python" create_mini_data.py --output-dir dataset_mini
"$python" make_dataset.py --data-root dataset_mini --output-dir processed_dataset_seq
"$python" download_model.py --tiny --local-dir models/tiny-instruct-pix2pix
"$python" quick_test.py --dataset processed_dataset_seq --model models/tiny-instruct-pix2pix
echo "smoke run passed"
