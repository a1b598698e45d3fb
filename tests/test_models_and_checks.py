"""The tiny offline pipeline, quick_test.py and prepare_test_data.py."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import numbered_clip_root, run_script, write_clip


def file_hashes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_tiny_pipeline_has_the_real_layout_and_only_safetensors(tiny_model):
    index = json.loads((tiny_model / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInstructPix2PixPipeline"
    for component in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny_model / component).is_dir()
    assert json.loads((tiny_model / "unet/config.json").read_text())["in_channels"] == 8
    files = [p.name for p in tiny_model.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".bin", ".ckpt", ".pt", ".pth"))]
    assert sum(f.endswith(".safetensors") for f in files) == 3
    assert sum(p.stat().st_size for p in tiny_model.rglob("*") if p.is_file()) < 20e6


def test_tiny_pipeline_is_deterministic_for_a_seed(tmp_path, tiny_model):
    for name, seed in (("same", 0), ("other", 1)):
        done = run_script("download_model.py", "--tiny", "--local-dir", name, "--seed", seed, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert file_hashes(tmp_path / "same") == file_hashes(tiny_model)
    other = file_hashes(tmp_path / "other")
    assert other["unet/diffusion_pytorch_model.safetensors"] != file_hashes(tiny_model)["unet/diffusion_pytorch_model.safetensors"]


def test_tiny_pipeline_loads_and_edits_an_image_on_cpu(tiny_model):
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipeline = StableDiffusionInstructPix2PixPipeline.from_pretrained(str(tiny_model), use_safetensors=True)
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    out = pipeline("dropping a pen onto the table", image=image, num_inference_steps=2,
                   generator=torch.Generator().manual_seed(0)).images[0]
    assert out.size == (64, 64)
    assert pipeline.vae_scale_factor == 8  # latents are 1/8 of the image, as in SD


def test_tiny_unet_can_keep_attention_in_the_mid_block_only():
    from ip2p.models.tiny_model import build_tiny_pipeline
    from ip2p.models.widening import widen_unet_input

    def attention_places(unet):
        return {name.split(".")[0] for name, module in unet.named_modules() if type(module).__name__ == "Transformer2DModel"}

    assert attention_places(build_tiny_pipeline(unet_attention="all").unet) == {"down_blocks", "mid_block", "up_blocks"}
    unet = widen_unet_input(build_tiny_pipeline(unet_attention="mid").unet, 20).eval()
    assert attention_places(unet) == {"mid_block"}
    sample, texts = torch.randn(1, 84, 16, 16), torch.randn(2, 1, 8, 32)
    with torch.no_grad():
        outputs = [unet(sample, torch.tensor([999]), encoder_hidden_states=text).sample for text in texts]
    assert outputs[0].shape == (1, 4, 16, 16)
    assert (outputs[0] - outputs[1]).abs().max() > 1e-4  # the instruction still reaches the prediction


@pytest.fixture
def processed(tmp_path):
    numbered_clip_root(tmp_path / "raw")
    done = run_script("make_dataset.py", "--data-root", "raw", "--output-dir", "processed", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path / "processed"


def quick_test(cwd, *args):
    return run_script("quick_test.py", "--dataset", "processed", *args, cwd=cwd)


def test_quick_test_passes_on_good_data_and_model(processed, tiny_model):
    done = quick_test(processed.parent, "--model", tiny_model)
    assert done.returncode == 0, done.stderr
    assert "train 3, test 1" in done.stdout
    assert "unet in_channels 8 (base model); widened to 84 for 20 frames" in done.stdout
    assert "all checks passed" in done.stdout


def test_quick_test_names_a_frame_that_went_missing(processed):
    (processed.parent / "raw/train/cover_object/video_1/12.jpg").unlink()
    done = quick_test(processed.parent)
    assert done.returncode != 0
    assert "missing frame" in done.stderr and "train/cover_object/video_1/12.jpg" in done.stderr
    assert "cover object number 1" in done.stderr  # the sample is named by its prompt too
    assert "Traceback" not in done.stderr


def test_quick_test_checks_the_frame_count(processed):
    done = quick_test(processed.parent, "--num-input-frames", 8)
    assert done.returncode != 0 and "expected" in done.stderr and "length=8" in done.stderr


def test_quick_test_rejects_a_unet_of_the_wrong_width(processed, tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "unet/config.json").read_text())
    config["in_channels"] = 12
    (model / "unet/config.json").write_text(json.dumps(config))
    done = quick_test(processed.parent, "--model", model)
    assert done.returncode != 0
    assert "unet in_channels is 12, but 20 input frames need 84" in done.stderr


def test_quick_test_rejects_an_incomplete_pipeline(processed, tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    weights = model / "vae/diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])  # an interrupted download
    shutil.rmtree(model / "tokenizer")
    done = quick_test(processed.parent, "--model", model)
    assert done.returncode != 0
    assert "diffusion_pytorch_model.safetensors is incomplete or corrupt" in done.stderr
    assert f"{model / 'tokenizer'}: missing component folder" in done.stderr


def test_prepare_test_data_writes_the_single_image_layout(tmp_path):
    clip = tmp_path / "dataset_root/test_video"
    write_clip(clip, num_frames=2)
    (clip / "test_video.json").write_text(json.dumps({"instruction": "covering a cup with a cloth", "task_type": "cover_object"}))
    done = run_script("prepare_test_data.py", cwd=tmp_path)  # default --data-root dataset_root
    assert done.returncode == 0, done.stderr
    out = tmp_path / "dataset_root/test_data"
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert rows == [{"file_name": "input_image.jpg", "input_image": "input_image.jpg",
                     "edit_prompt": "covering a cup with a cloth", "edited_image": "edited_image.jpg"}]
    assert (out / "input_image.jpg").read_bytes() == (clip / "00.jpg").read_bytes()
    assert (out / "edited_image.jpg").read_bytes() == (clip / "01.jpg").read_bytes()


@pytest.mark.parametrize("problem, message", [
    ("no_folder", "test_video does not exist"),
    ("no_json", "test_video.json does not exist"),
    ("empty_instruction", "empty or missing \"instruction\""),
    ("missing_frame", "missing frame 01.jpg"),
])
def test_prepare_test_data_explains_bad_input(tmp_path, problem, message):
    clip = tmp_path / "dataset_root/test_video"
    if problem != "no_folder":
        write_clip(clip, num_frames=1 if problem == "missing_frame" else 2)
        if problem != "no_json":
            instruction = "" if problem == "empty_instruction" else "moving a cup"
            (clip / "test_video.json").write_text(json.dumps({"instruction": instruction}))
    done = run_script("prepare_test_data.py", "--data-root", "dataset_root", cwd=tmp_path)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "dataset_root/test_data").exists()
