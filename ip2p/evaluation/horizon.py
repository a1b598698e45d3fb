"""Per-horizon evaluation (``evaluate.py --horizon K``): roll out K frames
from the first 20 of a clip's last 20 + K frames and score every step.

Rows: the model (each prediction joins its observed window), flow
extrapolation rolled out the same way (constant velocity, from its own last
two frames), and copy-last (frame 20 for every step). Moving-region PSNR at
step k looks at the pixels where the true frame 20 + k differs from frame 20:
the curve video-prediction papers show.
"""

import csv
import json
import math
from pathlib import Path
from typing import Dict, List

from PIL import Image, ImageDraw, ImageOps

from ..shared.cli import UserError
from ..shared.metrics import image_metrics
from ..shared.motion import flow_extrapolate
from .samples import EvalSample, raw_samples
from .scoring import METRICS, defined_mean, no_nan

HORIZON_ROWS = ("model", "flow_extrapolation", "copy_last")
COLOURS = {"model": (200, 40, 40), "flow_extrapolation": (30, 90, 200), "copy_last": (120, 120, 120)}


def horizon_samples(data: Path, split: str, num_frames: int, horizon: int) -> List[EvalSample]:
    """Clips of a raw data root with at least ``num_frames + horizon`` frames;
    ``load_frames`` gives the first ``num_frames + horizon - 1`` of the last
    ``num_frames + horizon``, ``load_target`` the last one."""
    if (Path(data) / "dataset_dict.json").exists():
        raise UserError(f"--horizon needs a raw data root with longer clips, not the processed dataset {data} "
                        "(whose samples hold 20 + 1 frames); pass the folder make_dataset.py read")
    return raw_samples(data, split, num_frames + horizon - 1,
                       f"scoring {horizon} steps ahead needs clips of at least {num_frames + horizon} frames "
                       "(create_mini_data.py --num-frames, import_videos.py --num-frames)")


def roll_out_flow(window: List[Image.Image], steps: int) -> List[Image.Image]:
    frames, predicted = list(window), []
    for _ in range(steps):
        predicted.append(flow_extrapolate(frames))
        frames.append(predicted[-1])
    return predicted


def evaluate_horizon_batch(pipeline, batch: List[EvalSample], resolution: int, settings: dict, generator,
                           horizon: int) -> List[dict]:
    """One result per sample and step: ``{"sample", "task_type", "step", "<row>_<metric>"...}``."""
    count = pipeline.num_frames
    clips = [[ImageOps.fit(f, (resolution, resolution)) for f in sample.load_frames() + [sample.load_target()]]
             for sample in batch]
    observed, futures = [clip[:count] for clip in clips], [clip[count:] for clip in clips]
    model = pipeline.rollout([s.instruction for s in batch], observed, horizon, generator=generator, **settings)
    rows = {"model": model,  # [step][sample]
            "flow_extrapolation": list(zip(*[roll_out_flow(window, horizon) for window in observed])),
            "copy_last": [[window[-1] for window in observed]] * horizon}
    last = [window[-1] for window in observed]
    results = []
    for step in range(horizon):
        truth = [future[step] for future in futures]
        scores = {name: image_metrics(list(rows[name][step]), truth, last) for name in HORIZON_ROWS}
        for index, sample in enumerate(batch):
            results.append({"sample": sample.sample_id, "task_type": sample.task_type, "step": step + 1,
                            **{f"{name}_{metric}": scores[name][metric][index] for name in HORIZON_ROWS for metric in METRICS}})
    return results


def summarise_horizon(results: List[dict], horizon: int) -> Dict[str, List[dict]]:
    """``{row: [{"step", "psnr", "ssim", "moving_psnr", "count"} for each step]}``: means over samples."""
    summary = {}
    for name in HORIZON_ROWS:
        summary[name] = []
        for step in range(1, horizon + 1):
            members = [r for r in results if r["step"] == step]
            summary[name].append({"step": step, **{m: defined_mean([r[f"{name}_{m}"] for r in members]) for m in METRICS},
                                  "count": len(members)})
    return summary


def horizon_table(summary: Dict[str, List[dict]]) -> str:
    steps = [entry["step"] for entry in next(iter(summary.values()))]
    lines = ["| row | " + " | ".join(f"t+{s} PSNR / moving" for s in steps) + " |", "|" + " --- |" * (1 + len(steps))]
    for name, entries in summary.items():
        lines.append(f"| {name} | " + " | ".join(f"{e['psnr']:.2f} / {e['moving_psnr']:.2f}" for e in entries) + " |")
    return "\n".join(lines)


def plot_horizon(summary: Dict[str, List[dict]], metric: str = "psnr", size=(640, 360)) -> Image.Image:
    """``metric`` against the step ahead, one line per row (PIL only)."""
    width, height = size
    left, right, top, bottom = 60, 170, 30, 40
    values = [e[metric] for entries in summary.values() for e in entries if not math.isnan(e[metric])]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    low, high = low - 0.05 * (high - low + 1e-6), high + 0.05 * (high - low + 1e-6)
    steps = [e["step"] for e in next(iter(summary.values()))]
    x = lambda s: left + (s - steps[0]) / max(1, steps[-1] - steps[0]) * (width - left - right)  # noqa: E731
    y = lambda v: top + (1 - (v - low) / (high - low)) * (height - top - bottom)  # noqa: E731
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for index, (name, entries) in enumerate(summary.items()):
        points = [(x(e["step"]), y(e[metric])) for e in entries if not math.isnan(e[metric])]
        if len(points) > 1:
            draw.line(points, fill=COLOURS[name], width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=COLOURS[name])
        draw.line([(width - right + 10, top + 10 + 18 * index), (width - right + 30, top + 10 + 18 * index)], fill=COLOURS[name], width=3)
        draw.text((width - right + 36, top + 4 + 18 * index), name, fill="black")
    for fraction in (0, 0.5, 1):
        value = low + fraction * (high - low)
        draw.text((5, y(value) - 6), f"{value:.2f}", fill="black")
    for step in steps:
        draw.text((x(step) - 8, height - bottom + 5), f"t+{step}", fill="black")
    draw.text((left, 8), f"{metric} (dB) by step ahead" if "psnr" in metric else f"{metric} by step ahead", fill="black")
    return image


def write_horizon_outputs(output_dir: Path, results: List[dict], summary: dict, meta: dict) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    document = {"horizon": summary, **meta, "samples": results}
    (output_dir / "metrics.json").write_text(json.dumps(no_nan(document), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    with open(output_dir / "metrics.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "horizon", "psnr", "ssim", "moving_psnr", "count"])
        for name, entries in summary.items():
            for e in entries:
                writer.writerow([name, e["step"], f"{e['psnr']:.4f}", f"{e['ssim']:.5f}", f"{e['moving_psnr']:.4f}", e["count"]])
    plot_horizon(summary).save(output_dir / "horizon.png")
