"""train_instruct_pix2pix.py against the diffusers example it is compatible
with, side by side in one run: same tiny model (a text-to-image UNet both
widen to 8 channels), same image pairs, same flags; whole-process wall time
and peak resident memory of each.

The example is not vendored: pass the path of a diffusers checkout's
``examples/instruct_pix2pix/train_instruct_pix2pix.py``. It imports
torchvision for its crop and flip; where torchvision is not installed (this
project never needs it), the example gets a stand-in with the four
transforms it uses, on tensors, registered after transformers and
diffusers have looked for the real one (so they do not take it for it). Each trainer runs in a fresh process with a
fresh output folder (and ours a fresh latent cache, so filling it is timed);
runs alternate between the two so drift in the machine's speed hits both.

    python benchmarks/compare_example.py --example ../diffusers/examples/instruct_pix2pix/train_instruct_pix2pix.py
    python benchmarks/compare_example.py --example EXAMPLE --pairs 40 --resolution 64 --batch-size 8 --steps 400 --repeats 2
"""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ip2p.shared.cli import UserError, make_parser, run_main  # noqa: E402

# Runs a command and writes its wall time and peak resident memory (the
# command's own process tree, not this benchmark's) as JSON to argv[1].
MEASURE = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    started = time.perf_counter()
    code = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    open(sys.argv[1], "w").write(json.dumps({"code": code.returncode, "seconds": seconds, "peak_mb": peak_mb,
                                             "stderr": code.stderr[-3000:]}))
""")

# Runs the example (argv[1]) with the stand-in (argv[2]) as torchvision.transforms.
RUN_WITH_STAND_IN = textwrap.dedent("""
    import importlib.util, os, runpy, sys, types
    import datasets, diffusers, transformers, transformers.image_utils  # they decide now that torchvision is absent
    spec = importlib.util.spec_from_file_location("torchvision.transforms", sys.argv[2])
    transforms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(transforms)
    sys.modules["torchvision"] = types.ModuleType("torchvision")
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"] = transforms
    example = sys.argv[1]
    sys.argv, sys.path[0] = [example] + sys.argv[3:], os.path.dirname(example)  # as `python example.py` sets them
    runpy.run_path(example, run_name="__main__")
""")

# What the example imports from torchvision, for machines without it.
TORCHVISION_STAND_IN = textwrap.dedent('''
    """Stand-in for the four torchvision transforms the diffusers example uses, on (..., C, H, W) tensors."""
    import torch


    class Compose:
        def __init__(self, transforms):
            self.transforms = transforms

        def __call__(self, x):
            for transform in self.transforms:
                x = transform(x)
            return x


    class Lambda:
        def __init__(self, function):
            self.function = function

        def __call__(self, x):
            return self.function(x)


    class CenterCrop:
        def __init__(self, size):
            self.size = size

        def __call__(self, x):
            top, left = (x.shape[-2] - self.size) // 2, (x.shape[-1] - self.size) // 2
            return x[..., top:top + self.size, left:left + self.size]


    class RandomCrop(CenterCrop):
        def __call__(self, x):
            top = int(torch.randint(0, x.shape[-2] - self.size + 1, ()))
            left = int(torch.randint(0, x.shape[-1] - self.size + 1, ()))
            return x[..., top:top + self.size, left:left + self.size]


    class RandomHorizontalFlip:
        def __call__(self, x):
            return x.flip(-1) if torch.rand(()) < 0.5 else x
''')


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--example", type=Path, required=True, help="the diffusers example's train_instruct_pix2pix.py")
    parser.add_argument("--pairs", type=int, default=40, help="generated (input, edited) image pairs")
    parser.add_argument("--resolution", type=int, default=64, help="image size and training resolution")
    parser.add_argument("--batch-size", type=int, default=8, help="--train_batch_size of both")
    parser.add_argument("--steps", type=int, default=400, help="--max_train_steps of both")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each trainer (alternating); the median is reported")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the model, data and runs go (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = parser.parse_args(argv)
    if not args.example.is_file():
        parser.error(f"--example {args.example} is not a file; pass the diffusers example's train_instruct_pix2pix.py")
    return args


def write_pairs(folder: Path, count: int, size: int) -> None:
    """A local parquet data set both trainers load with ``--dataset_name``:
    images embedded, columns named as in the example's default data set."""
    import numpy as np
    from datasets import Dataset, Features, Image as ImageFeature, Value
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = {"input_image": [], "edit_prompt": [], "edited_image": []}
    for index in range(count):
        source = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        rows["input_image"].append(Image.fromarray(source))
        rows["edited_image"].append(Image.fromarray(np.roll(source, index % 7 + 1, axis=1)))
        rows["edit_prompt"].append(f"shift it right by {index % 7 + 1} pixels")
    features = Features({"input_image": ImageFeature(), "edit_prompt": Value("string"), "edited_image": ImageFeature()})
    (folder / "data").mkdir(parents=True)
    Dataset.from_dict(rows, features=features).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))


def prepare(work: Path, args) -> dict:
    from ip2p.models.tiny_model import save_tiny_pipeline

    model, data, stand_in = work / "tiny-model", work / "pairs", work / "torchvision_transforms.py"
    if not model.exists():
        # The example starts from a text-to-image model (4-channel UNet) and widens it to 8, as ours does.
        from diffusers import UNet2DConditionModel

        save_tiny_pipeline(model, seed=0)  # what download_model.py --tiny writes
        config = dict(UNet2DConditionModel.load_config(str(model / "unet")), in_channels=4)
        UNet2DConditionModel.from_config(config).save_pretrained(str(model / "unet"), safe_serialization=True)
    if not data.exists():
        write_pairs(data, args.pairs, args.resolution)
    launcher = []
    if importlib.util.find_spec("torchvision") is None:  # else the example uses the real one
        stand_in.write_text(TORCHVISION_STAND_IN)
        launcher = ["-c", RUN_WITH_STAND_IN]
    return {"model": model, "data": data, "example_launcher": launcher, "stand_in": stand_in}


def command(script: Path, prepared: dict, output: Path, args, extra=(), launcher=()) -> list:
    launch = [*launcher, str(script), str(prepared["stand_in"])] if launcher else [str(script)]
    return [sys.executable, *launch, "--pretrained_model_name_or_path", str(prepared["model"]),
            "--dataset_name", str(prepared["data"]), "--output_dir", str(output), "--resolution", str(args.resolution),
            "--train_batch_size", str(args.batch_size), "--max_train_steps", str(args.steps), "--seed", "0",
            "--lr_warmup_steps", "0", "--conditioning_dropout_prob", "0.05", "--checkpointing_steps", str(args.steps * 10),
            "--report_to", "tensorboard", *extra]


def measure(name: str, cmd: list, work: Path, env: dict) -> dict:
    result_file = Path(tempfile.mkstemp(dir=work, suffix=".json")[1])
    subprocess.run([sys.executable, "-c", MEASURE, str(result_file), *cmd], cwd=work, env=env, check=True)
    result = json.loads(result_file.read_text())
    if result["code"] != 0:
        raise UserError(f"{name} failed (exit {result['code']}): {result['stderr'].strip()[-1500:]}")
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        work = (args.work_dir or Path(temporary)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        prepared = prepare(work, args)
        base_env = {**os.environ, "HF_DATASETS_CACHE": str(work / "hf_datasets"), "HF_HUB_OFFLINE": "1"}
        runs = {"diffusers example": [], "train_instruct_pix2pix.py": []}
        for repeat in range(args.repeats):
            order = list(runs) if repeat % 2 == 0 else list(runs)[::-1]
            for name in order:
                output = work / f"run-{repeat}-{'example' if name.startswith('diffusers') else 'ours'}"
                if name.startswith("diffusers"):
                    result = measure(name, command(args.example.resolve(), prepared, output, args,
                                             launcher=prepared["example_launcher"]), work, base_env)
                else:
                    result = measure(name, command(REPO / "train_instruct_pix2pix.py", prepared, output, args,
                                             ["--latent_cache_dir", str(output / "latent_cache")]), work, base_env)
                runs[name].append(result)
                print(f"{name}: {result['seconds']:.1f} s, peak {result['peak_mb']:.0f} MB", file=sys.stderr)
    example, ours = ([statistics.median(r[key] for r in runs[name]) for key in ("seconds", "peak_mb")] for name in runs)
    print(f"{args.pairs} pairs at {args.resolution}x{args.resolution}, batch {args.batch_size}, {args.steps} steps, "
          f"tiny model, {args.repeats} run(s) each (median), whole process:\n")
    print("| trainer | wall time (s) | peak memory (MB) | speed vs the example |")
    print("|---|---:|---:|---:|")
    print(f"| diffusers example | {example[0]:.1f} | {example[1]:.0f} | 1.00x |")
    print(f"| train_instruct_pix2pix.py | {ours[0]:.1f} | {ours[1]:.0f} | {example[0] / ours[0]:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
