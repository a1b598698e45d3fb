"""Kill the tools with SIGKILL at random moments and check that nothing is lost (issue 27).

For each tool, an earlier output (A) sits where a new run writes a different
one (B); the new run's process group is killed with SIGKILL after a seeded
random delay within its uninterrupted duration. After every kill:

- make_dataset.py, create_mini_data.py, import_videos.py: the output folder
  is A or B byte for byte (never a mix, never missing);
- train_video_ip2p.py (checkpoint every step, killed while it trains and
  saves): ``--resume_from_checkpoint latest`` finishes the run, and its final
  UNet equals an uninterrupted run's tensor for tensor.

At the end each tool runs once more to completion, and no staging folder of
the killed runs may be left beside its output. Prints one line per tool
(kill points tried, killed before the end, outputs intact) and exits 1 if
any check failed.

    python benchmarks/crash_harness.py                 # 20 points per tool, about 15 minutes on 2 cores
    python benchmarks/crash_harness.py --points 3 --tools make_dataset create_mini_data
"""

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ip2p.shared.cli import at_least, make_parser, run_main  # noqa: E402

TOOLS = ("make_dataset", "create_mini_data", "import_videos", "train")
TRAIN_FLAGS = ["--resolution", "32", "--train_batch_size", "2", "--gradient_accumulation_steps", "1", "--lr_warmup_steps", "0",
               "--num_validation_images", "0", "--seed", "0", "--max_train_steps", "6", "--checkpointing_steps", "1",
               "--checkpoints_total_limit", "2", "--report_to", "none"]


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--points", type=at_least(1), default=20, help="kill points per tool")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS), help="tools to kill")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    return parser.parse_args(argv)


def script(name: str, *args) -> list:
    return [sys.executable, str(REPO / name), *map(str, args)]


def run(command: list, cwd: Path) -> float:
    """Run to the end (it must succeed); returns its seconds."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if done.returncode:
        raise SystemExit(f"error: {' '.join(command[1:3])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def kill_after(command: list, cwd: Path, delay: float) -> bool:
    """Start ``command`` in its own process group and SIGKILL the group after ``delay`` s; True if it was still running."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


def digest(folder: Path):
    """Every file under ``folder`` (path and content hash), or None when there is no folder."""
    if not folder.is_dir():
        return None
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(target: Path) -> list:
    return sorted(p.name for kind in ("partial", "old") for p in target.parent.glob(f".{target.name}.{kind}-*"))


# ----------------------------------------------------------------------------- the tools' inputs


def write_videos(folder: Path, labels: Path, count: int, seed: int) -> None:
    """``count`` short H.264 clips of a moving square and an SSv2-style label file for them."""
    from PIL import Image, ImageDraw

    from ip2p.shared.video_files import write_mp4

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for index in range(count):
        frames = []
        for step in range(24):
            frame = Image.new("RGB", (48, 32), (20 * index % 255, 40, 90))
            ImageDraw.Draw(frame).rectangle([step + seed, 8, step + seed + 8, 16], fill=(240, 200, 30))
            frames.append(frame)
        write_mp4(frames, folder / f"{index:03d}.mp4", 12)
        entries.append({"id": f"{index:03d}", "label": f"Pushing box {index} from left to right",
                        "template": "Pushing [something] from left to right", "placeholders": [f"box {index}"]})
    labels.write_text(json.dumps(entries), encoding="utf-8")


def folder_commands(tool: str, work: Path) -> tuple:
    """(command writing A, command writing B, the output folder both write)."""
    target = work / "output"
    if tool == "create_mini_data":
        make = lambda seed: script("create_mini_data.py", "--synthetic", "--videos-per-task", 6, "--val-videos-per-task", 1,  # noqa: E731
                                   "--size", 48, "--seed", seed, "--output-dir", target)
        return make(0), make(1), target
    if tool == "make_dataset":
        for seed in (0, 1):
            run(script("create_mini_data.py", "--synthetic", "--videos-per-task", 6, "--val-videos-per-task", 1, "--size", 32,
                       "--seed", seed, "--output-dir", work / f"raw{seed}"), work)
        make = lambda seed: script("make_dataset.py", "--data-root", work / f"raw{seed}", "--output-dir", target)  # noqa: E731
        return make(0), make(1), target
    for seed in (0, 1):
        write_videos(work / f"videos{seed}", work / f"labels{seed}.json", 6, seed)
    make = lambda seed: script("import_videos.py", "--videos", work / f"videos{seed}", "--labels", work / f"labels{seed}.json",  # noqa: E731
                               "--output-dir", target, "--max-side", 32, "--num-workers", 2)
    return make(0), make(1), target


# ----------------------------------------------------------------------------- the checks


def check_folder_tool(tool: str, work: Path, points: int, rng: random.Random) -> dict:
    """Kill the run that replaces A with B ``points`` times; the folder must be A or B every time."""
    write_a, write_b, target = folder_commands(tool, work)
    run(write_b, work)
    b = digest(target)
    shutil.rmtree(target)
    run(write_a, work)
    a = digest(target)
    pristine = work / "pristine-a"
    shutil.copytree(target, pristine)
    duration = run(write_b, work)  # over A, as in every kill below
    killed = intact = 0
    for _ in range(points):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(pristine, target)
        killed += kill_after(write_b, work, rng.uniform(0, duration))
        intact += digest(target) in (a, b)
    run(write_b, work)  # the next run cleans up what the killed ones left
    left = leftovers(target)
    return dict(tool=tool, points=points, killed=killed, intact=intact, leftovers=left,
                ok=intact == points and not left and digest(target) == b)


def check_training(work: Path, points: int, rng: random.Random) -> dict:
    """Kill a run that checkpoints every step; resuming from latest must end with the uninterrupted run's weights."""
    from safetensors.torch import load_file

    import torch

    run(script("download_model.py", "--tiny", "--local-dir", work / "tiny"), work)
    run(script("create_mini_data.py", "--synthetic", "--videos-per-task", 2, "--val-videos-per-task", 1, "--size", 32,
               "--output-dir", work / "raw"), work)
    run(script("make_dataset.py", "--data-root", work / "raw", "--output-dir", work / "processed"), work)

    def train(output: Path, *extra) -> list:
        return script("train_video_ip2p.py", "--pretrained_model_name_or_path", work / "tiny", "--train_data_dir",
                      work / "processed", "--output_dir", output, "--latent_cache_dir", work / "cache", *TRAIN_FLAGS, *extra)

    duration = run(train(work / "reference"), work)
    weights = lambda folder: load_file(str(folder / "unet/diffusion_pytorch_model.safetensors"))  # noqa: E731
    reference = weights(work / "reference")
    killed = matching = 0
    for point in range(points):
        output = work / f"killed-{point}"
        killed += kill_after(train(output), work, rng.uniform(0.3 * duration, duration))
        run(train(output, "--resume_from_checkpoint", "latest"), work)
        resumed = weights(output)
        matching += all(torch.equal(reference[k], resumed[k]) for k in reference)
        left = sorted(p.name for p in output.glob(".checkpoint-*")) + sorted(p.name for p in output.glob(".final.*"))
        if left:
            return dict(tool="train", points=point + 1, killed=killed, intact=matching, leftovers=left, ok=False)
        shutil.rmtree(output)
    return dict(tool="train", points=points, killed=killed, intact=matching, leftovers=[], ok=matching == points)


def main(argv=None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="ip2p-crash-") as temporary:
        for tool in args.tools:
            work = Path(temporary) / tool
            work.mkdir()
            started = time.perf_counter()
            result = check_training(work, args.points, rng) if tool == "train" else check_folder_tool(tool, work, args.points, rng)
            result["seconds"] = round(time.perf_counter() - started)
            results.append(result)
            what = "resumed to the uninterrupted weights" if tool == "train" else "outputs intact (A or B, byte for byte)"
            print(f"{tool}: {result['points']} kill points, {result['killed']} killed before the end, {result['intact']} "
                  f"{what}, leftovers after the next run: {result['leftovers'] or 'none'} ({result['seconds']} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    failed = [r["tool"] for r in results if not r["ok"]]
    if failed:
        print(f"error: lost or mixed work after a kill: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
