"""Fine-tune InstructPix2Pix on (input image, instruction, edited image) triples.

Accepts every flag of the diffusers example of the same name with the same
meaning and default, so existing command lines and `accelerate launch`
recipes run unchanged. Runs on CPU, one GPU, or many through accelerate.
"""

import sys

from ip2p.cli import run_main
from ip2p.train_args import build_parser, parse_training_args


def single_image_task():
    from diffusers import StableDiffusionInstructPix2PixPipeline

    from ip2p.training import TrainingTask

    return TrainingTask(
        name="instruct-pix2pix", num_conditioning_frames=1, build_dataset=build_dataset,
        pipeline_class=StableDiffusionInstructPix2PixPipeline,
        validation_configured=lambda args: bool(args.val_image_url and args.validation_prompt),
        validation_images=validation_images,
        pipeline_kwargs=dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False),
    )


def build_dataset(args, tokenizer, seed):
    from ip2p.edit_data import EditSamples, check_columns, load_training_split, select_samples

    split, resolve, source = load_training_split(args)
    check_columns(split, [args.original_image_column, args.edited_image_column, args.edit_prompt_column], source)
    return EditSamples(select_samples(split, args.max_train_samples, seed), resolve, args, tokenizer, seed)


def validation_images(pipeline, args, generator):
    from diffusers.utils import load_image
    from PIL import ImageOps

    from ip2p.cli import UserError

    try:
        image = load_image(args.val_image_url)  # a URL or a local path
    except Exception as err:
        raise UserError(f"--val_image_url {args.val_image_url}: cannot load the image ({type(err).__name__})") from None
    image = ImageOps.fit(image.convert("RGB"), (args.resolution, args.resolution))
    return [
        pipeline(args.validation_prompt, image=image, num_inference_steps=20, image_guidance_scale=1.5,
                 guidance_scale=7.0, generator=generator).images[0]
        for _ in range(args.num_validation_images)
    ]


def main(argv=None) -> int:
    args = parse_training_args(build_parser(__doc__), argv)
    from ip2p.training import train

    train(args, single_image_task())
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
