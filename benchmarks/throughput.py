"""Training throughput of the video trainer, side by side.

Times the trainer's own step (``Trainer.micro_step`` + ``optimizer_step``:
conditioning dropout, UNet forward and backward, clipping, AdamW) on one
device, one configuration per row, each row in a fresh process so its peak
memory is its own. Each row builds its trainer with ``build_trainer``, as
``train_video_ip2p.py`` does, on generated clips. Rows, each on top of the one before from "cached latents"
on:

- online VAE encoding: every step encodes the 20 observed frames and the
  target with the VAE and the instruction with the text encoder, as the
  diffusers example does (the baseline);
- cached latents: the project's path, latents read from the cache and the
  instruction's encoding from the prompt table;
- eager attention: the cached row with plain attention instead of SDPA, to
  show what SDPA is worth (a reference, not part of the stack);
- bf16 without channels_last: the cached row in bf16 only, since CUDA's
  GroupNorm works in NCHW and channels_last may cost on a GPU (a reference);
- + channels_last, + bf16 autocast, + fused AdamW, + torch.compile, + EMA;
- + gradient checkpointing: the stack trading speed for memory (a reference);
- whole trainer: the trainer's whole run with the stacked options, data
  loading, logging and the per-step loss check included.

Achieved TFLOP/s counts the step's FLOPs with PyTorch's FlopCounterMode
(matrix multiplications and convolutions, forward and backward). Fraction of
peak is against the GPU's dense bf16 tensor-core peak (table below, or
--peak-tflops). Peak memory is the GPU's peak allocation, or the process's
peak resident memory on CPU.

    python benchmarks/throughput.py --config tiny                  # CPU, under two minutes
    python benchmarks/throughput.py --config sd15                  # GPU: SD-1.5-shaped 84-channel UNet, 256 and 512
    python benchmarks/throughput.py --config sd15 --resolution 256 --batch-size 32 --json perf.json
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ip2p.shared.cli import UserError, make_parser, run_main  # noqa: E402

CONFIGS = {
    # resolutions, batch size, timed steps, warm-up steps, whole-trainer steps
    "tiny": dict(resolutions=[128], batch_size=8, steps=6, warmup=1, trainer_steps=8),
    "sd15": dict(resolutions=[256, 512], batch_size=32, steps=20, warmup=5, trainer_steps=60),
}
BASE_OPTIONS = dict(cache=True, attention="sdpa", channels_last=False, mixed_precision="no", fused_adam=False,
                    torch_compile=False, use_ema=False)
STACK = [  # (label, options added to the row before)
    ("+ channels_last", dict(channels_last=True)),
    ("+ bf16 autocast", dict(mixed_precision="bf16")),
    ("+ fused AdamW", dict(fused_adam=True)),
    ("+ torch.compile", dict(torch_compile=True)),
    ("+ EMA (foreach)", dict(use_ema=True)),
]
# Dense bf16 tensor-core peak, TFLOP/s (vendor data sheets; SXM parts).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}


def rows_for(config: str):
    """(label, options) of every row, in table order."""
    rows = [("online VAE encoding (diffusers example)", dict(BASE_OPTIONS, cache=False)),
            ("cached latents", dict(BASE_OPTIONS)),
            ("cached latents, eager attention", dict(BASE_OPTIONS, attention="eager")),
            # CUDA's GroupNorm works in NCHW, so channels_last can cost on a GPU: bf16 alone, to compare.
            ("cached latents, bf16 without channels_last", dict(BASE_OPTIONS, mixed_precision="bf16"))]
    options = dict(BASE_OPTIONS)
    for label, added in STACK:
        options = dict(options, **added)
        rows.append((label, dict(options)))
    rows.append(("stack above + gradient checkpointing (memory for speed)", dict(options, gradient_checkpointing=True)))
    rows.append(("whole trainer (stack above, data loading included)", dict(options, whole_trainer=True)))
    return rows


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny", help="model shape: tiny (CPU) or sd15 (GPU)")
    parser.add_argument("--resolution", type=int, action="append", help="training resolution (repeatable; default per config)")
    parser.add_argument("--batch-size", type=int, help="per-device batch size (default per config)")
    parser.add_argument("--steps", type=int, help="timed steps per row (default per config)")
    parser.add_argument("--warmup", type=int, help="untimed steps before timing (default per config)")
    parser.add_argument("--trainer-steps", type=int, help="steps of the whole-trainer row (0 leaves the row out)")
    parser.add_argument("--skip", action="append", default=[], metavar="LABEL_PART",
                        help="leave out rows whose label contains this text (repeatable), e.g. --skip compile")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, for the fraction column (default: table of GPUs)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one row, run in a child process
    args = parser.parse_args(argv)
    defaults = CONFIGS[args.config]
    args.resolution = args.resolution or defaults["resolutions"]
    for name in ("batch_size", "steps", "warmup", "trainer_steps"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    if args.batch_size < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--batch-size and --steps must be at least 1, --warmup at least 0")
    return args


# ----------------------------------------------------------------------------- models and data


def random_pipeline(config: str):
    """An InstructPix2Pix pipeline with random weights (seeded, so every row's
    VAE and its latent cache agree): the tiny test model, or SD 1.5's shapes."""
    import torch

    if config == "tiny":
        from ip2p.models.tiny_model import build_tiny_pipeline

        return build_tiny_pipeline(seed=0)
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ip2p.models.tiny_model import SD15_SCHEDULE, build_tiny_tokenizer

    def shape(name):
        values = json.loads((REPO / "benchmarks" / "configs" / f"sd15_{name}.json").read_text(encoding="utf-8"))
        return {k: v for k, v in values.items() if not k.startswith("_")}

    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()  # the tokenizer only maps text to ids; its vocabulary costs no compute
    text_config = CLIPTextConfig(**shape("text_encoder"), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id)
    return StableDiffusionInstructPix2PixPipeline(
        vae=AutoencoderKL(**shape("vae")), text_encoder=CLIPTextModel(text_config), tokenizer=tokenizer,
        unet=UNet2DConditionModel(**shape("unet")), scheduler=EulerAncestralDiscreteScheduler(**SD15_SCHEDULE),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def generated_data(job: dict) -> Path:
    """Synthetic clips at the row's resolution, converted by make_dataset.py
    once per benchmark run: two batches an epoch, so the whole-trainer row crosses an epoch end."""
    from ip2p.data.synthetic import write_synthetic_dataset

    work, resolution = Path(job["work"]), job["resolution"]
    data = work / f"data-{resolution}"
    if not data.exists():
        clips_per_task = max(2, -(-job["batch_size"] * 2 // 3))
        write_synthetic_dataset(work / f"raw-{resolution}", clips_per_task, 0, resolution, seed=0)
        done = subprocess.run([sys.executable, str(REPO / "make_dataset.py"), "--data-root", str(work / f"raw-{resolution}"),
                               "--output-dir", str(data)], capture_output=True, text=True)
        if done.returncode:
            raise UserError(f"could not convert the generated clips: {done.stderr.strip().splitlines()[-1:]}")
    return data


def trainer_args(job: dict, output: Path, max_steps: int):
    """The video trainer's arguments for this row, parsed as train_video_ip2p.py parses them."""
    from ip2p.training.video_task import parse_video_args

    options, work = job["options"], Path(job["work"])
    argv = ["--pretrained_model_name_or_path", str(work / "model"), "--train_data_dir", str(generated_data(job)),
            "--output_dir", str(output), "--resolution", str(job["resolution"]), "--train_batch_size", str(job["batch_size"]),
            "--gradient_accumulation_steps", "1", "--seed", "0", "--max_train_steps", str(max_steps),
            "--checkpointing_steps", str(max_steps * 10), "--lr_warmup_steps", "0", "--num_validation_images", "0",
            "--latent_cache_dir", str(work / "latent_cache"),
            "--attention", options["attention"], "--mixed_precision", options["mixed_precision"],
            "--channels_last" if options["channels_last"] else "--no_channels_last",
            "--fused_adam" if options["fused_adam"] else "--no_fused_adam",
            "--cache_latents" if options["cache"] else "--no_cache_latents",
            "--prompt_cache_mb", "1024" if options["cache"] else "0"]  # online: the text encoder runs every step too
    argv += ["--torch_compile"] * options["torch_compile"] + ["--use_ema"] * options["use_ema"]
    argv += ["--gradient_checkpointing"] * options.get("gradient_checkpointing", False)
    argv += ["--report_to", "tensorboard" if options.get("whole_trainer") else "none"]
    return parse_video_args(argv)


# ----------------------------------------------------------------------------- one row, in its own process


def time_step(job: dict) -> dict:
    """Build the trainer as train_video_ip2p.py does (random weights in
    memory instead of a download) and time its step on one batch of its data."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ip2p.models.loading import Models
    from ip2p.training.trainer import build_trainer
    from ip2p.training.video_task import video_task

    args = trainer_args(job, Path(job["work"]) / f"step-{time.time_ns()}", job["warmup"] + job["steps"] + 2)
    trainer = build_trainer(args, video_task(args), models=Models.from_pipeline(random_pipeline(job["config"])))
    device = trainer.accelerator.device
    batch = next(trainer.batches())  # cached latents or pixels, as the loader gives them
    if device.type == "cuda":
        batch = {k: v.pin_memory() for k, v in batch.items()}

    def step():
        trainer.micro_step(batch)
        trainer.optimizer_step()

    flops = None
    if not job["options"]["torch_compile"]:  # counted in eager mode; a compiled step does the same arithmetic
        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(job["warmup"]):
        step()
    sync()
    started = time.perf_counter()
    for _ in range(job["steps"]):
        step()
    sync()
    seconds = time.perf_counter() - started
    return dict(samples_per_second=job["steps"] * job["batch_size"] / seconds, flops_per_step=flops,
                peak_memory_gb=peak_memory_gb(device), device=device_name(device))


def time_whole_trainer(job: dict) -> dict:
    """Train on generated clips through the trainer, from a saved model folder, and read the throughput it logged."""
    import torch

    from benchmarks.plot_loss import read_scalars
    from ip2p.training.trainer import build_trainer
    from ip2p.training.video_task import video_task

    model = Path(job["work"]) / "model"
    if not model.exists():
        random_pipeline(job["config"]).save_pretrained(str(model), safe_serialization=True)
    output = Path(job["work"]) / f"trainer-{time.time_ns()}"
    args = trainer_args(job, output, job["trainer_steps"])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    build_trainer(args, video_task(args)).run()
    _, values = read_scalars(output / "logs", "train/samples_per_second")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return dict(samples_per_second=float(values[-1]), flops_per_step=None, peak_memory_gb=peak_memory_gb(device),
                device=device_name(device))


def peak_memory_gb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores)"


def run_worker(text: str) -> int:
    job = json.loads(text)
    result = time_whole_trainer(job) if job["options"].get("whole_trainer") else time_step(job)
    print("RESULT " + json.dumps(result))
    return 0


# ----------------------------------------------------------------------------- the table


def run_row(job: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)],
                          capture_output=True, text=True, env=env, cwd=job["work"])
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return dict(error=error[:300])
    return json.loads(lines[-1][len("RESULT "):])


def peak_for(device: str, given):
    if given:
        return given
    return next((peak for name, peak in PEAK_TFLOPS.items() if name in device), None)


def format_table(resolution: int, batch_size: int, rows: list, device: str, peak) -> str:
    lines = [f"resolution {resolution}, batch {batch_size}, device: {device}",
             "| configuration | samples/s | TFLOP/s | fraction of peak | peak memory (GB) | x first row |",
             "| --- | --- | --- | --- | --- | --- |"]
    first = rows[0].get("samples_per_second")
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['label']} | failed: {row['error']} | | | | |")
            continue
        rate, flops = row["samples_per_second"], row.get("flops_per_sample")
        tflops = rate * flops / 1e12 if flops else None
        lines.append("| {} | {:.2f} | {} | {} | {:.2f} | {} |".format(
            row["label"], rate, f"{tflops:.3f}" if tflops else "-", f"{tflops / peak:.1%}" if tflops and peak else "-",
            row["peak_memory_gb"], f"{rate / first:.2f}x" if first else "-"))
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker)
    rows = [(label, options) for label, options in rows_for(args.config)
            if not any(part in label for part in args.skip) and not (options.get("whole_trainer") and args.trainer_steps == 0)]
    results = []
    with tempfile.TemporaryDirectory(prefix="ip2p-throughput-") as work:
        for resolution in args.resolution:
            table, flops_by_path = [], {}
            for label, options in rows:
                job = dict(config=args.config, resolution=resolution, batch_size=args.batch_size, steps=args.steps,
                           warmup=args.warmup, trainer_steps=args.trainer_steps, options=options, work=work)
                print(f"[{args.config} {resolution}px] {label} ...", file=sys.stderr, flush=True)
                row = dict(label=label, resolution=resolution, batch_size=args.batch_size, **run_row(job))
                path = "online" if not options["cache"] else "cached"
                if row.get("flops_per_step"):
                    flops_by_path[path] = row["flops_per_step"] / args.batch_size
                row["flops_per_sample"] = flops_by_path.get(path)  # compiled and whole-trainer rows reuse the eager count
                table.append(row)
            device = next((row["device"] for row in table if "device" in row), "?")
            print(format_table(resolution, args.batch_size, table, device, peak_for(device, args.peak_tflops)) + "\n")
            results.extend(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    failed = [row["label"] for row in results if "error" in row]
    if failed:
        print(f"error: {len(failed)} row(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
