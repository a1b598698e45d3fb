"""Pieces the trainers are built from: UNet widening, conditioning dropout,
paired crop/flip."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from ip2p.data.transforms import mirror_instruction, paired_crop_flip
from ip2p.models.widening import unet_in_channels_for, widen_unet_input
from ip2p.shared.cli import UserError
from ip2p.training.conditioning import apply_conditioning_dropout, conditioning_dropout_masks


def tiny_unet(in_channels: int, seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8,
    )
    # Random (not zero-initialised) biases and input weights, so a lost bias shows.
    torch.nn.init.normal_(unet.conv_in.bias)
    return unet.eval()


def run(unet, sample, text):
    with torch.no_grad():
        return unet(sample, torch.tensor([500]), encoder_hidden_states=text).sample


def test_widening_ip2p_to_20_frames_keeps_the_output_given_the_newest_frame():
    base = tiny_unet(8)
    noisy, newest, text = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.randn(1, 5, 16)
    expected = run(base, torch.cat([noisy, newest], 1), text)
    wide = widen_unet_input(tiny_unet(8), 20)
    assert wide.config.in_channels == 84 == unet_in_channels_for(20)
    older = torch.randn(1, 4 * 19, 8, 8)  # whatever the older frames hold, they start with zero weight
    actual = run(wide, torch.cat([noisy, older, newest], 1), text)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert torch.count_nonzero(wide.conv_in.weight[:, 4:80]) == 0


def test_widening_text_to_image_to_8_channels_zero_inits_the_image_channels():
    base = tiny_unet(4)
    noisy, image, text = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.randn(1, 5, 16)
    expected = run(base, noisy, text)
    wide = widen_unet_input(tiny_unet(4), 1)
    assert wide.config.in_channels == 8
    torch.testing.assert_close(run(wide, torch.cat([noisy, image], 1), text), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wide.conv_in.bias, base.conv_in.bias)


def test_right_width_is_kept_and_a_wrong_one_is_a_clear_error():
    unet = tiny_unet(8)
    weight = unet.conv_in.weight.clone()
    assert widen_unet_input(unet, 1) is unet and torch.equal(unet.conv_in.weight, weight)
    with pytest.raises(UserError, match="the UNet has 12 input channels; 20 conditioning frame\\(s\\) need 84"):
        widen_unet_input(tiny_unet(12), 20)


def test_conditioning_dropout_hits_the_paper_fractions():
    p, n = 0.05, 200_000
    drop_text, drop_image = conditioning_dropout_masks(n, p, generator=torch.Generator().manual_seed(0))
    text_only = (drop_text & ~drop_image).float().mean().item()
    image_only = (drop_image & ~drop_text).float().mean().item()
    both = (drop_text & drop_image).float().mean().item()
    for fraction in (text_only, image_only, both):
        assert abs(fraction - p) < 0.003
    assert conditioning_dropout_masks(1000, 0.0)[0].sum() == 0


def test_apply_conditioning_dropout_replaces_text_and_zeroes_all_frames_together():
    text, empty = torch.ones(3, 4, 8), torch.full((1, 4, 8), 7.0)
    frames = torch.ones(3, 80, 2, 2)
    drop_text, drop_image = torch.tensor([True, False, True]), torch.tensor([False, True, True])
    new_text, new_frames = apply_conditioning_dropout(text, empty, frames, drop_text, drop_image)
    assert torch.equal(new_text[0], empty[0]) and torch.equal(new_text[1], text[1]) and torch.equal(new_text[2], empty[0])
    assert new_frames[0].eq(1).all() and new_frames[1].eq(0).all() and new_frames[2].eq(0).all()


def gradient_image(width, height, offset=0):
    x = np.arange(width)[None, :, None].repeat(height, 0).repeat(3, 2)
    return Image.fromarray(((x * 255 // max(1, width - 1) + offset) % 256).astype(np.uint8))


def test_paired_crop_flip_applies_one_crop_and_flip_to_every_image():
    images = [gradient_image(48, 32), gradient_image(48, 32)]
    seen_flip = seen_no_flip = False
    for seed in range(20):
        out, flipped = paired_crop_flip(images, 16, center_crop=False, random_flip=True, rng=random.Random(seed))
        assert out.shape == (2, 3, 16, 16) and out.min() >= -1 and out.max() <= 1
        torch.testing.assert_close(out[0], out[1])  # same crop and flip for both
        increasing = bool(out[0, 0, 0, -1] > out[0, 0, 0, 0])
        assert flipped == (not increasing)
        seen_flip |= not increasing
        seen_no_flip |= increasing
    assert seen_flip and seen_no_flip


def test_random_crop_really_crops_and_center_crop_is_centred():
    image = gradient_image(64, 16)  # short side already 16: only the crop position varies
    lefts = {paired_crop_flip([image], 16, False, False, random.Random(s))[0][0, 0, 0, 0].item() for s in range(10)}
    assert len(lefts) > 1
    centre = paired_crop_flip([image], 16, True, False)[0][0, 0, 0, 0].item()
    expected = np.asarray(image, dtype=np.float32)[0, 24, 0] / 127.5 - 1
    assert centre == pytest.approx(expected, abs=1e-6)


def test_mirror_instruction_swaps_direction_words_only():
    assert mirror_instruction("Moving the red square from left to right") == "Moving the red square from right to left"
    assert mirror_instruction("Pushing it Leftwards, then RIGHT") == "Pushing it Rightwards, then LEFT"
    assert mirror_instruction("dropping a pen onto the table; the leftover brightness") == "dropping a pen onto the table; the leftover brightness"


def test_training_timesteps_start_at_min_train_timestep():
    from diffusers import DDPMScheduler

    from ip2p.training.objectives import draw_timesteps

    scheduler = DDPMScheduler()
    drawn = draw_timesteps(scheduler, 4000, torch.Generator().manual_seed(0), "cpu")
    assert drawn.min() < 100 and drawn.max() == 999  # the whole schedule by default
    high = draw_timesteps(scheduler, 4000, torch.Generator().manual_seed(0), "cpu", minimum=900)
    assert high.min() == 900 and high.max() == 999


def test_the_denoising_target_follows_the_prediction_type():
    from diffusers import DDPMScheduler

    from ip2p.training.objectives import denoising_target

    clean, noise, timesteps = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3), torch.tensor([10, 900])
    targets = {kind: denoising_target(DDPMScheduler(prediction_type=kind), clean, noise, timesteps)
               for kind in ("epsilon", "v_prediction", "sample")}
    assert torch.equal(targets["epsilon"], noise) and torch.equal(targets["sample"], clean)
    # v = sqrt(a) * noise - sqrt(1 - a) * clean: near the noise at low noise levels, near -clean at high ones.
    alphas = DDPMScheduler().alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    assert torch.allclose(targets["v_prediction"], alphas.sqrt() * noise - (1 - alphas).sqrt() * clean, atol=1e-5)
    with pytest.raises(ValueError, match="prediction_type"):
        denoising_target(DDPMScheduler(prediction_type="flow"), clean, noise, timesteps)


def test_a_sample_predicting_model_samples_with_unclipped_ddim():
    from diffusers import DDIMScheduler, DDPMScheduler, EulerAncestralDiscreteScheduler

    from ip2p.models.samplers import use_sampler
    from ip2p.training.saving import inference_pipeline

    class Pipeline:
        def __init__(self, scheduler, **modules):
            self.scheduler = scheduler

        def set_progress_bar_config(self, **kwargs):
            pass

    def saved(prediction_type):
        models = type("Models", (), {"vae": None, "text_encoder": None, "tokenizer": None,
                                     "noise_scheduler": DDPMScheduler(prediction_type=prediction_type)})()
        return inference_pipeline(Pipeline, models, None, {})

    # Euler ancestral, InstructPix2Pix's sampler, cannot step a model that predicts the clean latents.
    assert type(saved("epsilon").scheduler) is EulerAncestralDiscreteScheduler
    pipeline = saved("sample")
    assert type(pipeline.scheduler) is DDIMScheduler and not pipeline.scheduler.config.clip_sample
    # Its steps end at the last training timestep: one step starts from pure noise, not at t=0.
    pipeline.scheduler.set_timesteps(1)
    assert pipeline.scheduler.timesteps.tolist() == [999]
    pipeline.scheduler.set_timesteps(4)
    assert pipeline.scheduler.timesteps.tolist()[0] == 999
    # evaluate.py --sampler ddim: latents (and scaled residuals) beyond one unit are kept, not clipped.
    pipeline = saved("epsilon")
    use_sampler(pipeline, "ddim")
    assert type(pipeline.scheduler) is DDIMScheduler and not pipeline.scheduler.config.clip_sample
    # ... and asking for Euler ancestral on a sample model is one clear line, not a crash mid-sampling.
    with pytest.raises(UserError, match="--sampler ddim"):
        use_sampler(saved("sample"), "euler_ancestral")


def test_throughput_meter_leaves_the_first_step_and_paused_time_out(monkeypatch):
    import ip2p.training.trainer as trainer

    clock = [0.0]
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: clock[0])

    def device_sync():  # a stand-in for the device's queue: 1 s of queued steps still to finish
        clock[0] += 1.0

    meter = trainer.ThroughputMeter(samples_per_step=8, sync=device_sync)
    clock[0] = 30.0  # the first step: compilation
    meter.step()
    for _ in range(4):  # four steps of 0.5 s on the host, a 20 s checkpoint after the second
        clock[0] += 0.5
        meter.step()
        if meter.steps_timed == 2:
            with meter.paused():
                clock[0] += 20.0
    assert meter.first_step_seconds == 30.0
    # The checkpoint is left out; the queued work it waited for is not.
    assert meter.samples_per_second == pytest.approx(4 * 8 / 3.0)
