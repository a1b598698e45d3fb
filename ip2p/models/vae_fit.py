"""Fit the tiny VAE on real frames, so the tiny pipeline can encode and
decode images (a random VAE maps every image to noise, and a latent model on
top of it can learn nothing). Offline, on CPU, in minutes.

Loss: pixel MSE of the reconstruction from a latent sample, plus a small KL
term as in SD's autoencoder. Afterwards ``scaling_factor`` is set to one over
the latents' standard deviation, SD's convention for unit-variance latents.
"""

import random
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..shared.cli import UserError
from ..shared.images import IMAGE_EXTENSIONS
from ..shared.metrics import psnr


def load_frames(folder: Path, max_frames: int, seed: int) -> torch.Tensor:
    """Up to ``max_frames`` images under ``folder``, as ``(N, 3, H, W)`` in [-1, 1]."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UserError(f"no frames (.jpg/.png) under {folder} to fit the VAE on")
    random.Random(seed).shuffle(files)
    images = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in files[:max_frames]]
    if len({image.shape for image in images}) > 1:
        raise UserError(f"frames under {folder} differ in size; fit the VAE on frames of one size")
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 127.5 - 1.0


def fit_vae(vae, frames: torch.Tensor, steps: int, batch_size: int = 16, learning_rate: float = 1e-3,
            kl_weight: float = 1e-6, seed: int = 0) -> Tuple[float, float]:
    """Train ``vae`` in place; returns (held-out reconstruction PSNR in dB, scaling factor)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(frames), generator=generator)
    held_out, train = frames[order[: max(1, len(frames) // 20)]], frames[order[max(1, len(frames) // 20):]]
    optimizer = torch.optim.Adam(vae.parameters(), lr=learning_rate)
    vae.train()
    for _ in tqdm(range(steps), desc="fitting the tiny VAE", unit="step"):
        batch = train[torch.randint(len(train), (batch_size,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.sample(generator=generator)).sample
        loss = torch.nn.functional.mse_loss(reconstruction, batch) + kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    vae.eval()
    with torch.no_grad():
        latents = torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in train[:512].split(64)])
        scaling_factor = float(1.0 / latents.std())
        decoded = torch.cat([vae.decode(vae.encode(chunk).latent_dist.mode()).sample for chunk in held_out.split(64)])
    vae.register_to_config(scaling_factor=scaling_factor)
    quality = psnr(((decoded.clamp(-1, 1) + 1) / 2), (held_out + 1) / 2).mean().item()
    return quality, scaling_factor


def channel_list(text: str) -> List[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"channel list {text!r} must be comma-separated integers, e.g. 32,64") from None
