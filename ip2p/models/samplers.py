"""The samplers a trained model runs with, built from its schedule's config:
the one saved with it at training time, and the one ``evaluate.py --sampler``
asks for. Both go through ``make_sampler``, so each sampler is set up once.
Also the sampling flags predict.py and evaluate.py share."""

from ..shared.cli import UserError, at_least

SAMPLERS = ("ddim", "euler_ancestral")
OUTPUT_MODES = ("frame", "composite", "blend")  # the pipeline's (ip2p.models.video_pipeline)


def make_sampler(name: str, config):
    """``"ddim"`` (deterministic) or ``"euler_ancestral"`` (InstructPix2Pix's), from a scheduler ``config``."""
    from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler  # in here: predict.py and evaluate.py --help must not wait for diffusers

    if name == "ddim":
        # Latents are not images: DDIM's default clipping of each step's clean estimate to [-1, 1] would cut every
        # latent (or scaled residual) beyond one unit; Stable Diffusion's own DDIM config turns it off too.
        # Trailing spacing (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed") starts
        # at the last training timestep: with "linspace", a 1-step run would denoise at t=0, from noise the model
        # never saw there, instead of returning the model's estimate from pure noise.
        return DDIMScheduler.from_config(config, clip_sample=False, timestep_spacing="trailing")
    if name != "euler_ancestral":
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {name!r}")
    if config.prediction_type == "sample":
        raise UserError("--sampler euler_ancestral cannot step a model trained with --prediction_type sample; "
                        "use --sampler ddim or the saved sampler")
    return EulerAncestralDiscreteScheduler.from_config(config)


def default_sampler(config):
    """The sampler saved with a trained model: InstructPix2Pix's, or deterministic DDIM for a model that
    predicts the clean sample, which Euler ancestral cannot step."""
    return make_sampler("ddim" if config.prediction_type == "sample" else "euler_ancestral", config)


def use_sampler(pipeline, name: str) -> None:
    """Swap ``pipeline``'s sampler for ``name`` (one of ``SAMPLERS``); ``"saved"`` keeps the model's own."""
    if name != "saved":
        pipeline.scheduler = make_sampler(name, pipeline.scheduler.config)


SAMPLING_FLAGS = ("num_inference_steps", "guidance_scale", "image_guidance_scale", "output_mode", "num_samples_averaged",
                  "correction_threshold", "fallback_margin")


def add_sampling_arguments(parser) -> None:
    """predict.py's and evaluate.py's sampling flags; each one left out takes the value saved with the model."""
    saved = "default: saved with the model"
    parser.add_argument("--num-inference-steps", type=at_least(1), default=None, help=f"denoising steps ({saved})")
    parser.add_argument("--guidance-scale", type=float, default=None, help=f"text guidance scale ({saved})")
    parser.add_argument("--image-guidance-scale", type=float, default=None, help=f"frame guidance scale ({saved})")
    parser.add_argument("--output-mode", choices=OUTPUT_MODES, default=None,
                        help="frame (the decoded prediction); composite (last, or flow-warped, frame + decoded change); "
                             "blend (per pixel, the composite on whichever of the flow-warped frame and the last frame "
                             "moved with the camera the prediction agrees with; flow motion prior only) (default: blend "
                             "for residual models with the flow prior, composite for other residual models, else frame)")
    parser.add_argument("--num-samples-averaged", type=at_least(1), default=None, metavar="K",
                        help="predict the mean of K samples per clip (the expected next frame: higher PSNR, less detail "
                             f"where the future is uncertain; K times the sampling time; {saved})")
    parser.add_argument("--correction-threshold", type=at_least(0.0, float), default=None, metavar="GREY",
                        help="drop predicted pixel changes from the last (or flow-warped) frame below GREY levels of "
                             f"255, shrink larger ones by it ({saved})")
    parser.add_argument("--fallback-margin", type=at_least(0.0, float), default=None, metavar="GREY",
                        help="keep the flow-warped frame wherever the model corrects it by less than GREY levels of "
                             "255 (flow prior only; 0: off; evaluate.py --calibrate-fallback chooses one; "
                             f"{saved})")


def chosen_settings(pipeline, args) -> dict:
    """The pipeline's sampling keywords: ``add_sampling_arguments``' flags, the saved value for each one left
    out; a choice the model cannot take (--output-mode blend without the flow prior) is one clear line."""
    try:
        return pipeline.sampling_settings(**{name: getattr(args, name) for name in SAMPLING_FLAGS})
    except ValueError as err:
        raise UserError(f"{args.model}: {err}") from None
