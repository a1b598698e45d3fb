"""Training samples of both trainers: N observed frames (one input image for
the single-image trainer, 20 for the video trainer), the next frame (the
edited image) and the instruction.

Items are addressed by ``(epoch, index)`` (see ``EpochBatchSampler``). The
randomness of sample ``i`` in epoch ``e`` (flip, random crop) comes from a
generator seeded with ``(seed, e, i)``, so it does not depend on worker count,
process count or on resuming mid-epoch. A flipped sample flips all its
images and mirrors its instruction ("left" <-> "right") so the text stays true.

Two caches replace per-step work when filled before training:
- latents (``fill_latent_cache``): each sample's VAE latents on disk, read
  instead of decoding and encoding its images every epoch. A random crop
  changes every epoch, so only samples whose crop is fixed (the resized image
  is already square) can be cached; ``UncacheableSample`` names the first
  that is not;
- prompts (``use_prompt_table``): an item carries the index of its
  instruction in a table of unique instructions encoded once, instead of
  token ids for the text encoder.
With the motion prior (``motion_prior="flow"``) a sample gains one more
conditioning frame after the observed ones: the last observed frame warped
one step along the optical flow of the last two (``ip2p.shared.motion``),
computed on the cropped (and flipped) frames exactly as the pipeline computes
it at inference. It depends only on observed frames, so it is cached too.
A sample that cannot be read becomes ``{"error": ...}`` so the training loop
stops with one line instead of a worker traceback.
"""

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from datasets import Image as ImageFeature
from PIL import Image

from ..models.latents import DEFAULT_VAE_BATCH_SIZE, FrameLatents, encode_frame_latents
from ..models.text import tokenize
from ..shared.cli import UserError
from ..shared.images import Resolver, open_image
from ..shared.motion import flow_extrapolate
from .latent_cache import LatentCache, fill_cache, vae_fingerprint
from .transforms import crop_is_fixed, mirror_instruction, paired_crop_flip


class UncacheableSample(Exception):
    """A sample whose random crop differs between epochs, so its latents cannot be cached."""


@dataclass(frozen=True)
class SampleOptions:
    """How every sample of a set is made: the square ``resolution`` it is
    cropped to, a random (else centred) crop, a random left-right flip, the
    motion prior (``"none"`` or ``"flow"``), and the column of the instruction."""
    resolution: int
    random_crop: bool = False
    random_flip: bool = False
    motion_prior: str = "none"
    prompt_column: str = "edit_prompt"


class FrameSamples(torch.utils.data.Dataset):
    """Base of ``EditSamples`` and ``VideoSamples``: a subclass says which
    stored image values make up a sample (``image_values``)."""

    def __init__(self, split, resolve: Resolver, tokenizer, seed: int, options: SampleOptions, image_columns: List[str]):
        self.split, self.resolve, self.tokenizer, self.seed = split, resolve, tokenizer, seed
        self.prompt_column = options.prompt_column
        self.resolution, self.random_crop, self.random_flip = options.resolution, options.random_crop, options.random_flip
        self.motion_prior = options.motion_prior
        # Image columns are read undecoded: the bytes identify an image in cache
        # keys, and reading a prompt or a frame list must not decode an image.
        raw = split
        for column in image_columns:
            if isinstance(split.features.get(column), ImageFeature):
                raw = raw.cast_column(column, ImageFeature(decode=False))
        self.raw = raw
        self.cache: Optional[LatentCache] = None
        self.prompt_index: Optional[Dict[str, int]] = None
        self._cache_keys: Dict[Tuple[int, bool], str] = {}  # fixed for the run once computed
        self._prompts: Optional[List[str]] = None

    def __len__(self) -> int:
        return len(self.split)

    def image_values(self, index: int) -> list:
        """Sample ``index``'s stored images (decoded image, ``{"bytes", "path"}`` or path): observed frames, then the target."""
        raise NotImplementedError

    def prompt(self, index: int, flipped: bool) -> str:
        if self._prompts is None:  # one column read instead of a row read per item
            self._prompts = [str(p) for p in self.raw[self.prompt_column]]
        prompt = self._prompts[index]
        return mirror_instruction(prompt) if flipped else prompt

    def prompts(self) -> List[str]:
        """Every instruction an item can carry (mirrored ones too when flipping), sorted."""
        prompts = {self.prompt(index, False) for index in range(len(self))}
        if self.random_flip:
            prompts |= {mirror_instruction(p) for p in prompts}
        return sorted(prompts)

    def use_prompt_table(self, prompt_index: Dict[str, int]) -> None:
        """Items carry ``prompt_index`` (their row in the trainer's table of encoded prompts) instead of token ids."""
        self.prompt_index = prompt_index

    def pixels(self, index: int, flipped: bool, rng: Optional[random.Random] = None, fixed_crop_only: bool = False) -> torch.Tensor:
        """``(N + 1, 3, R, R)`` in [-1, 1]: the observed frames (and the motion
        prior's frame, if any), then the target. With ``fixed_crop_only`` a
        random crop that would vary raises ``UncacheableSample``."""
        images = [open_image(value, self.resolve) for value in self.image_values(index)]
        size = images[0].size
        if images[-1].size != size:  # a target of another size is fitted; observed frames must agree (checked by the crop)
            images[-1] = images[-1].resize(size)
        if fixed_crop_only and self.random_crop and not crop_is_fixed(size, self.resolution):
            raise UncacheableSample(f"training sample {index} is {size[0]}x{size[1]}: its random crop changes every epoch")
        pixels, _ = paired_crop_flip(images, self.resolution, center_crop=not self.random_crop, random_flip=False,
                                     rng=rng or random.Random(0))
        pixels = pixels.flip(-1) if flipped else pixels
        if self.motion_prior == "flow":
            warped = flow_extrapolate([_to_image(frame) for frame in pixels[-3:-1]])
            pixels = torch.cat([pixels[:-1], _to_pixels(warped)[None], pixels[-1:]])
        return pixels

    def identity(self, value) -> list:
        """What identifies a stored image in a cache key: a file's path, size and
        modification time, or the hash of embedded bytes."""
        if isinstance(value, dict) and value.get("bytes"):
            return [hashlib.sha256(value["bytes"]).hexdigest()]
        path = Path(self.resolve(value["path"] if isinstance(value, dict) else value)).resolve()
        info = os.stat(path)
        return [str(path), info.st_size, info.st_mtime_ns]

    def cache_key(self, index: int, flipped: bool) -> str:
        """Computed once per sample and orientation: the training loop reads it every epoch."""
        if (index, flipped) not in self._cache_keys:
            self._cache_keys[(index, flipped)] = LatentCache.key([self.identity(v) for v in self.image_values(index)], flipped)
        return self._cache_keys[(index, flipped)]

    def cache_requests(self, rank: int, world: int) -> List[tuple]:
        """``(key, index, flipped)`` of this process's share of the entries."""
        orientations = [False, True] if self.random_flip else [False]
        requests = []
        for index in range(rank, len(self), world):
            try:
                requests += [(self.cache_key(index, flipped), index, flipped) for flipped in orientations]
            except OSError as err:  # an image file that went missing
                raise UserError(self._unreadable(index, err)) from None
        return requests

    def fill_latent_cache(self, cache_dir: Path, vae, device, dtype, batch_size: int, rank: int = 0, world: int = 1,
                          show_progress: bool = True, vae_batch_size: int = DEFAULT_VAE_BATCH_SIZE) -> Tuple[int, int]:
        """Encode this process's share of the samples that the cache under
        ``cache_dir`` lacks, then read latents from it; returns (encoded, entries
        of this process). Every process must fill before any trains; raises
        ``UncacheableSample`` (and reads no latents from the cache) at the first
        sample whose random crop varies."""
        # Entries of a random-crop run hold only samples whose crop is fixed: a folder of their own,
        # so a --center_crop run's entries of the other samples are never read as random crops.
        crop = "random" if self.random_crop else "center"
        cache = LatentCache(Path(cache_dir), vae_fingerprint(vae, self.resolution, crop + ("+flow" if self.motion_prior == "flow" else "")))
        requests = self.cache_requests(rank, world)
        encoded = fill_cache(cache, requests, self._cacheable_pixels, vae, device, dtype, batch_size, show_progress, vae_batch_size)
        self.cache = cache
        return encoded, len(requests)

    def _cacheable_pixels(self, index: int, flipped: bool) -> torch.Tensor:
        try:
            return self.pixels(index, flipped, fixed_crop_only=True)
        except (OSError, ValueError) as err:
            raise UserError(self._unreadable(index, err)) from None

    def _unreadable(self, index: int, err: Exception) -> str:
        return (f"training sample {index} ({self.prompt(index, False)!r}): cannot read an image ({type(err).__name__}: "
                f"{err}); fix or remove it (quick_test.py checks a data set)")

    def latents(self, index: int, vae, device, dtype) -> FrameLatents:
        """Sample ``index`` unflipped, from the cache when filled, else encoded (on the CPU either way)."""
        latents = self.cache.load(self.cache_key(index, False)) if self.cache is not None else None
        if latents is None:
            pixels = self.pixels(index, False)[None].to(device, dtype=dtype)
            latents = FrameLatents(*(t[0].cpu() for t in encode_frame_latents(vae, pixels)))
        return latents

    def __getitem__(self, key):
        epoch, index = key
        rng = random.Random(f"{self.seed}:{epoch}:{index}")
        flipped = self.random_flip and rng.random() < 0.5
        prompt = self.prompt(index, flipped)
        if self.prompt_index is not None:
            item = {"prompt_index": torch.tensor(self.prompt_index[prompt])}
        else:
            item = {"input_ids": tokenize(self.tokenizer, [prompt])[0]}
        try:
            if self.cache is not None:
                latents = self.cache.load(self.cache_key(index, flipped))
                if latents is None:
                    return {"error": f"training sample {index}: its latent cache entry vanished during the run; start again to re-encode it"}
                item["condition_latents"], item["target_moments"] = latents
            else:
                pixels = self.pixels(index, flipped, rng)
                item["condition_pixels"], item["target_pixels"] = pixels[:-1], pixels[-1]
        except (OSError, ValueError) as err:
            return {"error": self._unreadable(index, err)}
        return item


def _to_image(pixels: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` in [-1, 1] -> the 8-bit image the pipeline would be given."""
    return Image.fromarray(((pixels.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy())


def _to_pixels(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1) / 127.5 - 1.0
