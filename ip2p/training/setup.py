"""What every training run sets up before its first step, in one place
(after nanochat's ``compute_init``): the run's arguments resolved once and
made read-only, the accelerator, the models' precision and placement, and
the optimizer with its schedule and EMA."""

import argparse
import os
import random
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Tuple

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import (AutocastKwargs, ProjectConfiguration, TorchDynamoPlugin, broadcast_object_list, is_wandb_available,
                               set_seed)
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from ..shared.cli import UserError
from .args import ResolvedArgs
from .checkpoints import find_checkpoint, read_state
from .speed import apply_unet_speed_options, configure_compiler, speed_defaults


def init_run(args) -> Tuple[object, ResolvedArgs]:
    """Resolve every default left to the machine or the run, then build the
    accelerator; returns it with the read-only arguments."""
    values, notes = speed_defaults(args, torch.cuda.is_available())
    if notes and int(os.environ.get("RANK", "0")) == 0:
        print(f"speed defaults for this machine: {', '.join(notes)}")
    accelerator = make_accelerator(argparse.Namespace(**{**vars(args), **values}))
    if args.seed is None:  # recorded in the saved arguments, so a resumed run keeps the data order
        values["seed"] = agree_on_seed(args, accelerator)
    resolved = ResolvedArgs({**vars(args), **values})

    set_seed(resolved.seed)  # identical model set-up on every process
    return accelerator, resolved


def agree_on_seed(args, accelerator) -> int:
    """The resumed checkpoint's seed, else one drawn by the main process and
    sent to the others: each process drawing its own would shuffle the data
    differently, training some samples twice an epoch and others never."""
    # Only the seed is needed here: restore_state reads every file of the checkpoint, once, and says what it skips.
    checkpoint = find_checkpoint(Path(args.output_dir), args.resume_from_checkpoint, report=lambda line: None, read_files=False)
    seed = read_state(checkpoint).seed if checkpoint else random.SystemRandom().randrange(2**31)
    return broadcast_object_list([seed], from_process=0)[0] if accelerator.num_processes > 1 else seed


@contextmanager
def patient_barrier(accelerator, hours: float = 24.0):
    """Run the block, then wait for every process with a timeout of ``hours``
    instead of the process group's (10-30 minutes): for work such as filling
    the latent cache, where a process with more to do would otherwise make
    the others abort. A side gloo group carries the wait, made before the
    block while all processes are together. A process whose block fails
    still joins the wait and then raises its error; the others then stop
    with a line pointing to it instead of waiting for it for ``hours``."""
    if accelerator.num_processes == 1:
        yield
        return

    group = dist.new_group(backend="gloo", timeout=timedelta(hours=hours))
    failure = None
    try:
        yield
    except Exception as err:  # noqa: BLE001 - re-raised below, after the others know
        failure = err
    failed = torch.tensor([int(failure is not None)])
    dist.all_reduce(failed, group=group)
    dist.destroy_process_group(group)
    if failure is not None:
        raise failure
    if failed.item():
        raise UserError(f"{int(failed.item())} other process(es) stopped with an error (printed above); this one stops too")


def make_accelerator(args):
    report_to = None if args.report_to in (None, "none", "") else args.report_to
    if report_to in ("wandb", "all"):
        if not is_wandb_available():
            raise UserError("--report_to wandb needs the wandb package: pip install wandb, then wandb login")
    project = ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir))
    # Without cpu=True accelerate treats every process of a CPU-only torchrun
    # as a separate single-process run, silently training N unsynchronised copies.
    # DeepSpeed forms its group itself (on such a machine with its CPU accelerator),
    # and cpu=True would turn it off.
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and not torch.cuda.is_available():
        raise UserError("the accelerate config asks for FSDP, which accelerate runs on GPUs only; on this machine launch "
                        "with configs/multi_gpu.yaml --cpu, torchrun, or configs/deepspeed_zero2.yaml")
    dynamo = TorchDynamoPlugin(backend="inductor", mode=args.torch_compile_mode) if args.torch_compile else TorchDynamoPlugin(backend="no")
    # make_graphed_callables refuses autocast's weight cache: the cached casts would be freed under the recorded graph.
    handlers = [AutocastKwargs(cache_enabled=False)] if args.cuda_graph_unet else None
    accelerator = Accelerator(mixed_precision=args.mixed_precision, log_with=report_to, project_config=project,
                              cpu=not torch.cuda.is_available() and not deepspeed, dynamo_plugin=dynamo,
                              kwargs_handlers=handlers)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise UserError(f"launched {launched} processes but accelerate formed a group of {accelerator.num_processes}; "
                        "check the launcher (accelerate config) and the visible devices")
    return accelerator


def configure_models(args, models, accelerator) -> torch.dtype:
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
    if args.prediction_type:  # the saved pipeline's sampler is built from this config, so it inherits the choice
        models.noise_scheduler.register_to_config(prediction_type=args.prediction_type)
    if args.min_train_timestep >= models.noise_scheduler.config.num_train_timesteps:
        raise UserError(f"--min_train_timestep {args.min_train_timestep}: the schedule has "
                        f"{models.noise_scheduler.config.num_train_timesteps} timesteps; give a smaller value")
    if args.gradient_checkpointing:
        models.unet.enable_gradient_checkpointing()
    apply_unet_speed_options(models.unet, args)
    configure_compiler(args)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # shapes are fixed (one resolution, padded full batches): tune once
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return weight_dtype


def make_optimization(args, unet, accelerator, max_steps: int):
    """(optimizer, LR schedule, EMA or None) for the UNet."""
    learning_rate = args.learning_rate
    if args.scale_lr:
        learning_rate *= args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
    if args.use_8bit_adam:
        try:
            import bitsandbytes  # in here: optional (requirements-gpu.txt), only --use_8bit_adam needs it
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
        ema = lerp_ema_class()(unet.parameters(), model_cls=type(unet), model_config=unet.config, foreach=True)
        ema.to(accelerator.device)
    return optimizer, lr_scheduler, ema


def lerp_ema_class():
    """diffusers' ``EMAModel`` (its decay schedule, state dict, checkpoints)
    with an in-place update: one ``torch._foreach_lerp_`` moves every average
    toward its parameter, where diffusers' foreach update first builds the
    differences, a temporary the size of the model, every step."""
    class LerpEMAModel(EMAModel):
        @torch.no_grad()
        def step(self, parameters) -> None:
            parameters = list(parameters)
            self.optimization_step += 1
            self.cur_decay_value = decay = self.get_decay(self.optimization_step)
            pairs = list(zip(self.shadow_params, parameters))
            frozen = [(average, param) for average, param in pairs if not param.requires_grad]
            if frozen:
                torch._foreach_copy_([a for a, _ in frozen], [p for _, p in frozen], non_blocking=True)
            trained = [(average, param) for average, param in pairs if param.requires_grad]
            # DeepSpeed's UNet holds bf16/fp16 weights: the fp32 averages take them in fp32 (a no-op otherwise).
            # No detach: under no_grad the parameters are only read, and a detach per tensor is one more
            # dispatch each step (686 for SD 1.5's UNet; benchmarks/op_count.py).
            torch._foreach_lerp_([a for a, _ in trained], [p.to(a.dtype) for a, p in trained], 1.0 - decay)

    return LerpEMAModel
