"""Loading the components a trainer fine-tunes, from a pipeline folder or a
hub id (safetensors only), into one ``Models`` record."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from ..shared.cli import UserError


@dataclass
class Models:
    tokenizer: object
    text_encoder: torch.nn.Module
    vae: torch.nn.Module
    unet: torch.nn.Module
    noise_scheduler: object  # the training (DDPM) schedule

    @classmethod
    def from_pipeline(cls, pipeline) -> "Models":
        """The components of an in-memory pipeline, with a DDPM training schedule built from its scheduler."""
        return cls(pipeline.tokenizer, pipeline.text_encoder, pipeline.vae, pipeline.unet,
                   DDPMScheduler.from_config(pipeline.scheduler.config))


def check_model_source(source: str) -> None:
    """A source that names a local folder (not a hub id) must exist."""
    looks_local = source.startswith((".", "/", "~")) or Path(source).parent.is_dir() and str(Path(source).parent) != "."
    if looks_local and not Path(source).is_dir():
        raise UserError(f"model folder {source} does not exist; fetch it with download_model.py (or --tiny for a test model)")


def load_models(source: str, revision: Optional[str] = None, variant: Optional[str] = None,
                non_ema_revision: Optional[str] = None, cache_dir: Optional[str] = None,
                unet_folder: Optional[Path] = None) -> Models:
    """Scheduler, tokenizer, text encoder, VAE and UNet of ``source`` (the
    UNet from ``unet_folder`` instead when given). Any failure is one line."""
    check_model_source(source)
    common = dict(revision=revision, cache_dir=cache_dir)
    try:
        noise_scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler", **common)
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **common)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", variant=variant, use_safetensors=True, **common)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", variant=variant, use_safetensors=True, **common)
        unet = load_unet_folder(unet_folder) if unet_folder else UNet2DConditionModel.from_pretrained(
            source, subfolder="unet", revision=non_ema_revision or revision, variant=variant, use_safetensors=True,
            cache_dir=cache_dir)
    except UserError:
        raise
    except Exception as err:  # missing files, bad configs, hub errors
        raise UserError(f"cannot load the base model from {source} ({type(err).__name__}: {str(err).splitlines()[0]}); "
                        "check the folder with quick_test.py --model, or re-run download_model.py") from None
    return Models(tokenizer, text_encoder, vae, unet, noise_scheduler)


def load_unet_folder(path: Path):
    """A UNet folder, or a pipeline folder's ``unet/`` (what make_video_model.py writes)."""
    path = Path(path)
    folder = path / "unet" if (path / "unet" / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise UserError(f"--custom_unet_path {path}: no UNet there (expected config.json); build one with make_video_model.py")
    return UNet2DConditionModel.from_pretrained(str(folder), use_safetensors=True)
