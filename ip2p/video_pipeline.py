"""Next-frame prediction: InstructPix2Pix conditioned on N observed frames.

``VideoInstructPix2PixPipeline.from_pretrained(folder)`` loads a trained
output folder; calling it with an instruction and the N observed frames
(oldest first) returns the predicted next frame. Guidance is InstructPix2Pix's
two-way classifier-free guidance (Brooks et al. 2023, eq. 3):

    e = e(z, 0, 0) + s_I * (e(z, frames, 0) - e(z, 0, 0)) + s_T * (e(z, frames, text) - e(z, frames, 0))

with s_T = ``guidance_scale`` and s_I = ``image_guidance_scale``; it works
because training dropped the text, the frames, or both.
"""

from typing import List, Optional, Union

import PIL.Image
import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor

from .models import LATENT_CHANNELS


class VideoInstructPix2PixPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler):
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    @property
    def num_frames(self) -> int:
        """Observed frames the UNet was built for (4 noisy + 4 per frame input channels)."""
        return (self.unet.config.in_channels - LATENT_CHANNELS) // LATENT_CHANNELS

    def check_frames(self, frames: List[PIL.Image.Image]) -> None:
        if len(frames) != self.num_frames:
            raise ValueError(f"this model predicts from {self.num_frames} observed frames; got {len(frames)}")
        sizes = {frame.size for frame in frames}
        if len(sizes) > 1:
            raise ValueError(f"all frames must have one size; got {sorted(sizes)}")
        width, height = frames[0].size
        if width < self.vae_scale_factor or height < self.vae_scale_factor:
            raise ValueError(f"frames of {width}x{height} are smaller than the VAE's {self.vae_scale_factor}x downsampling")

    @torch.no_grad()
    def encode_prompt(self, prompt: str, device) -> torch.Tensor:
        """Embeddings of ``[prompt, ""]``: the instruction and the dropped text."""
        tokens = self.tokenizer([prompt, ""], max_length=self.tokenizer.model_max_length, padding="max_length",
                                truncation=True, return_tensors="pt").input_ids
        return self.text_encoder(tokens.to(device))[0]

    @torch.no_grad()
    def encode_frames(self, frames: List[PIL.Image.Image], device) -> torch.Tensor:
        """Conditioning latents ``(1, 4 * N, h, w)``: VAE mode, unscaled, oldest first."""
        pixels = self.image_processor.preprocess(frames).to(device, dtype=self.vae.dtype)
        latents = self.vae.encode(pixels).latent_dist.mode()
        return latents.reshape(1, -1, *latents.shape[2:])

    @torch.no_grad()
    def __call__(self, prompt: str, frames: List[PIL.Image.Image], num_inference_steps: int = 20,
                 guidance_scale: float = 7.5, image_guidance_scale: float = 1.5,
                 generator: Optional[torch.Generator] = None, output_type: str = "pil",
                 return_dict: bool = True) -> Union[ImagePipelineOutput, tuple]:
        self.check_frames(frames)
        device = self._execution_device
        condition = self.encode_frames(frames, device)
        text, empty = self.encode_prompt(prompt, device).chunk(2)
        guided = guidance_scale > 1.0 or image_guidance_scale > 1.0
        if guided:  # batch order: (text, frames), (no text, frames), (no text, no frames)
            text = torch.cat([text, empty, empty])
            condition = torch.cat([condition, condition, torch.zeros_like(condition)])
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        shape = (1, LATENT_CHANNELS, *condition.shape[2:])
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
        image = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        images = self.image_processor.postprocess(image, output_type=output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)
