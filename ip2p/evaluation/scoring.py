"""Evaluation of a video model against the reference rows every number needs:

- ``copy_last``: predict frame 21 = frame 20 (the obvious baseline);
- ``latent_copy_last``: frame 20 through the VAE and back, what a latent
  model scores by only copying;
- ``vae_reconstruction``: the true frame 21 through the VAE and back, the
  ceiling of a model that decodes a latent.
"""

import csv
import json
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from PIL import Image, ImageChops, ImageOps

from ..shared.images import make_strip
from ..shared.metrics import image_metrics
from .samples import EvalSample

ROWS = ("model", "copy_last", "latent_copy_last", "vae_reconstruction")
METRICS = ("psnr", "ssim")


@torch.no_grad()
def vae_roundtrip(pipeline, images: List[Image.Image]) -> List[Image.Image]:
    """Encode (distribution mode) and decode, as a latent model sees an image."""
    pixels = pipeline.image_processor.preprocess(images).to(pipeline.device, dtype=pipeline.vae.dtype)
    decoded = pipeline.vae.decode(pipeline.vae.encode(pixels).latent_dist.mode()).sample
    return pipeline.image_processor.postprocess(decoded, output_type="pil")


def evaluate_batch(pipeline, batch: List[EvalSample], resolution: int, settings: dict, generator) -> List[dict]:
    """Per-sample metrics of every row, plus the images the grid shows."""
    clips = [[ImageOps.fit(f, (resolution, resolution)) for f in sample.load_frames()] for sample in batch]
    targets = [sample.load_target() for sample in batch]
    fitted_targets = [ImageOps.fit(t, (resolution, resolution)) for t in targets]
    predictions = pipeline([s.instruction for s in batch], clips, generator=generator, **settings).images
    rows = {
        "model": predictions,
        "copy_last": [sample_frames[-1] for sample_frames in clips],
        "latent_copy_last": vae_roundtrip(pipeline, [sample_frames[-1] for sample_frames in clips]),
        "vae_reconstruction": vae_roundtrip(pipeline, fitted_targets),
    }
    scores = {name: image_metrics(images, fitted_targets) for name, images in rows.items()}
    results = []
    for i, sample in enumerate(batch):
        results.append({
            "sample": sample.sample_id, "task_type": sample.task_type, "instruction": sample.instruction,
            **{f"{name}_{metric}": scores[name][metric][i] for name in ROWS for metric in METRICS},
            "images": (clips[i][-1], predictions[i], fitted_targets[i]),
        })
    return results


def summarise(results: List[dict]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{row: {"overall" | task: {"psnr", "ssim", "count"}}}``: means over samples."""
    groups = {"overall": results}
    for result in results:
        groups.setdefault(result["task_type"], []).append(result)
    return {name: {group: {**{metric: float(np.mean([r[f"{name}_{metric}"] for r in members])) for metric in METRICS},
                           "count": len(members)}
                   for group, members in sorted(groups.items())}
            for name in ROWS}


def markdown_table(summary: dict) -> str:
    groups = list(next(iter(summary.values())).keys())
    header = "| row | " + " | ".join(f"{g} PSNR (dB) | {g} SSIM" for g in groups) + " |"
    lines = [header, "|" + " --- |" * (1 + 2 * len(groups))]
    for name, by_group in summary.items():
        cells = " | ".join(f"{by_group[g]['psnr']:.2f} | {by_group[g]['ssim']:.4f}" for g in groups)
        lines.append(f"| {name} | {cells} |")
    counts = ", ".join(f"{g}: {summary['model'][g]['count']}" for g in groups)
    return "\n".join(lines) + f"\n\nsamples: {counts}"


def error_image(last: Image.Image, truth: Image.Image) -> Image.Image:
    """|frame 20 - frame 21|, amplified 4x: where copy-last is wrong."""
    difference = np.asarray(ImageChops.difference(last.convert("RGB"), truth.convert("RGB")), dtype=np.float32)
    return Image.fromarray(np.clip(difference * 4, 0, 255).astype(np.uint8))


def write_outputs(output_dir: Path, results: List[dict], summary: dict, meta: dict, grid_samples: int, size: int) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps({"summary": summary, **meta, "samples": [
        {k: v for k, v in r.items() if k != "images"} for r in results]}, indent=2) + "\n", encoding="utf-8")
    with open(output_dir / "metrics.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "group", "psnr", "ssim", "count"])
        for name, by_group in summary.items():
            for group, values in by_group.items():
                writer.writerow([name, group, f"{values['psnr']:.4f}", f"{values['ssim']:.5f}", values["count"]])
    strips = [make_strip([*r["images"], error_image(r["images"][0], r["images"][2])], size) for r in results[:grid_samples]]
    if strips:
        grid = Image.new("RGB", (strips[0].width, strips[0].height * len(strips)))
        for index, strip in enumerate(strips):
            grid.paste(strip, (0, index * strip.height))
        grid.save(output_dir / "grid.png")
