"""Predict the next frame of a clip with a trained video model.

Input: a clip folder in either raw layout (--video), or a row of a processed
dataset (--dataset, --split, --index). The instruction comes from
--instruction, else label.txt or the dataset row. Writes prediction.png and
strip.png (last observed | prediction | true next frame, when known).
"""

import sys
from pathlib import Path

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
    parser.add_argument("--resolution", type=int, default=256, help="frames are fitted to this square size")
    parser.add_argument("--num-inference-steps", type=int, default=20, help="denoising steps")
    parser.add_argument("--guidance-scale", type=float, default=7.5, help="text guidance scale")
    parser.add_argument("--image-guidance-scale", type=float, default=1.5, help="frame guidance scale")
    parser.add_argument("--num-samples-averaged", type=int, default=1, metavar="K",
                        help="predict the mean of K samples (the expected next frame: sharper on average, blurrier where uncertain)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    parser.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                        help="auto: bf16 on a GPU (fp16 without bf16), fp32 on CPU")
    parser.add_argument("--output-dir", type=Path, default=Path("predictions"), help="where the PNGs go")
    return parser.parse_args(argv)


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


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from PIL import ImageOps

    from ip2p.models.video_pipeline import inference_device_and_dtype, load_video_pipeline
    from ip2p.shared.images import make_strip

    device, dtype = inference_device_and_dtype(args.precision)
    pipeline = load_video_pipeline(args.model, device, dtype)
    loader = clip_from_dataset if args.dataset else clip_from_folder
    frames, truth, instruction = loader(args, pipeline.num_frames)
    instruction = args.instruction or instruction
    if not instruction:
        raise UserError("no instruction: pass --instruction \"...\" (or put it in the clip's label.txt)")
    frames = [ImageOps.fit(frame, (args.resolution, args.resolution)) for frame in frames]
    try:
        prediction = pipeline(instruction, frames, num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
                              image_guidance_scale=args.image_guidance_scale, num_samples_averaged=args.num_samples_averaged,
                              output_mode=pipeline.default_output_mode,
                              generator=torch.Generator(device=device).manual_seed(args.seed)).images[0]
    except ValueError as err:
        raise UserError(f"{args.video or args.dataset}: {err}") from None
    args.output_dir.mkdir(parents=True, exist_ok=True)
    prediction.save(args.output_dir / "prediction.png")
    make_strip([frames[-1], prediction] + ([truth] if truth is not None else []), args.resolution).save(args.output_dir / "strip.png")
    print(f"{instruction!r}: wrote {args.output_dir / 'prediction.png'} and {args.output_dir / 'strip.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
