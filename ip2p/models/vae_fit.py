"""Fit the tiny VAE on real frames, so the tiny pipeline can encode and
decode images (a random VAE maps every image to noise, and a latent model on
top of it can learn nothing). Offline, on CPU, in minutes.

Loss: pixel MSE of the reconstruction from a latent sample, plus a small KL
term as in SD's autoencoder. Each step sees random square crops, as SD's
autoencoder was trained on crops: the VAE is convolutional, so a 32-pixel
crop teaches it about as much per step as the whole 64-pixel frame at a
quarter of the cost (on the harder synthetic set, 600 steps on 32-pixel crops
reach 25.8 dB in 3 min on 2 CPU cores; 600 on whole frames 24.9 dB in
13 min). The held-out reconstruction and the latent statistics are measured
on whole frames. Afterwards ``scaling_factor`` is set to one over
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


def crop_covers(size: int, height: int, width: int) -> bool:
    """Whether a ``size`` crop takes the whole ``height`` x ``width`` image."""
    return size >= height and size >= width


def random_crops(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One ``size`` x ``size`` crop at a random place of each image; the whole
    images when they are no larger than that."""
    height, width = batch.shape[-2:]
    if crop_covers(size, height, width):
        return batch
    size_y, size_x = min(size, height), min(size, width)
    tops = torch.randint(height - size_y + 1, (len(batch),), generator=generator).tolist()
    lefts = torch.randint(width - size_x + 1, (len(batch),), generator=generator).tolist()
    return torch.stack([image[:, top:top + size_y, left:left + size_x] for image, top, left in zip(batch, tops, lefts)])


def fit_vae(vae, frames: torch.Tensor, steps: int, batch_size: int = 16, learning_rate: float = 1e-3,
            kl_weight: float = 1e-6, seed: int = 0, crop_size: int = 32) -> Tuple[float, float]:
    """Train ``vae`` in place on random ``crop_size`` crops of ``frames``;
    returns (held-out reconstruction PSNR in dB on whole frames, scaling factor)."""
    downsampling = 2 ** (len(vae.config.block_out_channels) - 1)
    if crop_size < downsampling or crop_size % downsampling:
        raise UserError(f"VAE fit crop size {crop_size} must be a multiple of the VAE's {downsampling}x downsampling")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(frames), generator=generator)
    held_out, train = frames[order[: max(1, len(frames) // 20)]], frames[order[max(1, len(frames) // 20):]]
    optimizer = torch.optim.Adam(vae.parameters(), lr=learning_rate)
    vae.train()
    for _ in tqdm(range(steps), desc="fitting the tiny VAE", unit="step"):
        batch = random_crops(train[torch.randint(len(train), (batch_size,), generator=generator)], crop_size, generator)
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
