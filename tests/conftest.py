"""Shared helpers: run the real scripts as a user would, and write clips."""

import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

# pytest-xdist's workers (run_tests.sh starts 2) share the cores, so each worker and every script it starts gets
# its share of OpenMP threads, set before torch loads. Left at torch's default of one thread per core, two
# trainers side by side on 2 cores took 75-123 s instead of 18-21 s: oversubscribed threads wait on each other.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // WORKERS)))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pytest_collection_modifyitems(items):
    """Tests marked ``starts_first`` go to the front (a stable sort: the rest keep their order)."""
    items.sort(key=lambda item: item.get_closest_marker("starts_first") is None)


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it): launches in parallel tests never share one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def script_env(tmp_root: Path, **extra) -> dict:
    env = dict(os.environ)
    # Keep every cache inside the test's folder and never touch the network.
    env.update(
        HF_HOME=str(tmp_root / "hf_home"), HF_DATASETS_CACHE=str(tmp_root / "hf_datasets"),
        HF_HUB_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1",
        # torch.compile's kernels too: a test compiles as cold as on a fresh machine, and leaves no cache behind.
        TORCHINDUCTOR_CACHE_DIR=str(tmp_root / "inductor_cache"),
    )
    env.pop("HF_ENDPOINT", None)
    env.update(extra)
    return env


def hiding_module(tmp_root: Path, name: str) -> str:
    """A folder to put on PYTHONPATH: its sitecustomize makes ``import NAME`` fail in every Python started
    with it, as on a machine without that package."""
    folder = tmp_root / f"hide_{name}"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(f"import sys\nsys.modules[{name!r}] = None  # cannot be imported\n")
    return str(folder)


def run_script(script: str, *args, cwd: Path, env: dict = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a top-level script with the test interpreter; returns the finished process."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *map(str, args)],
        cwd=cwd, env=env or script_env(Path(cwd)), capture_output=True, text=True, timeout=timeout,
    )


def write_clip(folder: Path, num_frames: int = 21, size: int = 32, seed: int = 0, name=lambda i: f"{i:02d}.jpg") -> None:
    """A clip of random frames, one file per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(num_frames):
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name(index), quality=90)


def write_metadata(root: Path, entries) -> None:
    (root / "metadata.json").write_text(json.dumps(entries, indent=2), encoding="utf-8")


def numbered_clip_root(root: Path, train=("drop_object", "cover_object", "move_object"), val=("move_object",)) -> list:
    """A data root in the numbered layout: one clip per task in train/ and val/."""
    entries = []
    for split, tasks in (("train", train), ("val", val)):
        for index, task in enumerate(tasks):
            video_path = f"{split}/{task}/video_{index}"
            write_clip(root / video_path, seed=len(entries))
            entries.append({"video_path": video_path, "instruction": f"{task.replace('_', ' ')} number {index}", "task_type": task})
    write_metadata(root, entries)
    return entries


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny offline pipeline, built once by the real script."""
    work = tmp_path_factory.mktemp("tiny")
    done = run_script("download_model.py", "--tiny", "--local-dir", work / "tiny-model", cwd=work)
    assert done.returncode == 0, done.stderr
    return work / "tiny-model"


@pytest.fixture(scope="session")
def video_model(tmp_path_factory, tiny_model) -> Path:
    """The tiny pipeline widened for 20 frames by make_video_model.py."""
    work = tmp_path_factory.mktemp("video_model")
    done = run_script("make_video_model.py", "--base", tiny_model, "--output-dir", work / "video20", cwd=work)
    assert done.returncode == 0, done.stderr
    return work / "video20"


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    """3 train clips + 1 held-out clip (32x32, 21 frames) and their processed dataset."""
    root = tmp_path_factory.mktemp("clips")
    numbered_clip_root(root / "raw")
    done = run_script("make_dataset.py", "--data-root", "raw", "--output-dir", "processed", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def train_video(cwd: Path, tiny_model: Path, data: Path, output: str, *extra, timeout=300):
    return run_script(
        "train_video_ip2p.py", "--pretrained_model_name_or_path", tiny_model, "--train_data_dir", data,
        "--output_dir", output, "--resolution", 32, "--train_batch_size", 2, "--gradient_accumulation_steps", 1,
        "--lr_warmup_steps", 0, "--latent_cache_dir", cwd / "cache", "--num_validation_images", 0, *extra,
        cwd=cwd, timeout=timeout,
    )


@contextmanager
def in_process_accelerate():
    """Around a trainer built in the test's own process: accelerate's state is a
    process-wide singleton, reset afterwards so that the next in-process trainer builds its own."""
    from accelerate.state import AcceleratorState, GradientState

    try:
        yield
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def logged_losses(output: Path) -> list:
    """The train/loss scalars a run wrote to TensorBoard, in step order."""
    from benchmarks.plot_loss import read_scalars

    return read_scalars(output / "logs", "train/loss")[1].tolist()


REPLICA_WORKER = REPO / "tests/replica_weights_worker.py"


def assert_replicas_match_the_saved_unet(replica_dir: Path, run_dir: Path, processes: int) -> None:
    """Every process's own final UNet (written by replica_weights_worker.py) equals the others' and the
    saved pipeline's, tensor for tensor."""
    from safetensors.torch import load_file

    saved = load_file(str(run_dir / "unet/diffusion_pytorch_model.safetensors"))
    replicas = [load_file(str(replica_dir / f"rank{rank}.safetensors")) for rank in range(processes)]
    for replica in replicas:
        assert replica.keys() == saved.keys()
        assert [name for name in saved if not torch.equal(replica[name], saved[name])] == []
