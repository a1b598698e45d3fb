"""Run under torchrun by test_training_setup.py: a process group whose
timeout is 3 seconds, and a fill in which the second process works 8
seconds longer than the first. ``patient_barrier`` must wait for it (the
group's own barrier would give up after 3 seconds); with ``fail`` the second
process's fill raises, and both must stop at once."""

import sys
import time
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ip2p.shared.cli import UserError  # noqa: E402
from ip2p.training.setup import patient_barrier  # noqa: E402

dist.init_process_group("gloo", timeout=timedelta(seconds=3))
rank = dist.get_rank()
accelerator = type("Accelerator", (), {"num_processes": dist.get_world_size()})()
started = time.monotonic()
try:
    with patient_barrier(accelerator, hours=1):
        if rank == 1:
            time.sleep(8)
            if sys.argv[1:] == ["fail"]:
                raise UserError("sample 7 cannot be read")
    print(f"rank {rank} waited {time.monotonic() - started:.0f} s", flush=True)
except UserError as err:
    print(f"rank {rank} stopped after {time.monotonic() - started:.0f} s: {err}", flush=True)
dist.destroy_process_group()
