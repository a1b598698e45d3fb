"""The 20-frame model on the tiny pipeline and generated clips."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import REPO, free_port, hiding_module, logged_losses, run_script, script_env, train_video, write_clip


def test_make_video_model_keeps_the_base_output_given_the_newest_frame(tiny_model, video_model):
    from diffusers import UNet2DConditionModel

    base = UNet2DConditionModel.from_pretrained(str(tiny_model / "unet")).eval()
    wide = UNet2DConditionModel.from_pretrained(str(video_model / "unet")).eval()
    assert wide.config.in_channels == 84
    noisy, frames, text = torch.randn(1, 4, 8, 8), torch.randn(1, 80, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        expected = base(torch.cat([noisy, frames[:, -4:]], 1), 10, encoder_hidden_states=text).sample
        actual = wide(torch.cat([noisy, frames], 1), 10, encoder_hidden_states=text).sample
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert json.loads((video_model / "model_index.json").read_text())["_class_name"] == "VideoInstructPix2PixPipeline"


def test_cached_and_uncached_training_give_the_same_losses(tmp_path, tiny_model, clips):
    common = ["--max_train_steps", 4, "--seed", 0, "--checkpointing_steps", 10]
    done = train_video(tmp_path, tiny_model, clips / "processed", "plain", "--no_cache_latents", *common)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "latent cache" not in done.stdout
    done = train_video(tmp_path, tiny_model, clips / "processed", "cached", *common)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "encoded 3, reused 0" in done.stdout
    assert "prompt cache: 3 unique instructions encoded once" in done.stdout
    done = train_video(tmp_path, tiny_model, clips / "processed", "encoders", "--no_cache_latents", "--prompt_cache_mb", 0, *common)
    assert done.returncode == 0 and "prompt cache" not in done.stdout, done.stderr[-3000:]
    plain, cached = logged_losses(tmp_path / "plain"), logged_losses(tmp_path / "cached")
    assert len(plain) == 4
    torch.testing.assert_close(torch.tensor(cached), torch.tensor(plain), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.tensor(logged_losses(tmp_path / "encoders")), torch.tensor(plain), rtol=1e-4, atol=1e-6)


def test_cache_is_reused_by_later_runs_and_invalidated_by_changes(tmp_path, tiny_model, clips):
    data = tmp_path / "clips"
    shutil.copytree(clips, data, symlinks=True)
    run = lambda *extra: train_video(tmp_path, tiny_model, data / "processed", "out", "--max_train_steps", 1, "--seed", 0,
                                     "--overwrite_output_dir", *extra)
    assert "encoded 3, reused 0" in run().stdout
    assert "encoded 0, reused 3" in run().stdout
    assert "encoded 3, reused 0" in run("--resolution", 16).stdout  # another resolution: other latents
    frame = data / "raw/train/drop_object/video_0/10.jpg"
    Image.open(frame).rotate(90).save(frame)  # the frame changed after caching
    damaged = next((tmp_path / "cache").rglob("*.safetensors"))
    damaged.write_bytes(damaged.read_bytes()[:100])  # as if a write broke off
    done = run()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "encoded 2, reused 1" in done.stdout or "encoded 1, reused 2" in done.stdout
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_vae_is_not_called_after_the_cache_is_filled(tmp_path, tiny_model, clips, monkeypatch):
    from diffusers import AutoencoderKL

    from ip2p.training.trainer import build_trainer
    from ip2p.training.video_task import parse_video_args, video_task

    calls = []
    original = AutoencoderKL.encode
    monkeypatch.setattr(AutoencoderKL, "encode", lambda self, *a, **k: calls.append(a[0].shape[0]) or original(self, *a, **k))
    monkeypatch.chdir(tmp_path)
    args = ["--pretrained_model_name_or_path", str(tiny_model), "--train_data_dir", str(clips / "processed"),
            "--output_dir", "out", "--resolution", "32", "--train_batch_size", "3", "--gradient_accumulation_steps", "1",
            "--num_train_epochs", "3", "--seed", "0", "--latent_cache_dir", "cache", "--num_validation_images", "0",
            "--report_to", "none"]
    args = parse_video_args(args)
    trainer = build_trainer(args, video_task(args))
    filling = list(calls)  # one batch of 3 clips x 21 frames, encoded at most 16 frames (--vae_batch_size) a call
    assert sum(filling) == 3 * 21 and max(filling) == 16
    trainer.run()
    assert calls == filling  # none in 3 epochs of training
    assert json.loads((tmp_path / "out/training_args.json").read_text())["num_train_epochs"] == 3


def test_video_resume_matches_an_uninterrupted_run(tmp_path, tiny_model, clips):
    common = ["--seed", 5, "--checkpointing_steps", 2, "--random_flip", "--use_ema"]
    assert train_video(tmp_path, tiny_model, clips / "processed", "full", "--max_train_steps", 4, *common).returncode == 0
    assert train_video(tmp_path, tiny_model, clips / "processed", "split", "--max_train_steps", 2, *common).returncode == 0
    done = train_video(tmp_path, tiny_model, clips / "processed", "split", "--max_train_steps", 4,
                       "--resume_from_checkpoint", "latest", *common)
    assert done.returncode == 0, done.stderr[-3000:]
    full = load_file(str(tmp_path / "full/unet/diffusion_pytorch_model.safetensors"))
    resumed = load_file(str(tmp_path / "split/unet/diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_trained_model_predicts_through_the_pipeline_and_predict_py(tmp_path, tiny_model, video_model, clips):
    done = train_video(tmp_path, tiny_model, clips / "processed", "out", "--max_train_steps", 2, "--seed", 0,
                       "--custom_unet_path", video_model, "--num_validation_images", 1)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((tmp_path / "out/validation").rglob("*.png"))) >= 1
    strip = Image.open(next((tmp_path / "out/validation").rglob("*.png")))
    assert strip.size == (32 * 3, 32)  # last observed | prediction | truth

    from ip2p.models.video_pipeline import VideoInstructPix2PixPipeline

    pipeline = VideoInstructPix2PixPipeline.from_pretrained(str(tmp_path / "out"))
    frames = [Image.open(clips / f"raw/val/move_object/video_0/{i:02d}.jpg") for i in range(20)]
    image = pipeline("move it", frames, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)
    with pytest.raises(ValueError, match="predicts from 20 observed frames; got 19"):
        pipeline("move it", frames[:19])
    with pytest.raises(ValueError, match="one size"):
        pipeline("move it", frames[:19] + [frames[0].resize((64, 64))])

    # The mean of K samples: K draws per clip reach the sampler, their latents' mean is what gets decoded.
    drawn = []

    def fake_denoise(text, condition, *rest):
        drawn.append(condition.shape[0])
        return torch.arange(condition.shape[0], dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 4, 4, 4) / 10

    pipeline.denoise = fake_denoise
    averaged = pipeline(["move it"] * 2, [frames, frames], guidance_scale=1.0, image_guidance_scale=1.0,
                        num_samples_averaged=3, output_type="np").images
    assert drawn == [6]
    pipeline.denoise = lambda text, condition, *rest: torch.tensor([0.1, 0.4]).view(-1, 1, 1, 1).expand(-1, 4, 4, 4)
    means = pipeline(["move it"] * 2, [frames, frames], guidance_scale=1.0, image_guidance_scale=1.0, output_type="np").images
    np.testing.assert_allclose(averaged, means, atol=1e-5)  # samples 0,1,2 -> 0.1; 3,4,5 -> 0.4
    assert np.abs(means[0] - means[1]).max() > 1e-3  # the two clips' latents differ, so a mix-up would show
    del pipeline.denoise

    # A correction threshold above any change (255 grey levels) keeps the base frame, here the last observed one.
    kept = pipeline("move it", frames, num_inference_steps=2, correction_threshold=255, output_type="np").images[0]
    np.testing.assert_allclose(kept, np.asarray(frames[-1], dtype=np.float32) / 255, atol=1 / 255)
    assert np.abs(np.asarray(image, dtype=np.float32) / 255 - kept).max() > 2 / 255  # the unthresholded one differs

    # Blending with the flow-warped frame needs a model trained with it.
    with pytest.raises(ValueError, match="needs a model trained with --motion_prior flow"):
        pipeline("move it", frames, output_mode="blend")

    # A rollout: each prediction joins the observed window of the next step.
    seen, check = [], pipeline.check_frames
    pipeline.check_frames = lambda clip: (seen.append(list(clip)), check(clip))
    rolled = pipeline.rollout("move it", frames, 3, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert len(rolled) == 3 and len(seen) == 3
    assert seen[0] == frames and seen[1][:19] == frames[1:] and seen[2][:18] == frames[2:]
    assert seen[1][19] is rolled[0] and seen[2][18:] == rolled[:2]

    done = run_script("predict.py", "--model", tmp_path / "out", "--video", clips / "raw/val/move_object/video_0",
                      "--instruction", "move it", "--resolution", 32, "--num-inference-steps", 2, "--output-dir", "pred", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert Image.open(tmp_path / "pred/prediction.png").size == (32, 32)
    assert Image.open(tmp_path / "pred/strip.png").size == (96, 32)  # the clip's 21st frame is the truth
    done = run_script("predict.py", "--model", tmp_path / "out", "--video", clips / "raw/val/move_object/video_0",
                      "--instruction", "move it", "--resolution", 32, "--num-inference-steps", 2, "--num-future-frames", 3,
                      "--output-dir", "rollout", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "rollout").glob("frame_*.png")) == ["frame_21.png", "frame_22.png", "frame_23.png"]
    gif = Image.open(tmp_path / "rollout/rollout.gif")
    assert gif.n_frames == 23  # 20 observed, then 3 predicted
    def red_border(index):
        gif.seek(index)
        red, green, blue = np.asarray(gif.convert("RGB"), dtype=float)[0].mean(axis=0)  # the top row
        return red > 180 and green < 80 and blue < 80

    assert red_border(22) and red_border(20) and not red_border(19)  # the predicted frames are marked
    import av

    with av.open(str(tmp_path / "rollout/rollout.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == 23
    done = run_script("predict.py", "--model", tmp_path / "out", "--dataset", clips / "processed", "--index", 0,
                      "--resolution", 32, "--num-inference-steps", 2, "--output-dir", "pred2", cwd=tmp_path)
    assert done.returncode == 0 and "'move object number 0'" in done.stdout
    done = run_script("predict.py", "--model", tmp_path / "out", "--video", clips / "raw/val/move_object/video_0",
                      "--instruction", "x", "--output-mode", "blend", cwd=tmp_path)
    assert done.returncode != 0 and "--motion_prior flow; use 'composite'" in done.stderr and "Traceback" not in done.stderr
    short = tmp_path / "short_clip"
    write_clip(short, num_frames=5)
    done = run_script("predict.py", "--model", tmp_path / "out", "--video", short, "--instruction", "x", cwd=tmp_path)
    assert done.returncode != 0 and "5 observed frames, but the model needs 20" in done.stderr and "Traceback" not in done.stderr


def test_correction_threshold_drops_small_changes_and_shrinks_large_ones():
    from ip2p.models.video_pipeline import soft_threshold_change

    base = torch.zeros(1, 3, 1, 4)
    # Per pixel (last dim): a change below the threshold everywhere, one above it in one channel,
    # one above it in two channels with opposite signs, and none.
    image = torch.tensor([[[[0.05, 0.5, -0.4, 0.0]], [[0.02, 0.0, 0.2, 0.0]], [[-0.08, 0.0, 0.0, 0.0]]]])
    out = soft_threshold_change(image, base, 0.1)
    # Below 0.1 everywhere: the base's pixel. Largest change 0.5: shrunk to 0.4, same direction.
    torch.testing.assert_close(out[0, :, 0, 0], torch.zeros(3))
    torch.testing.assert_close(out[0, :, 0, 1], torch.tensor([0.4, 0.0, 0.0]))
    # Largest change 0.4 (channel 0) -> 0.3: every channel scaled by 0.75, so the colour of the change is kept.
    torch.testing.assert_close(out[0, :, 0, 2], torch.tensor([-0.3, 0.15, 0.0]))
    torch.testing.assert_close(out[0, :, 0, 3], torch.zeros(3))
    # The change is taken from the base, not from zero; a threshold of 0 changes nothing.
    torch.testing.assert_close(soft_threshold_change(image + 1, base + 1, 0.1), out + 1)
    assert soft_threshold_change(image, base, 0.0) is image


def test_blend_takes_each_pixel_from_the_base_the_prediction_agrees_with():
    from ip2p.models.video_pipeline import blend_composites

    first, second = torch.zeros(1, 3, 4, 6), torch.ones(1, 3, 4, 6)
    # The prediction is near the first base on the left half (small change from it, large from the second)
    # and near the second on the right half.
    first_change, second_change = torch.full_like(first, 0.05), torch.full_like(first, -0.9)
    first_change[..., 3:], second_change[..., 3:] = 0.9, -0.05
    base, out = blend_composites(first, first_change, second, second_change, window=1, softness=0.01)
    torch.testing.assert_close(base[..., :3], first[..., :3])
    torch.testing.assert_close(base[..., 3:], second[..., 3:])
    torch.testing.assert_close(out[..., :3], first[..., :3] + 0.05)  # each composite keeps its own correction
    torch.testing.assert_close(out[..., 3:], second[..., 3:] - 0.05)
    # Equal needs: an even blend of the two composites. A window outvotes one pixel that disagrees with its neighbours.
    base, out = blend_composites(first, first_change.abs(), second, first_change.abs(), window=1, softness=0.01)
    torch.testing.assert_close(base, torch.full_like(first, 0.5))
    second_change[..., 1, 1] = 0.0
    alone, _ = blend_composites(first, first_change, second, second_change, window=1, softness=0.01)
    voted, _ = blend_composites(first, first_change, second, second_change, window=3, softness=0.01)
    assert alone[0, 0, 1, 1] > 0.99 and voted[0, 0, 1, 1] < 0.01


def test_flipped_samples_mirror_their_instruction_and_all_frames(tmp_path, tiny_model, clips):
    from ip2p.data.frame_samples import SampleOptions
    from ip2p.data.processed import load_processed_dataset
    from ip2p.data.video_samples import VideoSamples
    from ip2p.models.text import tokenize
    from ip2p.models.tiny_model import build_tiny_tokenizer

    dataset = load_processed_dataset(clips / "processed")
    split = dataset.splits["train"].map(lambda row: {"edit_prompt": "moving the cup from left to right"})
    tokenizer = build_tiny_tokenizer()
    # Plain values, no argparse Namespace: the data layer does not know the trainer's flags.
    samples = VideoSamples(split, dataset.frame_path, tokenizer, seed=0, options=SampleOptions(resolution=32, random_flip=True))
    flipped_text = tokenize(tokenizer, ["moving the cup from right to left"])[0]
    plain_text = tokenize(tokenizer, ["moving the cup from left to right"])[0]
    outcomes = set()
    for epoch in range(8):
        item = samples[(epoch, 0)]
        was_flipped = torch.equal(item["input_ids"], flipped_text)
        assert was_flipped or torch.equal(item["input_ids"], plain_text)
        pixels = torch.cat([item["condition_pixels"], item["target_pixels"][None]])
        assert torch.equal(pixels, samples.pixels(0, False).flip(-1) if was_flipped else samples.pixels(0, False))
        outcomes.add(was_flipped)
    assert outcomes == {True, False}


def test_bad_video_inputs_end_in_one_clear_line(tmp_path, tiny_model, clips):
    narrow = tmp_path / "video10"
    done = run_script("make_video_model.py", "--base", tiny_model, "--num-frames", 10, "--output-dir", narrow, cwd=tmp_path)
    assert done.returncode == 0
    data = tmp_path / "clips"
    shutil.copytree(clips, data)
    (data / "raw/train/cover_object/video_1/13.jpg").unlink()  # lost after the dataset was built
    cases = [
        (train_video(tmp_path, tiny_model, clips / "processed", "o1", "--max_train_steps", 1, "--custom_unet_path", narrow),
         "the UNet has 44 input channels; 20 conditioning frame(s) need 84"),
        (train_video(tmp_path, tiny_model, data / "processed", "o2", "--max_train_steps", 1),
         "training sample 1 ('cover object number 1'): cannot read an image"),
        (train_video(tmp_path, tiny_model, data / "processed", "o3", "--max_train_steps", 3, "--no_cache_latents", "--seed", 0),
         "training sample 1 ('cover object number 1'): cannot read an image"),
        (train_video(tmp_path, tiny_model, clips / "processed", "o4", "--max_train_steps", 1, "--random_crop"),
         "cannot be cached"),
        (train_video(tmp_path, tiny_model, clips / "processed", "o5", "--max_train_steps", 1, "--min_train_timestep", 1000),
         "--min_train_timestep 1000: the schedule has 1000 timesteps; give a smaller value"),
        (train_video(tmp_path, tiny_model, clips / "processed", "o6", "--max_train_steps", 1, "--validation_fallback_margin", 4),
         "--validation_fallback_margin keeps the flow-warped frame: it needs --motion_prior flow"),
    ]
    for done, message in cases:
        assert done.returncode != 0
        last = done.stderr.strip().splitlines()[-1]
        assert message in last and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert all("train/cover_object/video_1/13.jpg" in done.stderr for done, _ in cases[1:3])


def test_run_video_training_launches_two_cpu_processes(tmp_path, tiny_model, video_model, clips):
    env = script_env(tmp_path, VIDEO_TRAIN_PROCESSES="2", MASTER_PORT=str(free_port()))
    command = [sys.executable, str(REPO / "run_video_training.py"), "--pretrained_model_name_or_path", str(tiny_model),
               "--custom_unet_path", str(video_model), "--train_data_dir", str(clips / "processed"), "--output_dir", "out",
               "--resolution", "32", "--train_batch_size", "1", "--gradient_accumulation_steps", "1", "--max_train_steps", "2",
               "--latent_cache_dir", "cache", "--num_validation_images", "1"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no GPU visible: running 2 CPU process(es)" in done.stdout
    assert ": 2 process(es)" in done.stdout  # both workers joined one run (their weights: the torchrun tests)
    assert (tmp_path / "out/model_index.json").is_file()

    # A missing folder is caught before any worker starts; a worker's error is printed once, without tracebacks.
    missing = [c if c != str(video_model) else str(tmp_path / "nowhere") for c in command]
    done = subprocess.run(missing, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "no GPU visible" not in done.stdout
    assert done.stderr.strip().splitlines() == [f"error: --custom_unet_path {tmp_path / 'nowhere'} does not exist"]
    (tmp_path / "empty_unet").mkdir()
    failing = [c if c != str(video_model) else str(tmp_path / "empty_unet") for c in command] + ["--overwrite_output_dir"]
    done = subprocess.run(failing, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: --custom_unet_path {tmp_path / 'empty_unet'}: no UNet there (expected config.json); "
                      "build one with make_video_model.py", "error: training failed in a worker process (ProcessExitedException)"]


def test_accelerate_launch_runs_the_video_trainer(tmp_path, tiny_model, clips):
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train_video_ip2p.py"),
               "--pretrained_model_name_or_path", str(tiny_model), "--train_data_dir", str(clips / "processed"),
               "--output_dir", "out", "--resolution", "32", "--max_train_steps", "1", "--latent_cache_dir", "cache"]
    done = subprocess.run(command, cwd=tmp_path, env=script_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "out/unet/config.json").read_text())["in_channels"] == 84


def test_training_lowers_the_loss_below_copy_last_on_a_learnable_set(tmp_path, tiny_model):
    """Noise frames, then a next frame of one solid colour: the change from the last frame follows from the
    last frame alone. With the residual objective the target is that change, scaled to about unit variance,
    and an untrained UNet predicts about no change, i.e. copy-last: its first losses (0.84 measured) sit
    near copy-last's. Forty steps must cut them to under 40 % (0.23 measured: 28 %)."""
    raw = tmp_path / "raw"
    entries = []
    for index in range(8):
        video_path = f"train/recolour/video_{index}"
        write_clip(raw / video_path, seed=index)
        Image.new("RGB", (32, 32), (200, 60, 60)).save(raw / video_path / "20.jpg", quality=95)
        entries.append({"video_path": video_path, "instruction": "turning everything red", "task_type": "recolour"})
    (raw / "metadata.json").write_text(json.dumps(entries))
    done = run_script("make_dataset.py", "--data-root", raw, "--output-dir", tmp_path / "processed", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    done = train_video(tmp_path, tiny_model, tmp_path / "processed", "run", "--max_train_steps", 40, "--train_batch_size", 4,
                       "--learning_rate", "1e-3", "--prediction_target", "residual", "--prediction_type", "sample",
                       "--min_train_timestep", 900, "--conditioning_dropout_prob", 0, "--seed", 0)
    assert done.returncode == 0, done.stderr[-3000:]
    losses = logged_losses(tmp_path / "run")
    assert len(losses) == 40
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert first > 0.5 and last < 0.4 * first, (first, last)


def test_motion_prior_trains_from_the_cache_saves_itself_and_needs_no_flag_later(tmp_path, tiny_model, clips):
    common = ["--max_train_steps", 3, "--seed", 0, "--motion_prior", "flow", "--prediction_target", "residual"]
    plain = train_video(tmp_path, tiny_model, clips / "processed", "plain", "--no_cache_latents", *common)
    cached = train_video(tmp_path, tiny_model, clips / "processed", "cached", *common, "--validation_fallback_margin", 4)
    assert plain.returncode == 0 and cached.returncode == 0, plain.stderr[-2000:] + cached.stderr[-2000:]
    assert "encoded 3, reused 0" in cached.stdout
    torch.testing.assert_close(torch.tensor(logged_losses(tmp_path / "cached")), torch.tensor(logged_losses(tmp_path / "plain")),
                               rtol=1e-4, atol=1e-6)
    # The flow-warped frame is a 21st conditioning frame: 4 + 4 x 21 input channels, and the choice is saved.
    assert json.loads((tmp_path / "cached/unet/config.json").read_text())["in_channels"] == 88
    assert json.loads((tmp_path / "cached/model_index.json").read_text())["motion_prior"] == "flow"
    done = run_script("evaluate.py", "--model", tmp_path / "cached", "--data", clips / "processed", "--resolution", 32,
                      "--num-inference-steps", 1, "--output-dir", "eval", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| flow_extrapolation |" in done.stdout
    recorded = json.loads((tmp_path / "eval/metrics.json").read_text())["settings"]
    assert (recorded["output_mode"], recorded["fallback_margin"]) == ("blend", 4.0)  # its defaults, saved at training
    # Calibrating the fallback margin scores each margin against flow on the same clips: at 255 grey levels the
    # output is flow's own frame, so it gains exactly nothing there.
    done = run_script("evaluate.py", "--model", tmp_path / "cached", "--data", clips / "processed", "--resolution", 32,
                      "--num-inference-steps", 1, "--calibrate-fallback", "0,255", "--output-dir", "calibration", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    calibration = json.loads((tmp_path / "calibration/calibration.json").read_text())
    assert calibration["chosen_fallback_margin"] in (0.0, 255.0) and "chosen fallback margin:" in done.stdout
    flat = calibration["gains_over_flow"]["255.0"]["overall"]
    assert abs(flat["psnr"]) < 0.05 and abs(flat["ssim"]) < 1e-3, flat
    assert calibration["gains_over_flow"]["0.0"]["overall"]["psnr"] != flat["psnr"]
    done = run_script("evaluate.py", "--model", tmp_path / "cached", "--data", clips / "processed", "--calibrate-fallback",
                      "4,-1", cwd=tmp_path)
    assert done.returncode == 2 and "margins must be at least 0" in done.stderr and "Traceback" not in done.stderr

    # Composite output starts from the flow-warped frame; blend from the base the prediction agrees with, the
    # flow-warped frame or the last one moved with the camera. A stand-in sampler predicts the latter (the condition
    # holds the frames' latents, the flow-warped one last).
    from ip2p.models.video_pipeline import VideoInstructPix2PixPipeline
    from ip2p.shared.motion import camera_extrapolate, flow_extrapolate

    pipeline = VideoInstructPix2PixPipeline.from_pretrained(str(tmp_path / "cached"))
    scaling, scale = pipeline.vae.config.scaling_factor, pipeline.config.residual_scale
    frames = [Image.open(clips / f"raw/val/move_object/video_0/{i:02d}.jpg") for i in range(20)]
    with torch.no_grad():
        still_latent = pipeline.vae.encode(pipeline.image_processor.preprocess(camera_extrapolate(frames))).latent_dist.mode()
    pipeline.denoise = lambda text, condition, *rest: (still_latent - condition[:, -4:]) * scaling / scale
    still, flow = (np.asarray(image, dtype=np.float32) / 255 for image in (camera_extrapolate(frames), flow_extrapolate(frames)))
    assert np.abs(still - flow).mean() > 0.01  # the object moves, the camera less: the two bases differ
    unguided = dict(guidance_scale=1.0, image_guidance_scale=1.0, fallback_margin=0.0)
    kept = {mode: pipeline("move it", frames, correction_threshold=255, output_mode=mode, output_type="np", **unguided).images[0]
            for mode in ("composite", "blend")}
    np.testing.assert_allclose(kept["composite"], flow, atol=1 / 255)
    assert (kept["blend"] >= np.minimum(still, flow) - 1 / 255).all() and (kept["blend"] <= np.maximum(still, flow) + 1 / 255).all()
    assert np.abs(kept["blend"] - still).mean() < 0.25 * np.abs(still - flow).mean()  # mostly the still base, as predicted
    # A fallback margin keeps flow's frame where the model corrects it by less: above every correction, flow's
    # frame everywhere; 0 changes nothing. Both from one sampling pass.
    settings = pipeline.sampling_settings(output_mode="blend", correction_threshold=0.0, **unguided)
    free, cautious = pipeline.predict_variants("move it", frames, [0.0, 255.0], output_type="np", settings=settings)
    np.testing.assert_allclose(free[0], pipeline("move it", frames, output_mode="blend", correction_threshold=0.0,
                                                 output_type="np", **unguided).images[0], atol=1e-6)
    np.testing.assert_allclose(cautious[0], flow, atol=1 / 255)
    assert np.abs(free[0] - flow).mean() > 0.5 * np.abs(still - flow).mean()
    with pytest.raises(ValueError, match="needs a model trained with --motion_prior flow and output mode blend or composite"):
        pipeline("move it", frames, output_mode="frame", fallback_margin=4.0)
    # A rollout of several frames keeps the flow-warped base (a blended frame fed back slows the motion).
    rolled = pipeline.rollout("move it", frames, 2, correction_threshold=255, **unguided)
    np.testing.assert_allclose(np.asarray(rolled[0], dtype=np.float32) / 255, flow, atol=1 / 255)


def test_rollout_without_pyav_stops_before_loading_the_model(tmp_path):
    """PyAV hidden from the import system (as on a machine without it): the rollout's MP4 could not be written,
    so predict.py says so in one line before any work (the model folder does not even exist), and writes nothing."""
    output = tmp_path / "rollout"
    done = run_script("predict.py", "--model", tmp_path / "no_model_here", "--video", tmp_path / "no_clip",
                      "--instruction", "x", "--num-future-frames", 3, "--output-dir", output, cwd=tmp_path,
                      env=script_env(tmp_path, PYTHONPATH=hiding_module(tmp_path, "av")))
    err = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(err) == 1 and "pip install av" in err[0], done.stderr
    assert not output.exists()
