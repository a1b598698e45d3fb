"""make_dataset.py and create_mini_data.py, run as a user runs them."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import numbered_clip_root, run_script, write_clip, write_metadata
from ip2p.data.processed import load_processed_dataset


def tree_digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def build(root: Path, out: Path, *extra, cwd: Path):
    return run_script("make_dataset.py", "--data-root", root, "--output-dir", out, *extra, cwd=cwd)


def test_create_mini_data_is_the_original_layout_and_deterministic(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        done = run_script("create_mini_data.py", "--output-dir", name, "--seed", seed, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    frames = sorted((tmp_path / "a/train/video_test_01").iterdir())
    assert [f.name for f in frames] == [f"{i:02d}.jpg" for i in range(21)]
    assert Image.open(frames[0]).size == (128, 128)
    metadata = json.loads((tmp_path / "a/metadata.json").read_text())
    assert metadata == [{"video_path": "train/video_test_01", "instruction": metadata[0]["instruction"], "task_type": "drop_object"}]
    assert metadata[0]["instruction"].strip()
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "c")
    # The clip moves: the last two frames differ.
    assert not np.array_equal(np.asarray(Image.open(frames[-1])), np.asarray(Image.open(frames[-2])))


@pytest.mark.parametrize("script, defaults", [
    ("create_mini_data.py", ["dataset_mini", "21", "128"]),
    ("make_dataset.py", ["dataset_mini", "processed_dataset_seq", "20", "0.1"]),
    ("prepare_test_data.py", ["dataset_root"]),
    ("quick_test.py", ["processed_dataset_seq"]),
    ("download_model.py", ["timbrooks/instruct-pix2pix", "models/instruct-pix2pix", "main"]),
])
def test_help_shows_every_default(tmp_path, script, defaults):
    done = run_script(script, "--help", cwd=tmp_path)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps long help lines
    for value in defaults:
        assert f"default: {value}" in text


def test_mini_data_becomes_the_spec_dataset(tmp_path):
    assert run_script("create_mini_data.py", cwd=tmp_path).returncode == 0
    done = run_script("make_dataset.py", cwd=tmp_path)  # all defaults, as the README runs it
    assert done.returncode == 0, done.stderr
    assert "kept 1 samples, skipped 0" in done.stdout
    dataset = load_processed_dataset(tmp_path / "processed_dataset_seq")
    assert set(dataset.splits) == {"train", "test"}
    assert len(dataset.splits["train"]) == 1 and len(dataset.splits["test"]) == 1  # one sample still gives both splits
    features = dataset.splits["train"].features
    assert features["input_frames"].length == 20 and features["input_frames"].feature.dtype == "string"
    assert features["edit_prompt"].dtype == "string" and type(features["edited_image"]).__name__ == "Image"
    row = dataset.splits["train"][0]
    assert row["input_frames"] == [f"train/video_test_01/{i:02d}.jpg" for i in range(20)]  # relative, oldest first
    assert row["edit_prompt"] == "dropping a pen onto the table"
    target = np.asarray(Image.open(tmp_path / "dataset_mini/train/video_test_01/20.jpg").convert("RGB"))
    assert np.array_equal(np.asarray(row["edited_image"].convert("RGB")), target)


def test_val_folder_becomes_the_test_split(tmp_path):
    numbered_clip_root(tmp_path / "raw")
    done = build(tmp_path / "raw", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dataset = load_processed_dataset(tmp_path / "out")
    assert len(dataset.splits["train"]) == 3
    assert [r["input_frames"][0] for r in dataset.splits["test"]] == ["val/move_object/video_0/00.jpg"]
    assert dataset.source["task_types"] == {"drop_object": 1, "cover_object": 1, "move_object": 2}


def test_held_out_fraction_is_seeded(tmp_path):
    numbered_clip_root(tmp_path / "raw", train=["move_object"] * 10, val=())
    splits = {}
    for seed in (0, 0, 1, 2, 3):
        out = tmp_path / f"out_{seed}"
        assert build(tmp_path / "raw", out, "--val-fraction", 0.2, "--seed", seed, cwd=tmp_path).returncode == 0
        test = load_processed_dataset(out).splits["test"]
        splits.setdefault(seed, []).append(sorted(r["input_frames"][0] for r in test))
    assert all(len(s[0]) == 2 for s in splits.values())
    assert splits[0][0] == splits[0][1]
    assert len({tuple(s[0]) for s in splits.values()}) > 1


def test_observe_layout_uses_label_and_the_frames_next_to_the_target(tmp_path):
    root = tmp_path / "raw"
    for index, task in enumerate(["drop_object", "cover_object"]):
        folder = root / "train" / task / f"clip_{index}"
        write_clip(folder, num_frames=22, name=lambda i: f"observe_{i:02d}.jpg")  # 22 observed: the last 20 are used
        write_clip(folder, num_frames=1, seed=9, name=lambda i: "target.jpg")
        (folder / "label.txt").write_text(f"covering thing {index}\n")
    done = build(root, tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dataset = load_processed_dataset(tmp_path / "out")
    rows = list(dataset.splits["train"]) + list(dataset.splits["test"])
    assert sorted(r["edit_prompt"] for r in rows) == ["covering thing 0", "covering thing 1"]
    first = min(rows, key=lambda r: r["edit_prompt"])["input_frames"]
    assert first[0] == "train/drop_object/clip_0/observe_02.jpg" and first[-1] == "train/drop_object/clip_0/observe_21.jpg"
    assert dataset.source["task_types"] == {"drop_object": 1, "cover_object": 1}


def test_longer_numbered_clip_predicts_its_last_frame(tmp_path):
    root = tmp_path / "raw"
    write_clip(root / "train/video_a", num_frames=25)
    write_metadata(root, [{"video_path": "train/video_a", "instruction": "moving a cup", "task_type": "move_object"}])
    assert build(root, tmp_path / "out", cwd=tmp_path).returncode == 0
    row = load_processed_dataset(tmp_path / "out").splits["train"][0]
    assert row["input_frames"][0].endswith("/04.jpg") and row["input_frames"][-1].endswith("/23.jpg")
    assert row["edited_image"].size == (32, 32)


def test_data_root_and_dataset_moved_together_still_resolve(tmp_path):
    numbered_clip_root(tmp_path / "project/raw")
    assert build(tmp_path / "project/raw", tmp_path / "project/processed", cwd=tmp_path).returncode == 0
    shutil.move(str(tmp_path / "project"), str(tmp_path / "elsewhere"))  # like copying both to another machine
    done = run_script("quick_test.py", "--dataset", tmp_path / "elsewhere/processed", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"frames resolved under {tmp_path / 'elsewhere/raw'}" in done.stdout
    # Only the processed folder moved on another machine: say how to point at the frames.
    shutil.move(str(tmp_path / "elsewhere/raw"), str(tmp_path / "frames_now_here"))
    done = run_script("quick_test.py", "--dataset", tmp_path / "elsewhere/processed", cwd=tmp_path)
    assert done.returncode != 0 and "--data-root" in done.stderr and "Traceback" not in done.stderr
    done = run_script("quick_test.py", "--dataset", tmp_path / "elsewhere/processed", "--data-root", tmp_path / "frames_now_here", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_rerun_replaces_the_output_without_stale_rows(tmp_path):
    entries = numbered_clip_root(tmp_path / "raw")
    assert build(tmp_path / "raw", tmp_path / "out", cwd=tmp_path).returncode == 0
    write_clip(tmp_path / "raw/train/move_object/video_9", seed=42)
    entries.append({"video_path": "train/move_object/video_9", "instruction": "a new clip", "task_type": "move_object"})
    write_metadata(tmp_path / "raw", entries)
    done = build(tmp_path / "raw", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    prompts = [r["edit_prompt"] for r in load_processed_dataset(tmp_path / "out").splits["train"]]
    assert "a new clip" in prompts and len(prompts) == 4
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_failed_rerun_leaves_the_previous_output_untouched(tmp_path):
    numbered_clip_root(tmp_path / "raw")
    assert build(tmp_path / "raw", tmp_path / "out", cwd=tmp_path).returncode == 0
    before = tree_digest(tmp_path / "out")
    (tmp_path / "raw/train/drop_object/video_0/03.jpg").write_bytes(b"not a jpeg")
    done = build(tmp_path / "raw", tmp_path / "out", cwd=tmp_path)
    assert done.returncode != 0
    assert tree_digest(tmp_path / "out") == before
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_refuses_to_overwrite_data_or_unrelated_folders(tmp_path):
    numbered_clip_root(tmp_path / "raw")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes/thesis.txt").write_text("do not delete")
    for out in (tmp_path / "raw", tmp_path / "notes", tmp_path):
        done = build(tmp_path / "raw", out, cwd=tmp_path)
        assert done.returncode != 0 and "error:" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "notes/thesis.txt").read_text() == "do not delete"
    assert (tmp_path / "raw/metadata.json").is_file()


def corrupt(root, entries):
    (root / entries[0]["video_path"] / "05.jpg").write_bytes(b"\xff\xd8\xff garbage")


def truncate(root, entries):
    frame = root / entries[0]["video_path"] / "05.jpg"
    frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 2])


def too_few(root, entries):
    for index in range(15, 21):
        (root / entries[0]["video_path"] / f"{index:02d}.jpg").unlink()


def empty_instruction(root, entries):
    entries[0]["instruction"] = "  "
    write_metadata(root, entries)


def escapes_root(root, entries):
    write_clip(root.parent / "outside/video_x")
    entries[0]["video_path"] = "../outside/video_x"
    write_metadata(root, entries)


def duplicate(root, entries):
    write_metadata(root, entries + [dict(entries[0])])


def missing_frame(root, entries):
    (root / entries[0]["video_path"] / "07.jpg").unlink()


def mixed_sizes(root, entries):
    Image.new("RGB", (64, 64)).save(root / entries[0]["video_path"] / "09.jpg")


BAD_INPUTS = [
    (missing_frame, "missing frame 07"),
    (corrupt, "corrupt or unreadable frame train/drop_object/video_0/05.jpg"),
    (truncate, "corrupt or unreadable frame train/drop_object/video_0/05.jpg"),
    (too_few, "too few frames: 15, need 21"),
    (empty_instruction, "empty or missing 'instruction'"),
    (escapes_root, "video_path escapes the data root"),
    (duplicate, "duplicate entry #4 (first listed as entry #0)"),
    (mixed_sizes, "frame train/drop_object/video_0/09.jpg is 64x64 but earlier frames are 32x32"),
]


@pytest.mark.parametrize("damage, reason", BAD_INPUTS, ids=[d.__name__ for d, _ in BAD_INPUTS])
def test_bad_sample_stops_the_build_or_is_reported_when_skipped(tmp_path, damage, reason):
    root = tmp_path / "raw"
    entries = numbered_clip_root(root)
    damage(root, entries)
    sample = "../outside/video_x" if damage is escapes_root else "train/drop_object/video_0"

    done = build(root, tmp_path / "out", cwd=tmp_path)
    assert done.returncode != 0
    bad_lines = [line for line in done.stderr.splitlines() if line.startswith("invalid sample")]
    assert len(bad_lines) == 1 and bad_lines[0].startswith(f"invalid sample {sample}: {reason}")
    assert "--skip-invalid" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()

    done = build(root, tmp_path / "out", "--skip-invalid", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    kept = 4 if damage is duplicate else 3
    assert f"kept {kept} samples, skipped 1" in done.stdout
    report = json.loads((tmp_path / "out/skipped_samples.json").read_text())
    assert len(report) == 1 and report[0]["sample"] == sample and report[0]["reason"].startswith(reason)
    dataset = load_processed_dataset(tmp_path / "out")
    assert len(dataset.splits["train"]) + len(dataset.splits["test"]) == kept


def test_every_bad_sample_is_listed_not_just_the_first(tmp_path):
    root = tmp_path / "raw"
    entries = numbered_clip_root(root)
    missing_frame(root, entries)
    entries[1]["instruction"] = ""
    write_metadata(root, entries)
    done = build(root, tmp_path / "out", cwd=tmp_path)
    assert done.returncode != 0
    assert "invalid sample train/drop_object/video_0: missing frame 07" in done.stderr
    assert "invalid sample train/cover_object/video_1: empty or missing 'instruction'" in done.stderr
    assert "2 of 4 samples" in done.stderr


def test_observe_layout_problems_name_the_folder(tmp_path):
    root = tmp_path / "raw"
    for name, label in (("good", "pushing a box"), ("no_label", None), ("empty_label", " \n")):
        folder = root / "train/move_object" / name
        write_clip(folder, num_frames=20, name=lambda i: f"observe_{i:02d}.jpg")
        write_clip(folder, num_frames=1, name=lambda i: "target.jpg")
        if label is not None:
            (folder / "label.txt").write_text(label)
    done = build(root, tmp_path / "out", cwd=tmp_path)
    assert done.returncode != 0
    assert "invalid sample train/move_object/no_label: missing label.txt" in done.stderr
    assert "invalid sample train/move_object/empty_label: label.txt is empty" in done.stderr


@pytest.mark.parametrize("skip", [False, True])
def test_malformed_metadata_is_one_clear_line(tmp_path, skip):
    root = tmp_path / "raw"
    numbered_clip_root(root)
    (root / "metadata.json").write_text('[{"video_path": "train/x", "instruction": "a"}\n {"video_path": "b"}]')
    done = build(root, tmp_path / "out", *(["--skip-invalid"] if skip else []), cwd=tmp_path)
    assert done.returncode != 0 and not (tmp_path / "out").exists()
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {root / 'metadata.json'}: malformed JSON at line 2")
    assert "Traceback" not in done.stderr


def test_nothing_valid_is_an_error_even_when_skipping(tmp_path):
    root = tmp_path / "raw"
    write_clip(root / "train/video_a", num_frames=3)
    write_metadata(root, [{"video_path": "train/video_a", "instruction": "x", "task_type": "t"}])
    done = build(root, tmp_path / "out", "--skip-invalid", cwd=tmp_path)
    assert done.returncode != 0 and "no valid samples" in done.stderr and not (tmp_path / "out").exists()


def test_unlisted_clip_folders_are_mentioned(tmp_path):
    root = tmp_path / "raw"
    numbered_clip_root(root)
    write_clip(root / "train/move_object/forgotten")
    done = build(root, tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 frame folder(s) are not listed in metadata.json" in done.stdout and "train/move_object/forgotten" in done.stdout


def test_a_clip_of_a_raw_root_takes_its_instruction_from_the_roots_metadata(tmp_path):
    """predict.py --video on a clip that import_videos.py or create_mini_data.py wrote needs no --instruction."""
    from ip2p.data.raw_data import prediction_clip

    numbered_clip_root(tmp_path / "raw")
    inputs, target, instruction = prediction_clip(tmp_path / "raw/val/move_object/video_0", 20)
    assert instruction == "move object number 0" and len(inputs) == 20 and target.name == "20.jpg"
    (tmp_path / "raw/val/move_object/video_0/label.txt").write_text("a label of its own")
    assert prediction_clip(tmp_path / "raw/val/move_object/video_0", 20)[2] == "a label of its own"
    write_clip(tmp_path / "loose/clip")  # no root above it: the user must give one
    assert prediction_clip(tmp_path / "loose/clip", 20)[2] is None
