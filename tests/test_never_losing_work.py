"""Issue 27: a careless or hurried user loses no files and gets no silent
wrong result: tools replace only folders they wrote, the trainer checks its
output folder, checkpoints are replaced and pruned safely, damaged ones are
named, and bad values end in one line."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import logged_losses, numbered_clip_root, run_script, train_video
from ip2p.shared.atomic_dir import OWNER_FILE, atomic_output_dir, remove_stale_staging
from ip2p.shared.cli import UserError


def tree_digest(folder: Path) -> dict:
    """Every file under ``folder`` by relative path, with its content's hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(done: subprocess.CompletedProcess, start: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(start), done.stderr[-2000:]


def dead_pid() -> int:
    """A process id that belonged to a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ----------------------------------------------------------------------------- tools that write folders


def test_a_users_raw_root_is_not_replaced_by_create_mini_data(tmp_path):
    numbered_clip_root(tmp_path / "myraw")
    (tmp_path / "myraw/NOTES.md").write_text("my notes")
    before = tree_digest(tmp_path / "myraw")
    done = run_script("create_mini_data.py", "--output-dir", "myraw", cwd=tmp_path)
    one_line_error(done, "error: myraw is a non-empty folder that create_mini_data.py did not write")
    assert tree_digest(tmp_path / "myraw") == before
    done = run_script("create_mini_data.py", "--output-dir", "myraw", "--overwrite", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "myraw" / OWNER_FILE).read_text())["written_by"] == "create_mini_data.py"


def test_our_own_output_is_replaced_but_not_with_a_users_additions(tmp_path):
    assert run_script("create_mini_data.py", "--output-dir", "raw", cwd=tmp_path).returncode == 0
    assert run_script("create_mini_data.py", "--output-dir", "raw", "--seed", 1, cwd=tmp_path).returncode == 0  # ours: replaced
    done = run_script("make_dataset.py", "--data-root", "raw", "--output-dir", "processed", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (tmp_path / "processed/NOTES.md").write_text("what I found")
    (tmp_path / "processed/analysis").mkdir()
    (tmp_path / "processed/analysis/plot.txt").write_text("x")
    before = tree_digest(tmp_path / "processed")
    done = run_script("make_dataset.py", "--data-root", "raw", "--output-dir", "processed", cwd=tmp_path)
    one_line_error(done, "error: processed holds NOTES.md, analysis that make_dataset.py did not write")
    assert tree_digest(tmp_path / "processed") == before


@pytest.mark.parametrize("script, flags", [
    ("download_model.py", ["--tiny", "--local-dir"]),
    ("make_video_model.py", ["--output-dir"]),
])
def test_a_trained_run_is_not_replaced_by_a_model_tool(tmp_path, tiny_model, script, flags):
    run = tmp_path / "RUN"
    (run / "checkpoint-20").mkdir(parents=True)
    (run / "checkpoint-20/model.safetensors").write_bytes(b"weights")
    (run / "model_index.json").write_text("{}")
    (run / "training_args.json").write_text("{}")
    before = tree_digest(run)
    extra = ["--base", tiny_model] if script == "make_video_model.py" else []
    done = run_script(script, *flags, run, *extra, cwd=tmp_path)
    one_line_error(done, f"error: {run} is a non-empty folder that {script} did not write")
    assert tree_digest(run) == before


def test_another_tools_output_is_refused_by_name(tmp_path):
    assert run_script("create_mini_data.py", "--output-dir", "raw", "--test-video", cwd=tmp_path).returncode == 0
    shutil.copytree(tmp_path / "raw", tmp_path / "copy")
    done = run_script("prepare_test_data.py", "--data-root", "raw", "--output-dir", "copy", cwd=tmp_path)
    one_line_error(done, "error: ")
    assert "copy was written by create_mini_data.py, not prepare_test_data.py" in done.stderr


def test_staging_folders_of_a_killed_run_are_cleaned_and_a_half_swap_is_undone(tmp_path):
    final = tmp_path / "out"
    stale = tmp_path / f".out.partial-{dead_pid()}"
    stale.mkdir()
    (stale / "junk").write_bytes(os.urandom(1024))
    live = tmp_path / f".out.partial-{os.getpid()}-elsewhere"  # not ours to judge: no pid suffix of a dead process
    live.mkdir()
    with atomic_output_dir(final, "test-tool") as staging:
        (staging / "a.txt").write_text("new")
    assert not stale.exists() and live.exists() and (final / "a.txt").read_text() == "new"
    # Killed between renaming the old output aside and renaming the new one in: the old comes back.
    retired = tmp_path / f".out.old-{dead_pid()}"
    final.rename(retired)
    assert remove_stale_staging(final) == [] and (final / "a.txt").read_text() == "new" and not retired.exists()


def test_atomic_output_dir_replaces_only_its_own_tools_output(tmp_path):
    with atomic_output_dir(tmp_path / "out", "tool-a") as staging:
        (staging / "x").write_text("1")
    with pytest.raises(UserError, match="was written by tool-a, not tool-b"):
        with atomic_output_dir(tmp_path / "out", "tool-b"):
            pass
    with atomic_output_dir(tmp_path / "out", "tool-b", overwrite=True) as staging:
        (staging / "y").write_text("2")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [OWNER_FILE, "y"]


# ----------------------------------------------------------------------------- the trainer's output folder


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model, clips):
    """A 4-step video run with checkpoints at steps 2 and 4 and its final pipeline."""
    work = tmp_path_factory.mktemp("finished_run")
    done = train_video(work, tiny_model, clips / "processed", "run", "--max_train_steps", 4, "--checkpointing_steps", 2,
                       "--seed", 0, "--logging_steps", 1)
    assert done.returncode == 0, done.stderr[-3000:]
    return work / "run"


def test_training_into_the_base_model_is_refused_and_the_model_is_untouched(tmp_path, tiny_model, clips):
    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    before = tree_digest(base)
    for output in (base, base / "runs/one"):
        done = train_video(tmp_path, base, clips / "processed", output, "--max_train_steps", 1)
        one_line_error(done, f"error: --output_dir {output} is inside --pretrained_model_name_or_path")
    assert tree_digest(base) == before


def test_a_new_run_in_a_finished_runs_folder_is_refused_until_asked(tmp_path, tiny_model, clips, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = tree_digest(run)
    done = train_video(tmp_path, tiny_model, clips / "processed", run, "--max_train_steps", 1, "--resolution", 48)
    one_line_error(done, f"error: --output_dir {run} holds an earlier run (checkpoint-2, checkpoint-4, model_index.json)")
    assert tree_digest(run) == before  # training_args.json still describes the weights beside it
    done = train_video(tmp_path, tiny_model, clips / "processed", run, "--max_train_steps", 1, "--overwrite_output_dir")
    assert done.returncode == 0, done.stderr[-3000:]
    superseded = next(run.glob("superseded-*"))
    assert {k: v for k, v in before.items() if k != OWNER_FILE} == tree_digest(superseded)  # moved aside, byte for byte
    assert not list(run.glob("checkpoint-*")) and json.loads((run / "training_args.json").read_text())["max_train_steps"] == 1


def test_overwrite_output_dir_moves_a_run_from_before_the_marker_aside(tmp_path):
    from types import SimpleNamespace

    from ip2p.shared.atomic_dir import read_owner
    from ip2p.training.checkpoints import list_checkpoints
    from ip2p.training.run_folder import check_output_dir, prepare_output_dir

    run = tmp_path / "run"
    (run / "checkpoint-7").mkdir(parents=True)
    (run / "checkpoint-7/training_state.json").write_text(json.dumps({"seed": 0, "global_step": 7}))
    args = SimpleNamespace(output_dir=str(run), pretrained_model_name_or_path=str(tmp_path / "base"), custom_unet_path=None,
                           overwrite_output_dir=True, resume_from_checkpoint=None)
    check_output_dir(args, "train_video_ip2p.py")
    prepare_output_dir(args, "train_video_ip2p.py")
    assert list_checkpoints(run) == []  # latest cannot pick the old run's step 7
    assert (next(run.glob("superseded-*")) / "checkpoint-7/training_state.json").is_file()
    assert read_owner(run)["written_by"] == "train_video_ip2p.py"


def test_a_folder_of_other_files_is_refused_as_output(tmp_path, tiny_model, clips):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/thesis.tex").write_text("chapter 1")
    done = train_video(tmp_path, tiny_model, clips / "processed", "mine", "--max_train_steps", 1)
    one_line_error(done, "error: --output_dir mine is a non-empty folder not a run of this trainer")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.tex"]


def test_bad_training_values_end_in_one_line_and_leave_no_folder(tmp_path, tiny_model, clips):
    for flags, start in ((["--resolution", 63], "train_video_ip2p.py: error: --resolution 63: the VAE works on 8x8"),
                         (["--learning_rate", -1], "train_video_ip2p.py: error: --learning_rate must be above 0")):
        done = train_video(tmp_path, tiny_model, clips / "processed", "out", "--max_train_steps", 1, *flags)
        assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(start), done.stderr[-2000:]
        assert not (tmp_path / "out").exists()


def test_a_raw_clip_root_as_training_data_says_to_run_make_dataset(tmp_path, tiny_model, clips):
    done = train_video(tmp_path, tiny_model, clips / "raw", "out", "--max_train_steps", 1)
    one_line_error(done, f"error: --train_data_dir {clips / 'raw'} is a raw clip root")
    assert "python make_dataset.py --data-root" in done.stderr


# ----------------------------------------------------------------------------- checkpoints


def test_replacing_a_checkpoint_keeps_one_complete_copy_at_every_point(tmp_path):
    from ip2p.training.checkpoints import STATE_FILE, list_checkpoints, remove_partial_checkpoints, replace_checkpoint

    def checkpoint(folder: Path, step: int, mark: str) -> Path:
        folder.mkdir()
        (folder / STATE_FILE).write_text(json.dumps({"seed": 0, "global_step": step}))
        (folder / "mark").write_text(mark)
        return folder

    final = checkpoint(tmp_path / "checkpoint-2", 2, "old")
    replace_checkpoint(checkpoint(tmp_path / ".checkpoint-2.partial", 2, "new"), final)
    assert (final / "mark").read_text() == "new" and not list(tmp_path.glob(".checkpoint-*"))
    # Killed after the old one was renamed aside, before the new one came in: the next run puts the old one back.
    final.rename(tmp_path / ".checkpoint-2.old")
    checkpoint(tmp_path / ".checkpoint-2.partial", 2, "unfinished")
    remove_partial_checkpoints(tmp_path)
    assert list_checkpoints(tmp_path) == [final] and (final / "mark").read_text() == "new"
    assert not list(tmp_path.glob(".checkpoint-*"))


def test_resuming_from_an_older_checkpoint_names_the_later_ones_and_deletes_none(tmp_path, tiny_model, clips, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = tree_digest(run)
    done = train_video(tmp_path, tiny_model, clips / "processed", run, "--max_train_steps", 4, "--checkpointing_steps", 2,
                       "--checkpoints_total_limit", 1, "--resume_from_checkpoint", "checkpoint-2", "--seed", 0)
    one_line_error(done, "error: resuming from checkpoint-2, but checkpoint-4 of a later point exist")
    assert tree_digest(run) == before


def damage(checkpoint: Path, kind: str) -> str:
    """Damage one file of a checkpoint as a kill or a full disk would; returns its name."""
    name = {"weights": "model.safetensors", "optimizer": "optimizer.bin", "random": "random_states_0.pkl",
            "state": "training_state.json"}[kind]
    path = checkpoint / name
    if kind == "state":
        path.write_text("")
    else:
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size // 2)
    return name


@pytest.mark.parametrize("kind", ["weights", "optimizer", "random", "state"])
def test_a_damaged_checkpoint_is_named_and_latest_falls_back(tmp_path, tiny_model, clips, finished_run, kind):
    from ip2p.training.checkpoints import checkpoint_problem, find_checkpoint

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    name = damage(run / "checkpoint-4", kind)
    assert name in checkpoint_problem(run / "checkpoint-4") and checkpoint_problem(run / "checkpoint-2") is None
    # The seed lookup before the models load reads state files only: a damaged one is passed over, big files are not read.
    quiet = find_checkpoint(run, "latest", report=lambda line: None, read_files=False)
    assert quiet == run / ("checkpoint-2" if kind == "state" else "checkpoint-4")
    if kind != "weights":  # one whole run per kind would add minutes; the named-checkpoint path is the same for all
        return
    done = train_video(tmp_path, tiny_model, clips / "processed", run, "--max_train_steps", 5, "--checkpointing_steps", 10,
                       "--resume_from_checkpoint", "checkpoint-4", "--seed", 0)
    one_line_error(done, f"error: --resume_from_checkpoint checkpoint-4: {run / 'checkpoint-4' / name} is damaged")
    damaged = tree_digest(run / "checkpoint-4")
    done = train_video(tmp_path, tiny_model, clips / "processed", run, "--max_train_steps", 3, "--checkpointing_steps", 10,
                       "--resume_from_checkpoint", "latest", "--seed", 0)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"skipping {run / 'checkpoint-4'}: {run / 'checkpoint-4' / name} is damaged" in done.stdout
    assert f"resumed from {run / 'checkpoint-2'} at step 2" in done.stdout
    assert tree_digest(run / "checkpoint-4.damaged") == damaged  # moved aside, not deleted


def test_resuming_with_a_new_learning_rate_trains_with_it(tmp_path, tiny_model, clips, finished_run):
    from benchmarks.plot_loss import read_scalars

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "checkpoint-4")
    done = train_video(tmp_path, tiny_model, clips / "processed", run, "--max_train_steps", 4, "--checkpointing_steps", 10,
                       "--resume_from_checkpoint", "latest", "--seed", 0, "--learning_rate", 2e-4, "--logging_steps", 1)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed with this run's settings, not the checkpoint's: learning rate 5e-05 -> 0.0002" in done.stdout
    steps, rates = read_scalars(run / "logs", "train/learning_rate")
    assert dict(zip(steps.tolist(), rates.tolist()))[3] == pytest.approx(2e-4)
    assert json.loads((run / "training_args.json").read_text())["learning_rate"] == 2e-4
    assert logged_losses(run)  # the run logged its steps


# ----------------------------------------------------------------------------- prediction and evaluation


def test_predict_replaces_its_own_earlier_output_whole(tmp_path, video_model, clips):
    clip = clips / "raw/val/move_object/video_0"
    for frames in (3, 1):
        done = run_script("predict.py", "--model", video_model, "--video", clip, "--instruction", "moving it",
                          "--num-future-frames", frames, "--num-inference-steps", 1, "--output-dir", "pred", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == [OWNER_FILE, "prediction.png", "strip.png"]


def test_predict_says_when_the_model_sees_only_the_last_frame(tmp_path, tiny_model, clips):
    done = run_script("predict.py", "--model", tiny_model, "--video", clips / "raw/val/move_object/video_0",
                      "--instruction", "moving it", "--num-inference-steps", 1, "--output-dir", "pred", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "is a single-image InstructPix2Pix model (UNet in_channels 8): it sees only the last observed frame" in done.stderr


@pytest.mark.parametrize("flag", ["--max-samples", "--batch-size"])
def test_evaluate_refuses_zero_counts_and_writes_nothing(tmp_path, video_model, clips, flag):
    done = run_script("evaluate.py", "--model", video_model, "--data", clips / "processed", flag, 0, "--output-dir", "ev",
                      cwd=tmp_path)
    assert done.returncode == 2 and f"argument {flag}: must be at least 1, got 0" in done.stderr
    assert not (tmp_path / "ev").exists()


# ----------------------------------------------------------------------------- import and demo


def test_import_refuses_two_videos_that_become_one_clip_folder(tmp_path):
    from test_import_videos import ssv2_entry, write_video

    write_video(tmp_path / "videos/Clip-1.webm", 24)
    write_video(tmp_path / "videos/clip_1.webm", 24)
    template = "Pushing [something] from left to right"
    (tmp_path / "labels.json").write_text(json.dumps([ssv2_entry("Clip-1", template, "a cup"), ssv2_entry("clip_1", template, "a box")]))
    done = run_script("import_videos.py", "--videos", "videos", "--labels", "labels.json", "--output-dir", "raw", cwd=tmp_path)
    one_line_error(done, "error: ")
    assert "Clip-1.webm and" in done.stderr and "clip_1.webm would both be written to train/" in done.stderr
    assert not (tmp_path / "raw").exists()


def test_demo_keeps_only_the_frames_it_uses_and_bounds_an_upload(tmp_path):
    from test_import_videos import write_video

    from ip2p.data.video_import import decode_frames
    from ip2p.evaluation.demo_app import MAX_IMAGES_FACTOR, observed_frames

    write_video(tmp_path / "clip.webm", 30)
    kept = decode_frames(tmp_path / "clip.webm", 64, keep_last=5)
    everything = decode_frames(tmp_path / "clip.webm", 64)
    assert len(kept) == 5 and len(everything) == 30
    assert [frame.tobytes() for frame in kept] == [frame.tobytes() for frame in everything[-5:]]
    images = []
    for index in range(2 * MAX_IMAGES_FACTOR + 1):
        everything[0].save(tmp_path / f"{index:02d}.png")
        images.append(str(tmp_path / f"{index:02d}.png"))
    with pytest.raises(UserError, match="9 images were uploaded; upload the last 2 frames"):
        observed_frames(None, images, 2, 32)
    assert len(observed_frames(None, images[:8], 2, 32)) == 2


@pytest.mark.parametrize("script", ["learn_synthetic.sh", "transfer.sh"])
def test_benchmark_scripts_refuse_an_output_folder_they_did_not_write(tmp_path, script):
    """Each benchmark starts by deleting OUT/seed-N; a user's folder there survives, with one line."""
    mine = tmp_path / "out/seed-0"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes")
    before = tree_digest(tmp_path / "out")
    done = subprocess.run(["bash", str(Path(__file__).resolve().parents[1] / "benchmarks" / script), "0"],
                          env=dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=sys.executable), capture_output=True,
                          text=True, timeout=120)
    one_line_error(done, f"error: {mine} holds files that {script} did not write; nothing was deleted")
    assert tree_digest(tmp_path / "out") == before and not done.stdout  # no stage started


@pytest.mark.parametrize("setting, message", [("FOLDS=water", "error: FOLDS: water is not one of KINDS (easy hard physics)"),
                                              ("KINDS=easy", "error: KINDS=easy: name at least two of easy, hard, physics")])
def test_transfer_refuses_unknown_folds_and_kinds_before_writing(tmp_path, setting, message):
    name, value = setting.split("=")
    done = subprocess.run(["bash", str(Path(__file__).resolve().parents[1] / "benchmarks/transfer.sh"), "0"],
                          env=dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=sys.executable, **{name: value}),
                          capture_output=True, text=True, timeout=120)
    one_line_error(done, message)
    assert not (tmp_path / "out").exists() and not done.stdout
