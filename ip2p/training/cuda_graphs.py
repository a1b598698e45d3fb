"""``--cuda_graph_unet``: the UNet's forward and backward replayed as CUDA graphs, nothing compiled.

One step of the SD-1.5-shaped UNet dispatches about 6,100 operations
(``benchmarks/op_count.py``). Where the host launches kernels more slowly than
the GPU runs them, the step waits on the host. PyTorch's
``torch.cuda.make_graphed_callables`` records the UNet's forward and its
backward once, at the first step, and then replays each as one launch. The
noise, the loss, clipping, AdamW and EMA stay eager around it: a few dozen
launches. ``--torch_compile --torch_compile_mode reduce-overhead`` replays
graphs too, but compiles first, which takes minutes; recording takes three
extra forward and backward passes.

What a recording needs, and where the trainer provides it:

- one GPU and one process (``check_cuda_graph_unet``): DDP's and the
  sharding engines' per-step bookkeeping would not be replayed;
- fixed shapes: the trainer's batches are full (``EpochBatchSampler`` pads the
  last one) at one resolution; a call of another shape runs the UNet eagerly;
- autocast without its weight cache: ``make_accelerator`` turns the cache off;
- the backward recorded outside autocast, as eager runs it: a recording made
  inside autocast records its backward under it too (pytorch/pytorch#120930),
  so the forward brings its own autocast and the recording is made outside;
- parameters changed only in place (AdamW, EMA's swaps, checkpoint loading);
- gradients: the backward graph hands them out in memory that its next replay
  rewrites, so under gradient accumulation the trainer adds them into
  ``.grad`` buffers of its own (``speed.keeps_gradient_buffers``);
- no other thread's CUDA call may break the recording: the data loader's
  pin-memory thread allocates pinned memory while the first step records
  (``captures_in_this_thread_only``);
- no gradient checkpointing, no ``--torch_compile`` (refused when parsing).
"""

import functools
from contextlib import contextmanager, nullcontext
from typing import Callable, Optional

import torch
from accelerate.utils import DistributedType

from ..shared.cli import UserError


class UNetCall(torch.nn.Module):
    """The trained UNet as the step calls it, under ``autocast``, tensors in and
    the prediction out: the form ``make_graphed_callables`` records (a module,
    so that the UNet's parameters get their gradients)."""

    def __init__(self, unet, autocast: Callable = nullcontext):
        super().__init__()
        self.unet, self.autocast = unet, autocast

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.unet(sample, timesteps, encoder_hidden_states=text).sample


class GraphedUNet:
    """Calls the UNet like ``UNetCall``: recorded at the first call, on copies
    of its inputs, then replayed for every call whose inputs have the first
    call's shapes and dtypes; other calls run the UNet eagerly."""

    def __init__(self, unet, autocast: Callable = nullcontext, record: Optional[Callable] = None):
        self.unet, self.autocast = unet, autocast  # the step's autocast (accelerator.autocast)
        self.record = record or torch.cuda.make_graphed_callables
        self.graphed, self.signature = None, None

    def __call__(self, sample: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        inputs = (sample, timesteps, text)
        signature = tuple((tuple(t.shape), t.dtype) for t in inputs)
        if self.graphed is None:
            # Copies: the recording keeps its inputs as the buffers every replay reads. A parameter the
            # forward leaves unused (a custom UNet's) gets no gradient, as in eager mode.
            examples = tuple(t.detach().clone(memory_format=torch.preserve_format) for t in inputs)
            try:
                with torch.autocast(sample.device.type, enabled=False), captures_in_this_thread_only():
                    # (the forward turns autocast on again, see above)
                    self.graphed = self.record(UNetCall(self.unet, self.autocast), examples, allow_unused_input=True)
            except RuntimeError as err:  # an operation CUDA graphs cannot hold (a custom UNet's), or the driver's refusal
                detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise UserError(f"--cuda_graph_unet could not record the UNet as CUDA graphs ({detail[:300]}); train "
                                "without it, or with --torch_compile --torch_compile_mode reduce-overhead") from None
            self.signature = signature
        if signature != self.signature:
            # The UNet itself, not the recorded module: make_graphed_callables replaced that module's forward
            # with the replay, which would copy these inputs into buffers of other shapes.
            return self.unet(sample, timesteps, encoder_hidden_states=text).sample
        return self.graphed(*inputs)


@contextmanager
def captures_in_this_thread_only():
    """``make_graphed_callables`` records under ``torch.cuda.graph``'s default
    capture mode, "global": a CUDA call from any other thread during the
    recording, such as the DataLoader's pin-memory thread allocating pinned
    memory for the next batch, breaks the recording and leaves that thread
    with the error (seen in other projects; PyTorch names "thread_local" as
    the mode for it, pytorch/pytorch#174724). The function takes no mode, so
    for the block ``torch.cuda.graph`` records with "thread_local"."""
    original = torch.cuda.graph
    torch.cuda.graph = functools.partial(original, capture_error_mode="thread_local")
    try:
        yield
    finally:
        torch.cuda.graph = original


def check_cuda_graph_unet(accelerator, args) -> None:
    if args.cuda_graph_unet and (accelerator.device.type != "cuda" or accelerator.distributed_type != DistributedType.NO):
        raise UserError(f"--cuda_graph_unet records CUDA graphs on one GPU in one process; this run has "
                        f"{accelerator.num_processes} process(es) on {accelerator.device.type} "
                        f"({accelerator.distributed_type.value}): leave it out, or with several GPUs use "
                        "--torch_compile --torch_compile_mode reduce-overhead")
