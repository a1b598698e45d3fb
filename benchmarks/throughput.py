"""Training throughput of the video trainer, side by side, in one process.

Times the trainer's own step (``Trainer.micro_step`` + ``optimizer_step``:
conditioning dropout, UNet forward and backward, clipping, AdamW) on one
device, one configuration per row. Every row of a run shares one process:
the imports, the random model (built once, copied fresh for each row) and
the generated clips (made once into ``--work-dir``, reused by the next run).
Each row builds its trainer with ``build_trainer``, as
``train_video_ip2p.py`` does; between rows the benchmark resets what a row
changes (the accelerator's state, compiled graphs, the memory counters).
Rows, each on top of the one before from "cached latents" on:

- online VAE encoding: every step encodes the 20 observed frames and the
  target with the VAE and the instruction with the text encoder, as the
  diffusers example does (the baseline);
- cached latents: the project's path, latents read from the cache and the
  instruction's encoding from the prompt table (fp32);
- eager attention: the cached row with plain attention instead of SDPA (a reference);
- bf16 without channels_last: CUDA's GroupNorm works in NCHW, so channels_last
  may cost on a GPU (a reference);
- + channels_last, + bf16 autocast, + fused AdamW, + EMA: the eager stack;
- whole trainer: the trainer's whole run with the eager stack: data
  loading, logging, EMA, a checkpoint and the per-step loss check included;
- the eager stack with the UNet's forward and backward recorded as CUDA
  graphs (``--cuda_graph_unet``, nothing compiled), then the whole trainer
  so: on a GPU only (a CPU run lists them as skipped);
- the eager stack compiled: ``--torch_compile``, then with CUDA graphs
  (``--torch_compile_mode reduce-overhead``), then the whole trainer so;
- + gradient checkpointing: the eager stack trading speed for memory (a reference).

The compiled rows come after every other one but the gradient-checkpointing
reference: a compilation takes minutes on a slow GPU host, and a run whose
``--budget-s`` runs out there keeps the rest of the table whole.

Columns: samples/s over the timed steps; the first step's seconds (for a
compiled row: compilation, reported apart from the step); achieved TFLOP/s
(PyTorch's FlopCounterMode, counted once per path: online and cached) and
the fraction of the GPU's dense bf16 peak; peak memory (the GPU's peak
allocation, or on CPU the process's peak resident memory since the row
began); and, on a GPU, whether the step synchronises with the host
(``torch.cuda.set_sync_debug_mode("error")`` around one step).

Each row is printed, and appended to ``--json``, as soon as it finishes; a
run that is cut off keeps the rows it finished. ``--budget-s`` skips a row
that would not fit (estimated from the rows already run). ``--profile-row``
records a ``torch.profiler`` trace of 5 steps of a row and prints the
wall and device-busy time per step, the top 10 kernels, the host time
spent launching them and the launch calls a step.

    python benchmarks/throughput.py --config tiny                  # CPU, about 2.5 minutes (2 cores)
    python benchmarks/throughput.py --config sd15 --work-dir /tmp/tp   # GPU: SD-1.5-shaped 84-channel UNet, 256 and 512
    python benchmarks/throughput.py --config sd15 --resolution 256 --json perf.json --budget-s 240
"""

import copy
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ip2p.shared.atomic_dir import mark_owner, read_owner  # noqa: E402
from ip2p.shared.cli import UserError, at_least, make_parser, run_main  # noqa: E402

CONFIGS = {
    # resolutions, batch size, timed steps, warm-up steps, whole-trainer steps
    "tiny": dict(resolutions=[128], batch_size=8, steps=6, warmup=1, trainer_steps=8),
    "sd15": dict(resolutions=[256, 512], batch_size=32, steps=10, warmup=3, trainer_steps=40),
}
BASE_OPTIONS = dict(cache=True, attention="sdpa", channels_last=False, mixed_precision="no", fused_adam=False,
                    torch_compile=False, compile_mode="default", use_ema=False, cuda_graph_unet=False)
STACK = [  # (label, options added to the row before)
    ("+ channels_last", dict(channels_last=True)),
    ("+ bf16 autocast", dict(mixed_precision="bf16")),
    ("+ fused AdamW", dict(fused_adam=True)),
    ("+ EMA (foreach)", dict(use_ema=True)),
]
# Dense bf16 tensor-core peak, TFLOP/s (vendor data sheets; SXM parts).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}
WORK_OWNER = "benchmarks/throughput.py"  # named in a --work-dir's owner record; any other non-empty folder is refused
PROFILED_STEPS = 5
LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaGraphLaunch",
                "cudaMemcpyAsync", "cudaMemsetAsync")


def rows_for(config: str):
    """(label, options) of every row, in table order."""
    rows = [("online VAE encoding (diffusers example)", dict(BASE_OPTIONS, cache=False)),
            ("cached latents", dict(BASE_OPTIONS)),
            ("cached latents, eager attention", dict(BASE_OPTIONS, attention="eager")),
            ("cached latents, bf16 without channels_last", dict(BASE_OPTIONS, mixed_precision="bf16"))]
    options = dict(BASE_OPTIONS)
    for label, added in STACK:
        options = dict(options, **added)
        rows.append((label, dict(options)))
    # Eager rows first, the compiled ones after them (the checkpointing reference last): a compilation takes
    # minutes on a slow GPU host, so a run whose --budget-s ends inside one still has every eager step row,
    # its whole trainer included.
    rows.append(("whole trainer (stack above, data loading included)", dict(options, whole_trainer=True)))
    # Recorded, not compiled: its first step costs seconds, so it comes before the compiled rows. A GPU only.
    graphed = dict(options, cuda_graph_unet=True)
    rows.append(("eager stack + CUDA graphs of the UNet (--cuda_graph_unet, nothing compiled)", dict(graphed)))
    rows.append(("whole trainer, UNet CUDA graphs (row above, data loading included)", dict(graphed, whole_trainer=True)))
    compiled = dict(options, torch_compile=True)
    rows.append(("eager stack + torch.compile", dict(compiled)))
    rows.append(("eager stack + CUDA graphs (compile mode reduce-overhead)", dict(compiled, compile_mode="reduce-overhead")))
    rows.append(("whole trainer, compiled (CUDA graphs row, data loading included)",
                 dict(compiled, compile_mode="reduce-overhead", whole_trainer=True)))
    # Eager: checkpointing is a memory reference, and compiling its graph (a second one) would cost minutes of a GPU lease.
    rows.append(("eager stack + gradient checkpointing (memory for speed)", dict(options, gradient_checkpointing=True)))
    return rows


def runs_op_by_op(options: dict) -> bool:
    """Whether a row's step dispatches each operation from Python (neither
    compiled nor replayed from a recorded graph): what FLOPs and operations are counted on."""
    return not options["torch_compile"] and not options["cuda_graph_unet"]


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny", help="model shape: tiny (CPU) or sd15 (GPU)")
    parser.add_argument("--resolution", type=at_least(8), action="append", help="training resolution (repeatable; default per config)")
    parser.add_argument("--batch-size", type=at_least(1), help="per-device batch size (default per config)")
    parser.add_argument("--steps", type=at_least(1), help="timed steps per row (default per config)")
    parser.add_argument("--warmup", type=at_least(0), help="untimed steps after the first (timed apart) step (default per config)")
    parser.add_argument("--trainer-steps", type=at_least(0), help="steps of the whole-trainer row (0 leaves the row out)")
    parser.add_argument("--skip", action="append", default=[], metavar="LABEL_PART",
                        help="leave out rows whose label contains this text (repeatable), e.g. --skip compile")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, for the fraction column (default: table of GPUs)")
    parser.add_argument("--json", type=Path, help="write the rows to this JSON file, rewritten after every row")
    parser.add_argument("--work-dir", type=Path,
                        help="keep the generated clips, processed sets, latent cache and profiles here, and reuse them "
                             "in the next run (default: a temporary folder, removed at the end)")
    parser.add_argument("--budget-s", type=at_least(1.0, float),
                        help="skip a row that would end later than this many seconds after the start")
    parser.add_argument("--profile-row", metavar="LABEL_PART", action="append", default=[],
                        help=f"record a torch.profiler trace of {PROFILED_STEPS} steps of the first step row whose label "
                             "contains this text, e.g. 'fused AdamW' (repeatable)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="only generate the clips and processed sets into --work-dir (to overlap with other work)")
    args = parser.parse_args(argv)
    defaults = CONFIGS[args.config]
    args.resolution = args.resolution or defaults["resolutions"]
    for name in ("batch_size", "steps", "warmup", "trainer_steps"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    if args.prepare_only and args.work_dir is None:
        parser.error("--prepare-only needs --work-dir (where the next run finds the data)")
    return args


# ----------------------------------------------------------------------------- work folder, model and data


@contextmanager
def work_folder(path):
    """The benchmark's folder: ``path`` (made, or one an earlier run made), else a temporary one."""
    if path is None:
        with tempfile.TemporaryDirectory(prefix="ip2p-throughput-") as temporary:
            yield Path(temporary)
        return
    path = Path(path)
    if path.exists() and any(path.iterdir()) and (read_owner(path) or {}).get("written_by") != WORK_OWNER:
        raise UserError(f"--work-dir {path} holds files this benchmark did not write; give an empty or new folder")
    path.mkdir(parents=True, exist_ok=True)
    mark_owner(path, WORK_OWNER, entries=[])
    yield path


def random_pipeline(config: str):
    """An InstructPix2Pix pipeline with random weights (seeded, so every row's
    VAE and its latent cache agree): the tiny test model, or SD 1.5's shapes."""
    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ip2p.models.tiny_model import SD15_SCHEDULE, build_tiny_pipeline, build_tiny_tokenizer

    if config == "tiny":
        return build_tiny_pipeline(seed=0)

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


def generated_data(work: Path, resolution: int, batch_size: int) -> Path:
    """Synthetic clips at ``resolution``, converted as make_dataset.py does, once
    per work folder: two batches an epoch, so the whole-trainer row crosses an
    epoch end. Built under a staging name, so a cut-off run leaves no half set."""
    from ip2p.data.processed import assign_splits, save_processed_dataset
    from ip2p.data.raw_data import scan_raw_data
    from ip2p.data.synthetic import write_synthetic_dataset

    data, raw = work / f"data-{resolution}-b{batch_size}", work / f"raw-{resolution}-b{batch_size}"
    if data.exists():
        return data
    shutil.rmtree(raw, ignore_errors=True)  # a cut-off run's clips, in the benchmark's own folder
    write_synthetic_dataset(raw, max(2, -(-batch_size * 2 // 3)), 0, resolution, seed=0, workers=min(8, os.cpu_count() or 1))
    scan = scan_raw_data(raw, 20)
    train, test, _ = assign_splits(scan.samples, 0.1, 0)
    staging = work / f".{data.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    save_processed_dataset(staging, data, raw, {"train": train, "test": test}, 20, {"layout": scan.layout})
    staging.rename(data)
    return data


def trainer_args(work: Path, data: Path, row: dict, output: Path, max_steps: int, checkpoint_every: int):
    """The video trainer's arguments for this row, parsed as train_video_ip2p.py parses them."""
    from ip2p.training.video_task import parse_video_args

    options = row["options"]
    argv = ["--pretrained_model_name_or_path", str(work / "model-in-memory"), "--train_data_dir", str(data),
            "--output_dir", str(output), "--resolution", str(row["resolution"]), "--train_batch_size", str(row["batch_size"]),
            "--gradient_accumulation_steps", "1", "--seed", "0", "--max_train_steps", str(max_steps),
            "--checkpointing_steps", str(checkpoint_every), "--lr_warmup_steps", "0", "--num_validation_images", "0",
            "--latent_cache_dir", str(work / "latent_cache"),
            "--attention", options["attention"], "--mixed_precision", options["mixed_precision"],
            "--channels_last" if options["channels_last"] else "--no_channels_last",
            "--fused_adam" if options["fused_adam"] else "--no_fused_adam",
            "--cache_latents" if options["cache"] else "--no_cache_latents",
            "--prompt_cache_mb", "1024" if options["cache"] else "0",  # online: the text encoder runs every step too
            "--torch_compile" if options["torch_compile"] else "--no_torch_compile",
            "--torch_compile_mode", options["compile_mode"]]
    argv += ["--use_ema"] * options["use_ema"] + ["--gradient_checkpointing"] * options.get("gradient_checkpointing", False)
    argv += ["--cuda_graph_unet"] * options["cuda_graph_unet"]
    argv += ["--report_to", "tensorboard" if options.get("whole_trainer") else "none"]
    return parse_video_args(argv)


# ----------------------------------------------------------------------------- one row


class Bench:
    """What every row shares: the model (built once, copied per row), the data, the FLOP counts per path."""

    def __init__(self, args, work: Path):
        import torch

        self.args, self.work = args, work
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        from ip2p.models.loading import Models

        self.models = Models.from_pipeline(random_pipeline(args.config))  # stays on the CPU, untouched
        self.flops_per_sample = {}  # path ("online", "cached") -> count

    def build(self, row: dict, max_steps: int, checkpoint_every: int):
        """A trainer for this row, built as train_video_ip2p.py builds one, on a fresh copy of the model."""
        from ip2p.training.trainer import build_trainer
        from ip2p.training.video_task import video_task

        data = generated_data(self.work, row["resolution"], row["batch_size"])
        output = self.work / "runs" / f"{row['resolution']}-{row['index']:02d}"
        shutil.rmtree(output, ignore_errors=True)  # the same row of an earlier run in this work folder
        args = trainer_args(self.work, data, row, output, max_steps, checkpoint_every)
        return build_trainer(args, video_task(args), models=copy.deepcopy(self.models)), output

    def run(self, row: dict) -> dict:
        reset_peak_memory(self.device)
        try:
            result = self.time_whole_trainer(row) if row["options"].get("whole_trainer") else self.time_step(row)
        finally:
            release_row(self.device)
        return dict(result, peak_memory_gb=result.get("peak_memory_gb") or peak_memory_gb(self.device), device=device_name(self.device))

    def trainer_step(self, row: dict, max_steps: int):
        """(trainer, step) for this row: ``step()`` runs the trainer's step
        (``micro_step`` + ``optimizer_step``) on one batch of its data, again and again."""
        trainer, _ = self.build(row, max_steps, 10**6)
        batch = next(trainer.batches())  # cached latents or pixels, as the loader gives them
        if self.device.type == "cuda":
            batch = {k: v.pin_memory() for k, v in batch.items()}

        def step():
            trainer.micro_step(batch)
            trainer.optimizer_step()

        return trainer, step

    def time_step(self, row: dict) -> dict:
        """The trainer's step on one batch of its data: the first step timed
        apart (compilation, allocator warm-up), then warm-up, then the timed steps."""
        args = self.args
        trainer, step = self.trainer_step(row, 1 + args.warmup + args.steps + PROFILED_STEPS + 3)
        path = "cached" if row["options"]["cache"] else "online"
        if path not in self.flops_per_sample and runs_op_by_op(row["options"]):
            self.flops_per_sample[path] = count_flops(step) / row["batch_size"]
        first_step_s = timed(step, 1, self.device)
        timed(step, args.warmup, self.device)
        seconds = timed(step, args.steps, self.device)
        result = dict(samples_per_second=args.steps * row["batch_size"] / seconds, seconds_per_step=seconds / args.steps,
                      first_step_seconds=first_step_s, flops_per_sample=self.flops_per_sample.get(path),
                      peak_memory_gb=peak_memory_gb(self.device), host_sync=host_sync_check(step, self.device))
        if row["profile_requested"]:
            result["profile"] = profile_steps(step, self.device, self.work / f"profile-{row['resolution']}-{row['index']:02d}.json")
        trainer.accelerator.free_memory()
        return result

    def time_whole_trainer(self, row: dict) -> dict:
        """Train through ``Trainer.run`` (a checkpoint half-way) and read what
        it logged: its throughput (the checkpoint left out) and the checkpoint's seconds."""
        from benchmarks.plot_loss import read_scalars

        steps = self.args.trainer_steps
        trainer, output = self.build(row, steps, max(1, steps // 2))
        try:
            trainer.run()
            _, rates = read_scalars(output / "logs", "train/samples_per_second")
            _, checkpoint_seconds = read_scalars(output / "logs", "train/checkpoint_seconds")
            checkpoint = output / f"checkpoint-{max(1, steps // 2)}"
            return dict(samples_per_second=float(rates[-1]), flops_per_sample=self.flops_per_sample.get("cached"),
                        checkpoint_seconds=float(checkpoint_seconds[0]), checkpoint_interval=default_checkpoint_interval(),
                        checkpoint_gb=sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file()) / 2**30)
        finally:
            # The SD-1.5-shaped run's checkpoint and pipeline take about 18 GB: kept, four such rows would fill
            # the GPU machine's 64 GB disk. The folder is this benchmark's own (Bench.build made it).
            shutil.rmtree(output, ignore_errors=True)


def default_checkpoint_interval() -> int:
    """``train_video_ip2p.py``'s default ``--checkpointing_steps``."""
    from ip2p.training.args import build_parser
    from ip2p.training.video_task import NOT_OFFERED, VIDEO_ARGUMENTS, VIDEO_DEFAULTS

    return build_parser("", defaults=VIDEO_DEFAULTS, groups=VIDEO_ARGUMENTS, leave_out=NOT_OFFERED).get_default("checkpointing_steps")


def timed(step, count: int, device) -> float:
    """Seconds for ``count`` steps, the device's queue drained before and after."""
    from ip2p.training.speed import wait_for_device

    wait_for_device(device)
    started = time.perf_counter()
    for _ in range(count):
        step()
    wait_for_device(device)
    return time.perf_counter() - started


def count_flops(step) -> int:
    """Matrix-multiply and convolution FLOPs of one step (forward and backward), counted in eager mode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def host_sync_check(step, device) -> str:
    """'none' when one step runs without waiting for the GPU, else the first
    synchronising call; 'n/a' on CPU, where there is nothing to wait for."""
    import torch

    if device.type != "cuda":
        return "n/a (CPU)"
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        return "none"
    except RuntimeError as err:
        return str(err).splitlines()[0][:160]
    finally:
        torch.cuda.set_sync_debug_mode(0)


def profile_steps(step, device, trace: Path) -> dict:
    """A torch.profiler trace of PROFILED_STEPS steps (saved as Chrome trace JSON)
    and its summary: wall and device-busy ms per step, host ms spent launching
    kernels, the top 10 kernels (or CPU operators) by their own time."""
    from torch.profiler import ProfilerActivity, profile

    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as profiler:
        wall = timed(step, PROFILED_STEPS, device)
    profiler.export_chrome_trace(str(trace))
    events = profiler.key_averages()
    own_time = (lambda e: e.self_device_time_total) if on_gpu else (lambda e: e.self_cpu_time_total)
    top = sorted((e for e in events if own_time(e) > 0), key=own_time, reverse=True)[:10]
    per_step_ms = lambda microseconds: microseconds / 1000 / PROFILED_STEPS  # noqa: E731
    return dict(
        wall_ms_per_step=wall * 1000 / PROFILED_STEPS,
        device_busy_ms_per_step=per_step_ms(sum(e.self_device_time_total for e in events)) if on_gpu else None,
        launch_host_ms_per_step=per_step_ms(sum(e.self_cpu_time_total for e in events if e.key in LAUNCH_CALLS)) if on_gpu else None,
        launches_per_step=sum(e.count for e in events if e.key in LAUNCH_CALLS) / PROFILED_STEPS if on_gpu else None,
        top=[dict(name=e.key[:90], ms_per_step=per_step_ms(own_time(e)), calls_per_step=e.count / PROFILED_STEPS) for e in top],
        trace=str(trace))


def reset_peak_memory(device) -> None:
    """Start the row's peak-memory counter: the GPU's, or (Linux) the process's peak resident set."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (proc(5))
    except OSError:
        pass


def peak_memory_gb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    try:
        line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 2**20  # kB
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux, the whole process


def release_row(device) -> None:
    """Undo what a row changed in the process: the accelerator's singletons (a
    new row may ask for another precision or compile mode; accelerate's own
    test case resets them the same way), compiled graphs, cached memory."""
    import torch
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores)"


# ----------------------------------------------------------------------------- the table


class Budget:
    """Whether the next row fits. Its estimate is the longest row of its kind
    (compiled or eager) so far, scaled by pixels to the row's resolution; a
    compiled row with none before it, four times the longest eager row."""

    def __init__(self, seconds):
        self.seconds, self.started, self.taken = seconds, time.perf_counter(), {True: [], False: []}

    def fits(self, compiled: bool, resolution: int) -> bool:
        if self.seconds is None:
            return True
        scaled = lambda kind: [s * (resolution / r) ** 2 for r, s in self.taken[kind]]  # noqa: E731
        estimate = max(scaled(compiled), default=4 * max(scaled(False), default=0.0) if compiled else 0.0)
        return time.perf_counter() - self.started + estimate <= self.seconds

    def record(self, compiled: bool, resolution: int, seconds: float) -> None:
        self.taken[compiled].append((resolution, seconds))


def table_header(resolution: int, batch_size: int, device: str) -> str:
    return "\n".join([f"resolution {resolution}, batch {batch_size}, device: {device}",
                      "| configuration | samples/s | first step (s) | TFLOP/s | fraction of peak | peak memory (GB) "
                      "| x first row | host syncs in step |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- |"])


def table_line(row: dict, first_rate, peak) -> str:
    if "error" in row or "skipped" in row:
        return f"| {row['label']} | {'failed: ' + row['error'] if 'error' in row else 'skipped: ' + row['skipped']} | | | | | | |"
    rate, flops = row["samples_per_second"], row.get("flops_per_sample")
    tflops = rate * flops / 1e12 if flops else None
    first_step = row.get("first_step_seconds")
    return "| {} | {:.2f} | {} | {} | {} | {:.2f} | {} | {} |".format(
        row["label"], rate, f"{first_step:.1f}" if first_step is not None else "-", f"{tflops:.3f}" if tflops else "-",
        f"{tflops / peak:.1%}" if tflops and peak else "-", row["peak_memory_gb"],
        f"{rate / first_rate:.2f}x" if first_rate else "-", row.get("host_sync", "-"))


def profile_summary(row: dict) -> str:
    summary = row["profile"]
    busy, launch = summary["device_busy_ms_per_step"], summary["launch_host_ms_per_step"]
    lines = [f"profile of '{row['label']}' at {row['resolution']}px, {PROFILED_STEPS} steps (trace: {summary['trace']}):",
             f"- wall {summary['wall_ms_per_step']:.1f} ms a step; device busy "
             + (f"{busy:.1f} ms ({busy / summary['wall_ms_per_step']:.0%} of wall)" if busy is not None else "n/a (CPU)")
             + "; host time launching kernels " + (f"{launch:.1f} ms ({summary['launches_per_step']:.0f} launch calls)"
                                                   if launch is not None else "n/a (CPU)"),
             "- top 10 " + ("kernels" if busy is not None else "CPU operators") + " by their own time (ms a step, calls a step):"]
    lines += [f"  {entry['ms_per_step']:8.2f} {entry['calls_per_step']:6.0f}  {entry['name']}" for entry in summary["top"]]
    return "\n".join(lines)


def checkpoint_summary(row: dict) -> str:
    """A whole-trainer row's checkpoint: its seconds (left out of the row's
    samples/s) and what it adds to training at the trainer's default interval."""
    interval, step_seconds = row["checkpoint_interval"], row["batch_size"] / row["samples_per_second"]
    share = row["checkpoint_seconds"] / (interval * step_seconds)
    return (f"{row['label']}: its checkpoint ({row['checkpoint_gb']:.2f} GB) took {row['checkpoint_seconds']:.2f} s, "
            f"left out of samples/s; one every {interval} steps (the default) adds {share:.1%} to the training time, "
            f"{row['samples_per_second'] / (1 + share):.2f} samples/s with it")


def peak_for(device: str, given):
    if given:
        return given
    return next((peak for name, peak in PEAK_TFLOPS.items() if name in device), None)


def write_json(path, rows: list) -> None:
    """Rewrite the JSON list whole, through a temporary file: a cut-off run leaves the last complete list."""
    if path is None:
        return
    staging = path.with_name(f".{path.name}.partial-{os.getpid()}")
    staging.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)


def selected_rows(args) -> list:
    return [(label, options) for label, options in rows_for(args.config)
            if not any(part in label for part in args.skip) and not (options.get("whole_trainer") and args.trainer_steps == 0)]


def run_table(bench: Bench, args, resolution: int, budget: Budget, results: list) -> None:
    """Every row at one resolution, each printed and saved as it finishes."""
    print(table_header(resolution, args.batch_size, device_name(bench.device)), flush=True)
    first_rate, peak, profiled = None, peak_for(device_name(bench.device), args.peak_tflops), set()
    for index, (label, options) in enumerate(selected_rows(args)):
        parts = {part for part in args.profile_row if part in label and part not in profiled}
        row = dict(label=label, resolution=resolution, batch_size=args.batch_size, index=index, options=options,
                   profile_requested=bool(parts) and not options.get("whole_trainer"))
        compiled = options["torch_compile"]
        if options["cuda_graph_unet"] and bench.device.type != "cuda":
            row["skipped"] = "needs a CUDA GPU (--cuda_graph_unet)"
        elif not budget.fits(compiled, resolution):
            row["skipped"] = f"would not fit in --budget-s {args.budget_s:g}"
        else:
            print(f"[{args.config} {resolution}px] {label} ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            row.update(run_row(bench, row))
            budget.record(compiled, resolution, time.perf_counter() - started)
            if "profile" in row:
                profiled |= parts
        first_rate = first_rate or (row.get("samples_per_second") if index == 0 else None)
        results.append(row)
        write_json(args.json, results)
        print(table_line(row, first_rate, peak), flush=True)
    for row in results:
        if "checkpoint_seconds" in row and row["resolution"] == resolution:
            print("\n" + checkpoint_summary(row))
    for row in results:
        if "profile" in row and row["resolution"] == resolution:
            print("\n" + profile_summary(row))
    print()


def run_row(bench: Bench, row: dict) -> dict:
    """One row's figures, or its error in one line (the table goes on)."""
    try:
        with redirect_stdout(sys.stderr):  # the trainer's own lines; stdout carries the table alone
            return bench.run(row)
    except Exception as err:  # noqa: BLE001 - an out-of-memory or unsupported option fails its row, not the table
        return dict(error=f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"[:300])


def main(argv=None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget_s)
    results = []
    with work_folder(args.work_dir) as work:
        if args.prepare_only:
            for resolution in args.resolution:
                print(f"prepared {generated_data(work, resolution, args.batch_size)}")
            return 0
        bench = Bench(args, work)
        for resolution in args.resolution:
            run_table(bench, args, resolution, budget, results)
    print(f"throughput benchmark: {time.perf_counter() - budget.started:.0f} s", file=sys.stderr)
    failed = [row["label"] for row in results if "error" in row]
    if failed:
        print(f"error: {len(failed)} row(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
