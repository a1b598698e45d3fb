"""The saved UNets of runs that should have trained alike, side by side: one
markdown row a run, against the base model and a reference run.

    python benchmarks/engine_weights.py --base MODEL --reference RUN RUN [RUN ...]

Reads only the safetensors files (no diffusers import: seconds on a slow host).
A run that saved no UNet gets a row saying so."""

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

UNET_FILE = "unet/diffusion_pytorch_model.safetensors"


def largest_difference(weights: dict, other: dict) -> float:
    """max |a - b| over the tensors both hold with one shape (the widened input conv may differ from the base)."""
    shared = [name for name in weights if name in other and weights[name].shape == other[name].shape]
    return max((weights[name].float() - other[name].float()).abs().max().item() for name in shared)


def row(run: Path, base: dict, reference: dict) -> str:
    file = run / UNET_FILE
    if not file.is_file():
        return f"| {run.name} | no saved UNet ({file} missing) | | | | |"
    weights = load_file(str(file))
    dtypes = ", ".join(sorted({str(tensor.dtype).replace("torch.", "") for tensor in weights.values()}))
    finite = all(bool(torch.isfinite(tensor).all()) for tensor in weights.values())
    from_reference = f"{largest_difference(weights, reference):.2e}" if reference is not None else "-"
    return f"| {run.name} | {len(weights)} | {dtypes} | {'yes' if finite else 'NO'} | {largest_difference(weights, base):.2e} | {from_reference} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the pipeline folder the runs started from")
    parser.add_argument("--reference", type=Path, required=True, help="the run the others are compared with")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (each holding unet/)")
    args = parser.parse_args(argv)
    base = load_file(str(args.base / UNET_FILE))
    reference_file = args.reference / UNET_FILE
    reference = load_file(str(reference_file)) if reference_file.is_file() else None
    print(f"| run | tensors | dtype | all finite | max abs change from the base | max abs difference from {args.reference.name} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for run in [args.reference, *args.runs]:
        print(row(run, base, reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
