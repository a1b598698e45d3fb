#!/usr/bin/env bash
# Here, with network, before a GPU session: every package the GPU machine lacks for gpu_acceptance.sh and
# gpu_engines.sh, as wheels in .whl/ (git-ignored). Carry .whl/ to the GPU machine (the device tool's carry);
# benchmarks/gpu_session.sh installs it there.
#   bash benchmarks/gpu_wheels.sh
# ../shared/gpu/wheels.sh fetches diffusers, datasets and two of their needs for the machine's Python 3.12;
# this adds PyAV (predict.py writes the rollout's MP4 with it) and DeepSpeed with its needs. DeepSpeed
# publishes no wheel: it is built here without its ops (DS_BUILD_OPS=0), which compile on first use; the
# trainer's fused AdamW needs none of them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ../shared/gpu/wheels.sh av hjson msgpack ninja py-cpuinfo einops pydantic pydantic-core annotated-types \
    typing-inspection > /dev/null
DS_BUILD_OPS=0 python3 -m pip wheel -q --no-deps -w .whl deepspeed
# pip refuses two versions of one package in one install: an old wheel left here would stop gpu_session.sh there.
doubled="$(ls .whl | grep '\.whl$' | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d | tr '\n' ' ')"
[ -z "$doubled" ] || { echo "error: .whl/ holds two versions of: $doubled; remove the older wheels from .whl/" >&2; exit 1; }
megabytes=$(du -sm .whl | cut -f1)
echo ".whl/: $(ls .whl | wc -l) wheels, $megabytes MB (the carry holds 64 MB in all)"
[ "$megabytes" -lt 64 ] || { echo "error: .whl/ holds $megabytes MB, over the carry's 64 MB: remove the wheels the GPU scripts do not need" >&2; exit 1; }
