"""A disk cache of VAE latents, one file per sample (and flip orientation).

Encoding 20 observed frames + 1 target costs several times the UNet step
itself (for one input image, about as much), so the trainers encode each
sample once and later epochs and later runs read the latents. An entry holds
a ``FrameLatents`` (``ip2p.models.latents``): the observed frames' float16
means and the target's float32 moments.

Keys, so a stale entry is never used:
- the cache folder is named by a fingerprint of the VAE (config and
  weights, in the dtype it runs in), the resolution and the crop mode;
- an entry is named by what identifies its images (absolute path, size and
  modification time of a file, or the hash of embedded bytes) and the flip
  orientation.
Entries are written to a temporary name and renamed, so a partly written
entry is never visible; one that fails its header check is encoded again.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, List, Optional

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..models.files import safetensors_file_problem
from ..models.latents import DEFAULT_VAE_BATCH_SIZE, FrameLatents, encode_frame_latents

CACHE_FORMAT = 2  # 1: every frame's float32 moments


def vae_fingerprint(vae, resolution: int, crop: str) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": CACHE_FORMAT, "resolution": resolution, "crop": crop,
                              "config": dict(vae.config)}, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


class LatentCache:
    def __init__(self, root: Path, fingerprint: str):
        self.folder = Path(root) / fingerprint
        self.folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(identities: list, flipped: bool) -> str:
        """A sample's key from its images' identities (JSON values) and its orientation."""
        return hashlib.sha256(json.dumps([identities, flipped]).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.safetensors"

    def has(self, key: str) -> bool:
        path = self.path(key)
        return path.is_file() and safetensors_file_problem(path) is None

    def load(self, key: str) -> Optional[FrameLatents]:
        try:
            tensors = load_file(str(self.path(key)))
            return FrameLatents(tensors["condition"], tensors["target"])
        except Exception:  # missing or damaged: the caller encodes again
            return None

    def store(self, key: str, latents: FrameLatents) -> None:
        path = self.path(key)
        path.parent.mkdir(exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({name: tensor.contiguous().cpu() for name, tensor in latents._asdict().items()}, str(staging))
        os.replace(staging, path)


@torch.no_grad()
def fill_cache(cache: LatentCache, requests: List[tuple], load_pixels: Callable, vae, device, dtype,
               batch_size: int, show_progress: bool, vae_batch_size: int = DEFAULT_VAE_BATCH_SIZE) -> int:
    """Encode every ``(key, index, flipped)`` request whose entry is missing,
    ``batch_size`` samples read at a time and ``vae_batch_size`` frames per VAE
    call; returns how many were encoded. ``load_pixels(index, flipped)`` gives
    the sample's ``(F, 3, H, W)`` pixels."""
    missing = [r for r in requests if not cache.has(r[0])]
    # Closed before an error propagates, so the bar never prints after the error's line.
    with tqdm(total=len(missing), desc="caching latents", unit="sample", disable=not show_progress or not missing) as progress:
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            pixels = torch.stack([load_pixels(index, flipped) for _, index, flipped in chunk])
            latents = encode_frame_latents(vae, pixels.to(device, dtype=dtype), vae_batch_size)
            for (key, _, _), condition, target in zip(chunk, *latents):
                cache.store(key, FrameLatents(condition, target))
            progress.update(len(chunk))
    return len(missing)
