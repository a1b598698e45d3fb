"""train_instruct_pix2pix.py on the tiny model, a few steps per run."""

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import REPLICA_WORKER, REPO, free_port, assert_replicas_match_the_saved_unet, logged_losses, run_script, script_env

DIFFUSERS_EXAMPLE_FLAGS = """
--pretrained_model_name_or_path M --revision main --variant fp16 --non_ema_revision main --dataset_name D
--dataset_config_name C --train_data_dir T --original_image_column a --edited_image_column b --edit_prompt_column c
--val_image_url u --validation_prompt p --num_validation_images 2 --validation_epochs 3 --max_train_samples 5
--output_dir o --cache_dir c --seed 1 --resolution 64 --center_crop --random_flip --train_batch_size 2
--num_train_epochs 3 --max_train_steps 9 --gradient_accumulation_steps 2 --gradient_checkpointing
--learning_rate 1e-5 --scale_lr --lr_scheduler cosine --lr_warmup_steps 3 --conditioning_dropout_prob 0.1
--use_8bit_adam --allow_tf32 --use_ema --dataloader_num_workers 2 --adam_beta1 0.8 --adam_beta2 0.99
--adam_weight_decay 0.1 --adam_epsilon 1e-6 --max_grad_norm 2 --push_to_hub --hub_token t --hub_model_id h
--logging_dir l --mixed_precision bf16 --report_to wandb --local_rank 0 --checkpointing_steps 7
--checkpoints_total_limit 2 --resume_from_checkpoint latest --enable_xformers_memory_efficient_attention
"""


def test_every_flag_of_the_diffusers_example_is_accepted_with_its_default():
    from ip2p.training.args import build_parser

    parser = build_parser("test")
    args = parser.parse_args(shlex.split(DIFFUSERS_EXAMPLE_FLAGS))
    assert args.max_train_steps == 9 and args.use_ema and args.mixed_precision == "bf16"
    defaults = parser.parse_args([])
    assert (defaults.resolution, defaults.train_batch_size, defaults.learning_rate, defaults.lr_warmup_steps) == (256, 16, 1e-4, 500)
    assert (defaults.output_dir, defaults.checkpointing_steps, defaults.report_to) == ("instruct-pix2pix-model", 500, "tensorboard")
    assert defaults.conditioning_dropout_prob == 0.05  # the paper's value (the example leaves it off)
    assert "per sample, drop only the text" in parser.format_help() and "(default: 0.05)" in parser.format_help()


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """An imagefolder of 4 (input, edited) pairs, as prepare_test_data.py writes them."""
    folder = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    rows = []
    for index in range(4):
        for role in ("input", "edited"):
            pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{role}_{index}.jpg")
        rows.append({"file_name": f"input_{index}.jpg", "input_image": f"input_{index}.jpg",
                     "edit_prompt": f"edit number {index}", "edited_image": f"edited_{index}.jpg"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def train(cwd: Path, model: Path, data: Path, output: str, *extra, timeout=300):
    return run_script(
        "train_instruct_pix2pix.py", "--pretrained_model_name_or_path", model, "--train_data_dir", data,
        "--output_dir", output, "--resolution", 32, "--train_batch_size", 2, "--lr_warmup_steps", 0, *extra,
        cwd=cwd, timeout=timeout,
    )


def unet_weights(folder: Path) -> dict:
    return load_file(str(folder / "unet/diffusion_pytorch_model.safetensors"))


def test_trained_pipeline_loads_in_diffusers_and_edits_an_image(tmp_path, tiny_model, pairs):
    done = train(tmp_path, tiny_model, pairs, "out", "--max_train_steps", 3, "--checkpointing_steps", 2, "--seed", 0,
                 "--val_image_url", pairs / "input_0.jpg", "--validation_prompt", "edit", "--num_validation_images", 2,
                 "--validation_steps", 3, "--use_ema")
    assert done.returncode == 0, done.stderr[-3000:]
    from diffusers import StableDiffusionInstructPix2PixPipeline

    out = tmp_path / "out"
    pipeline = StableDiffusionInstructPix2PixPipeline.from_pretrained(str(out), use_safetensors=True)
    image = pipeline("edit", image=Image.open(pairs / "input_0.jpg"), num_inference_steps=2,
                     generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (48, 40)
    before, after = unet_weights(tiny_model), unet_weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained
    saved_args = json.loads((out / "training_args.json").read_text())
    assert saved_args["max_train_steps"] == 3 and saved_args["seed"] == 0 and "hub_token" not in saved_args
    assert json.loads((out / "checkpoint-2/training_args.json").read_text())["max_train_steps"] == 3
    assert len(list((out / "validation/step-000003").glob("*.png"))) == 2
    assert list((out / "logs").rglob("events.out.tfevents.*"))


def test_checkpoint_limit_keeps_exactly_the_newest(tmp_path, tiny_model, pairs):
    done = train(tmp_path, tiny_model, pairs, "out", "--max_train_steps", 5, "--checkpointing_steps", 1,
                 "--checkpoints_total_limit", 2, "--seed", 0)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").glob("*checkpoint-*")) == ["checkpoint-4", "checkpoint-5"]


RESUME_ARGS = ["--seed", 3, "--gradient_accumulation_steps", 2, "--random_flip", "--use_ema", "--checkpointing_steps", 2]


def test_resume_continues_and_matches_an_uninterrupted_run(tmp_path, tiny_model, pairs):
    # Random crops (40x48 -> 32), flips, accumulation across epochs and EMA all have to resume exactly.
    done = train(tmp_path, tiny_model, pairs, "full", "--max_train_steps", 4, *RESUME_ARGS)
    assert done.returncode == 0, done.stderr[-3000:]
    done = train(tmp_path, tiny_model, pairs, "split", "--max_train_steps", 2, *RESUME_ARGS)
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.copytree(tmp_path / "split", tmp_path / "named")

    done = train(tmp_path, tiny_model, pairs, "split", "--max_train_steps", 4, "--resume_from_checkpoint", "latest", *RESUME_ARGS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stdout and "at step 2" in done.stdout
    # "named" resumes from a checkpoint whose random states look as if another device type wrote them
    # (a CUDA generator state, other CPU states): the run's draws come from its seed and position alone,
    # so a checkpoint moves between CPU and GPU (issue 11, item 6).
    states_file = tmp_path / "named/checkpoint-2/random_states_0.pkl"
    states = torch.load(states_file, weights_only=False)
    states["torch_cuda_manual_seed"] = [torch.randint(0, 255, (16,), dtype=torch.uint8)]
    states["torch_manual_seed"] = torch.Generator().manual_seed(12345).get_state()
    states["random_state"] = __import__("random").Random(6789).getstate()
    torch.save(states, states_file)
    done = train(tmp_path, tiny_model, pairs, "named", "--max_train_steps", 4,
                 "--resume_from_checkpoint", tmp_path / "named/checkpoint-2", *RESUME_ARGS)
    assert done.returncode == 0, done.stderr[-3000:]

    full = unet_weights(tmp_path / "full")
    for resumed in ("split", "named"):
        weights = unet_weights(tmp_path / resumed)
        assert all(torch.equal(full[k], weights[k]) for k in full), f"{resumed} differs from the uninterrupted run"
        state = json.loads((tmp_path / resumed / "checkpoint-4/training_state.json").read_text())
        assert state["global_step"] == 4


def test_killed_while_saving_resumes_from_the_last_complete_checkpoint(tmp_path, tiny_model, pairs):
    output = tmp_path / "out"
    killed = subprocess.run([sys.executable, str(REPO / "tests/kill_while_saving_worker.py"), "--pretrained_model_name_or_path",
                             str(tiny_model), "--train_data_dir", str(pairs), "--output_dir", str(output), "--resolution", "32",
                             "--train_batch_size", "2", "--max_train_steps", "500", "--checkpointing_steps", "1", "--seed", "0",
                             "--report_to", "none"], cwd=tmp_path, env=script_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert [p.name for p in output.glob(".checkpoint-*.partial")] == [".checkpoint-2.partial"]  # killed mid-save
    complete = sorted(int(p.name.split("-")[1]) for p in output.glob("checkpoint-*"))
    assert complete == [1]
    done = train(tmp_path, tiny_model, pairs, "out", "--max_train_steps", complete[-1] + 1, "--checkpointing_steps", 1,
                 "--seed", 0, "--resume_from_checkpoint", "latest")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"at step {complete[-1]}" in done.stdout
    assert not list(output.glob(".checkpoint-*.partial"))  # the stale staging folder was cleaned up


def test_two_cpu_processes_end_with_identical_weights(tmp_path, tiny_model, pairs):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
               str(REPLICA_WORKER), "image", str(tmp_path / "replicas"), "--pretrained_model_name_or_path", str(tiny_model),
               "--train_data_dir", str(pairs), "--output_dir", "out", "--resolution", "32", "--train_batch_size", "1",
               "--num_train_epochs", "2", "--checkpointing_steps", "2", "--seed", "0", "--gradient_accumulation_steps", "2"]
    done = subprocess.run(command, cwd=tmp_path, env=script_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # 4 samples over 2 processes x batch 1 = 2 micro-batches per epoch; 2 epochs / accumulation 2 = 2 steps.
    assert "training 4 samples for 2 steps: 2 process(es)" in done.stdout
    assert_replicas_match_the_saved_unet(tmp_path / "replicas", tmp_path / "out", processes=2)
    # The checkpoint resumes with another process count, in both directions: the wrapped
    # module's state and the noise draws do not depend on it (issue 11, item 2).
    at = command.index(str(REPLICA_WORKER))
    launcher, script = command[:at - 1] + [str(free_port())], command[at:]  # a fresh port for the second launch
    for processes, steps in ((1, 3), (2, 4)):
        script[2] = str(tmp_path / f"replicas-{steps}")
        resume = (launcher if processes == 2 else [sys.executable]) + script + [
            "--max_train_steps", str(steps), "--checkpointing_steps", "1", "--resume_from_checkpoint", "latest"]
        done = subprocess.run(resume, cwd=tmp_path, env=script_env(tmp_path), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"at step {steps - 1}" in done.stdout and (tmp_path / f"out/checkpoint-{steps}").is_dir()
    assert_replicas_match_the_saved_unet(tmp_path / "replicas-4", tmp_path / "out", processes=2)


def test_cached_latents_and_prompts_change_where_the_numbers_come_from_not_the_numbers(tmp_path, tiny_model, pairs):
    common = ["--max_train_steps", 3, "--seed", 0, "--center_crop", "--random_flip"]
    plain = train(tmp_path, tiny_model, pairs, "plain", *common, "--no_cache_latents", "--prompt_cache_mb", 0)
    cached = train(tmp_path, tiny_model, pairs, "cached", *common)
    assert plain.returncode == 0 and cached.returncode == 0, plain.stderr[-2000:] + cached.stderr[-2000:]
    assert "cache" not in plain.stdout
    assert "encoded 8, reused 0" in cached.stdout  # 4 samples, both orientations
    assert "prompt cache: 4 unique instructions encoded once" in cached.stdout
    torch.testing.assert_close(torch.tensor(logged_losses(tmp_path / "cached")), torch.tensor(logged_losses(tmp_path / "plain")),
                               rtol=1e-4, atol=1e-6)
    # The example's default random crop: an image it would crop differently each epoch cannot be cached ...
    random_crop = train(tmp_path, tiny_model, pairs, "random", "--max_train_steps", 1, "--seed", 0)
    assert random_crop.returncode == 0, random_crop.stderr[-2000:]
    assert "latent cache off: training sample 0 is 48x40: its random crop changes every epoch" in random_crop.stdout
    # ... a square one can: its only crop is the whole image.
    square = tmp_path / "square"
    shutil.copytree(pairs, square)
    for image in square.glob("*.jpg"):
        Image.open(image).resize((40, 40)).save(image)
    done = train(tmp_path, tiny_model, square, "square-run", "--max_train_steps", 1, "--seed", 0)
    assert done.returncode == 0 and "encoded 4, reused 0" in done.stdout, done.stderr[-2000:]


def test_a_bad_sample_met_while_caching_stops_every_process_at_once(tmp_path, tiny_model, pairs):
    broken = tmp_path / "broken"
    shutil.copytree(pairs, broken)
    (broken / "edited_2.jpg").write_bytes(b"not an image")  # sample 2: the first process's share
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
               str(REPO / "train_instruct_pix2pix.py"), "--pretrained_model_name_or_path", str(tiny_model),
               "--train_data_dir", str(broken), "--output_dir", "out", "--resolution", "32", "--train_batch_size", "1",
               "--max_train_steps", "2", "--seed", "0", "--center_crop"]
    started = time.monotonic()
    # The other process waits for the fill with a 24-hour timeout: without the failure reaching it, this would hang.
    done = subprocess.run(command, cwd=tmp_path, env=script_env(tmp_path), capture_output=True, text=True, timeout=240)
    assert done.returncode != 0 and time.monotonic() - started < 240
    assert "error: training sample 2 ('edit number 2'): cannot read an image" in done.stderr
    assert "error: 1 other process(es) stopped with an error (printed above); this one stops too" in done.stderr


def test_text_to_image_base_is_widened_to_eight_channels(tmp_path, tiny_model, pairs):
    from diffusers import UNet2DConditionModel

    base = tmp_path / "t2i"
    shutil.copytree(tiny_model, base)
    config = UNet2DConditionModel.load_config(str(base / "unet"))
    config["in_channels"] = 4
    UNet2DConditionModel.from_config(config).save_pretrained(str(base / "unet"))
    done = train(tmp_path, base, pairs, "out", "--max_train_steps", 1, "--seed", 0)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "out/unet/config.json").read_text())["in_channels"] == 8


def test_bad_inputs_end_in_one_clear_line(tmp_path, tiny_model, pairs):
    broken = tmp_path / "broken"
    shutil.copytree(pairs, broken)
    (broken / "edited_2.jpg").write_bytes(b"not an image")
    cases = [
        (train(tmp_path, tiny_model, pairs, "o1", "--max_train_steps", 1, "--edit_prompt_column", "caption"),
         "has no column 'caption'"),
        (train(tmp_path, tiny_model, broken, "o2", "--max_train_steps", 4, "--seed", 0),
         "training sample 2 ('edit number 2'): cannot read an image"),
        (train(tmp_path, tiny_model, broken, "o5", "--max_train_steps", 4, "--center_crop"),  # found while caching latents
         "training sample 2 ('edit number 2'): cannot read an image"),
        (train(tmp_path, tmp_path / "models/missing", pairs, "o3", "--max_train_steps", 1), "does not exist; fetch it with download_model.py"),
        (train(tmp_path, tiny_model, pairs, "o4", "--max_train_steps", 6, "--learning_rate", 1e30, "--checkpointing_steps", 1, "--seed", 0),
         "loss became nan"),
    ]
    for done, message in cases:
        assert done.returncode != 0
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and message in last and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "the last good checkpoint is" in cases[4][0].stderr


def test_dataset_name_accepts_a_save_to_disk_folder_of_decoded_images(tmp_path, tiny_model, pairs):
    from datasets import Dataset, DatasetDict, Features, Image as ImageFeature, Value

    rows = [json.loads(line) for line in (pairs / "metadata.jsonl").read_text().splitlines()]
    features = Features({"input_image": ImageFeature(), "edit_prompt": Value("string"), "edited_image": ImageFeature()})
    table = {"input_image": [str(pairs / r["input_image"]) for r in rows], "edit_prompt": [r["edit_prompt"] for r in rows],
             "edited_image": [str(pairs / r["edited_image"]) for r in rows]}
    DatasetDict(train=Dataset.from_dict(table, features=features)).save_to_disk(str(tmp_path / "hub_style"))
    done = run_script("train_instruct_pix2pix.py", "--pretrained_model_name_or_path", tiny_model, "--dataset_name", "hub_style",
                      "--output_dir", "out", "--resolution", 32, "--train_batch_size", 2, "--max_train_steps", 1,
                      "--max_train_samples", 3, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training 3 samples" in done.stdout


def test_push_to_hub_uploads_the_pipeline_not_the_checkpoints(tmp_path, monkeypatch):
    import ip2p.training.saving as saving

    calls = {}

    class Repo:
        repo_id = "me/model"

    monkeypatch.setattr(saving, "create_repo", lambda repo_id, **kw: calls.setdefault("create", (repo_id, kw)) and Repo())
    monkeypatch.setattr(saving, "upload_folder", lambda **kw: calls.setdefault("upload", kw))
    args = type("Args", (), {"hub_model_id": None, "hub_token": "secret", "logging_dir": "logs"})()
    saving.push_pipeline(args, tmp_path / "my-run")
    assert calls["create"][0] == "my-run" and calls["create"][1]["token"] == "secret"
    upload = calls["upload"]
    assert upload["repo_id"] == "me/model" and upload["folder_path"] == str(tmp_path / "my-run")
    assert {"checkpoint-*", ".checkpoint-*", "logs/*"} <= set(upload["ignore_patterns"])
