"""Metrics, synthetic clips, evaluate.py, the residual objective and VAE fitting."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_script, write_clip, write_metadata
from ip2p.shared.metrics import PSNR_CAP_DB, image_metrics, psnr, ssim


def test_metrics_against_known_values():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.uniform(0.2, 0.8, (2, 3, 32, 32)).astype(np.float32))
    assert psnr(image, image).tolist() == [PSNR_CAP_DB, PSNR_CAP_DB]
    torch.testing.assert_close(ssim(image, image), torch.ones(2))
    offset = psnr(image + 0.1, image)  # MSE 0.01 -> exactly 20 dB
    torch.testing.assert_close(offset, torch.full((2,), 20.0), rtol=1e-4, atol=1e-4)
    shifted = torch.roll(image, shifts=2, dims=3)
    assert (ssim(shifted, image) < 0.5).all() and (psnr(shifted, image) < 20).all()
    half = image_metrics([Image.new("RGB", (8, 8), (0, 0, 0))], [Image.new("RGB", (8, 8), (255, 255, 255))])
    assert half["psnr"] == [0.0]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    done = run_script("create_mini_data.py", "--synthetic", "--output-dir", "raw", "--videos-per-task", 2,
                      "--val-videos-per-task", 1, "--seed", 3, "--workers", 2, cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def test_synthetic_clips_move_between_frame_20_and_21_and_match_their_text(synthetic, tmp_path):
    metadata = json.loads((synthetic / "raw/metadata.json").read_text())
    assert sorted({e["task_type"] for e in metadata}) == ["cover_object", "drop_object", "move_object"]
    assert sum(e["video_path"].startswith("val/") for e in metadata) == 3
    for entry in metadata:
        folder = synthetic / "raw" / entry["video_path"]
        assert len(list(folder.glob("*.png"))) == 21
        last, target = (np.asarray(Image.open(folder / f"{i}.png"), dtype=np.float32) for i in (19, 20))
        assert np.abs(last - target).max() > 40, f"{entry['video_path']} does not move at the end"
        verb = {"move_object": "Moving", "drop_object": "Dropping", "cover_object": "Covering"}[entry["task_type"]]
        assert entry["instruction"].startswith(verb)
    again = run_script("create_mini_data.py", "--synthetic", "--output-dir", tmp_path / "again", "--videos-per-task", 2,
                       "--val-videos-per-task", 1, "--seed", 3, "--workers", 1, cwd=tmp_path)
    assert again.returncode == 0
    assert tree_bytes(tmp_path / "again") == tree_bytes(synthetic / "raw")  # the same files from 1 worker as from 2


def tree_bytes(root: Path) -> dict:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_hard_synthetic_clips_are_jpeg_with_a_drifting_camera_that_flow_follows(tmp_path):
    from ip2p.shared.motion import flow_extrapolate

    done = run_script("create_mini_data.py", "--synthetic", "--hard", "--output-dir", "raw", "--videos-per-task", 1,
                      "--val-videos-per-task", 1, "--seed", 5, "--workers", 2, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metadata = json.loads((tmp_path / "raw/metadata.json").read_text())
    assert len(metadata) == 6 and sorted({e["task_type"] for e in metadata}) == ["cover_object", "drop_object", "move_object"]
    for entry in metadata:
        folder = tmp_path / "raw" / entry["video_path"]
        assert sorted(p.name for p in folder.iterdir()) == [f"{i:02d}.jpg" for i in range(21)]
        frames = [np.asarray(Image.open(folder / f"{i:02d}.jpg"), dtype=np.float32) for i in range(21)]
        # The camera drifts: the whole view changes over the clip, in the corners too, not only where the object is.
        corners = [f[:12, :12] for f in (frames[0], frames[20])] + [f[-12:, -12:] for f in (frames[0], frames[20])]
        assert np.abs(corners[0] - corners[1]).mean() > 3 or np.abs(corners[2] - corners[3]).mean() > 3, entry["video_path"]
        # Textured: far more than flat colour in the first frame's gradients.
        assert np.abs(np.diff(frames[0], axis=1)).mean() > 2, entry["video_path"]
        if entry["task_type"] == "move_object":  # constant velocity: flow extrapolation beats repeating the last frame
            observed = [Image.open(folder / f"{i:02d}.jpg").convert("RGB") for i in (18, 19)]
            flow = np.asarray(flow_extrapolate(observed), dtype=np.float32)
            assert np.abs(flow - frames[20]).mean() < np.abs(frames[19] - frames[20]).mean(), entry["video_path"]
    again = run_script("create_mini_data.py", "--synthetic", "--hard", "--output-dir", "again", "--videos-per-task", 1,
                       "--val-videos-per-task", 1, "--seed", 5, "--workers", 1, cwd=tmp_path)
    assert again.returncode == 0
    assert tree_bytes(tmp_path / "again") == tree_bytes(tmp_path / "raw")  # the same files from 1 worker as from 2
    refused = run_script("create_mini_data.py", "--hard", "--output-dir", "mini", cwd=tmp_path)
    assert refused.returncode == 2 and "--hard and --physics are options of --synthetic" in refused.stderr
    refused = run_script("create_mini_data.py", "--synthetic", "--workers", 0, "--output-dir", "none", cwd=tmp_path)
    assert refused.returncode == 2 and "--workers must be at least 1" in refused.stderr and not (tmp_path / "none").exists()


def test_physics_clips_are_deterministic_jpeg_from_an_orbiting_camera(tmp_path):
    done = run_script("create_mini_data.py", "--synthetic", "--physics", "--output-dir", "raw", "--videos-per-task", 1,
                      "--val-videos-per-task", 1, "--size", 32, "--seed", 5, "--workers", 2, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metadata = json.loads((tmp_path / "raw/metadata.json").read_text())
    assert len(metadata) == 10 and sorted({e["task_type"] for e in metadata}) == [
        "cover_object", "drop_object", "push_object", "roll_object", "topple_stack"]
    for entry in metadata:
        folder = tmp_path / "raw" / entry["video_path"]
        assert sorted(p.name for p in folder.iterdir()) == [f"{i:02d}.jpg" for i in range(21)]
        frames = [np.asarray(Image.open(folder / f"{i:02d}.jpg"), dtype=np.float32) for i in range(21)]
        assert frames[0].shape == (32, 32, 3)
        # The camera turns around the table: the view changes between consecutive frames, not only at the action.
        assert min(np.abs(frames[i + 1] - frames[i]).mean() for i in range(4)) > 0.3, entry["video_path"]
        assert np.abs(np.diff(frames[0], axis=1)).mean() > 2, entry["video_path"]  # shaded and textured, not flat
    again = run_script("create_mini_data.py", "--synthetic", "--physics", "--output-dir", "again", "--videos-per-task", 1,
                       "--val-videos-per-task", 1, "--size", 32, "--seed", 5, "--workers", 1, cwd=tmp_path)
    assert again.returncode == 0
    assert tree_bytes(tmp_path / "again") == tree_bytes(tmp_path / "raw")  # the same files from 1 worker as from 2
    done = run_script("make_dataset.py", "--data-root", "raw", "--output-dir", "processed", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_engine_decides_how_a_physics_action_ends_and_the_instruction_says_it():
    from ip2p.data.synthetic_physics import TABLE, draw_physics_clip

    rng = np.random.default_rng(0)
    endings = set()
    for _ in range(12):
        clip = draw_physics_clip("push_object", 16, rng)
        fell = clip.poses[-1][0][0][2] < TABLE[2] - 0.02  # where the block is at the end, by the engine
        assert clip.instruction.endswith("falls off the table" if fell else "slides"), clip.instruction
        endings.add(fell)
    assert endings == {True, False}  # both happen: the push's speed and the friction decide, not a coin we toss
    heights = [frame[1][0][2] for frame in draw_physics_clip("drop_object", 16, rng).poses]  # the dropped object
    release = next(t for t in range(1, 21) if heights[t] < heights[0] - 1e-6)
    assert 8 <= release <= 17 and all(h == heights[0] for h in heights[:release])  # held still, then let go
    assert abs(heights[-1] - heights[-2]) < 1e-3 < heights[0] - heights[-1]  # it fell, and came to rest on something


def test_evaluate_writes_every_output_with_the_task_breakdown(synthetic, video_model, tmp_path):
    done = run_script("evaluate.py", "--model", video_model, "--data", synthetic / "raw", "--resolution", 32,
                      "--num-inference-steps", 2, "--batch-size", 2, "--output-dir", "eval", "--save-predictions", "predictions",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    summary = metrics["summary"]
    assert set(summary) == {"model", "flow_extrapolation", "copy_last", "latent_copy_last", "vae_reconstruction"}
    assert {g: v["count"] for g, v in summary["model"].items()} == \
        {"overall": 3, "cover_object": 1, "drop_object": 1, "move_object": 1}
    assert summary["copy_last"]["overall"]["moving_count"] == 3  # every synthetic clip moves at the end
    assert len(metrics["samples"]) == 3 and set(metrics["unavailable_metrics"]) == {"lpips", "fid"}
    rows = list(csv.DictReader(open(tmp_path / "eval/metrics.csv")))
    assert len(rows) == 20 and {r["row"] for r in rows} == set(summary)
    assert Image.open(tmp_path / "eval/grid.png").size == (5 * 32, 3 * 32)
    assert "| copy_last |" in done.stdout and "lpips: unavailable" in done.stdout
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + 5 and len({line.count("|") for line in table}) == 1  # header, rule and rows line up
    # One PNG per row and sample, at the evaluation resolution, from which the metrics can be recomputed.
    saved = sorted(str(path.relative_to(tmp_path / "predictions")) for path in (tmp_path / "predictions").rglob("*.png"))
    ids = sorted(sample["sample"].replace("/", "__") + ".png" for sample in metrics["samples"])
    assert saved == sorted(f"{row}/{name}" for row in [*summary, "truth"] for name in ids)
    first = metrics["samples"][0]
    copy = Image.open(tmp_path / "predictions/copy_last" / (first["sample"].replace("/", "__") + ".png"))
    truth = Image.open(tmp_path / "predictions/vae_reconstruction" / (first["sample"].replace("/", "__") + ".png"))
    assert copy.size == truth.size == (32, 32)


def test_flow_extrapolation_continues_a_constant_shift_that_copy_last_misses():
    from ip2p.shared.metrics import image_metrics
    from ip2p.shared.motion import flow_extrapolate

    rng = np.random.default_rng(0)
    texture = rng.uniform(0, 255, (24, 24, 3))
    texture = np.asarray(Image.fromarray(texture.astype(np.uint8)).resize((96, 96), Image.BICUBIC), dtype=np.uint8)
    frames = [Image.fromarray(np.roll(texture, shift, axis=1)[16:80, 16:80]) for shift in range(4)]  # 1 px per frame
    predicted = flow_extrapolate(frames[:3])
    flow, copy = (image_metrics([image], [frames[3]], [frames[2]]) for image in (predicted, frames[2]))
    assert flow["psnr"][0] > copy["psnr"][0] + 8, (flow, copy)
    assert flow["moving_psnr"][0] > copy["moving_psnr"][0] + 8


def test_camera_extrapolation_moves_the_picture_with_its_dominant_motion():
    from ip2p.shared.motion import camera_extrapolate, flow_extrapolate

    rng = np.random.default_rng(1)
    texture = rng.uniform(0, 255, (24, 24, 3))
    texture = np.asarray(Image.fromarray(texture.astype(np.uint8)).resize((96, 96), Image.BICUBIC), dtype=np.uint8)
    pan = [np.roll(texture, shift, axis=0)[16:80, 16:80] for shift in range(4)]  # the camera pans 1 px per frame
    predicted = np.asarray(camera_extrapolate([Image.fromarray(frame) for frame in pan[:3]]), dtype=np.float32)
    error = np.abs(predicted - pan[3])[4:-4]  # rows rolled in at the border are not in the frames
    assert error.mean() < 2 < np.abs(pan[2].astype(np.float32) - pan[3])[4:-4].mean()
    # A still camera and one small object moving: the picture's motion is none, so the object stays where it
    # was (the base for "it stopped"), while flow carries it on.
    still = []
    for x in (20, 23, 26):
        frame = texture[16:80, 16:80].copy()
        frame[28:36, x:x + 8] = (255, 0, 0)
        still.append(Image.fromarray(frame))
    last = np.asarray(still[-1], dtype=np.float32)
    assert np.abs(np.asarray(camera_extrapolate(still), dtype=np.float32) - last).max() <= 1
    assert np.abs(np.asarray(flow_extrapolate(still), dtype=np.float32) - last)[28:36, 26:37].mean() > 10


def test_moving_mask_and_moving_region_psnr_on_a_hand_made_pair():
    from ip2p.shared.metrics import masked_psnr, to_tensor
    from ip2p.shared.motion import moving_mask

    last = np.zeros((8, 8, 3), dtype=np.uint8)
    truth = last.copy()
    truth[2:4, 5:7] = 200  # a square that moved in
    truth[6, 1] = 8  # below the threshold: JPEG-noise-sized, not motion
    mask = moving_mask(Image.fromarray(last), Image.fromarray(truth))
    expected = np.zeros((8, 8), dtype=bool)
    expected[2:4, 5:7] = True
    assert (mask == expected).all()
    # Copy-last is wrong by 200/255 on exactly those 4 pixels: PSNR over them is 20 log10(255/200).
    value = masked_psnr(to_tensor([Image.fromarray(last)]), to_tensor([Image.fromarray(truth)]), torch.from_numpy(mask)[None])
    assert value.item() == pytest.approx(20 * np.log10(255 / 200), abs=1e-3)
    assert torch.isnan(masked_psnr(to_tensor([Image.fromarray(last)]), to_tensor([Image.fromarray(last)]),
                                   torch.zeros(1, 8, 8, dtype=torch.bool))).all()  # nothing moved: undefined


def test_copy_last_scores_perfectly_on_a_static_clip(video_model, tmp_path):
    root = tmp_path / "static"
    folder = root / "val/move_object/video_0"
    write_clip(folder, num_frames=1, size=32)
    for index in range(1, 21):
        shutil.copy(folder / "00.jpg", folder / f"{index:02d}.jpg")
    write_metadata(root, [{"video_path": "val/move_object/video_0", "instruction": "nothing moves", "task_type": "move_object"}])
    done = run_script("evaluate.py", "--model", video_model, "--data", root, "--resolution", 32, "--num-inference-steps", 1,
                      "--output-dir", "eval", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    copy_last = json.loads((tmp_path / "eval/metrics.json").read_text())["summary"]["copy_last"]["overall"]
    assert copy_last["psnr"] == PSNR_CAP_DB and copy_last["ssim"] == pytest.approx(1.0)


def test_evaluate_explains_bad_input(synthetic, video_model, tiny_model, tmp_path):
    narrow = tmp_path / "video5"
    assert run_script("make_video_model.py", "--base", tiny_model, "--num-frames", 5, "--output-dir", narrow, cwd=tmp_path).returncode == 0
    processed = tmp_path / "processed"
    assert run_script("make_dataset.py", "--data-root", synthetic / "raw", "--output-dir", processed, cwd=tmp_path).returncode == 0
    cases = [
        (run_script("evaluate.py", "--model", tmp_path / "nothing", "--data", processed, cwd=tmp_path), "is not a trained pipeline folder"),
        (run_script("evaluate.py", "--model", video_model, "--data", processed, "--split", "validation", cwd=tmp_path),
         "has no split 'validation'"),
        (run_script("evaluate.py", "--model", narrow, "--data", processed, cwd=tmp_path), "has 20 frames per sample but the model takes 5"),
    ]
    for done, message in cases:
        assert done.returncode != 0 and message in done.stderr.strip().splitlines()[-1] and "Traceback" not in done.stderr


def test_residual_target_is_the_scaled_change_between_latent_means():
    from ip2p.models.latents import split_moments
    from ip2p.training.objectives import FrameObjective, ResidualObjective

    moments = torch.randn(2, 4, 8, 3, 3)  # 3 observed frames + target, [mean, logvar]
    latents = split_moments(moments)
    frame, frame_condition = FrameObjective().latents(latents, 0.5, torch.Generator().manual_seed(1))
    residual, condition = ResidualObjective(scale=0.25).latents(latents, 0.5, torch.Generator().manual_seed(1))
    means = moments[:, :, :4] * 0.5
    # The observed means are kept in float16 (the cache's form): the change is exact up to that rounding.
    torch.testing.assert_close(residual, (means[:, -1] - means[:, -2]) / 0.25, atol=4e-3, rtol=1e-3)
    # The frame target is a posterior sample (InstructPix2Pix's convention); the residual carries no VAE noise.
    assert not torch.allclose(frame, means[:, -1])
    again, _ = ResidualObjective(scale=0.25).latents(latents, 0.5, torch.Generator().manual_seed(2))
    torch.testing.assert_close(again, residual)
    # Both condition on the observed frames' modes (unscaled), oldest first.
    assert condition.shape == (2, 12, 3, 3)
    torch.testing.assert_close(condition.float(), moments[:, :3, :4].flatten(1, 2), atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(frame_condition, condition)


def test_residual_objective_measures_its_scale_on_the_training_samples():
    from ip2p.models.latents import split_moments
    from ip2p.training.objectives import ResidualObjective

    class Samples:  # what the objective reads: each sample's latents
        def __init__(self, moments):
            self.all = moments

        def __len__(self):
            return len(self.all)

        def latents(self, index, vae, device, dtype):
            return split_moments(self.all[index])

    vae = type("Vae", (), {"config": type("Config", (), {"scaling_factor": 0.5})()})()
    moments = torch.randn(5, 3, 8, 2, 2)
    settings = ResidualObjective().prepare(Samples(moments), vae, "cpu", torch.float32)
    last_means = moments[:, -2, :4].half().float()
    expected = float(((moments[:, -1, :4] - last_means) * 0.5).std())
    assert settings == {"prediction_target": "residual", "residual_scale": pytest.approx(expected)}
    assert ResidualObjective(scale=2.0).prepare(Samples(moments), vae, "cpu", torch.float32)["residual_scale"] == 2.0


def test_residual_training_saves_its_target_and_evaluates_in_composite_mode(synthetic, tiny_model, tmp_path):
    processed = tmp_path / "processed"
    assert run_script("make_dataset.py", "--data-root", synthetic / "raw", "--output-dir", processed, cwd=tmp_path).returncode == 0
    done = run_script("train_video_ip2p.py", "--pretrained_model_name_or_path", tiny_model, "--train_data_dir", processed,
                      "--output_dir", "out", "--resolution", 32, "--max_train_steps", 2, "--prediction_target", "residual",
                      "--latent_cache_dir", "cache", "--num_validation_images", 1, "--validation_inference_steps", 3,
                      "--validation_guidance_scale", 1.0, "--validation_samples_averaged", 2, "--prediction_type", "sample",
                      "--validation_correction_threshold", 3,
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "objective residual: prediction_target residual, residual_scale" in done.stdout
    index = json.loads((tmp_path / "out/model_index.json").read_text())
    assert index["prediction_target"] == "residual" and index["residual_scale"] > 0
    scheduler = json.loads((tmp_path / "out/scheduler/scheduler_config.json").read_text())
    assert (scheduler["prediction_type"], scheduler["_class_name"], scheduler["clip_sample"]) == ("sample", "DDIMScheduler", False)
    # The measured scale is recorded with the run's arguments too.
    assert json.loads((tmp_path / "out/training_args.json").read_text())["residual_scale"] == index["residual_scale"]
    done = run_script("evaluate.py", "--model", "out", "--data", processed, "--image-guidance-scale", 1.2, "--sampler", "ddim",
                      "--output-dir", "eval", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # Sampling settings not given are the ones validated with at training time, saved with the model.
    assert json.loads((tmp_path / "eval/metrics.json").read_text())["settings"] == {
        "num_inference_steps": 3, "guidance_scale": 1.0, "image_guidance_scale": 1.2, "num_samples_averaged": 2,
        "output_mode": "composite", "correction_threshold": 3.0, "fallback_margin": 0.0, "seed": 0, "sampler": "DDIMScheduler"}
    # The proof-of-learning script draws the loss curve from the same logs.
    done = run_script("benchmarks/plot_loss.py", "out/logs", "loss.png", "--smooth", 2, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 steps" in done.stdout and Image.open(tmp_path / "loss.png").size == (640, 360)
    (tmp_path / "empty").mkdir()
    done = run_script("benchmarks/plot_loss.py", "empty", "none.png", cwd=tmp_path)
    assert done.returncode != 0 and not (tmp_path / "none.png").exists()
    assert done.stderr.strip().splitlines()[-1].startswith("error: no 'train/loss' scalars in TensorBoard logs under empty")


def test_horizon_evaluation_rolls_out_and_scores_every_step(video_model, tmp_path):
    done = run_script("create_mini_data.py", "--synthetic", "--output-dir", "long", "--videos-per-task", 1,
                      "--val-videos-per-task", 1, "--size", 32, "--num-frames", 24, "--seed", 2, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "long/val/move_object/video_0").glob("*.png"))) == 24
    done = run_script("evaluate.py", "--model", video_model, "--data", "long", "--resolution", 32, "--horizon", 3,
                      "--num-inference-steps", 2, "--output-dir", "eval", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    horizon = json.loads((tmp_path / "eval/metrics.json").read_text())["horizon"]
    assert sorted(horizon) == ["copy_last", "flow_extrapolation", "model"]
    assert [e["step"] for e in horizon["model"]] == [1, 2, 3] and all(e["count"] == 3 for e in horizon["model"])
    copy_last = [e["psnr"] for e in horizon["copy_last"]]
    assert copy_last[0] > copy_last[1] > copy_last[2]  # the objects move on: repeating frame 20 gets worse every step
    with open(tmp_path / "eval/metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9 and {r["horizon"] for r in rows} == {"1", "2", "3"}
    assert Image.open(tmp_path / "eval/horizon.png").size == (640, 360)
    short = run_script("evaluate.py", "--model", video_model, "--data", "long", "--resolution", 32, "--horizon", 5,
                       "--output-dir", "eval5", cwd=tmp_path)
    assert short.returncode == 2 and "at least 25 frames" in short.stderr and "Traceback" not in short.stderr


def test_tiny_vae_downsamples_once_per_block_after_the_first():
    from ip2p.models.tiny_model import build_tiny_pipeline

    for channels, latent_size in (((8, 16, 16, 16), 4), ((8, 16, 16), 8)):
        vae = build_tiny_pipeline(vae_channels=channels).vae
        with torch.no_grad():
            latents = vae.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mode()
            decoded = vae.decode(latents).sample
        assert latents.shape == (1, 4, latent_size, latent_size) and decoded.shape == (1, 3, 32, 32)


def test_fitting_the_tiny_vae_makes_it_reconstruct_frames(synthetic, tmp_path):
    from ip2p.evaluation.scoring import vae_roundtrip
    from ip2p.shared.metrics import image_metrics

    done = run_script("download_model.py", "--tiny", "--local-dir", "fitted", "--fit-vae-frames", synthetic / "raw/train",
                      "--fit-vae-steps", 150, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "held-out reconstruction" in done.stdout
    assert run_script("download_model.py", "--tiny", "--local-dir", "random", "--unet-attention", "mid", cwd=tmp_path).returncode == 0
    assert json.loads((tmp_path / "random/unet/config.json").read_text())["down_block_types"] == ["DownBlock2D"] * 2
    from diffusers import StableDiffusionInstructPix2PixPipeline

    frames = [Image.open(p).convert("RGB") for p in sorted((synthetic / "raw/val").rglob("20.png"))]
    quality = {}
    for name in ("fitted", "random"):
        pipeline = StableDiffusionInstructPix2PixPipeline.from_pretrained(str(tmp_path / name))
        quality[name] = np.mean(image_metrics(vae_roundtrip(pipeline, frames), frames)["psnr"])
    assert quality["fitted"] > quality["random"] + 3  # dB; about +4 after 150 steps


def test_the_vae_fit_trains_on_random_windows_of_the_frames(tmp_path):
    from ip2p.models.vae_fit import random_crops

    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    crops = random_crops(images, 4, torch.Generator().manual_seed(0))
    assert crops.shape == (2, 3, 4, 4)
    for image, crop in zip(images, crops):
        top, left = divmod(int(crop[0, 0, 0] - image[0, 0, 0]), 8)
        assert torch.equal(crop, image[:, top:top + 4, left:left + 4])
    generator = torch.Generator().manual_seed(1)
    corners = {int(random_crops(images, 4, generator)[0, 0, 0, 0]) for _ in range(20)}
    assert len(corners) > 5  # of the 25 places a 4-pixel window has in 8 pixels
    assert random_crops(images, 8, torch.Generator()) is images
    (tmp_path / "frames").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "frames/0.png")
    done = run_script("download_model.py", "--tiny", "--local-dir", "odd", "--fit-vae-frames", tmp_path / "frames",
                      "--fit-vae-crop", 12, cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "crop size 12 must be a multiple of the VAE's 8x downsampling" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "odd").exists()
