"""Speed options of the training step, and the defaults picked for the hardware.

Every option is a trainer flag that a user can turn on or off; the ones left
unset (``None``) are resolved here before training starts, so the saved
``training_args.json`` records what actually ran:

- ``--mixed_precision``: bf16 autocast on a GPU that supports it (fp16 with
  loss scaling on older GPUs), unless the accelerate config
  (``ACCELERATE_MIXED_PRECISION``) says otherwise. The UNet keeps fp32 master
  weights, so this is the safe kind of mixed precision.
- ``--channels_last``: NHWC weights and activations, which cuDNN's tensor-core
  convolutions prefer. On with a GPU; off on CPU, where it is not faster.
- ``--fused_adam``: one fused AdamW kernel instead of a loop over tensors. On
  with a GPU.
- ``--attention``: PyTorch's scaled-dot-product attention (memory-efficient and
  flash kernels) unless ``eager`` (diffusers' plain attention, the reference
  the benchmark compares against) or ``xformers`` is asked for.
- ``--dataloader_num_workers``: with a GPU, worker processes load the next
  batches while the GPU computes (pinned memory, kept alive between epochs);
  on CPU the main process loads, since workers would take cores from the step.
- ``--torch_compile``: opt-in. Compilation takes minutes and gains little on
  top of the options above (measured by ``benchmarks/throughput.py``).
"""

import os
from typing import List

import torch

from .cli import UserError

ATTENTION_CHOICES = ("sdpa", "eager", "xformers")


def resolve_speed_defaults(args, cuda_available: bool) -> List[str]:
    """Fill the unset speed options for this machine; returns one note per choice made."""
    notes = []
    if args.enable_xformers_memory_efficient_attention:  # the diffusers example's flag
        args.attention = "xformers"
    if args.mixed_precision is None and "ACCELERATE_MIXED_PRECISION" not in os.environ:
        args.mixed_precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda_available else "no"
        notes.append(f"mixed precision: {args.mixed_precision}")
    if args.channels_last is None:
        args.channels_last = cuda_available
        notes.append(f"channels_last: {'on' if cuda_available else 'off'}")
    if args.fused_adam is None:
        args.fused_adam = cuda_available and not args.use_8bit_adam
        notes.append(f"fused AdamW: {'on' if args.fused_adam else 'off'}")
    if args.dataloader_num_workers is None:
        processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        args.dataloader_num_workers = min(4, max(0, (os.cpu_count() or 1) // processes - 1)) if cuda_available else 0
        notes.append(f"data-loading workers: {args.dataloader_num_workers}")
    return notes


def apply_unet_speed_options(unet, args) -> None:
    """Attention implementation and memory format of the trained UNet."""
    if args.attention == "eager":
        from diffusers.models.attention_processor import AttnProcessor

        unet.set_attn_processor(AttnProcessor())
    elif args.attention == "sdpa":
        from diffusers.models.attention_processor import AttnProcessor2_0

        unet.set_attn_processor(AttnProcessor2_0())
    elif args.attention == "xformers":
        from diffusers.utils.import_utils import is_xformers_available

        if not is_xformers_available():
            raise UserError("--attention xformers needs xformers: pip install -r requirements-gpu.txt, "
                            "or use --attention sdpa (the default)")
        unet.enable_xformers_memory_efficient_attention()
    if args.channels_last:
        unet.to(memory_format=torch.channels_last)


def loader_options(args, device_type: str) -> dict:
    """DataLoader keyword arguments that keep the device fed."""
    workers = args.dataloader_num_workers
    options = dict(num_workers=workers, pin_memory=device_type == "cuda", persistent_workers=workers > 0)
    if workers > 0 and args.dataloader_prefetch_factor is not None:
        options["prefetch_factor"] = args.dataloader_prefetch_factor
    return options
