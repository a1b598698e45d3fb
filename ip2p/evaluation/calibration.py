"""Choosing the fallback margin: how large a correction to flow the model must predict before it is trusted.

``fall_back_to_flow`` (``ip2p.models.video_pipeline``) keeps the flow-warped
frame wherever the model corrects it by less than the margin. Here every
candidate margin is scored on held-out clips of the kinds the model was
trained on, from one sampling pass per batch (the margin acts after
sampling), against flow extrapolation on the same clips; ``choose_margin``
then takes the margin with the highest whole-frame PSNR gain over flow among
those that are nowhere behind flow, per task type, on any of the three
metrics (PSNR, SSIM, moving-region PSNR), by more than ``TOLERANCE`` (0.05 dB,
or 0.0005 SSIM: less than a few dozen clips per task resolve). If none is, it
takes the one whose worst shortfall is smallest. Ties go to the larger margin
(closer to flow).
What it chose, and what that did on kinds never seen: docs/learning.md,
"Transfer to kinds never seen".
"""

import math
from typing import Dict, List, Sequence

from PIL import ImageOps

from ..shared.metrics import image_metrics
from ..shared.motion import flow_extrapolate
from .samples import EvalSample
from .scoring import METRICS, defined_mean, metric_cells, task_groups

TOLERANCE = 0.05  # dB (SSIM in hundredths): a shortfall this small counts as level with flow


def calibration_batch(pipeline, batch: List[EvalSample], resolution: int, settings: dict, margins: Sequence[float],
                      generator) -> List[dict]:
    """Per sample: its task type, flow extrapolation's scores and the model's at every margin
    (``{"margins": {margin: {metric: value}}}``)."""
    clips = [[ImageOps.fit(frame, (resolution, resolution)) for frame in sample.load_frames()] for sample in batch]
    targets = [ImageOps.fit(sample.load_target(), (resolution, resolution)) for sample in batch]
    last_frames = [clip[-1] for clip in clips]
    variants = pipeline.predict_variants([s.instruction for s in batch], clips, list(margins), generator, "pil", settings)
    flow = image_metrics([flow_extrapolate(clip) for clip in clips], targets, last_frames)
    scored = [image_metrics(images, targets, last_frames) for images in variants]
    return [{"sample": sample.sample_id, "task_type": sample.task_type,
             "flow": {metric: flow[metric][i] for metric in METRICS},
             "margins": {margin: {metric: scores[metric][i] for metric in METRICS}
                         for margin, scores in zip(margins, scored)}}
            for i, sample in enumerate(batch)]


def margin_gains(results: List[dict], margins: Sequence[float]) -> Dict[float, Dict[str, Dict[str, float]]]:
    """``{margin: {"overall" | task: {metric: mean of (model - flow)}}}``, each difference taken per sample
    (moving-region PSNR over the samples where something moved)."""
    return {margin: {group: {metric: defined_mean([r["margins"][margin][metric] - r["flow"][metric] for r in members])
                             for metric in METRICS}
                     for group, members in task_groups(results)}
            for margin in margins}


def shortfall(by_group: Dict[str, Dict[str, float]]) -> float:
    """How far behind flow the worst task type is on its worst metric (0 when nowhere behind; SSIM counted in
    hundredths, roughly the size of a dB of PSNR on these clips)."""
    worst = 0.0
    for group, gains in by_group.items():
        if group == "overall":
            continue
        for metric, gain in gains.items():
            if not math.isnan(gain):
                worst = max(worst, -gain * (100 if metric == "ssim" else 1))
    return worst


def choose_margin(gains: Dict[float, Dict[str, Dict[str, float]]]) -> float:
    """The margin with the highest overall PSNR gain among those nowhere behind flow by more than
    ``TOLERANCE``; else the smallest shortfall; ties to the larger margin."""
    safe = [margin for margin, by_group in gains.items() if shortfall(by_group) <= TOLERANCE]
    if safe:
        return max(safe, key=lambda margin: (gains[margin]["overall"]["psnr"], margin))
    return min(gains, key=lambda margin: (shortfall(gains[margin]), -margin))


def calibration_table(gains: Dict[float, Dict[str, Dict[str, float]]], chosen: float) -> str:
    groups = list(next(iter(gains.values())).keys())
    lines = ["model - flow (PSNR / SSIM / moving-region PSNR) at each fallback margin (grey levels)", "",
             "| margin | " + " | ".join(groups) + " |", "|" + " --- |" * (len(groups) + 1)]
    for margin, by_group in gains.items():
        cells = " | ".join(metric_cells(by_group[g], signed=True) for g in groups)
        lines.append(f"| {margin:g}{' (chosen)' if margin == chosen else ''} | {cells} |")
    return "\n".join(lines)
