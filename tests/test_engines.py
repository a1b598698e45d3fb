"""DeepSpeed ZeRO-2 (configs/deepspeed_zero2.yaml) through the real launcher, on CPU: one process, with
DeepSpeed's CPU accelerator (accelerate forms no multi-process DeepSpeed group on a machine without GPUs).
What these pin down is what DeepSpeed does unlike DDP: it steps its optimizer inside ``backward``, and in
bf16 it trains bf16 weights with fp32 master copies in its optimizer. accelerate runs FSDP on GPUs only; its
sharding is checked here with accelerate patched onto FSDP on CPU (tests/fsdp_on_cpu), two processes;
benchmarks/gpu_engines.sh runs both engines through the real launcher on a GPU."""

import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO, free_port, run_script, script_env
from safetensors.torch import load_file

from ip2p.shared.cli import UserError
from ip2p.training.engines import check_cuda_graph_accumulation, check_fsdp_settings

UNET_FILE = "unet/diffusion_pytorch_model.safetensors"


def train_args(tiny_model, clips, output, *extra):
    return ["--pretrained_model_name_or_path", str(tiny_model), "--train_data_dir", str(clips / "processed"),
            "--output_dir", output, "--resolution", "32", "--train_batch_size", "2", "--gradient_accumulation_steps", "2",
            "--max_train_steps", "4", "--checkpointing_steps", "2", "--learning_rate", "1e-3", "--lr_scheduler", "linear",
            "--lr_warmup_steps", "1", "--seed", "0", "--latent_cache_dir", "cache", "--report_to", "none",
            "--num_validation_images", "0", *extra]


def launch_deepspeed(cwd, precision, args):
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "configs/deepspeed_zero2.yaml"),
                           "--num_processes", "1", "--mixed_precision", precision, "--main_process_port", str(free_port()),
                           str(REPO / "train_video_ip2p.py"), *args],
                          cwd=cwd, env=script_env(cwd), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def test_deepspeed_zero2_trains_and_resumes_to_the_weights_of_plain_training(tmp_path, tiny_model, clips):
    """fp32, so the two must agree to rounding: gradient accumulation (DeepSpeed steps only at the end of a step,
    and divides the loss itself), clipping, the learning-rate schedule and a resume from DeepSpeed's checkpoint."""
    plain = run_script("train_video_ip2p.py", *train_args(tiny_model, clips, "plain"), cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr[-3000:]
    launch_deepspeed(tmp_path, "no", train_args(tiny_model, clips, "zero2"))
    # DeepSpeed's own checkpoint layout: the engine, not plain training, wrote it.
    assert (tmp_path / "zero2/checkpoint-2/pytorch_model/mp_rank_00_model_states.pt").is_file()
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "zero2/checkpoint-2", tmp_path / "resumed/checkpoint-2")
    resumed = launch_deepspeed(tmp_path, "no", train_args(tiny_model, clips, "resumed", "--resume_from_checkpoint", "latest"))
    assert "resumed from" in resumed.stdout and "at step 2" in resumed.stdout

    base = load_file(str(tiny_model / UNET_FILE))
    reference = load_file(str(tmp_path / "plain" / UNET_FILE))
    moved = max((reference[k] - base[k]).abs().max().item() for k in base if base[k].shape == reference[k].shape)
    assert moved > 1e-3  # the runs trained: agreeing below means agreeing on the updates
    for run in ("zero2", "resumed"):
        weights = load_file(str(tmp_path / run / UNET_FILE))
        assert weights.keys() == reference.keys()
        difference = max((weights[k] - reference[k]).abs().max().item() for k in reference)
        assert difference < 1e-5, (run, difference)


@pytest.mark.parametrize("ema", [False, True], ids=["master-weights", "ema-weights"])
def test_deepspeed_bf16_run_saves_fp32_weights_not_their_bf16_copies(tmp_path, tiny_model, clips, ema):
    """DeepSpeed's UNet holds bf16 weights; the saved pipeline holds its fp32 masters (or the fp32 EMA
    averages of those bf16 weights), not a bf16 copy cast back to fp32, which puts every value on bf16's grid.
    (An EMA tensor can stay on the grid: a norm weight at 1.0 whose bf16 copy never moved.)"""
    extra = ["--use_ema", "--num_validation_images", "1"] if ema else []
    launch_deepspeed(tmp_path, "bf16", train_args(tiny_model, clips, "out", *extra))
    weights = load_file(str(tmp_path / "out" / UNET_FILE))
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}
    off_grid = [name for name, tensor in weights.items() if (tensor.to(torch.bfloat16).float() != tensor).any()]
    assert len(off_grid) > 0.5 * len(weights), f"{len(off_grid)} of {len(weights)} tensors hold values finer than bf16"
    if ema:
        assert list((tmp_path / "out/validation").rglob("*.png")), "the bf16 UNet's validation image was not written"


def test_fsdp_config_on_a_machine_without_gpus_is_one_line_and_writes_nothing(tmp_path, tiny_model, clips):
    """accelerate has no FSDP on CPU: its plugin raised a bare RuntimeError from inside Accelerator()."""
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "configs/fsdp.yaml"),
                           "--num_processes", "1", "--main_process_port", str(free_port()), str(REPO / "train_video_ip2p.py"),
                           *train_args(tiny_model, clips, "out")],
                          cwd=tmp_path, env=script_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    first = next(line for line in done.stderr.splitlines() if line.strip())
    assert first.startswith("error: the accelerate config asks for FSDP, which accelerate runs on GPUs only"), done.stderr[-2000:]
    assert "RuntimeError" not in done.stderr
    assert not (tmp_path / "out").exists()


def torchrun_two(cwd, args, fsdp: bool):
    """train_video_ip2p.py in two CPU processes: DDP, or FSDP through the patched accelerate of tests/fsdp_on_cpu."""
    env = script_env(cwd, FSDP_ON_CPU="1", PYTHONPATH=str(REPO / "tests" / "fsdp_on_cpu")) if fsdp else script_env(cwd)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
                           str(REPO / "train_video_ip2p.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def test_fsdp_patched_onto_cpu_trains_validates_and_resumes_to_the_ema_weights_of_ddp(tmp_path, tiny_model, clips):
    """Two processes, fp32, EMA: between steps each process holds a flat 1-D shard of every wrapped unit. The
    EMA averages the weights gathered whole (it failed on the shards' shapes), validation and the saved
    pipeline use a plain copy (the unwrapped module ran on shards), and the run resumes from FSDP's own
    checkpoint to the weights DDP trains without a break."""
    ema = ["--use_ema", "--num_validation_images", "1"]
    torchrun_two(tmp_path, train_args(tiny_model, clips, "ddp", "--use_ema"), fsdp=False)
    whole = torchrun_two(tmp_path, train_args(tiny_model, clips, "fsdp", *ema), fsdp=True)
    assert "UNet weights identical" not in whole.stdout  # the DDP check of replicas, which shards would fail
    assert (tmp_path / "fsdp/checkpoint-2/pytorch_model_fsdp.bin").is_file()  # FSDP's checkpoint, not DDP's
    assert list((tmp_path / "fsdp/validation").rglob("*.png")), "no validation image under FSDP"
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "fsdp/checkpoint-2", tmp_path / "resumed/checkpoint-2")
    resumed = torchrun_two(tmp_path, train_args(tiny_model, clips, "resumed", *ema, "--resume_from_checkpoint", "latest"), fsdp=True)
    assert "at step 2" in resumed.stdout

    base = load_file(str(tiny_model / UNET_FILE))
    reference = load_file(str(tmp_path / "ddp" / UNET_FILE))
    moved = max((reference[k] - base[k]).abs().max().item() for k in base if base[k].shape == reference[k].shape)
    assert moved > 1e-4  # the EMA moved: agreeing below means agreeing on the updates and their averages
    for run in ("fsdp", "resumed"):
        weights = load_file(str(tmp_path / run / UNET_FILE))
        assert weights.keys() == reference.keys()
        difference = max((weights[k] - reference[k]).abs().max().item() for k in reference)
        assert difference < 1e-6, (run, difference)


@pytest.mark.parametrize("plugin, named", [(dict(fsdp_version=2, use_orig_params=True), "fsdp_version: 1"),
                                           (dict(fsdp_version=1, use_orig_params=False), "fsdp_use_orig_params: true")])
def test_fsdp_settings_the_trainer_cannot_train_with_are_refused_naming_the_setting(plugin, named):
    """FSDP 2 holds DTensors and without use_orig_params only flat parameters exist: the EMA and the
    saved weights need the UNet's own parameters (the accelerate state is a stand-in: no GPU here)."""
    accelerator = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=SimpleNamespace(**plugin)))
    with pytest.raises(UserError, match=named):
        check_fsdp_settings(accelerator)
    check_fsdp_settings(SimpleNamespace(state=SimpleNamespace(fsdp_plugin=SimpleNamespace(fsdp_version=1, use_orig_params=True))))


@pytest.mark.parametrize("engine", ["FSDP", "DEEPSPEED"])
def test_cuda_graph_accumulation_under_a_sharding_engine_is_refused_naming_the_way_out(engine):
    """The trainer's own .grad buffers keep accumulated gradients out of CUDA graph memory; FSDP and DeepSpeed
    keep theirs elsewhere (the accelerator is a stand-in: no GPU here)."""
    from accelerate.utils import DistributedType

    accelerator = SimpleNamespace(distributed_type=DistributedType[engine])
    flags = dict(torch_compile=True, torch_compile_mode="reduce-overhead", gradient_accumulation_steps=2)
    with pytest.raises(UserError, match=f"not under {engine}: use --torch_compile_mode default, or --gradient_accumulation_steps 1"):
        check_cuda_graph_accumulation(accelerator, SimpleNamespace(**flags))
    check_cuda_graph_accumulation(accelerator, SimpleNamespace(**{**flags, "gradient_accumulation_steps": 1}))
    check_cuda_graph_accumulation(SimpleNamespace(distributed_type=DistributedType.MULTI_GPU), SimpleNamespace(**flags))
