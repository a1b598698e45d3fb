"""What both trainers compute once before training instead of every step:
the samples' VAE latents (a disk cache, ``--cache_latents``) and the
instructions' text embeddings (a table on the training device,
``--prompt_cache_mb``)."""

import math
from pathlib import Path
from typing import Optional

import torch

from ..data.frame_samples import UncacheableSample
from ..models.text import encode_prompts
from .setup import patient_barrier

PROMPTS_PER_CALL = 256  # text-encoder batch while building the table


def fill_latent_cache(dataset, models, accelerator, args, weight_dtype) -> None:
    """Each process encodes its share of the missing entries; all train from
    the cache. With several machines the cache folder must be on a shared
    filesystem (or filled on every machine first): each process reads entries
    the others wrote. If any process meets a sample whose random crop varies
    between epochs, every process trains without the cache (and says why once)."""
    problem = None
    with patient_barrier(accelerator):  # a first fill can take hours; the process group's timeout must not cut it short
        try:
            encoded, entries = dataset.fill_latent_cache(
                Path(args.latent_cache_dir), models.vae, accelerator.device, weight_dtype,
                batch_size=max(1, args.train_batch_size), rank=accelerator.process_index, world=accelerator.num_processes,
                show_progress=accelerator.is_main_process, vae_batch_size=args.vae_batch_size)
        except UncacheableSample as err:
            problem = str(err)
    if _any_process(accelerator, problem is not None):
        dataset.cache = None
        accelerator.print(f"latent cache off: {problem or 'another process found a random crop that varies'}; images "
                          "are encoded every step (--center_crop, or images already square at --resolution, make it cacheable)")
        return
    accelerator.print(f"latent cache {dataset.cache.folder}: encoded {encoded}, reused {entries - encoded} "
                      f"(of this process's {entries} entries)")


def _any_process(accelerator, flag: bool) -> bool:
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.reduce(torch.tensor([int(flag)], device=accelerator.device), reduction="sum").item())


def build_prompt_table(dataset, models, accelerator, args) -> Optional[torch.Tensor]:
    """Every instruction the data can give, encoded once, ``(prompts, tokens,
    width)`` on the training device (the dataset then hands out row
    indices); None (the text encoder runs every step) when it would take more
    than ``--prompt_cache_mb``. Every process builds the same table."""
    prompts = dataset.prompts()
    encoder = models.text_encoder
    row_bytes = models.tokenizer.model_max_length * encoder.config.hidden_size * encoder.dtype.itemsize
    needed_mb = len(prompts) * row_bytes / 2**20
    if not prompts or needed_mb > args.prompt_cache_mb:
        if args.prompt_cache_mb > 0:
            accelerator.print(f"prompt cache off: {len(prompts)} unique instructions need {math.ceil(needed_mb)} MB "
                              f"(--prompt_cache_mb {args.prompt_cache_mb}); the text encoder runs every step")
        return None
    table = torch.cat([encode_prompts(models.tokenizer, encoder, prompts[start:start + PROMPTS_PER_CALL], accelerator.device)
                       for start in range(0, len(prompts), PROMPTS_PER_CALL)])
    dataset.use_prompt_table({prompt: row for row, prompt in enumerate(prompts)})
    accelerator.print(f"prompt cache: {len(prompts)} unique instructions encoded once ({math.ceil(needed_mb)} MB)")
    return table
