"""Predict the next frame of a clip with a trained video model.

Input: a clip folder in either raw layout (--video), or a row of a processed
dataset (--dataset, --split, --index). The instruction comes from
--instruction, else label.txt or the dataset row. Writes prediction.png and
strip.png (last observed | prediction | true next frame, when known); with
--num-future-frames K > 1 it rolls out, each prediction joining the observed
window, and also writes frame_21.png ... frame_<20+K>.png, rollout.gif and
rollout.mp4 (observed frames, then the predicted ones in a red border).
Sampling defaults (steps, guidance, samples averaged) are the ones saved with
the model at training time.
"""

import importlib.util
import sys
from pathlib import Path

from ip2p.models.samplers import add_sampling_arguments, chosen_settings
from ip2p.shared.atomic_dir import atomic_output_dir
from ip2p.shared.cli import UserError, make_parser, run_main


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--model", type=Path, default=Path("output_video_model"), help="trained video pipeline folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", type=Path, help="a clip folder (00.jpg ... or observe_00.jpg ...)")
    source.add_argument("--dataset", type=Path, help="a make_dataset.py output")
    parser.add_argument("--split", default="test", help="dataset split (with --dataset)")
    parser.add_argument("--index", type=int, default=0, help="row of the split (with --dataset)")
    parser.add_argument("--instruction", default=None, help="the instruction (default: label.txt or the dataset row)")
    parser.add_argument("--resolution", type=int, default=None,
                        help="frames are fitted to this square size (default: the model's training resolution)")
    add_sampling_arguments(parser)
    parser.add_argument("--num-future-frames", type=int, default=1, metavar="K",
                        help="frames to predict; above 1, each prediction joins the observed window for the next")
    parser.add_argument("--fps", type=float, default=12, help="frame rate of rollout.gif and rollout.mp4 (SSv2: 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    parser.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                        help="auto: bf16 on a GPU (fp16 without bf16), fp32 on CPU")
    parser.add_argument("--output-dir", type=Path, default=Path("predictions"), help="where the PNGs go")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --output-dir even if predict.py did not write it, or it holds files it did not write")
    args = parser.parse_args(argv)
    if args.num_future_frames < 1 or args.fps <= 0:
        parser.error("--num-future-frames must be at least 1 and --fps positive")
    return args


def clip_from_dataset(args, num_frames):
    from ip2p.data.processed import load_processed_dataset
    from ip2p.shared.images import open_image

    dataset = load_processed_dataset(args.dataset)
    split = dataset.split(args.split)
    if not 0 <= args.index < len(split):
        raise UserError(f"--index {args.index} is outside {args.split} (0..{len(split) - 1})")
    row = split[args.index]
    frames = [open_image(p, dataset.frame_path) for p in row["input_frames"]]
    return frames[-num_frames:], row["edited_image"], row["edit_prompt"]


def clip_from_folder(args, num_frames):
    from PIL import Image

    from ip2p.data.raw_data import prediction_clip

    inputs, target, instruction = prediction_clip(args.video, num_frames)
    frames = [Image.open(p).convert("RGB") for p in inputs]
    return frames, Image.open(target).convert("RGB") if target else None, instruction


def write_prediction(folder: Path, frames, predicted, truth, resolution: int, fps: float) -> list:
    """prediction.png and strip.png, and for a rollout its frames, GIF and MP4; returns what was written."""
    from ip2p.shared.images import make_strip

    predicted[0].save(folder / "prediction.png")
    make_strip([frames[-1], predicted[0]] + ([truth] if truth is not None else []), resolution).save(folder / "strip.png")
    written = ["prediction.png", "strip.png"]
    if len(predicted) > 1:
        from ip2p.shared.video_files import rollout_frames, write_gif, write_mp4

        for step, frame in enumerate(predicted, start=len(frames) + 1):
            frame.save(folder / f"frame_{step:02d}.png")
        shown = rollout_frames(frames, predicted)
        write_gif(shown, folder / "rollout.gif", fps)
        write_mp4(shown, folder / "rollout.mp4", round(fps))
        written += [f"frame_{len(frames) + 1}.png ... frame_{len(frames) + len(predicted)}.png", "rollout.gif", "rollout.mp4"]
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.num_future_frames > 1 and importlib.util.find_spec("av") is None:  # checked before the model is loaded
        raise UserError("--num-future-frames above 1 writes rollout.mp4 with PyAV, which is not installed here: "
                        "pip install av (it is in requirements.txt), or predict one frame")
    import torch
    from PIL import ImageOps

    from ip2p.models.video_pipeline import inference_device_and_dtype, load_video_pipeline, model_resolution

    device, dtype = inference_device_and_dtype(args.precision)
    pipeline = load_video_pipeline(args.model, device, dtype)
    loader = clip_from_dataset if args.dataset else clip_from_folder
    frames, truth, instruction = loader(args, pipeline.num_frames)
    instruction = args.instruction or instruction
    if not instruction:
        raise UserError("no instruction: pass --instruction \"...\" (or put it in the clip's label.txt)")
    resolution = args.resolution or model_resolution(args.model)
    if pipeline.num_frames == 1:
        print(f"note: {args.model} is a single-image InstructPix2Pix model (UNet in_channels "
              f"{pipeline.unet.config.in_channels}): it sees only the last observed frame, at {resolution} px; "
              "a model from train_video_ip2p.py predicts from all 20", file=sys.stderr)
    frames = [ImageOps.fit(frame, (resolution, resolution)) for frame in frames]
    settings = chosen_settings(pipeline, args)
    try:
        predicted = pipeline.rollout(instruction, frames, args.num_future_frames,
                                     generator=torch.Generator(device=device).manual_seed(args.seed), **settings)
    except ValueError as err:
        raise UserError(f"{args.video or args.dataset}: {err}") from None
    with atomic_output_dir(args.output_dir, "predict.py", args.overwrite) as staging:  # only this run's files
        written = write_prediction(staging, frames, predicted, truth, resolution, args.fps)
    print(f"{instruction!r}: wrote {', '.join(written)} in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
