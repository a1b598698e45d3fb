"""Image quality metrics, defined once (docs/evaluation.md, "Metric definitions").

Images are RGB, scaled to [0, 1] (data range 1.0), compared at the size of
the true frame. Each metric is computed per image and averaged over images.

- PSNR: 10 log10(1 / MSE), the MSE over all pixels and the 3 channels;
  capped at 100 dB so that identical images (MSE 0) give a finite mean.
- moving-region PSNR: PSNR over the pixels where the true next frame differs
  from the last observed frame (``ip2p.shared.motion.moving_mask``), the
  MSE over those pixels and the 3 channels; undefined (NaN, left out of
  means, which report how many samples had moving pixels) when none moved.
- SSIM (Wang et al. 2004): Gaussian window 11 x 11, sigma 1.5, K1 0.01,
  K2 0.03, computed per channel and averaged over channels and positions
  (torchmetrics' implementation).
- LPIPS and FID need pretrained backbones; they are reported as unavailable,
  with why, until weights supplied as local files can be loaded.
"""

from typing import Dict, List

import numpy as np
import torch
from PIL import Image
from torchmetrics.functional.image import structural_similarity_index_measure

from .motion import moving_mask

PSNR_CAP_DB = 100.0


def to_tensor(images: List[Image.Image], size=None) -> torch.Tensor:
    """``(N, 3, H, W)`` floats in [0, 1], resized to ``size`` (width, height) if given."""
    arrays = [np.asarray((image.convert("RGB").resize(size, Image.BICUBIC) if size else image.convert("RGB")), dtype=np.float32)
              for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0


def psnr(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (see module doc)."""
    mse = ((predictions - targets) ** 2).flatten(1).mean(dim=1)
    return (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-PSNR_CAP_DB / 10)))).clamp(max=PSNR_CAP_DB)


def masked_psnr(predictions: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR over the pixels where ``masks`` (N, H, W) is true; NaN where it is all false."""
    squared = ((predictions - targets) ** 2).sum(dim=1)  # (N, H, W), summed over channels
    counts = masks.flatten(1).sum(dim=1) * predictions.shape[1]
    mse = (squared * masks).flatten(1).sum(dim=1) / counts.clamp_min(1)
    values = (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-PSNR_CAP_DB / 10)))).clamp(max=PSNR_CAP_DB)
    return torch.where(counts > 0, values, torch.full_like(values, float("nan")))


def ssim(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (see module doc)."""
    return structural_similarity_index_measure(predictions, targets, data_range=1.0, gaussian_kernel=True, sigma=1.5,
                                               kernel_size=11, k1=0.01, k2=0.03, reduction="none")


def image_metrics(predictions: List[Image.Image], targets: List[Image.Image], last_frames: List[Image.Image] = None) -> Dict[str, List[float]]:
    """Per-image PSNR and SSIM of predictions against targets (predictions resized
    to the targets' size), and with ``last_frames`` (at the targets' size) the moving-region PSNR."""
    truth = to_tensor(targets)
    guess = to_tensor(predictions, size=targets[0].size)
    scores = {"psnr": psnr(guess, truth).tolist(), "ssim": ssim(guess, truth).tolist()}
    if last_frames is not None:
        masks = torch.from_numpy(np.stack([moving_mask(last, target) for last, target in zip(last_frames, targets)]))
        scores["moving_psnr"] = masked_psnr(guess, truth, masks).tolist()
    return scores


def unavailable_metrics() -> Dict[str, str]:
    """Metrics not computed, with why (never silently omitted)."""
    return {
        "lpips": "not computed: needs a pretrained torchvision backbone from local weight files; "
                 "this version has no loader for them yet",
        "fid": "not computed: needs Inception weights from a local file; this version has no loader for them yet",
    }
