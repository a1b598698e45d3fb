"""The samplers a trained model runs with, built from its schedule's config:
the one saved with it at training time, and the one ``evaluate.py --sampler``
asks for. Both go through ``make_sampler``, so each sampler is set up once."""

from ..shared.cli import UserError

SAMPLERS = ("ddim", "euler_ancestral")


def make_sampler(name: str, config):
    """``"ddim"`` (deterministic) or ``"euler_ancestral"`` (InstructPix2Pix's), from a scheduler ``config``."""
    from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler

    if name == "ddim":
        # Latents are not images: DDIM's default clipping of each step's clean estimate to [-1, 1] would cut every
        # latent (or scaled residual) beyond one unit; Stable Diffusion's own DDIM config turns it off too.
        return DDIMScheduler.from_config(config, clip_sample=False)
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
