"""The single-image trainer (``train_instruct_pix2pix.py``): InstructPix2Pix
fine-tuning as the one-frame case of the engine, with the diffusers
example's flags and defaults."""

from PIL import ImageOps

from ..shared.cli import UserError
from .args import build_parser, data_source, parse_training_args


def parse_image_args(argv=None, description: str = __doc__):
    return parse_training_args(build_parser(description), argv)


def image_task(args):
    """(input image, instruction) -> edited image, saved as diffusers' InstructPix2Pix pipeline."""
    from diffusers import StableDiffusionInstructPix2PixPipeline  # in here, as below: train_instruct_pix2pix.py --help must not wait for torch, diffusers and datasets

    from .trainer import TrainingTask

    return TrainingTask(
        name="instruct-pix2pix", script="train_instruct_pix2pix.py", num_conditioning_frames=1, build_dataset=build_edit_dataset,
        pipeline_class=StableDiffusionInstructPix2PixPipeline,
        pipeline_kwargs=dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False),
        validation_images=validation_images if args.val_image_url and args.validation_prompt else None,
    )


def build_edit_dataset(args, tokenizer):
    from ..data.edit_samples import EditSamples  # in here, as below: --help must not wait for torch and datasets
    from ..data.frame_samples import SampleOptions
    from ..data.sources import check_columns, load_training_split, select_samples

    split, resolve, source = load_training_split(data_source(args))
    check_columns(split, [args.original_image_column, args.edited_image_column, args.edit_prompt_column], source)
    options = SampleOptions(resolution=args.resolution, random_crop=not args.center_crop, random_flip=args.random_flip,
                            prompt_column=args.edit_prompt_column)
    return EditSamples(select_samples(split, args.max_train_samples, args.seed), resolve, tokenizer, args.seed, options,
                       source_column=args.original_image_column, target_column=args.edited_image_column)


def validation_images(pipeline, args, generator):
    """``--num_validation_images`` edits of ``--val_image_url`` by ``--validation_prompt``."""
    from diffusers.utils import load_image  # in here: --help must not wait for diffusers


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
