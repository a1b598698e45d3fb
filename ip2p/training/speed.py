"""Speed options of the training step, and the defaults picked for the hardware.

Every option is a trainer flag that a user can turn on or off; the ones left
unset (``None``) are chosen here when the run's arguments are resolved
(``ip2p.training.setup.init_run``), so the saved ``training_args.json``
records what actually ran:

- ``--mixed_precision``: bf16 autocast on a GPU that supports it (fp16 with
  loss scaling on older GPUs), unless the accelerate config or launch flag
  (``ACCELERATE_MIXED_PRECISION``) says otherwise; the launcher's bare default
  "no" is not taken for a choice (``launcher_precision``). The UNet keeps fp32 master
  weights, so this is the safe kind of mixed precision.
- ``--channels_last``: NHWC weights and activations, which cuDNN's tensor-core
  convolutions prefer. On with a GPU; off on CPU, where it is not faster.
- ``--fused_adam``: one fused AdamW kernel instead of a loop over tensors. On
  by default, on a GPU and on CPU alike (PyTorch has both kernels; on the
  2-core CPU the tiny UNet's optimizer step takes 1.6 ms fused against 7.9 ms
  unfused); off with ``--use_8bit_adam``, which brings its own kernel.
- ``--attention``: PyTorch's scaled-dot-product attention (memory-efficient and
  flash kernels) unless ``eager`` (diffusers' plain attention, the reference
  the benchmark compares against) or ``xformers`` is asked for.
- ``--dataloader_num_workers``: with a GPU, worker processes load the next
  batches while the GPU computes (pinned memory, kept alive between epochs);
  on CPU the main process loads, since workers would take cores from the step.
- ``--torch_compile`` (``--torch_compile_mode reduce-overhead`` adds CUDA
  graphs): opt-in. Compilation takes minutes; the trainer prints the first
  step's time apart, and ``benchmarks/throughput.py`` measures the compiled
  rows beside the eager ones. Whether it should become the GPU default for
  long runs waits for those rows on a GPU (issue 26): no default here changes
  without a measured row. A compiled run keeps the convolutions' layout
  (``configure_compiler``); under CUDA graphs, gradient accumulation adds
  into ``.grad`` buffers kept between steps (``keeps_gradient_buffers``).
- ``--cuda_graph_unet``: opt-in. The UNet's forward and backward recorded as
  CUDA graphs without compiling (``ip2p.training.cuda_graphs``); the same
  wait for a measured row before it could become a default.
"""

import os
from typing import Dict, List, Optional, Tuple

import torch
import yaml
from accelerate.commands.config.config_args import default_config_file
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from diffusers.utils.import_utils import is_xformers_available

from ..shared.cli import UserError


def speed_defaults(args, cuda_available: bool) -> Tuple[Dict[str, object], List[str]]:
    """The values of the speed options for this machine (those left unset
    chosen here), and one note per choice made; ``args`` is not changed."""
    values, notes = {}, []
    if args.enable_xformers_memory_efficient_attention:  # the diffusers example's flag
        values["attention"] = "xformers"
    precision = args.mixed_precision or launcher_precision()  # the flag, else accelerate's config
    if precision is None:
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda_available else "no"
        why = " (accelerate launch passed only its default 'no'; --mixed_precision no forces full precision)" \
            if os.environ.get("ACCELERATE_MIXED_PRECISION") == "no" and cuda_available else ""
        notes.append(f"mixed precision: {precision}{why}")
    elif precision == "fp16" and not cuda_available:
        precision = "no"
        notes.append("mixed precision: no (fp16 needs a GPU)")
    values["mixed_precision"] = precision
    if args.channels_last is None:
        values["channels_last"] = cuda_available
        notes.append(f"channels_last: {'on' if cuda_available else 'off'}")
    if args.fused_adam is None:
        values["fused_adam"] = not args.use_8bit_adam
        notes.append(f"fused AdamW: {'on' if values['fused_adam'] else 'off'}")
    if args.dataloader_num_workers is None:
        processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        values["dataloader_num_workers"] = min(4, max(0, (os.cpu_count() or 1) // processes - 1)) if cuda_available else 0
        notes.append(f"data-loading workers: {values['dataloader_num_workers']}")
    return values, notes


def launcher_precision() -> Optional[str]:
    """The precision ``accelerate launch`` was asked for, or None where it only
    passed its default: without a config file or flag the launcher still sets
    ``ACCELERATE_MIXED_PRECISION=no``, and counting that as a choice would
    silently train in fp32 on a GPU (2-3x slower). A "no" counts when the
    default accelerate config file says so."""
    value = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if value != "no":
        return value
    return "no" if accelerate_config_precision() == "no" else None


def accelerate_config_precision() -> Optional[str]:
    """``mixed_precision`` of the default accelerate config file (``accelerate config``), if there is one."""
    try:
        with open(default_config_file, encoding="utf-8") as handle:
            return (yaml.safe_load(handle) or {}).get("mixed_precision")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def apply_unet_speed_options(unet, args) -> None:
    """Attention implementation and memory format of the trained UNet."""
    if args.attention == "eager":
        unet.set_attn_processor(AttnProcessor())
    elif args.attention == "sdpa":
        unet.set_attn_processor(AttnProcessor2_0())
    elif args.attention == "xformers":
        if not is_xformers_available():
            raise UserError("--attention xformers needs xformers: pip install -r requirements-gpu.txt, "
                            "or use --attention sdpa (the default)")
        unet.enable_xformers_memory_efficient_attention()
    if args.channels_last:
        unet.to(memory_format=torch.channels_last)


def configure_compiler(args) -> None:
    """Inductor settings for a compiled run: the convolutions keep the layout
    the model gives them. Left to choose it (``layout_optimization``), torch
    2.13's inductor computed this UNet's gradients 42 % off the eager ones on
    CPU, the loss unchanged. It needs the up path's resnets and upsampler in
    one graph, and also happens with scalar code and without oneDNN, so it is
    not only the CPU's code generation: it stays off on a GPU too, until
    ``benchmarks/cuda_graph_check.py --inductor-layout`` shows it right there
    (channels_last, the GPU default, already gives the layout it would pick)."""
    if args.torch_compile:
        import torch._inductor.config

        torch._inductor.config.layout_optimization = False


def loader_options(args, device_type: str) -> dict:
    """DataLoader keyword arguments that keep the device fed."""
    workers = args.dataloader_num_workers
    options = dict(num_workers=workers, pin_memory=device_type == "cuda", persistent_workers=workers > 0)
    if workers > 0 and args.dataloader_prefetch_factor is not None:
        options["prefetch_factor"] = args.dataloader_prefetch_factor
    return options


CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the torch.compile modes that replay the step as CUDA graphs


def replays_cuda_graphs(args) -> bool:
    return bool(args.torch_compile) and args.torch_compile_mode in CUDA_GRAPH_MODES


def keeps_gradient_buffers(args) -> bool:
    """Whether the UNet's gradients live in buffers of their own, zeroed between
    steps instead of freed. A CUDA graph's backward returns gradients in memory
    its next replay rewrites, and autograd keeps the first micro-batch's as
    ``.grad`` when there is none: the next micro-batch would then overwrite
    what it should add to (pytorch/pytorch#169545, open; torch 2.13 names it
    in an error message). With a ``.grad`` already there, every micro-batch's
    gradient is added into it. The buffers stay allocated between steps
    (3.4 GB for the 860M UNet in fp32). ``--cuda_graph_unet``'s backward graph
    hands out its gradients the same way."""
    return (replays_cuda_graphs(args) or args.cuda_graph_unet) and args.gradient_accumulation_steps > 1


def wait_for_device(device) -> None:
    """Wait for the work queued on ``device``: a GPU runs it after the host's
    call returns, a CPU while the call runs (nothing to wait for)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def allocate_gradients(parameters) -> None:
    """A zeroed ``.grad`` for every trained parameter that has none (same layout, so autograd adds into it in place)."""
    for parameter in parameters:
        if parameter.requires_grad and parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
