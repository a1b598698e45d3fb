"""Train the 20-frame next-frame predictor: InstructPix2Pix with its UNet
widened to 4 + 4 x N input channels, conditioned on the N observed frames.

Takes the original project's argument list unchanged plus every flag of
train_instruct_pix2pix.py. The frame count comes from the data and is checked
against the UNet. Latents are cached on disk by default (--no_cache_latents
to turn it off). Runs under `accelerate launch`, torchrun, plain python, or
run_video_training.py.
"""

import sys
from pathlib import Path

from ip2p.cli import UserError, run_main
from ip2p.train_args import build_parser, parse_training_args

VIDEO_DEFAULTS = dict(
    original_image_column="input_frames", train_batch_size=2, gradient_accumulation_steps=4, learning_rate=5e-5,
    output_dir="output_video_model", center_crop=True,
)
VIDEO_ARGUMENTS = {"video": [
    ("--custom_unet_path", str, None, "a widened UNet (folder, or pipeline folder with unet/) from make_video_model.py; "
                                      "without it the base UNet is widened at start"),
    ("--cache_latents", "bool", True, "encode each frame with the VAE once and reuse the latents in later epochs and runs"),
    ("--latent_cache_dir", str, "latent_cache", "where cached latents live (keyed by data, resolution and VAE)"),
    ("--random_crop", "store_true", False, "random instead of centre crops (cannot be cached: needs --no_cache_latents)"),
    ("--prediction_target", str, "frame", "frame: denoise the next frame's latent (InstructPix2Pix); residual: denoise "
                                          "its change from the last frame's latent (saved in the model)"),
    ("--residual_scale", float, None, "divisor of the residual target (default: its standard deviation over the training data)"),
]}


def parse_args(argv):
    parser = build_parser(__doc__, defaults=VIDEO_DEFAULTS, groups=VIDEO_ARGUMENTS)
    args = parse_training_args(parser, argv)
    if args.cache_latents and args.random_crop:
        parser.error("--random_crop changes every epoch and cannot be cached; add --no_cache_latents")
    if args.prediction_target not in ("frame", "residual"):
        parser.error("--prediction_target must be frame or residual")
    return args


def video_task(args):
    from ip2p.edit_data import check_columns, load_training_split, select_samples
    from ip2p.training import TrainingTask
    from ip2p.video_data import VideoSamples, frames_per_sample
    from ip2p.video_pipeline import VideoInstructPix2PixPipeline

    split, resolve, source = load_training_split(args)
    check_columns(split, [args.original_image_column, args.edited_image_column, args.edit_prompt_column], source)
    num_frames = frames_per_sample(split, args.original_image_column, source)
    held_out = load_held_out(args)

    def build_dataset(args, tokenizer, seed):
        return VideoSamples(select_samples(split, args.max_train_samples, seed), resolve, args, tokenizer, seed)

    task = TrainingTask(
        name="video-instruct-pix2pix", num_conditioning_frames=num_frames, build_dataset=build_dataset,
        pipeline_class=VideoInstructPix2PixPipeline,
        validation_configured=lambda args: held_out is not None and args.num_validation_images > 0,
        validation_images=lambda pipeline, args, generator: validation_strips(pipeline, args, generator, held_out, resolve),
        load_unet=load_custom_unet if args.custom_unet_path else None,
    )

    def before_training(args, models, accelerator, dataset, weight_dtype):
        if args.cache_latents:
            fill_latent_cache(args, models, accelerator, dataset, weight_dtype)
        if args.prediction_target == "residual" and args.residual_scale is None:
            args.residual_scale = residual_scale(dataset, models.vae, accelerator, weight_dtype)
            accelerator.print(f"residual target scale (std over the training data): {args.residual_scale:.4f}")
        task.pipeline_kwargs.update(prediction_target=args.prediction_target, residual_scale=args.residual_scale or 1.0)

    task.before_training = before_training
    return task


def residual_scale(dataset, vae, accelerator, weight_dtype, max_samples: int = 64) -> float:
    """Standard deviation of (next-frame latent - last-frame latent), so the
    residual target has unit variance like SD's scaled latents. Every process
    computes it from the same first samples, so all agree."""
    import torch

    from ip2p.latents import encode_moments

    changes = []
    for index in range(min(max_samples, len(dataset))):
        moments = dataset.cache.load(dataset.cache_key(index, False)) if dataset.cache else None
        if moments is None:
            pixels = dataset.pixels(index, False)[None].to(accelerator.device, dtype=weight_dtype)
            moments = encode_moments(vae, pixels)[0].cpu()
        mean = moments[:, : moments.shape[1] // 2]  # moments = [mean, log-variance]
        changes.append((mean[-1] - mean[-2]) * vae.config.scaling_factor)
    return max(float(torch.stack(changes).std()), 1e-3)


def load_held_out(args):
    """The processed dataset's test split, for validation strips (None if there is none)."""
    from ip2p.processed import is_processed_dataset, load_processed_dataset

    folder = Path(args.train_data_dir or args.dataset_name)
    if not is_processed_dataset(folder):
        return None
    splits = load_processed_dataset(folder).splits
    return splits["test"] if "test" in splits else None


def load_custom_unet(args):
    from diffusers import UNet2DConditionModel

    path = Path(args.custom_unet_path)
    folder = path / "unet" if (path / "unet" / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise UserError(f"--custom_unet_path {path}: no UNet there (expected config.json); build one with make_video_model.py")
    return UNet2DConditionModel.from_pretrained(str(folder), use_safetensors=True)


def fill_latent_cache(args, models, accelerator, dataset, weight_dtype):
    from ip2p.latent_cache import LatentCache, fill_cache, vae_fingerprint

    crop = "center"
    cache = LatentCache(Path(args.latent_cache_dir), vae_fingerprint(models.vae, args.resolution, crop))
    try:
        requests = dataset.cache_requests(accelerator.process_index, accelerator.num_processes)
        encoded = fill_cache(cache, requests, dataset.pixels, models.vae, accelerator.device, weight_dtype,
                             batch_size=max(1, args.train_batch_size), show_progress=accelerator.is_main_process)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read a training frame while caching latents ({type(err).__name__}: {err}); "
                        "check the data with quick_test.py") from None
    accelerator.wait_for_everyone()
    dataset.cache = cache
    accelerator.print(f"latent cache {cache.folder}: encoded {encoded}, reused {len(requests) - encoded} "
                      f"(of this process's {len(requests)} entries)")


def validation_strips(pipeline, args, generator, held_out, resolve):
    """Last observed frame | prediction | true next frame, for the first held-out samples."""
    from PIL import ImageOps

    from ip2p.edit_data import open_image
    from ip2p.strips import make_strip

    strips = []
    size = (args.resolution, args.resolution)
    output_mode = "composite" if args.prediction_target == "residual" else "frame"
    for row in held_out.select(range(min(args.num_validation_images, len(held_out)))):
        frames = [ImageOps.fit(open_image(p, resolve), size) for p in row[args.original_image_column]]
        prediction = pipeline(row[args.edit_prompt_column], frames, num_inference_steps=20, generator=generator,
                              output_mode=output_mode).images[0]
        truth = open_image(row[args.edited_image_column], resolve)
        strips.append(make_strip([frames[-1], prediction, truth], args.resolution))
    return strips


def main(argv=None) -> int:
    args = parse_args(argv)
    from ip2p.training import train

    train(args, video_task(args))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
