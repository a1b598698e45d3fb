"""A tiny, randomly initialised InstructPix2Pix pipeline, built offline.

Same component layout as ``timbrooks/instruct-pix2pix`` (unet with 8 input
channels, vae that downsamples 8x, CLIP text encoder and tokenizer, scheduler,
``model_index.json``) but about 1M parameters, so tests and CPU-only users
exercise the real loading code without downloading 2.4 GB. Deterministic for a
seed. Its outputs are noise until it is trained.
"""

from pathlib import Path

# The real model's noise schedule (SD 1.5 family).
SD15_SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
TINY_TEXT_WIDTH = 32


def _byte_characters():
    """The 256 printable stand-ins for bytes used by byte-level BPE (GPT-2/CLIP)."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(ord("¡"), ord("¬") + 1)) | set(range(ord("®"), ord("ÿ") + 1))
    characters, extra = [], 0
    for byte in range(256):
        if byte in printable:
            characters.append(chr(byte))
        else:
            characters.append(chr(256 + extra))
            extra += 1
    return characters


def build_tiny_tokenizer():
    """A CLIP tokenizer whose vocabulary is the 256 byte symbols (plus word-end
    forms and CLIP's two special tokens): it tokenises any text, offline."""
    from transformers import CLIPTokenizer  # in here: download_model.py --help must not wait for transformers

    characters = _byte_characters()
    tokens = characters + [c + "</w>" for c in characters] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


# Where the tiny UNet attends (self-attention and cross-attention to the instruction): "all" puts a
# transformer block at the full-resolution level on the way down and up, as well as in the mid block;
# "mid" keeps only the mid block's, at the lowest resolution, which makes a CPU training step at 16x16
# latents about a third cheaper (batch 16, widths 64,128: 3.0 against about 2 steps/s in the video trainer;
# the UNet's forward and backward alone 0.28 against 0.45-0.60 s).
UNET_ATTENTION = {
    "all": (("CrossAttnDownBlock2D", "DownBlock2D"), ("UpBlock2D", "CrossAttnUpBlock2D")),
    "mid": (("DownBlock2D", "DownBlock2D"), ("UpBlock2D", "UpBlock2D")),
}


def build_tiny_pipeline(seed: int = 0, unet_channels=(32, 64), vae_channels=(8, 16, 16, 16), unet_attention="all"):
    """Return a ``StableDiffusionInstructPix2PixPipeline`` with tiny random weights.
    Channel widths are adjustable; the VAE has one block per entry of
    ``vae_channels`` and downsamples ``2 ** (len - 1)`` times (4 entries: 8x, as SD).
    ``unet_attention`` is a key of ``UNET_ATTENTION``."""
    import torch  # in here, with the two below: download_model.py --help must not wait for them
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tiny_tokenizer()
    down_blocks, up_blocks = UNET_ATTENTION[unet_attention]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=8, out_channels=4, layers_per_block=1, block_out_channels=tuple(unet_channels),
        down_block_types=down_blocks, up_block_types=up_blocks,
        cross_attention_dim=TINY_TEXT_WIDTH, attention_head_dim=4, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=tuple(vae_channels), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * len(vae_channels), up_block_types=("UpDecoderBlock2D",) * len(vae_channels),
        norm_num_groups=8, sample_size=256,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TINY_TEXT_WIDTH, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = EulerAncestralDiscreteScheduler(**SD15_SCHEDULE)
    return StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def save_tiny_pipeline(output_dir: Path, seed: int = 0, unet_channels=(32, 64), vae_channels=(8, 16, 16, 16),
                       fit_frames=None, fit_steps: int = 600, fit_crop: int = 32, unet_attention: str = "all") -> None:
    """Build and save; with ``fit_frames`` (a folder) the VAE is first fitted on those frames."""
    pipeline = build_tiny_pipeline(seed, unet_channels, vae_channels, unet_attention)
    if fit_frames is not None:
        from .vae_fit import crop_covers, fit_vae, load_frames  # in here: download_model.py --help must not wait for torch

        frames = load_frames(fit_frames, 4000, seed)
        quality, scaling = fit_vae(pipeline.vae, frames, fit_steps, seed=seed, crop_size=fit_crop)
        seen = "whole frames" if crop_covers(fit_crop, *frames.shape[-2:]) else f"random {fit_crop}-pixel crops"
        print(f"tiny VAE fitted on {fit_frames} for {fit_steps} steps on {seen}: held-out reconstruction {quality:.2f} dB PSNR, "
              f"scaling factor {scaling:.4f}")
    pipeline.save_pretrained(str(output_dir), safe_serialization=True)
