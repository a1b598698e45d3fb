"""What DeepSpeed ZeRO (``configs/deepspeed_zero2.yaml``) needs from the
trainer that DDP and FSDP do not. The trainer accumulates gradients itself
(it divides the loss and syncs on the last micro-batch); DeepSpeed instead
divides the loss and steps the optimizer inside ``backward``, in bf16 or fp16
weights with fp32 master copies in its optimizer. So DeepSpeed is told the
micro-batch, the accumulation and the clipping before ``prepare``, where each
step ends, and the final weights are read from its fp32 masters."""

import torch
from accelerate.utils import DistributedType


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
