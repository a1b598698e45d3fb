"""--cuda_graph_unet on CPU, where no CUDA graph can be recorded: the recording
is a stand-in that keeps what a recorded graph does to memory (the inputs
copied into recorded buffers, the output and the gradients in buffers that
every replay rewrites). The recording itself runs only on a GPU
(benchmarks/cuda_graph_check.py --mode capture, the throughput table's rows)."""

from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType
from safetensors.torch import load_file

from conftest import in_process_accelerate
from ip2p.shared.cli import UserError
from ip2p.training.cuda_graphs import GraphedUNet, check_cuda_graph_unet
from ip2p.training.video_task import parse_video_args


class MockedRecording:
    """Stands in for ``torch.cuda.make_graphed_callables(module, sample_args)``
    with its memory behaviour, and with its autocast: a replay's forward and
    backward run under the autocast of the recording (on CPU here), whatever
    is on at the replay. Counts recordings and replays, and notes the capture
    mode ``torch.cuda.graph`` would record with."""

    def __init__(self):
        self.recordings, self.replays, self.capture_modes = 0, 0, []

    def __call__(self, module, sample_args, allow_unused_input=False):
        self.recordings += 1
        self.capture_modes.append(getattr(torch.cuda.graph, "keywords", {}).get("capture_error_mode", "global"))
        forward, recorded_inputs = module.forward, sample_args
        parameters = [p for p in module.parameters() if p.requires_grad]
        autocast = dict(device_type="cpu", enabled=torch.is_autocast_enabled("cpu"), dtype=torch.get_autocast_dtype("cpu"))
        recorded_output = forward(*recorded_inputs).detach().clone()
        recorded_grads = [torch.zeros_like(p) for p in parameters]
        recording = self

        class Replay(torch.autograd.Function):
            @staticmethod
            def forward(ctx, *inputs):
                recording.replays += 1
                for buffer, value in zip(recorded_inputs, inputs):
                    buffer.copy_(value)
                with torch.enable_grad(), torch.autocast(**autocast):
                    ctx.output = forward(*recorded_inputs)
                recorded_output.copy_(ctx.output)
                return recorded_output.detach()

            @staticmethod
            def backward(ctx, grad):
                with torch.autocast(**autocast):
                    grads = torch.autograd.grad(ctx.output, parameters, grad, allow_unused=allow_unused_input)
                for buffer, value in zip(recorded_grads, grads):
                    buffer.copy_(value if value is not None else torch.zeros_like(buffer))
                # Like the real graph: the parameters' gradients are views of buffers the next replay rewrites.
                return (None,) * len(recorded_inputs) + tuple(buffer.detach() for buffer in recorded_grads)

        module.forward = lambda *inputs: Replay.apply(*inputs, *parameters)
        return module


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, sample, timesteps, encoder_hidden_states):
        return SimpleNamespace(sample=sample * self.weight + timesteps[:, None] + encoder_hidden_states.sum(dim=1, keepdim=True))


def test_graphed_unet_records_once_on_copies_and_replays_only_calls_of_the_recorded_shapes():
    recording = MockedRecording()
    toy = Toy()
    graphed = GraphedUNet(toy, record=recording)
    sample, timesteps, text = torch.ones(2, 3), torch.tensor([1.0, 2.0]), torch.ones(2, 4)
    assert torch.equal(graphed(sample, timesteps, text), torch.tensor([[7.0] * 3, [8.0] * 3]))
    assert torch.equal(sample, torch.ones(2, 3))  # the recording holds copies: the caller's tensors stay the caller's
    assert torch.equal(graphed(torch.full((2, 3), 3.0), timesteps, text), torch.tensor([[11.0] * 3, [12.0] * 3]))
    assert (recording.recordings, recording.replays) == (1, 2)
    # Recorded so that the data loader's pin-memory thread cannot break it; torch.cuda.graph is itself again after.
    assert recording.capture_modes == ["thread_local"] and torch.cuda.graph is torch.cuda.graphs.graph
    smaller = graphed(torch.ones(1, 3), torch.tensor([1.0]), torch.ones(1, 4))  # another batch size: eager
    assert torch.equal(smaller, torch.tensor([[7.0] * 3])) and (recording.recordings, recording.replays) == (1, 2)
    smaller.sum().backward()
    assert toy.weight.grad == 3.0


def test_a_recording_that_fails_ends_in_one_line_naming_the_way_out():
    def refused(module, sample_args, **_):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore detail")

    with pytest.raises(UserError, match=r"could not record the UNet as CUDA graphs \(CUDA error: operation not permitted "
                                        r"when stream is capturing\); train without it"):
        GraphedUNet(Toy(), record=refused)(torch.ones(2, 3), torch.tensor([1.0, 2.0]), torch.ones(2, 4))


def parsed(*flags):
    return parse_video_args(["--pretrained_model_name_or_path", "m", "--train_data_dir", "d", *flags])


@pytest.mark.parametrize("other", ["--torch_compile", "--gradient_checkpointing"])
def test_cuda_graph_unet_with_compile_or_checkpointing_is_refused_when_parsing(other, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parsed("--cuda_graph_unet", other)
    assert exit_info.value.code == 2 and "--cuda_graph_unet" in capsys.readouterr().err


def test_cuda_graph_unet_is_refused_off_one_gpu_naming_the_way_out():
    args = parsed("--cuda_graph_unet")
    one_gpu = dict(device=torch.device("cuda"), distributed_type=DistributedType.NO, num_processes=1)  # a mocked GPU
    check_cuda_graph_unet(SimpleNamespace(**one_gpu), args)
    for other in (dict(device=torch.device("cpu")), dict(distributed_type=DistributedType.MULTI_GPU, num_processes=2),
                  dict(distributed_type=DistributedType.DEEPSPEED)):
        with pytest.raises(UserError, match="one GPU in one process.*--torch_compile_mode reduce-overhead"):
            check_cuda_graph_unet(SimpleNamespace(**{**one_gpu, **other}), args)
    check_cuda_graph_unet(SimpleNamespace(**{**one_gpu, "device": torch.device("cpu")}), parsed())  # not asked for


LEARNING_RATE = 1e-4


def trained_unet(tmp_path, tiny_model, clips, name, precision, *flags) -> dict:
    """The UNet weights a 2-step run with 2 micro-batches a step saves."""
    from ip2p.training.trainer import build_trainer
    from ip2p.training.video_task import video_task

    args = parse_video_args(["--pretrained_model_name_or_path", str(tiny_model), "--train_data_dir", str(clips / "processed"),
                             "--output_dir", str(tmp_path / name), "--resolution", "32", "--train_batch_size", "2",
                             "--gradient_accumulation_steps", "2", "--max_train_steps", "2", "--checkpointing_steps", "100",
                             "--latent_cache_dir", str(tmp_path / "cache"), "--num_validation_images", "0",
                             "--report_to", "none", "--seed", "0", "--mixed_precision", precision,
                             "--learning_rate", str(LEARNING_RATE), *flags])
    with in_process_accelerate():
        folder = build_trainer(args, video_task(args)).run()
    return load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")


def largest_difference(weights: dict, reference: dict) -> float:
    return max((weights[name] - reference[name]).abs().max().item() for name in reference)


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_trainer_with_a_mocked_cuda_graph_unet_saves_the_eager_weights_under_accumulation(tmp_path, tiny_model, clips,
                                                                                           monkeypatch, precision):
    """Two micro-batches a step through the mocked recording: the first one's gradient must survive the second
    replay, which rewrites the graph's gradient memory. The trainer's own .grad buffers keep it; without them
    (the negative control) the saved weights move away from the eager run's. Under bf16 autocast too, the
    recording (with the recording's autocast replayed) saves the eager weights."""
    import ip2p.training.trainer as trainer_module

    eager = trained_unet(tmp_path, tiny_model, clips, "eager", precision)
    recording = MockedRecording()
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", recording)
    monkeypatch.setattr(trainer_module, "check_cuda_graph_unet", lambda accelerator, args: None)  # CPU here
    graphed = trained_unet(tmp_path, tiny_model, clips, "graphed", precision, "--cuda_graph_unet")
    assert recording.recordings == 1 and recording.replays == 4  # 2 steps of 2 micro-batches
    assert largest_difference(graphed, eager) <= 1e-3 * LEARNING_RATE  # the same arithmetic: 0.0 here

    if precision != "no":
        return
    monkeypatch.setattr(trainer_module, "keeps_gradient_buffers", lambda args: False)
    unbuffered = trained_unet(tmp_path, tiny_model, clips, "unbuffered", precision, "--cuda_graph_unet")
    assert largest_difference(unbuffered, eager) > 0.5 * LEARNING_RATE  # AdamW moves a weight about one rate a step


def test_cuda_graph_check_capture_mode_with_a_mocked_recording_agrees_with_eager(tmp_path, tiny_model, clips, monkeypatch,
                                                                                 capsys):
    """The check's capture path, run on CPU through the mocked recording: the graphed side and the eager
    side share one trainer, and the recording's accumulated gradients match the eager ones."""
    import benchmarks.cuda_graph_check as check
    import ip2p.training.trainer as trainer_module

    recording = MockedRecording()
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", recording)
    monkeypatch.setattr(trainer_module, "check_cuda_graph_unet", lambda accelerator, args: None)
    monkeypatch.setattr(check, "can_record", lambda: True)
    with in_process_accelerate():
        code = check.main(["--mode", "capture", "--model", str(tiny_model), "--data", str(clips / "processed"),
                           "--output-dir", str(tmp_path / "capture"), "--resolution", "32", "--batch-size", "1",
                           "--rounds", "3"])
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| CUDA graphs")][-1]
    assert code == 0 and row.endswith("| agrees with eager |"), row
    assert row.startswith("| CUDA graphs of the UNet (--cuda_graph_unet), not compiled, accumulation 2, fp32, NCHW, 32 px")
    assert recording.recordings == 1 and recording.replays == 6  # 3 rounds of 2 micro-batches
