"""What the sharding engines need from the trainer that DDP does not.

DeepSpeed ZeRO (``configs/deepspeed_zero2.yaml``): the trainer accumulates
gradients itself (it divides the loss and syncs on the last micro-batch);
DeepSpeed instead divides the loss and steps the optimizer inside
``backward``, in bf16 or fp16 weights with fp32 master copies in its
optimizer. So DeepSpeed is told the micro-batch, the accumulation and the
clipping before ``prepare``, where each step ends, and the final weights are
read from its fp32 masters.

FSDP (``configs/fsdp.yaml``, version 1 with ``use_orig_params``): between
steps each process holds only a shard of every wrapped unit, as flat 1-D
views. The EMA keeps whole averages on every process, updated from the
weights gathered for the moment (one extra all-gather a step); validation and
the saved pipeline use a plain copy of the UNet built on the main process,
since the wrapped module cannot run on one process alone."""

from contextlib import contextmanager

import torch
from accelerate.utils import DistributedType

from ..shared.cli import UserError
from .saving import unwrap
from .speed import keeps_gradient_buffers


def uses_deepspeed(accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.DEEPSPEED


def configure_deepspeed(accelerator, args, report=print) -> None:
    """Fill DeepSpeed's config from this run's flags, before ``prepare``: the
    loader is the trainer's own (accelerate cannot read its batch size), and
    --gradient_accumulation_steps and --max_grad_norm rule over the yaml's values."""
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    clipping = config.get("gradient_clipping", "auto")
    if clipping not in ("auto", args.max_grad_norm):
        report(f"DeepSpeed: clipping gradients at --max_grad_norm {args.max_grad_norm}, not the config's {clipping}")
    config["train_micro_batch_size_per_gpu"] = args.train_batch_size
    config["gradient_accumulation_steps"] = args.gradient_accumulation_steps
    config["gradient_clipping"] = args.max_grad_norm
    accelerator.gradient_accumulation_steps = args.gradient_accumulation_steps  # accelerate checks it against the config


def mark_step_end(accelerator, last_micro_step: bool) -> None:
    """Tell DeepSpeed whether this micro-batch ends an optimizer step: accelerate
    steps its engine on every ``backward`` unless its sync flag is off, and the
    trainer does not use ``accelerator.accumulate``, which would set that flag."""
    accelerator.gradient_state._set_sync_gradients(last_micro_step)


@torch.no_grad()
def load_fp32_masters(unet) -> None:
    """Put DeepSpeed's fp32 master weights into ``unet`` (the unwrapped module,
    whose own weights are the bf16/fp16 copies) as fp32 parameters, so the
    saved pipeline holds what the optimizer trained, not its rounding."""
    from deepspeed.utils import safe_get_full_fp32_param  # in here: DeepSpeed is optional (configs/deepspeed_zero2.yaml)

    masters = [safe_get_full_fp32_param(param) for param in unet.parameters()]
    unet.to(dtype=torch.float32)
    for param, master in zip(unet.parameters(), masters):
        if master is not None:  # frozen parameters have no master copy
            param.copy_(master)


def uses_fsdp(accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.FSDP


def check_fsdp_settings(accelerator) -> None:
    """The trainer reads the UNet's own parameters (EMA, the saved weights): FSDP
    keeps them between steps only with ``use_orig_params`` in version 1."""
    plugin = accelerator.state.fsdp_plugin
    if getattr(plugin, "fsdp_version", 1) != 1:
        raise UserError(f"the accelerate config asks for FSDP version {plugin.fsdp_version}; this trainer runs FSDP version 1 "
                        "(configs/fsdp.yaml): set fsdp_version: 1")
    if not plugin.use_orig_params:
        raise UserError("the accelerate config sets fsdp_use_orig_params: false; this trainer needs the UNet's own parameters "
                        "(EMA, saving): set fsdp_use_orig_params: true, as configs/fsdp.yaml does")


def check_cuda_graph_accumulation(accelerator, args) -> None:
    """CUDA graphs with gradient accumulation need ``.grad`` buffers of the
    trainer's own (``keeps_gradient_buffers``); FSDP and DeepSpeed keep the
    gradients in buffers of theirs, where the trainer cannot place them."""
    if keeps_gradient_buffers(args) and (uses_fsdp(accelerator) or uses_deepspeed(accelerator)):
        raise UserError(f"--torch_compile_mode {args.torch_compile_mode} (CUDA graphs) with --gradient_accumulation_steps "
                        f"{args.gradient_accumulation_steps} runs on one GPU or under DDP, not under "
                        f"{accelerator.distributed_type.value}: use --torch_compile_mode default, or --gradient_accumulation_steps 1")


@contextmanager
def whole_parameters(accelerator, unet):
    """The UNet's parameters whole, in the order of the unwrapped module's, for
    the block. Under FSDP they are gathered from the shards (every process must
    enter; read-only: changes are not written back); else they are the UNet's own."""
    if not uses_fsdp(accelerator):
        yield list(unet.parameters())
        return
    from torch.distributed.fsdp import FullyShardedDataParallel

    with FullyShardedDataParallel.summon_full_params(unet, writeback=False):
        yield list(unet.parameters())


def gathered_unet(accelerator, unet, ema=None):
    """Under FSDP: a plain copy of the UNet on the main process, None on the
    others, holding the EMA weights if kept (whole on every process), else the
    trained weights gathered from every process's shard (every process must call this)."""
    state = accelerator.get_state_dict(unet) if ema is None else None  # a collective; the full dict lands on the main process
    if not accelerator.is_main_process:
        return None
    inner = unwrap(accelerator, unet)  # its units still hold shards
    with torch.device(accelerator.device):  # built where it runs: random init of the 860M UNet on a host CPU takes 5.7 s
        plain = type(inner).from_config(inner.config)
    if ema is not None:
        ema.copy_to(plain.parameters())
    else:
        plain.load_state_dict(state)
    return plain
