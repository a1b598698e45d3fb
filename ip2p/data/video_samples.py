"""Training data for the 20-frame model: rows of a processed dataset
(``input_frames`` paths, ``edit_prompt``, ``edited_image``) become the
frames' pixels, or their cached latents.

Frames are resized (short side) and centre-cropped to the resolution; a
random crop (``--random_crop``) cannot be cached. With ``--random_flip`` a
flipped sample flips all 21 frames and mirrors its instruction ("left" <->
"right") so the text stays true.
"""

import hashlib
import random
from pathlib import Path
from typing import List, Optional, Tuple

import torch

from ..models.latents import DEFAULT_VAE_BATCH_SIZE, encode_moments
from ..models.text import tokenize
from ..shared.cli import UserError
from ..shared.images import open_image
from .latent_cache import LatentCache, fill_cache, vae_fingerprint
from .transforms import mirror_instruction, paired_crop_flip


def frames_per_sample(split, frames_column: str, source: str) -> int:
    feature = split.features.get(frames_column)
    length = getattr(feature, "length", -1)
    if length is None or length < 1:
        length = len(split[0][frames_column]) if len(split) else 0
    if length < 1:
        raise UserError(f"{source}: column {frames_column!r} holds no frames; is this a make_dataset.py output?")
    return length


class VideoSamples(torch.utils.data.Dataset):
    """Samples addressed by ``(epoch, index)``; see ``EpochBatchSampler``."""

    def __init__(self, split, resolve, args, tokenizer, seed: int):
        from datasets import Image as ImageFeature

        self.split, self.resolve, self.tokenizer, self.seed = split, resolve, tokenizer, seed
        self.frames_column, self.target_column = args.original_image_column, args.edited_image_column
        self.prompt_column = args.edit_prompt_column
        self.resolution, self.random_crop, self.random_flip = args.resolution, args.random_crop, args.random_flip
        # Rows are read undecoded: the target's bytes identify it in cache keys,
        # and reading a frame list or a prompt must not decode the target image.
        if isinstance(split.features.get(self.target_column), ImageFeature):
            self.raw = split.cast_column(self.target_column, ImageFeature(decode=False))
        else:
            self.raw = split
        self.cache: Optional[LatentCache] = None
        self._cache_keys = {}  # (index, flipped) -> key, fixed for the run once computed
        self.num_frames = frames_per_sample(split, self.frames_column, "training data")

    def __len__(self) -> int:
        return len(self.split)

    def frame_files(self, index: int) -> List[Path]:
        return [Path(self.resolve(p)) for p in self.raw[index][self.frames_column]]

    def pixels(self, index: int, flipped: bool, rng: Optional[random.Random] = None) -> torch.Tensor:
        """``(N + 1, 3, R, R)``: the observed frames, then the target."""
        row = self.raw[index]
        frames = [open_image(str(path)) for path in self.frame_files(index)]
        target = open_image(row[self.target_column], self.resolve)
        if target.size != frames[0].size:
            target = target.resize(frames[0].size)
        pixels, _ = paired_crop_flip(frames + [target], self.resolution, center_crop=not self.random_crop,
                                     random_flip=False, rng=rng or random.Random(0))
        return pixels.flip(-1) if flipped else pixels

    def cache_key(self, index: int, flipped: bool) -> str:
        """Computed once per sample and orientation: the training loop reads it every epoch."""
        if (index, flipped) not in self._cache_keys:
            target = self.raw[index][self.target_column]
            if isinstance(target, dict) and target.get("bytes"):
                target_id = hashlib.sha256(target["bytes"]).hexdigest()
            else:
                target_id = str(target)
            self._cache_keys[(index, flipped)] = LatentCache.key(self.frame_files(index), flipped, extra=target_id)
        return self._cache_keys[(index, flipped)]

    def cache_requests(self, rank: int, world: int) -> List[tuple]:
        orientations = [False, True] if self.random_flip else [False]
        return [(self.cache_key(i, f), i, f) for i in range(rank, len(self), world) for f in orientations]

    def fill_latent_cache(self, cache_dir: Path, vae, device, dtype, batch_size: int, rank: int = 0, world: int = 1,
                          show_progress: bool = True, vae_batch_size: int = DEFAULT_VAE_BATCH_SIZE) -> Tuple[int, int]:
        """Encode this process's share of the samples that the cache under
        ``cache_dir`` lacks, then read latents from it; returns (encoded, entries
        of this process). Every process must fill before any trains."""
        cache = LatentCache(Path(cache_dir), vae_fingerprint(vae, self.resolution, "center"))
        try:
            requests = self.cache_requests(rank, world)
            encoded = fill_cache(cache, requests, self.pixels, vae, device, dtype, batch_size, show_progress, vae_batch_size)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read a training frame while caching latents ({type(err).__name__}: {err}); "
                            "check the data with quick_test.py") from None
        self.cache = cache
        return encoded, len(requests)

    def moments(self, index: int, vae, device, dtype) -> torch.Tensor:
        """``(N + 1, 2 * latent_channels, h, w)``: sample ``index`` unflipped, from the cache when filled, else encoded."""
        moments = self.cache.load(self.cache_key(index, False)) if self.cache is not None else None
        if moments is None:
            moments = encode_moments(vae, self.pixels(index, False)[None].to(device, dtype=dtype))[0].cpu()
        return moments

    def __getitem__(self, key):
        epoch, index = key
        rng = random.Random(f"{self.seed}:{epoch}:{index}")
        flipped = self.random_flip and rng.random() < 0.5
        prompt = str(self.raw[index][self.prompt_column])
        item = {"input_ids": tokenize(self.tokenizer, [mirror_instruction(prompt) if flipped else prompt])[0]}
        try:
            if self.cache is not None:
                moments = self.cache.load(self.cache_key(index, flipped))
                if moments is None:
                    return {"error": f"training sample {index}: its latent cache entry vanished during the run; start again to re-encode it"}
                item["latent_moments"] = moments
            else:
                pixels = self.pixels(index, flipped, rng)
                item["condition_pixels"], item["target_pixels"] = pixels[:-1], pixels[-1]
        except (OSError, ValueError) as err:
            return {"error": f"training sample {index} ({prompt!r}): cannot read a frame ({type(err).__name__}: {err}); "
                             "check it with quick_test.py"}
        return item
