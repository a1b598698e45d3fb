"""Training throughput of the video trainer with and without the latent cache.

Runs train_video_ip2p.py twice on the same generated clips, model and
settings, once encoding every frame with the VAE on each step
(--no_cache_latents, what the diffusers example does) and once reading cached
latents, and prints samples/second side by side with the ratio last. The
cache is filled before timing (it is a one-off cost per data set, resolution
and VAE). Samples/second is what the trainer itself logs: the average over
the timed steps, data loading included.

    python benchmarks/video_cache_throughput.py                   # tiny model on CPU, about a minute
    python benchmarks/video_cache_throughput.py --model models/instruct-pix2pix --resolution 256 --steps 50
"""

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ip2p.cli import make_parser, run_main  # noqa: E402


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None, help="base pipeline (default: a tiny offline model built for the run)")
    parser.add_argument("--resolution", type=int, default=128, help="training resolution")
    parser.add_argument("--clips", type=int, default=16, help="generated clips to train on")
    parser.add_argument("--batch-size", type=int, default=8, help="per-device batch size")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps timed per configuration")
    return parser.parse_args(argv)


def run(script: str, *args, cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{script} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def samples_per_second(output: Path) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next(output.glob("logs/**/events.out.tfevents.*")).parent))
    events.Reload()
    return events.Scalars("train/samples_per_second")[-1].value


def make_clips(root: Path, count: int, size: int) -> None:
    import json

    from ip2p.mini_data import render_drop_clip

    entries = []
    for index in range(count):
        folder = root / "train" / "drop_object" / f"video_{index}"
        folder.mkdir(parents=True)
        for frame_index, frame in enumerate(render_drop_clip(21, size, seed=index)):
            frame.save(folder / f"{frame_index:02d}.jpg", quality=95)
        entries.append({"video_path": f"train/drop_object/video_{index}", "instruction": "dropping a pen onto the table",
                        "task_type": "drop_object"})
    (root / "metadata.json").write_text(json.dumps(entries))


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ip2p-bench-") as work:
        work = Path(work)
        make_clips(work / "raw", args.clips, args.resolution)
        run("make_dataset.py", "--data-root", work / "raw", "--output-dir", work / "processed", cwd=work)
        model = args.model
        if model is None:
            model = work / "tiny"
            run("download_model.py", "--tiny", "--local-dir", model, cwd=work)
        common = ["--pretrained_model_name_or_path", Path(model).resolve(), "--train_data_dir", work / "processed",
                  "--resolution", args.resolution, "--train_batch_size", args.batch_size, "--gradient_accumulation_steps", 1,
                  "--max_train_steps", args.steps, "--checkpointing_steps", args.steps * 10, "--num_validation_images", 0,
                  "--seed", 0, "--latent_cache_dir", work / "cache", "--lr_warmup_steps", 0]
        rows = []
        for name, extra in (("online VAE encoding (no cache)", ["--no_cache_latents"]), ("cached latents", [])):
            if not extra:  # fill the cache outside the timed run
                run("train_video_ip2p.py", *common, "--max_train_steps", 1, "--output_dir", work / "warm", cwd=work)
            output = work / name.split()[0]
            run("train_video_ip2p.py", *common, *extra, "--output_dir", output, cwd=work)
            rows.append((name, samples_per_second(output)))
    print(f"video trainer, resolution {args.resolution}, batch {args.batch_size}, {args.steps} steps, "
          f"model {'tiny (offline)' if args.model is None else args.model}")
    print(f"| configuration | samples/s |\n| --- | ---: |")
    for name, speed in rows:
        print(f"| {name} | {speed:.2f} |")
    print(f"cached / online: {rows[1][1] / rows[0][1]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
