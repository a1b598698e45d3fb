"""The 20-frame trainer (``train_video_ip2p.py``): InstructPix2Pix with its
UNet widened to 4 + 4 x N input channels, conditioned on the N observed
frames. Takes every flag of the single-image trainer plus its own; the frame
count comes from the data and is checked against the UNet. Latents are
cached on disk by default (a random crop cannot be cached)."""

from pathlib import Path

from PIL import ImageOps

from ..data.processed import is_processed_dataset, load_processed_dataset
from ..shared.cli import UserError
from ..shared.images import make_strip, open_image
from .args import Arg, build_parser, data_source, parse_training_args

VIDEO_DEFAULTS = dict(
    original_image_column="input_frames", train_batch_size=2, gradient_accumulation_steps=4, learning_rate=5e-5,
    output_dir="output_video_model",
)
VIDEO_ARGUMENTS = {"video": [
    Arg("--custom_unet_path", str, None, "a widened UNet (folder, or pipeline folder with unet/) from make_video_model.py; "
                                         "without it the base UNet is widened at start"),
    Arg("--random_crop", "store_true", False, "random instead of centre crops (cannot be cached: needs --no_cache_latents)"),
    Arg("--prediction_target", str, "frame", "frame: denoise the next frame's latent (InstructPix2Pix); residual: denoise "
                                             "its change from the last frame's latent (saved in the model)",
        choices=("frame", "residual")),
    Arg("--residual_scale", float, None, "divisor of the residual target (default: its standard deviation over the training data)"),
    Arg("--motion_prior", str, "none", "flow: also condition on the last frame warped one step along the optical flow of "
                                       "the last two (an extra input frame); with --prediction_target residual the model "
                                       "learns the correction to it. Saved with the model", choices=("none", "flow")),
    Arg("--validation_inference_steps", int, 20, "denoising steps of the validation strips; saved with the model as the "
                                                 "default of predict.py and evaluate.py, like the three below"),
    Arg("--validation_guidance_scale", float, 7.5, "text guidance scale at validation (saved as the default)"),
    Arg("--validation_image_guidance_scale", float, 1.5, "frame guidance scale at validation (saved as the default)"),
    Arg("--validation_samples_averaged", int, 1, "predict the mean of this many samples at validation: the expected "
                                                 "next frame, higher PSNR, less detail where uncertain (saved as the default)"),
    Arg("--validation_correction_threshold", float, 0.0, "grey levels (of 255): predicted pixel changes from the last "
                                                         "(or flow-warped) frame below this are dropped, larger ones "
                                                         "shrunk by it (a soft threshold; saved as the default)"),
    Arg("--validation_fallback_margin", float, 0.0, "grey levels (of 255): keep the flow-warped frame wherever the model "
                                                    "corrects it by less (--motion_prior flow; 0: off; saved as the "
                                                    "default; evaluate.py --calibrate-fallback chooses one)"),
]}
# Crops are centred unless --random_crop; the single-image --center_crop would be a second switch for the same thing.
NOT_OFFERED = ("--center_crop",)


def parse_video_args(argv=None, description: str = __doc__):
    parser = build_parser(description, defaults=VIDEO_DEFAULTS, groups=VIDEO_ARGUMENTS, leave_out=NOT_OFFERED)
    args = parse_training_args(parser, argv)
    if args.cache_latents and args.random_crop:
        parser.error("--random_crop changes every epoch and cannot be cached; add --no_cache_latents")
    if args.validation_inference_steps < 1 or args.validation_samples_averaged < 1:
        parser.error("--validation_inference_steps and --validation_samples_averaged must be at least 1")
    if args.validation_correction_threshold < 0:
        parser.error("--validation_correction_threshold must be at least 0 (grey levels of 255)")
    if args.validation_fallback_margin < 0:
        parser.error("--validation_fallback_margin must be at least 0 (grey levels of 255)")
    if args.validation_fallback_margin > 0 and args.motion_prior != "flow":
        parser.error("--validation_fallback_margin keeps the flow-warped frame: it needs --motion_prior flow")
    return args


def check_paths(args) -> None:
    """The folders the run needs exist: checked before any process starts, so
    a launcher of several workers reports a typo once instead of once per worker."""
    from ..models.loading import check_model_source  # in here: --help must not wait for torch and diffusers

    for flag, path in (("--train_data_dir", args.train_data_dir), ("--custom_unet_path", args.custom_unet_path)):
        if path is not None and not Path(path).exists():
            raise UserError(f"{flag} {path} does not exist")
    check_model_source(args.pretrained_model_name_or_path)


def video_task(args):
    """Observed frames + instruction -> next frame, saved as ``VideoInstructPix2PixPipeline``."""
    from ..data.frame_samples import SampleOptions  # in here, as below: train_video_ip2p.py --help must not wait for torch, diffusers and datasets
    from ..data.sources import check_columns, load_training_split, select_samples
    from ..data.video_samples import VideoSamples, frames_per_sample
    from ..models.video_pipeline import VideoInstructPix2PixPipeline
    from .objectives import OBJECTIVES
    from .trainer import TrainingTask

    split, resolve, source = load_training_split(data_source(args))
    check_columns(split, [args.original_image_column, args.edited_image_column, args.edit_prompt_column], source)
    held_out = load_held_out(args)

    def build_dataset(args, tokenizer):
        options = SampleOptions(resolution=args.resolution, random_crop=args.random_crop, random_flip=args.random_flip,
                                motion_prior=args.motion_prior, prompt_column=args.edit_prompt_column)
        return VideoSamples(select_samples(split, args.max_train_samples, args.seed), resolve, tokenizer, args.seed, options,
                            frames_column=args.original_image_column, target_column=args.edited_image_column)

    def validation_images(pipeline, args, generator):
        return validation_strips(pipeline, args, generator, held_out, resolve)

    prior_frames = 1 if args.motion_prior == "flow" else 0  # the flow-warped frame, after the observed ones
    return TrainingTask(
        name="video-instruct-pix2pix", script="train_video_ip2p.py",
        num_conditioning_frames=frames_per_sample(split, args.original_image_column, source) + prior_frames,
        build_dataset=build_dataset, pipeline_class=VideoInstructPix2PixPipeline,
        pipeline_kwargs=dict(motion_prior=args.motion_prior, default_inference_steps=args.validation_inference_steps,
                             default_guidance_scale=args.validation_guidance_scale,
                             default_image_guidance_scale=args.validation_image_guidance_scale,
                             default_samples_averaged=args.validation_samples_averaged,
                             default_correction_threshold=args.validation_correction_threshold,
                             default_fallback_margin=args.validation_fallback_margin),
        objective=OBJECTIVES[args.prediction_target].from_args(args),
        validation_images=validation_images if held_out is not None and args.num_validation_images > 0 else None,
        unet_folder=args.custom_unet_path,
    )


def load_held_out(args):
    """The processed dataset's test split, for validation strips (None if there is none)."""
    folder = Path(args.train_data_dir or args.dataset_name)
    if not is_processed_dataset(folder):
        return None
    splits = load_processed_dataset(folder).splits
    return splits["test"] if "test" in splits else None


def validation_strips(pipeline, args, generator, held_out, resolve):
    """Last observed frame | prediction | true next frame, for the first held-out samples."""
    strips = []
    size = (args.resolution, args.resolution)
    for row in held_out.select(range(min(args.num_validation_images, len(held_out)))):
        frames = [ImageOps.fit(open_image(p, resolve), size) for p in row[args.original_image_column]]
        prediction = pipeline(row[args.edit_prompt_column], frames, generator=generator).images[0]  # the saved settings
        truth = open_image(row[args.edited_image_column], resolve)
        strips.append(make_strip([frames[-1], prediction, truth], args.resolution))
    return strips
