"""The end of a run: every process holds the same weights, and the trained
model becomes a complete diffusers pipeline folder (EMA weights if kept),
optionally pushed to the hub."""

import shutil
from pathlib import Path
from typing import Callable

import torch
from huggingface_hub import create_repo, upload_folder

from ..models.samplers import default_sampler
from ..shared.cli import UserError
from .run_folder import FINAL_STAGING, publish_pipeline


def unwrap(accelerator, unet):
    """The plain UNet module: without the DDP wrapper or torch.compile's."""
    return accelerator.unwrap_model(unet, keep_torch_compile=False)


@torch.no_grad()
def check_replicas_in_sync(accelerator, unet) -> None:
    """Every process must end with the same weights; a silent divergence
    (a missed gradient sync) would otherwise go unnoticed until evaluation."""
    if accelerator.num_processes == 1:
        return
    # Per parameter, its sum and norm in float64: a fingerprint of ~2 numbers a
    # tensor, without a float64 copy of the whole model.
    fingerprint = torch.stack([torch.stack([p.detach().sum(dtype=torch.float64), torch.linalg.vector_norm(p.detach(), dtype=torch.float64)])
                               for p in unwrap(accelerator, unet).parameters()])
    gathered = accelerator.gather(fingerprint[None])
    differing = (gathered != gathered[:1]).any(dim=2).any(dim=0).nonzero().flatten().tolist()
    if differing:
        raise UserError(f"the UNet weights differ between processes after training ({len(differing)} tensors, the first is "
                        f"parameter {differing[0]}); please report this")
    accelerator.print(f"UNet weights identical on all {accelerator.num_processes} processes")


def inference_pipeline(pipeline_class: type, models, unet, settings: dict):
    """``pipeline_class`` around the trained UNet, with InstructPix2Pix's
    sampler built from the training schedule (``samplers.default_sampler``); ``settings`` are its extra
    constructor arguments."""
    pipeline = pipeline_class(vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer, unet=unet,
                              scheduler=default_sampler(models.noise_scheduler.config), **settings)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def save_pipeline(pipeline, output_dir: Path, write_args: Callable[[Path], None]) -> None:
    """Save ``pipeline`` in full precision, like the base model, with the run's
    arguments beside it: staged whole, then moved in (``publish_pipeline``)."""
    for module in (pipeline.vae, pipeline.text_encoder, pipeline.unet):
        if module.dtype != torch.float32:
            module.to(dtype=torch.float32)
    staging = Path(output_dir) / FINAL_STAGING
    shutil.rmtree(staging, ignore_errors=True)
    pipeline.save_pretrained(str(staging), safe_serialization=True)
    write_args(staging)
    publish_pipeline(staging, Path(output_dir))


def push_pipeline(args, output_dir: Path) -> None:
    repo_id = create_repo(args.hub_model_id or output_dir.name, exist_ok=True, token=args.hub_token).repo_id
    upload_folder(repo_id=repo_id, folder_path=str(output_dir), token=args.hub_token, commit_message="Trained pipeline",
                  ignore_patterns=["checkpoint-*", ".checkpoint-*", f"{args.logging_dir}/*", "validation/*", "superseded-*", ".*"])
    print(f"pushed the pipeline to {repo_id}")
