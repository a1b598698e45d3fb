"""Gradient accumulation under CUDA graphs, against the eager step, on the trainer's own step.

A CUDA graph's backward returns gradients in memory its next replay rewrites;
without ``.grad`` buffers of the trainer's own, the first micro-batch's
gradient would be overwritten by the second's (pytorch/pytorch#169545).
This builds the video trainer with ``--torch_compile --torch_compile_mode
reduce-overhead --gradient_accumulation_steps 2`` in fp32 (TF32 off), then
for a few rounds accumulates the same two micro-batches, with the same noise,
through the compiled UNet and through the same UNet uncompiled, compares the
gradients, and takes an optimizer step (clipping, AdamW, the buffers zeroed
in place). Prints one markdown row; exits 1 when a round differs by more
than ``--tolerance`` (relative, over all gradients). ``--mode default``
compiles without CUDA graphs: it tells a miscompiled step from a graph's
fault. ``--inductor-layout`` lets inductor choose the convolutions' layout,
which the trainer turns off (``configure_compiler``: on CPU that choice
computed gradients 42 % off). ``--mode capture`` checks ``--cuda_graph_unet``
instead: the eager UNet recorded as CUDA graphs, nothing compiled. On CPU there
are no CUDA graphs: the run then checks only the compiled step (a dry run), and
``--mode capture`` prints a row saying it did not run.

    python benchmarks/cuda_graph_check.py --model TINY_MODEL --data PROCESSED --output-dir /tmp/graphs
    python benchmarks/cuda_graph_check.py --mode capture --model TINY_MODEL --data PROCESSED --output-dir /tmp/capture
    python benchmarks/cuda_graph_check.py --mode default --inductor-layout --model TINY_MODEL --data PROCESSED --output-dir /tmp/layout
"""

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ip2p.shared.cli import at_least, make_parser, run_main  # noqa: E402
from ip2p.training.speed import allocate_gradients  # noqa: E402

ROW_HEAD = "| check | rounds | first round (s) | largest relative gradient difference | result |\n| --- | --- | --- | --- | --- |"


def accumulated_gradients(trainer, side, batches, seed: int) -> list:
    """The gradients of ``batches`` accumulated as one optimizer step, through
    ``side`` (the trainer's UNet and its graphed call, or None), each micro-batch's noise seeded alike."""
    trainer.models.unet, trainer.graphed_unet = side
    parameters = [p for p in trainer.models.unet.parameters() if p.requires_grad]
    allocate_gradients(parameters)  # the trainer keeps them only under CUDA graphs
    for parameter in parameters:
        parameter.grad.zero_()
    for index, batch in enumerate(batches):
        trainer.generator.manual_seed(seed + index)
        trainer.micro_step(batch, last_micro_step=index == len(batches) - 1)
    return [p.grad.detach().clone() for p in parameters]


def relative_difference(gradients: list, reference: list) -> float:
    import torch

    difference = torch.stack([torch.linalg.vector_norm(g - r) for g, r in zip(gradients, reference)])
    norm = torch.stack([torch.linalg.vector_norm(r) for r in reference])
    return (torch.linalg.vector_norm(difference) / torch.linalg.vector_norm(norm)).item()


def can_record() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv=None) -> int:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the base pipeline folder (the tiny model)")
    parser.add_argument("--data", required=True, help="a processed dataset (make_dataset.py)")
    parser.add_argument("--output-dir", required=True, help="a new folder for the run")
    parser.add_argument("--resolution", type=at_least(8), default=64)
    parser.add_argument("--batch-size", type=at_least(1), default=4, help="per micro-batch; the data must hold two")
    parser.add_argument("--mode", default="reduce-overhead", choices=("reduce-overhead", "max-autotune", "default", "capture"),
                        help="default: compiled without CUDA graphs, which tells a miscompile from a graph's fault; "
                             "capture: --cuda_graph_unet, the eager UNet recorded as CUDA graphs (a GPU only)")
    parser.add_argument("--inductor-layout", action="store_true",
                        help="let inductor choose the convolutions' memory layout (the trainer keeps the model's)")
    parser.add_argument("--rounds", type=at_least(3), default=4, help="optimizer steps compared (graphs replay from the third)")
    parser.add_argument("--tolerance", type=float, default=1e-2)
    options = parser.parse_args(argv)
    if options.mode == "capture" and options.inductor_layout:
        parser.error("--inductor-layout is a compiler setting: give it with --mode default or reduce-overhead, not capture")

    capture = options.mode == "capture"
    if capture and not can_record():  # the dry run on CPU: nothing can be recorded there, so nothing is built
        print(ROW_HEAD)
        print("| CUDA graphs of the UNet (--cuda_graph_unet), accumulation 2 | 0 | - | - | not run: needs a CUDA GPU |")
        return 0

    import torch

    from ip2p.training.saving import unwrap
    from ip2p.training.trainer import build_trainer
    from ip2p.training.video_task import parse_video_args, video_task

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 on both sides: a crisp comparison
    graph_flags = ["--cuda_graph_unet"] if capture else ["--torch_compile", "--torch_compile_mode", options.mode]
    args = parse_video_args(["--pretrained_model_name_or_path", options.model, "--train_data_dir", options.data,
                             "--output_dir", options.output_dir, "--resolution", str(options.resolution),
                             "--train_batch_size", str(options.batch_size),
                             "--gradient_accumulation_steps", "2", "--max_train_steps", str(options.rounds),
                             "--mixed_precision", "no", *graph_flags,
                             "--latent_cache_dir", str(Path(options.output_dir) / "cache"), "--num_validation_images", "0",
                             "--report_to", "none", "--seed", "0"])
    trainer = build_trainer(args, video_task(args))
    if options.inductor_layout:  # before the first step, where the UNet compiles
        import torch._inductor.config

        torch._inductor.config.layout_optimization = True
    graphed = (trainer.models.unet, trainer.graphed_unet)
    # The same module and parameters, uncompiled and unrecorded (one process: no DDP).
    eager = (unwrap(trainer.accelerator, trainer.models.unet), None)
    feed = trainer.batches()
    batches = [next(feed), next(feed)]
    differences, began, first_round = [], time.perf_counter(), 0.0
    for round_index in range(options.rounds):
        gradients = accumulated_gradients(trainer, graphed, batches, seed=2 * round_index)
        if round_index == 0:
            first_round = time.perf_counter() - began  # compilation, recording
        reference = accumulated_gradients(trainer, eager, batches, seed=2 * round_index)
        differences.append(relative_difference(gradients, reference))
        trainer.models.unet, trainer.graphed_unet = graphed
        trainer.optimizer_step()
    device = trainer.accelerator.device
    if capture:
        graphs = "CUDA graphs of the UNet (--cuda_graph_unet), not compiled"
    elif os.environ.get("TORCHDYNAMO_DISABLE") == "1":
        graphs = "not compiled (TORCHDYNAMO_DISABLE=1)"
    elif options.mode == "default":
        graphs = "compiled without CUDA graphs"
    else:
        graphs = "CUDA graphs" if device.type == "cuda" else "compiled, no CUDA graphs on CPU (dry run)"
    passed = max(differences) <= options.tolerance
    print(ROW_HEAD)
    layout = "channels_last" if trainer.args.channels_last else "NCHW"  # the machine's default: channels_last on a GPU
    if options.inductor_layout:
        layout += ", inductor's layout choice"
    mode = "" if capture else f", --torch_compile_mode {options.mode}"
    setting = (f"{graphs}{mode}, accumulation 2, fp32, {layout}, {options.resolution} px, "
               f"batch {options.batch_size}")
    rounds = ", ".join(f"{difference:.1e}" for difference in differences)
    verdict = "agrees with eager" if passed else f"DIFFERS beyond {options.tolerance:g}"
    print(f"| {setting} | {options.rounds} | {first_round:.1f} | {max(differences):.2e} (rounds: {rounds}) | {verdict} |")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
