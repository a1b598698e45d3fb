"""Next-frame prediction: InstructPix2Pix conditioned on N observed frames.

``VideoInstructPix2PixPipeline.from_pretrained(folder)`` loads a trained
output folder; called with an instruction and the N observed frames (oldest
first) it returns the predicted next frame, in four steps:

1. ``check_inputs``: counts, sizes and settings (saved defaults fill the gaps);
2. ``encode_condition``: the frames' latents, plus, with ``motion_prior="flow"``,
   the last frame warped one step along the flow of the last two;
3. ``sample``: denoising with InstructPix2Pix's two-way guidance (text scale,
   frame scale); a ``residual`` model's change is added to the base's latent;
4. ``compose`` per ``output_mode``: ``frame`` (the decoded latent),
   ``composite`` (base frame + decoded change, so unchanged pixels keep their
   values) or ``blend`` (per pixel, the composite on the flow-warped frame or on
   the last frame moved with the camera, whichever the prediction agrees
   with); then ``soft_threshold_change`` drops changes under
   ``correction_threshold`` grey levels, and with a ``fallback_margin``
   (flow prior only) ``fall_back_to_flow`` keeps the flow-warped frame
   wherever the model's correction to it is under that many grey levels:
   where the model cannot tell that flow is wrong, the output is flow's.
Why each step, with measurements: docs/training.md, docs/learning.md.
"""

import json
from pathlib import Path
from typing import List, NamedTuple, Optional, Union

import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor

from ..shared.motion import camera_flow, last_and_flow, warp_along
from .files import require_pipeline_folder
from .latents import encode_moments, latent_modes
from .samplers import OUTPUT_MODES
from .text import encode_prompts
from .widening import LATENT_CHANNELS

BLEND_SOFTNESS = 6.0  # grey levels of 255: output_mode "blend" weighs its two bases by a sigmoid over this scale


class Condition(NamedTuple):
    """A batch's conditioning: ``pixels`` ``(B, F, 3, H, W)`` (observed frames, then the flow-warped one with the
    motion prior), their latent ``modes`` ``(B, F, C, h, w)``, and blend's second bases (PIL images) or None."""
    pixels: torch.Tensor
    modes: torch.Tensor
    stills: Optional[list]


class VideoInstructPix2PixPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler, prediction_target: str = "frame",
                 residual_scale: float = 1.0, motion_prior: str = "none", default_inference_steps: int = 20,
                 default_guidance_scale: float = 7.5, default_image_guidance_scale: float = 1.5,
                 default_samples_averaged: int = 1, default_correction_threshold: float = 0.0,
                 default_fallback_margin: float = 0.0):
        super().__init__()
        if prediction_target not in ("frame", "residual"):
            raise ValueError(f"prediction_target must be 'frame' or 'residual', got {prediction_target!r}")
        if motion_prior not in ("none", "flow"):
            raise ValueError(f"motion_prior must be 'none' or 'flow', got {motion_prior!r}")
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        # The sampling settings the model was validated with at training time: every call's defaults.
        self.register_to_config(prediction_target=prediction_target, residual_scale=float(residual_scale),
                                motion_prior=motion_prior, default_inference_steps=int(default_inference_steps),
                                default_guidance_scale=float(default_guidance_scale),
                                default_image_guidance_scale=float(default_image_guidance_scale),
                                default_samples_averaged=int(default_samples_averaged),
                                default_correction_threshold=float(default_correction_threshold),
                                default_fallback_margin=float(default_fallback_margin))
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    @property
    def num_frames(self) -> int:
        """Observed frames the UNet was built for (4 noisy + 4 per conditioning frame input channels; the motion prior's frame is not observed)."""
        prior_frames = 1 if self.config.motion_prior == "flow" else 0
        return (self.unet.config.in_channels - LATENT_CHANNELS) // LATENT_CHANNELS - prior_frames

    def check_frames(self, frames: List[PIL.Image.Image]) -> None:
        if len(frames) != self.num_frames:
            raise ValueError(f"this model predicts from {self.num_frames} observed frames; got {len(frames)}")
        sizes = {frame.size for frame in frames}
        if len(sizes) > 1:
            raise ValueError(f"all frames must have one size; got {sorted(sizes)}")
        width, height = frames[0].size
        if width < self.vae_scale_factor or height < self.vae_scale_factor:
            raise ValueError(f"frames of {width}x{height} are smaller than the VAE's {self.vae_scale_factor}x downsampling")

    @property
    def default_output_mode(self) -> str:
        """For a model that predicts the change: blend with the flow prior, composite without; else the decoded frame."""
        if self.config.prediction_target != "residual":
            return "frame"
        return "blend" if self.config.motion_prior == "flow" else "composite"

    def sampling_settings(self, **given) -> dict:
        """The call's sampling keywords: those ``given`` (not None), else the saved defaults; an output mode
        this model cannot use is a ValueError."""
        config = self.config
        saved = dict(num_inference_steps=config.default_inference_steps, guidance_scale=config.default_guidance_scale,
                     image_guidance_scale=config.default_image_guidance_scale,
                     num_samples_averaged=config.default_samples_averaged, output_mode=self.default_output_mode,
                     correction_threshold=config.default_correction_threshold,
                     fallback_margin=config.default_fallback_margin)
        unknown = set(given) - set(saved)
        if unknown:
            raise TypeError(f"unknown sampling setting(s): {sorted(unknown)}")
        settings = {key: given[key] if given.get(key) is not None else value for key, value in saved.items()}
        if settings["output_mode"] not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {settings['output_mode']!r}")
        if settings["fallback_margin"] > 0 and (config.motion_prior != "flow" or settings["output_mode"] == "frame"):
            raise ValueError("a fallback margin keeps the flow-warped frame where the model's correction to it is "
                             "small: it needs a model trained with --motion_prior flow and output mode blend or "
                             "composite")
        if settings["output_mode"] == "blend" and config.motion_prior != "flow":
            raise ValueError("output mode 'blend' chooses between the flow-warped and the last frame: it needs a model "
                             "trained with --motion_prior flow; use 'composite'")
        return settings

    def rollout_settings(self, num_future_frames: int, settings: dict) -> dict:
        """The keywords a rollout of ``num_future_frames`` calls with: ``settings``, except that a rollout of more
        than one frame composites where blend was asked for (given, or the model's default). A blended frame
        stops motion where it takes the last frame; fed back, the next step's flow sees less motion, and the loss
        compounds (docs/learning.md, "On the harder set": 0.3 dB at t+4 even with only the first step blended, 1 dB with
        every step), so a rollout keeps the flow-warped base."""
        if num_future_frames > 1 and (settings.get("output_mode") or self.default_output_mode) == "blend":
            return dict(settings, output_mode="composite")
        return settings

    def rollout(self, prompt: Union[str, List[str]], frames, num_future_frames: int,
                generator: Optional[torch.Generator] = None, **settings):
        """Predict ``num_future_frames`` frames, each prediction joining the
        observed window for the next (a rollout of more than one frame
        composites instead of blending: ``rollout_settings``). One clip: the list of predicted frames;
        a batch (lists of prompts and clips): a list per step of one frame per clip."""
        if num_future_frames < 1:
            raise ValueError(f"num_future_frames must be at least 1, got {num_future_frames}")
        single = isinstance(prompt, str)
        prompts, windows = ([prompt], [list(frames)]) if single else (list(prompt), [list(clip) for clip in frames])
        settings = self.rollout_settings(num_future_frames, settings)
        steps = []
        for _ in range(num_future_frames):
            predicted = self(prompts, [window[-self.num_frames:] for window in windows], generator=generator, **settings).images
            for window, frame in zip(windows, predicted):
                window.append(frame)
            steps.append(predicted)
        return [step[0] for step in steps] if single else steps

    @torch.no_grad()
    def __call__(self, prompt: Union[str, List[str]], frames: Union[List[PIL.Image.Image], List[List[PIL.Image.Image]]],
                 num_inference_steps: Optional[int] = None, guidance_scale: Optional[float] = None,
                 image_guidance_scale: Optional[float] = None, generator: Optional[torch.Generator] = None,
                 output_type: str = "pil", output_mode: Optional[str] = None, num_samples_averaged: Optional[int] = None,
                 correction_threshold: Optional[float] = None, fallback_margin: Optional[float] = None,
                 return_dict: bool = True) -> Union[ImagePipelineOutput, tuple]:
        """One clip (an instruction and its frames) or a batch (lists of both).
        Settings left at None take the defaults saved with the model
        (``sampling_settings``; output_mode: ``default_output_mode``).
        ``num_samples_averaged`` > 1 draws that many samples per clip and
        returns the mean of their latents: an estimate of the expected next
        frame, which scores higher on PSNR (a squared error) than any one
        sample, at the cost of detail where the future is uncertain."""
        settings = self.sampling_settings(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                                          image_guidance_scale=image_guidance_scale, output_mode=output_mode,
                                          num_samples_averaged=num_samples_averaged, correction_threshold=correction_threshold,
                                          fallback_margin=fallback_margin)
        images = self.predict_variants(prompt, frames, [settings["fallback_margin"]], generator, output_type,
                                       settings)[0]
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def predict_variants(self, prompt, frames, fallback_margins: List[float], generator=None, output_type: str = "pil",
                         settings: Optional[dict] = None) -> list:
        """One prediction per fallback margin, from one sampling pass (the margin acts only after sampling):
        what choosing a margin scores (``ip2p.evaluation.calibration``). ``settings``: ``sampling_settings``'s."""
        settings = settings or self.sampling_settings()
        prompts, clips = self.check_inputs(prompt, frames, settings)
        condition = self.encode_condition(clips, settings["output_mode"])
        latents = self.sample(prompts, condition, settings, generator)
        image, base, correction = self.compose(latents, condition, settings["output_mode"])
        # The change is measured on the image as it will be shown: a decoded value beyond [-1, 1] would
        # otherwise count as a change larger than any threshold (255 grey levels = 2 units here).
        image = soft_threshold_change(image.clamp(-1, 1), base, settings["correction_threshold"] * 2 / 255)
        variants = []
        for margin in fallback_margins:
            if margin < 0:
                raise ValueError(f"fallback_margin must be at least 0, got {margin}")
            if margin > 0 and correction is None:
                raise ValueError("a fallback margin needs the flow prior's base (output mode blend or composite)")
            final = image if margin <= 0 else fall_back_to_flow(image, condition.pixels[:, -1], correction, margin * 2 / 255,
                                                                BLEND_SOFTNESS * 2 / 255)
            variants.append(self.image_processor.postprocess(final, output_type=output_type))
        self.maybe_free_model_hooks()
        return variants

    def check_inputs(self, prompt, frames, settings: dict):
        """(prompts, clips) as lists of one entry per clip; a wrong count, size or setting is a ValueError."""
        prompts, clips = ([prompt], [frames]) if isinstance(prompt, str) else (list(prompt), list(frames))
        if len(prompts) != len(clips):
            raise ValueError(f"got {len(prompts)} instructions for {len(clips)} clips")
        if settings["num_samples_averaged"] < 1:
            raise ValueError(f"num_samples_averaged must be at least 1, got {settings['num_samples_averaged']}")
        if settings["correction_threshold"] < 0:
            raise ValueError(f"correction_threshold must be at least 0, got {settings['correction_threshold']}")
        for clip in clips:
            self.check_frames(clip)
        if len({clip[0].size for clip in clips}) > 1:
            raise ValueError("all clips of a batch must have one frame size")
        return prompts, clips

    def encode_condition(self, clips, output_mode: str) -> Condition:
        """The clips' frames as pixels and latent modes, the motion prior's flow-warped frame appended when the
        model has it; blend's second base (the last frame moved with the camera) from the same flow field."""
        stills = None
        if self.config.motion_prior == "flow":
            motions = [last_and_flow(clip) for clip in clips]
            clips = [list(clip) + [warp_along(last, flow)] for clip, (last, flow) in zip(clips, motions)]
            if output_mode == "blend":
                stills = [warp_along(last, camera_flow(flow)) for last, flow in motions]
        pixels = torch.stack([self.image_processor.preprocess(clip) for clip in clips])
        pixels = pixels.to(self._execution_device, dtype=self.vae.dtype)
        modes = latent_modes(encode_moments(self.vae, pixels)).to(self.vae.dtype)  # in bounded chunks, as in training
        return Condition(pixels, modes, stills)

    def sample(self, prompts: List[str], condition: Condition, settings: dict, generator) -> torch.Tensor:
        """The predicted next frame's (scaled) latents: the mean of ``num_samples_averaged`` samples per clip, each
        with two-way guidance when a scale is above 1; a residual model's change is added to the base's latent."""
        device, batch, samples = self._execution_device, len(prompts), settings["num_samples_averaged"]
        guidance_scale, image_guidance_scale = settings["guidance_scale"], settings["image_guidance_scale"]
        text = encode_prompts(self.tokenizer, self.text_encoder, prompts, device).repeat_interleave(samples, dim=0)
        empty = encode_prompts(self.tokenizer, self.text_encoder, [""] * batch, device).repeat_interleave(samples, dim=0)
        frames = condition.modes.flatten(1, 2).repeat_interleave(samples, dim=0)
        guided = guidance_scale > 1.0 or image_guidance_scale > 1.0
        if guided:  # batch order: (text, frames), (no text, frames), (no text, no frames)
            text = torch.cat([text, empty, empty])
            frames = torch.cat([frames, frames, torch.zeros_like(frames)])
        latents = self.denoise(text, frames, settings["num_inference_steps"], guidance_scale, image_guidance_scale,
                               guided, generator)
        latents = latents.unflatten(0, (batch, samples)).mean(dim=1)
        if self.config.prediction_target == "residual":
            latents = self.base_latent(condition) + self.config.residual_scale * latents
        return latents

    def base_latent(self, condition: Condition) -> torch.Tensor:
        """The last conditioning frame's scaled latent (the flow-warped one with the motion prior)."""
        return condition.modes[:, -1] * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample

    def compose(self, latents: torch.Tensor, condition: Condition, output_mode: str):
        """(image, base, correction) in [-1, 1] units: the decoded prediction (``frame``); the base frame plus
        the decoded change (``composite``); or the two composites blended per pixel (``blend``). ``correction``
        is the size of the decoded change from the base over each pixel's neighbourhood (``change_size``) where
        the base is the flow-warped frame (composite and blend with the flow prior), else None."""
        image, base = self.decode(latents), condition.pixels[:, -1]
        window = 2 * self.vae_scale_factor - 1
        if output_mode == "frame":
            return image, base, None
        decoded_base = self.decode(self.base_latent(condition))
        change = image - decoded_base
        correction = change_size(change, window) if self.config.motion_prior == "flow" else None
        if output_mode == "composite":  # summed in the order it always was, so earlier results repeat to the bit
            return base + image - decoded_base, base, correction
        # blend: base is the flow-warped frame; the other one is the last frame moved with the camera
        still = self.image_processor.preprocess(condition.stills).to(self._execution_device, dtype=self.vae.dtype)
        still_latent = latent_modes(encode_moments(self.vae, still[:, None])[:, 0]).to(self.vae.dtype)
        still_latent = still_latent * self.vae.config.scaling_factor
        base, image = blend_composites(base, change, still, image - self.decode(still_latent), window=window,
                                       softness=BLEND_SOFTNESS * 2 / 255)
        return image, base, correction

    def denoise(self, text, condition, num_inference_steps, guidance_scale, image_guidance_scale, guided, generator):
        """Run the sampler from noise; returns the final (scaled) latents."""
        device = condition.device
        batch = condition.shape[0] // (3 if guided else 1)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        shape = (batch, LATENT_CHANNELS, *condition.shape[2:])
        latents = randn_tensor(shape, generator=generator, device=device, dtype=text.dtype) * self.scheduler.init_noise_sigma
        for timestep in self.progress_bar(self.scheduler.timesteps):
            model_input = torch.cat([latents] * 3) if guided else latents
            model_input = self.scheduler.scale_model_input(model_input, timestep)
            noise = self.unet(torch.cat([model_input, condition.to(model_input.dtype)], dim=1), timestep,
                              encoder_hidden_states=text).sample
            if guided:
                with_text, frames_only, neither = noise.chunk(3)
                noise = neither + image_guidance_scale * (frames_only - neither) + guidance_scale * (with_text - frames_only)
            latents = self.scheduler.step(noise, timestep, latents, generator=generator).prev_sample
        return latents


def blend_composites(first: torch.Tensor, first_change: torch.Tensor, second: torch.Tensor, second_change: torch.Tensor,
                     window: int, softness: float):
    """(base, composite): two candidate composites, ``first + first_change``
    and ``second + second_change`` (images ``(B, 3, H, W)`` in [-1, 1] units),
    blended per pixel by a weight on the first of
    ``sigmoid((size(second_change) - size(first_change)) / softness)``, where a
    change's size is its largest over the channels averaged over a ``window``
    x ``window`` neighbourhood (odd): the base that needs the smaller
    correction there wins. ``base`` is the same blend of the two bases."""
    weight = torch.sigmoid((change_size(second_change, window) - change_size(first_change, window)) / softness)
    base = weight * first + (1 - weight) * second
    return base, base + weight * first_change + (1 - weight) * second_change


def change_size(change: torch.Tensor, window: int) -> torch.Tensor:
    """Each pixel's largest change over the channels, averaged over a ``window`` x ``window`` neighbourhood."""
    largest = change.abs().amax(dim=1, keepdim=True)
    return F.avg_pool2d(largest, window, stride=1, padding=window // 2, count_include_pad=False)


def fall_back_to_flow(image: torch.Tensor, flow: torch.Tensor, correction: torch.Tensor, margin: float,
                      softness: float) -> torch.Tensor:
    """``image`` where the model's ``correction`` to the flow-warped frame (``change_size``) clearly exceeds
    ``margin``, ``flow`` where it is clearly under it, a sigmoid over ``softness`` between (all in [-1, 1]
    units): where the model cannot tell that flow is wrong, the output is flow's."""
    trust = torch.sigmoid((correction - margin) / softness)
    return flow + trust * (image - flow)


def soft_threshold_change(image: torch.Tensor, base: torch.Tensor, threshold: float) -> torch.Tensor:
    """``base`` plus the change ``image - base`` with each pixel's change shrunk
    by ``threshold`` (images and threshold in [-1, 1] units, channels on dim 1):
    a pixel's size is its largest change over the channels; below the
    threshold it keeps ``base``, above it the change keeps its direction and
    loses ``threshold`` of its size. A threshold of 0 returns ``image``."""
    if threshold <= 0:
        return image
    change = image - base
    size = change.abs().amax(dim=1, keepdim=True)
    return base + change * (size - threshold).clamp(min=0) / size.clamp(min=1e-8)


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def inference_device_and_dtype(precision: str = "auto"):
    """(device, dtype): the GPU when there is one, in bf16 (fp16 on GPUs
    without it) unless ``precision`` names one; the CPU in fp32."""
    if not torch.cuda.is_available():
        return "cpu", DTYPES["fp32" if precision == "auto" else precision]
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "cuda", DTYPES[precision]


def model_resolution(model_dir: Path) -> int:
    """The resolution a model was trained at (its training_args.json), else 256."""
    args_file = Path(model_dir) / "training_args.json"
    return json.loads(args_file.read_text())["resolution"] if args_file.is_file() else 256


def load_video_pipeline(folder: Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> VideoInstructPix2PixPipeline:
    """A trained output folder as a pipeline on ``device``; a folder that is not one is one clear line."""
    require_pipeline_folder(folder, "train one with train_video_ip2p.py", kind="trained pipeline")
    pipeline = VideoInstructPix2PixPipeline.from_pretrained(str(folder), use_safetensors=True, dtype=dtype).to(device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
