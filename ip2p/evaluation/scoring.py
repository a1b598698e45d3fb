"""Evaluation of a video model against the reference rows every number needs:

- ``flow_extrapolation``: the last frame warped one more step along the
  dense optical flow between frames 19 and 20 (``ip2p.shared.motion``), the
  classical motion predictor;
- ``copy_last``: predict frame 21 = frame 20 (the obvious baseline);
- ``latent_copy_last``: frame 20 through the VAE and back, what a latent
  model scores by only copying;
- ``vae_reconstruction``: the true frame 21 through the VAE and back, the
  ceiling of a model that decodes a latent.

Each is scored by PSNR and SSIM over the whole frame and by PSNR over the
pixels that move (``moving_psnr``; ``ip2p.shared.metrics``).
"""

import csv
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image, ImageChops, ImageOps

from ..shared.images import make_strip
from ..shared.metrics import image_metrics
from ..shared.motion import flow_extrapolate
from .samples import EvalSample

ROWS = ("model", "flow_extrapolation", "copy_last", "latent_copy_last", "vae_reconstruction")
METRICS = ("psnr", "ssim", "moving_psnr")


@torch.no_grad()
def vae_roundtrip(pipeline, images: List[Image.Image]) -> List[Image.Image]:
    """Encode (distribution mode) and decode, as a latent model sees an image."""
    pixels = pipeline.image_processor.preprocess(images).to(pipeline.device, dtype=pipeline.vae.dtype)
    decoded = pipeline.vae.decode(pipeline.vae.encode(pixels).latent_dist.mode()).sample
    return pipeline.image_processor.postprocess(decoded, output_type="pil")


def prediction_file(sample_id: str) -> str:
    """``--save-predictions`` file name of a sample: its id with ``/`` as ``__``."""
    return sample_id.replace("/", "__") + ".png"


def evaluate_batch(pipeline, batch: List[EvalSample], resolution: int, settings: dict, generator,
                   save_dir: Optional[Path] = None) -> List[dict]:
    """Per-sample metrics of every row, plus the images the grid shows; with
    ``save_dir``, every row's prediction as ``save_dir/<row>/<sample>.png`` (and the truth in ``truth/``)."""
    clips = [[ImageOps.fit(f, (resolution, resolution)) for f in sample.load_frames()] for sample in batch]
    targets = [sample.load_target() for sample in batch]
    fitted_targets = [ImageOps.fit(t, (resolution, resolution)) for t in targets]
    predictions = pipeline([s.instruction for s in batch], clips, generator=generator, **settings).images
    rows = {
        "model": predictions,
        "flow_extrapolation": [flow_extrapolate(sample_frames) for sample_frames in clips],
        "copy_last": [sample_frames[-1] for sample_frames in clips],
        "latent_copy_last": vae_roundtrip(pipeline, [sample_frames[-1] for sample_frames in clips]),
        "vae_reconstruction": vae_roundtrip(pipeline, fitted_targets),
    }
    last_frames = [sample_frames[-1] for sample_frames in clips]
    scores = {name: image_metrics(images, fitted_targets, last_frames) for name, images in rows.items()}
    if save_dir is not None:  # every row's prediction, and the truth they are scored against
        for name, images in {**rows, "truth": fitted_targets}.items():
            (save_dir / name).mkdir(parents=True, exist_ok=True)
            for sample, image in zip(batch, images):
                image.save(save_dir / name / prediction_file(sample.sample_id))
    results = []
    for i, sample in enumerate(batch):
        results.append({
            "sample": sample.sample_id, "task_type": sample.task_type, "instruction": sample.instruction,
            **{f"{name}_{metric}": scores[name][metric][i] for name in ROWS for metric in METRICS},
            "images": (clips[i][-1], rows["flow_extrapolation"][i], predictions[i], fitted_targets[i]),
        })
    return results


def defined_mean(values: List[float]) -> float:
    """The mean of the values that are defined (a moving-region PSNR is NaN where nothing moved); NaN if none is."""
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def task_groups(results: List[dict]) -> List[Tuple[str, List[dict]]]:
    """``("overall", every result)`` and one ``(task type, its results)`` per task type, sorted by name."""
    groups = {"overall": results}
    for result in results:
        groups.setdefault(result["task_type"], []).append(result)
    return sorted(groups.items())


def summarise(results: List[dict]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{row: {"overall" | task: {"psnr", "ssim", "moving_psnr", "count", "moving_count"}}}``:
    means over samples (moving-region PSNR over the ``moving_count`` samples where something moved)."""
    return {name: {group: {**{metric: defined_mean([r[f"{name}_{metric}"] for r in members]) for metric in METRICS},
                           "count": len(members),
                           "moving_count": sum(not math.isnan(r[f"{name}_moving_psnr"]) for r in members)}
                   for group, members in task_groups(results)}
            for name in ROWS}


def metric_cells(values: Dict[str, float], signed: bool = False) -> str:
    """``"PSNR / SSIM / moving PSNR"`` of one group (SSIM to 4 places, dB to 2; ``n/a`` where undefined)."""
    sign = "+" if signed else ""
    return " / ".join("n/a" if math.isnan(values[m]) else f"{values[m]:{sign}.{4 if m == 'ssim' else 2}f}" for m in METRICS)


def markdown_table(summary: dict) -> str:
    groups = list(next(iter(summary.values())).keys())
    header = "| row | " + " | ".join(f"{g} PSNR (dB) | {g} SSIM | {g} moving PSNR (dB)" for g in groups) + " |"
    lines = [header, "|" + " --- |" * (1 + 3 * len(groups))]
    for name, by_group in summary.items():
        cells = " | ".join(f"{by_group[g]['psnr']:.2f} | {by_group[g]['ssim']:.4f} | {by_group[g]['moving_psnr']:.2f}"
                           for g in groups)
        lines.append(f"| {name} | {cells} |")
    counts = ", ".join(f"{g}: {summary['model'][g]['count']}" for g in groups)
    return "\n".join(lines) + f"\n\nsamples: {counts}"


def error_image(prediction: Image.Image, truth: Image.Image) -> Image.Image:
    """|prediction - truth|, amplified 4x: where the prediction is wrong."""
    difference = np.asarray(ImageChops.difference(prediction.convert("RGB"), truth.convert("RGB")), dtype=np.float32)
    return Image.fromarray(np.clip(difference * 4, 0, 255).astype(np.uint8))


def write_outputs(output_dir: Path, results: List[dict], summary: dict, meta: dict, grid_samples: int, size: int) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    document = {"summary": summary, **meta, "samples": [{k: v for k, v in r.items() if k != "images"} for r in results]}
    (output_dir / "metrics.json").write_text(json.dumps(no_nan(document), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    with open(output_dir / "metrics.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "group", "psnr", "ssim", "moving_psnr", "count", "moving_count"])
        for name, by_group in summary.items():
            for group, values in by_group.items():
                writer.writerow([name, group, f"{values['psnr']:.4f}", f"{values['ssim']:.5f}", f"{values['moving_psnr']:.4f}",
                                 values["count"], values["moving_count"]])
    # last observed | flow extrapolation | model | truth | model error
    strips = [make_strip([*r["images"], error_image(r["images"][2], r["images"][3])], size) for r in results[:grid_samples]]
    if strips:
        grid = Image.new("RGB", (strips[0].width, strips[0].height * len(strips)))
        for index, strip in enumerate(strips):
            grid.paste(strip, (0, index * strip.height))
        grid.save(output_dir / "grid.png")


def no_nan(value):
    """JSON has no NaN: an undefined metric (nothing moved) is written as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_nan(v) for v in value]
    return value
