"""The training loop shared by both trainers.

A trainer describes itself with a ``TrainingTask`` (how many conditioning
frames, how to build its dataset, how to validate, which pipeline to save)
and calls ``train(args, task)``. Single-image InstructPix2Pix is the case of
one conditioning frame. The recipe is the InstructPix2Pix paper's
(Brooks et al. 2023): UNet input ``[noisy latents, conditioning latents]``,
target latents sampled from the VAE and scaled, conditioning latents the VAE
mode unscaled, and conditioning dropout for two guidance scales.
"""

import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoints import find_checkpoint, list_checkpoints, load_checkpoint, remove_partial_checkpoints, save_checkpoint
from .cli import UserError
from .conditioning import apply_conditioning_dropout, conditioning_dropout_masks
from .edit_data import EpochBatchSampler, collate, tokenize
from .latents import encode_moments, latents_from_moments
from .models import widen_unet_input
from .run_logger import RunLogger
from .speed import apply_unet_speed_options, loader_options, resolve_speed_defaults
from .train_args import save_args


@dataclass
class TrainingTask:
    name: str  # tracker project name
    num_conditioning_frames: int
    build_dataset: Callable  # (args, tokenizer, seed) -> torch Dataset addressed by (epoch, index)
    pipeline_class: type
    validation_configured: Callable  # (args) -> bool
    validation_images: Callable  # (pipeline, args, generator) -> list of PIL images
    load_unet: Optional[Callable] = None  # (args) -> UNet, to replace the base model's (e.g. --custom_unet_path)
    pipeline_kwargs: dict = field(default_factory=dict)  # extra constructor arguments of pipeline_class
    before_training: Optional[Callable] = None  # (args, models, accelerator, dataset, weight_dtype), e.g. filling a latent cache


@dataclass
class Models:
    tokenizer: object
    text_encoder: torch.nn.Module
    vae: torch.nn.Module
    unet: torch.nn.Module
    noise_scheduler: object


def train(args, task: TrainingTask) -> Path:
    """Train, checkpoint, validate and save the final pipeline to ``args.output_dir``."""
    # Setup: accelerator, seed, output folder:
    accelerator = make_accelerator(args)
    output_dir = Path(args.output_dir)
    checkpoint = find_checkpoint(output_dir, args.resume_from_checkpoint)
    if args.seed is None:  # recorded in the saved arguments, so a resumed run keeps the data order
        args.seed = _checkpoint_seed(checkpoint) if checkpoint else random.SystemRandom().randrange(2**31)
    from accelerate.utils import set_seed

    set_seed(args.seed)  # identical model set-up on every process
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_partial_checkpoints(output_dir)

    # Models, data, optimizer:
    models = load_models(args, task)
    weight_dtype = configure_models(args, models, accelerator)
    dataset = task.build_dataset(args, models.tokenizer, args.seed)
    if task.before_training is not None:
        task.before_training(args, models, accelerator, dataset, weight_dtype)
    sampler = EpochBatchSampler(len(dataset), args.train_batch_size, accelerator.process_index, accelerator.num_processes, args.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                         **loader_options(args, accelerator.device.type))
    max_steps = args.max_train_steps or math.ceil(args.num_train_epochs * sampler.batches_per_epoch() / args.gradient_accumulation_steps)
    optimizer, lr_scheduler, ema = make_optimization(args, models.unet, accelerator, max_steps)
    models.unet, optimizer = accelerator.prepare(models.unet, optimizer)
    accelerator.register_for_checkpointing(lr_scheduler)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    generator = torch.Generator(device=accelerator.device).manual_seed(args.seed + 1_000_003 * (accelerator.process_index + 1))
    state = {"global_step": 0, "epoch": 0, "batch_in_epoch": 0, "seed": args.seed}
    if checkpoint is not None:
        state = load_checkpoint(accelerator, checkpoint, generator)
        accelerator.print(f"resumed from {checkpoint} at step {state['global_step']}")
    elif args.resume_from_checkpoint == "latest":
        accelerator.print(f"no checkpoint in {output_dir}; starting a new run")

    # Trackers:
    if accelerator.is_main_process:
        accelerator.init_trackers(task.name, config=_tracker_config(args))
        save_args(args, output_dir)
    logger = RunLogger(accelerator, output_dir)
    accelerator.print(
        f"training {len(dataset)} samples for {max_steps} steps: {accelerator.num_processes} process(es) x batch "
        f"{args.train_batch_size} x accumulation {args.gradient_accumulation_steps} on {accelerator.device}"
    )

    # Train:
    empty_text = encode_prompts(models, [""], accelerator.device)
    loop = TrainingLoop(args, task, models, accelerator, optimizer, lr_scheduler, ema, generator, weight_dtype, empty_text, logger)
    loop.run(loader, sampler, state, max_steps)

    # Save the final pipeline:
    check_replicas_in_sync(accelerator, models.unet)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_pipeline(args, task, models, accelerator, ema, output_dir)
    accelerator.end_training()
    return output_dir


def make_accelerator(args):
    """The accelerator, after the speed options left unset are resolved for this machine."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    notes = resolve_speed_defaults(args, torch.cuda.is_available())
    if notes and int(os.environ.get("RANK", "0")) == 0:
        print(f"speed defaults for this machine: {', '.join(notes)}")
    mixed_precision = args.mixed_precision
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        print("note: fp16 mixed precision needs a GPU; training in full precision on this machine")
        mixed_precision = "no"
    report_to = None if args.report_to in (None, "none", "") else args.report_to
    if report_to in ("wandb", "all"):
        from accelerate.utils import is_wandb_available

        if not is_wandb_available():
            raise UserError("--report_to wandb needs the wandb package: pip install wandb, then wandb login")
    project = ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir))
    # Without cpu=True accelerate treats every process of a CPU-only torchrun
    # as a separate single-process run, silently training N unsynchronised copies.
    accelerator = Accelerator(mixed_precision=mixed_precision, log_with=report_to, project_config=project,
                              cpu=not torch.cuda.is_available(), dynamo_backend="inductor" if args.torch_compile else "no")
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise UserError(f"launched {launched} processes but accelerate formed a group of {accelerator.num_processes}; "
                        "check the launcher (accelerate config) and the visible devices")
    return accelerator


def load_models(args, task: TrainingTask) -> Models:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    source = args.pretrained_model_name_or_path
    looks_local = source.startswith((".", "/", "~")) or Path(source).parent.is_dir() and str(Path(source).parent) != "."
    if looks_local and not Path(source).is_dir():
        raise UserError(f"model folder {source} does not exist; fetch it with download_model.py (or --tiny for a test model)")
    common = dict(revision=args.revision, cache_dir=args.cache_dir)
    try:
        noise_scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler", **common)
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **common)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", variant=args.variant, use_safetensors=True, **common)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", variant=args.variant, use_safetensors=True, **common)
        unet = task.load_unet(args) if task.load_unet else UNet2DConditionModel.from_pretrained(
            source, subfolder="unet", revision=args.non_ema_revision, variant=args.variant, use_safetensors=True, cache_dir=args.cache_dir)
    except UserError:
        raise
    except Exception as err:  # missing files, bad configs, hub errors
        raise UserError(f"cannot load the base model from {source} ({type(err).__name__}: {str(err).splitlines()[0]}); "
                        "check the folder with quick_test.py --model, or re-run download_model.py") from None
    widen_unet_input(unet, task.num_conditioning_frames)
    return Models(tokenizer, text_encoder, vae, unet, noise_scheduler)


def configure_models(args, models: Models, accelerator) -> torch.dtype:
    """Freeze the VAE and text encoder in the compute precision; the UNet keeps
    fp32 master weights (autocast handles the rest). Returns the frozen dtype."""
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    for frozen in (models.vae, models.text_encoder):
        frozen.requires_grad_(False)
        frozen.to(accelerator.device)
        if weight_dtype != torch.float32:
            frozen.to(dtype=weight_dtype)
        frozen.eval()
    models.unet.train()
    if args.gradient_checkpointing:
        models.unet.enable_gradient_checkpointing()
    apply_unet_speed_options(models.unet, args)
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return weight_dtype


def make_optimization(args, unet, accelerator, max_steps: int):
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    learning_rate = args.learning_rate
    if args.scale_lr:
        learning_rate *= args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
    if args.use_8bit_adam:
        try:
            import bitsandbytes
        except ImportError:
            raise UserError("--use_8bit_adam needs bitsandbytes: pip install -r requirements-gpu.txt (GPU only)") from None
        optimizer_class = bitsandbytes.optim.AdamW8bit
    else:
        optimizer_class = torch.optim.AdamW
    fused = {"fused": True} if args.fused_adam and optimizer_class is torch.optim.AdamW else {}
    optimizer = optimizer_class(unet.parameters(), lr=learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                weight_decay=args.adam_weight_decay, eps=args.adam_epsilon, **fused)
    # Stepped once per optimizer step by the loop itself, so warm-up and
    # length are in optimizer steps whatever the process count.
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer=optimizer, num_warmup_steps=args.lr_warmup_steps,
                                 num_training_steps=max_steps)
    ema = None
    if args.use_ema:
        unet.to(accelerator.device)
        # foreach: one batched update over all tensors, so EMA costs a few ms, not a loop over ~700 tensors.
        ema = EMAModel(unet.parameters(), model_cls=type(unet), model_config=unet.config, foreach=True)
        ema.to(accelerator.device)
    return optimizer, lr_scheduler, ema


@torch.no_grad()
def encode_prompts(models: Models, prompts: List[str], device) -> torch.Tensor:
    return models.text_encoder(tokenize(models.tokenizer, prompts).to(device))[0]


class TrainingLoop:
    """The step: encode, noise, drop conditions, predict, and the bookkeeping
    around it (accumulation, clipping, EMA, logging, checkpoints, validation)."""

    def __init__(self, args, task, models, accelerator, optimizer, lr_scheduler, ema, generator, weight_dtype, empty_text, logger):
        self.args, self.task, self.models, self.accelerator = args, task, models, accelerator
        self.optimizer, self.lr_scheduler, self.ema, self.generator = optimizer, lr_scheduler, ema, generator
        self.weight_dtype, self.empty_text, self.logger = weight_dtype, empty_text, logger
        self.last_validated_step = None

    def run(self, loader, sampler, state: dict, max_steps: int) -> None:
        progress = tqdm(total=max_steps, initial=state["global_step"], desc="training", disable=not self.accelerator.is_main_process)
        try:
            self._run(loader, sampler, state, max_steps, progress)
        finally:
            progress.close()  # before any error line, so the bar does not redraw after it

    def _run(self, loader, sampler, state: dict, max_steps: int, progress) -> None:
        args, accelerator = self.args, self.accelerator
        accumulation = args.gradient_accumulation_steps
        micro_step, loss_sum = 0, torch.zeros((), device=accelerator.device)
        started, timed_from, steps_timed = time.perf_counter(), None, 0
        samples_per_step = accumulation * args.train_batch_size * accelerator.num_processes
        while state["global_step"] < max_steps:
            sampler.set_position(state["epoch"], state["batch_in_epoch"])
            for batch in loader:
                if "errors" in batch:
                    more = f" (and {len(batch['errors']) - 1} more in this batch)" if len(batch["errors"]) > 1 else ""
                    raise UserError(batch["errors"][0] + more)
                state["batch_in_epoch"] += 1
                micro_step += 1
                last_micro_step = micro_step % accumulation == 0
                loss_sum += self.micro_step(batch, last_micro_step)
                if not last_micro_step:
                    continue
                mean_loss = accelerator.gather((loss_sum / accumulation).reshape(1)).mean().item()
                loss_sum.zero_()
                if not math.isfinite(mean_loss):
                    self._stop_on_non_finite(mean_loss, state["global_step"] + 1)
                self.optimizer_step()
                state["global_step"] += 1
                # Throughput is timed from the end of the first step, which carries the
                # one-time costs (compilation, allocator and kernel warm-up).
                now = time.perf_counter()
                if timed_from is None:
                    timed_from, samples_per_second = now, samples_per_step / (now - started)
                else:
                    steps_timed += 1
                    samples_per_second = steps_timed * samples_per_step / (now - timed_from)
                self.report(progress, state["global_step"], mean_loss, samples_per_second)
                if state["global_step"] % args.checkpointing_steps == 0:
                    save_checkpoint(accelerator, Path(args.output_dir), state["global_step"], dict(state), args,
                                    self.generator, args.checkpoints_total_limit)
                if args.validation_steps and state["global_step"] % args.validation_steps == 0:
                    self.validate(state["global_step"])
                if state["global_step"] >= max_steps:
                    break
            else:
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
                if state["epoch"] % args.validation_epochs == 0:
                    self.validate(state["global_step"])
                continue
            break
        if self.last_validated_step != state["global_step"]:
            self.validate(state["global_step"])  # the trained model is always shown once

    def micro_step(self, batch: dict, last_micro_step: bool = True) -> torch.Tensor:
        """Forward and backward of one micro-batch; returns the detached loss.
        Gradients are synchronised across processes only on the last micro-step."""
        accelerator = self.accelerator
        with nullcontext() if last_micro_step else accelerator.no_sync(self.models.unet):
            with accelerator.autocast():
                loss = self.loss(batch)
            accelerator.backward(loss / self.args.gradient_accumulation_steps)
        return loss.detach()

    def loss(self, batch: dict) -> torch.Tensor:
        """Denoising loss of one micro-batch (MSE in fp32)."""
        models, device, generator = self.models, self.accelerator.device, self.generator
        target_latents, condition_latents = self.encode_images(batch)
        batch_size = target_latents.shape[0]
        noise = torch.randn(target_latents.shape, generator=generator, device=device, dtype=target_latents.dtype)
        timesteps = torch.randint(0, models.noise_scheduler.config.num_train_timesteps, (batch_size,), generator=generator, device=device)
        noisy_latents = models.noise_scheduler.add_noise(target_latents, noise, timesteps)
        with torch.no_grad():
            text = models.text_encoder(batch["input_ids"].to(device))[0]
        drop_text, drop_image = conditioning_dropout_masks(batch_size, self.args.conditioning_dropout_prob, generator, device)
        text, condition_latents = apply_conditioning_dropout(text, self.empty_text, condition_latents, drop_text, drop_image)
        model_input = torch.cat([noisy_latents, condition_latents.to(noisy_latents.dtype)], dim=1)
        if self.args.channels_last:
            model_input = model_input.contiguous(memory_format=torch.channels_last)
        prediction = models.unet(model_input, timesteps, encoder_hidden_states=text).sample
        if models.noise_scheduler.config.prediction_type == "v_prediction":
            target = models.noise_scheduler.get_velocity(target_latents, noise, timesteps)
        else:
            target = noise
        return F.mse_loss(prediction.float(), target.float())

    def encode_images(self, batch: dict):
        """Target and conditioning latents (see ``ip2p.latents``), from the
        latent cache when the batch carries moments, else from the VAE."""
        vae, device = self.models.vae, self.accelerator.device
        if "latent_moments" in batch:
            moments = batch["latent_moments"].to(device)
        else:
            pixels = torch.cat([batch["condition_pixels"], batch["target_pixels"][:, None]], dim=1)
            moments = encode_moments(vae, pixels.to(device, dtype=self.weight_dtype))
        return latents_from_moments(moments, vae.config.scaling_factor, self.generator,
                                    getattr(self.args, "prediction_target", "frame"), getattr(self.args, "residual_scale", 1.0))

    def optimizer_step(self) -> None:
        self.accelerator.clip_grad_norm_(self.models.unet.parameters(), self.args.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.step(self.models.unet.parameters())

    def report(self, progress, step: int, loss: float, samples_per_second: float) -> None:
        learning_rate = self.lr_scheduler.get_last_lr()[0]
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.4f}", lr=f"{learning_rate:.2e}", samples_per_s=f"{samples_per_second:.1f}")
        self.logger.scalars({"train/loss": loss, "train/learning_rate": learning_rate, "train/samples_per_second": samples_per_second}, step)
        interval = max(1, self.args.checkpointing_steps // 5)
        if self.accelerator.is_main_process and (step % interval == 0 or step == 1):
            progress.write(f"step {step}: loss {loss:.4f}, lr {learning_rate:.2e}, {samples_per_second:.1f} samples/s")

    def _stop_on_non_finite(self, loss: float, step: int) -> None:
        checkpoints = list_checkpoints(Path(self.args.output_dir))
        last = f"the last good checkpoint is {checkpoints[-1]}" if checkpoints else "no checkpoint was saved yet"
        self.accelerator.end_training()
        raise UserError(f"loss became {loss} at step {step}; training stopped and {last}. "
                        "Resume from it with a lower --learning_rate (or --mixed_precision bf16 instead of fp16)")

    def validate(self, step: int) -> None:
        """Run the task's validation on the main process, with EMA weights if kept."""
        accelerator = self.accelerator
        self.last_validated_step = step
        if accelerator.is_main_process and self.task.validation_configured(self.args):
            unet = unwrap(accelerator, self.models.unet)
            if self.ema is not None:
                self.ema.store(unet.parameters())
                self.ema.copy_to(unet.parameters())
            pipeline = build_pipeline(self.task, self.models, unet, self.args.pretrained_model_name_or_path)
            generator = torch.Generator(device=accelerator.device).manual_seed(self.args.seed)
            unet.eval()
            with accelerator.autocast():
                images = self.task.validation_images(pipeline, self.args, generator)
            unet.train()
            if self.ema is not None:
                self.ema.restore(unet.parameters())
            if images:
                folder = self.logger.images("validation", images, step)
                tqdm.write(f"validation images: {folder}")
        accelerator.wait_for_everyone()


def unwrap(accelerator, unet):
    """The plain UNet module: without the DDP wrapper or torch.compile's."""
    return accelerator.unwrap_model(unet, keep_torch_compile=False)


@torch.no_grad()
def check_replicas_in_sync(accelerator, unet) -> None:
    """Every process must end with the same weights; a silent divergence
    (a missed gradient sync) would otherwise go unnoticed until evaluation."""
    if accelerator.num_processes == 1:
        return
    params = [p.detach().double().flatten() for p in unwrap(accelerator, unet).parameters()]
    flat = torch.cat(params)
    weights = torch.arange(1, flat.numel() + 1, device=flat.device, dtype=torch.float64).remainder(977)
    fingerprint = torch.stack([flat.sum(), (flat * weights).sum()]).reshape(1, 2)
    gathered = accelerator.gather(fingerprint)
    if not torch.equal(gathered, gathered[:1].expand_as(gathered)):
        raise UserError(f"the UNet weights differ between processes after training ({gathered.tolist()}); please report this")
    accelerator.print(f"UNet weights identical on all {accelerator.num_processes} processes")


def build_pipeline(task: TrainingTask, models: Models, unet, base: str):
    from diffusers import EulerAncestralDiscreteScheduler

    # Inference uses InstructPix2Pix's sampler, built from the training schedule.
    scheduler = EulerAncestralDiscreteScheduler.from_config(models.noise_scheduler.config)
    pipeline = task.pipeline_class(vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer, unet=unet,
                                   scheduler=scheduler, **task.pipeline_kwargs)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def save_pipeline(args, task: TrainingTask, models: Models, accelerator, ema, output_dir: Path) -> None:
    """The final model: a complete diffusers pipeline folder (EMA weights if kept)."""
    unet = unwrap(accelerator, models.unet)
    if ema is not None:
        ema.copy_to(unet.parameters())
    for module in (models.vae, models.text_encoder, unet):
        if module.dtype != torch.float32:  # saved in full precision, like the base model
            module.to(dtype=torch.float32)
    pipeline = build_pipeline(task, models, unet, args.pretrained_model_name_or_path)
    pipeline.save_pretrained(str(output_dir), safe_serialization=True)
    save_args(args, output_dir)
    accelerator.print(f"saved the trained pipeline to {output_dir}")
    if args.push_to_hub:
        push_pipeline(args, output_dir)


def push_pipeline(args, output_dir: Path) -> None:
    from huggingface_hub import create_repo, upload_folder

    repo_id = create_repo(args.hub_model_id or output_dir.name, exist_ok=True, token=args.hub_token).repo_id
    upload_folder(repo_id=repo_id, folder_path=str(output_dir), token=args.hub_token, commit_message="Trained pipeline",
                  ignore_patterns=["checkpoint-*", ".checkpoint-*", f"{args.logging_dir}/*", "validation/*"])
    print(f"pushed the pipeline to {repo_id}")


def _checkpoint_seed(checkpoint: Path) -> int:
    import json

    from .checkpoints import STATE_FILE

    return json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))["seed"]


def _tracker_config(args) -> dict:
    # TensorBoard's hparams accept only numbers, strings and booleans.
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items() if k != "hub_token"}
