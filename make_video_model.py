"""Write a video pipeline folder whose UNet is widened for N observed frames.

From models/instruct-pix2pix (8-channel UNet) the image-conditioning weights
go to the newest frame and older frames start at zero, so before training it
predicts exactly what InstructPix2Pix predicts from the last frame alone.
A text-to-image base (4 channels) works too. Train from it with
`train_video_ip2p.py --custom_unet_path models/instruct-pix2pix-video-20frames`.
"""

import sys
from pathlib import Path

from ip2p.shared.atomic_dir import atomic_output_dir
from ip2p.shared.cli import make_parser, run_main
from ip2p.models.widening import unet_in_channels_for


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--base", type=Path, default=Path("models/instruct-pix2pix"), help="pipeline folder to widen")
    parser.add_argument("--num-frames", type=int, default=20, help="observed frames the widened UNet takes")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="destination (default: <base>-video-<num-frames>frames)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output folder even if this script did not write it, or it holds files it did not write")
    args = parser.parse_args(argv)
    if args.num_frames < 1:
        parser.error("--num-frames must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from ip2p.models.files import require_pipeline_folder
    from ip2p.models.widening import widen_unet_input
    from ip2p.models.video_pipeline import VideoInstructPix2PixPipeline

    output_dir = args.output_dir or args.base.with_name(f"{args.base.name}-video-{args.num_frames}frames")
    require_pipeline_folder(args.base, "fetch it with download_model.py (or --tiny)")
    base = str(args.base)
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", use_safetensors=True)
    widen_unet_input(unet, args.num_frames)
    pipeline = VideoInstructPix2PixPipeline(
        vae=AutoencoderKL.from_pretrained(base, subfolder="vae", use_safetensors=True),
        text_encoder=CLIPTextModel.from_pretrained(base, subfolder="text_encoder", use_safetensors=True),
        tokenizer=CLIPTokenizer.from_pretrained(base, subfolder="tokenizer"),
        unet=unet,
        scheduler=EulerAncestralDiscreteScheduler.from_pretrained(base, subfolder="scheduler"),
    )
    with atomic_output_dir(output_dir, "make_video_model.py", args.overwrite) as staging:
        pipeline.save_pretrained(str(staging), safe_serialization=True)
    print(f"wrote {output_dir}: unet in_channels {unet_in_channels_for(args.num_frames)} for {args.num_frames} frames")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
