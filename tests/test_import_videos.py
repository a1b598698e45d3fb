"""import_videos.py: video files and label files in, the numbered raw layout out."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import run_script


def write_video(path: Path, num_frames: int, codec: str = "libvpx-vp9", size=(64, 48), rate: int = 12) -> None:
    """Frame i is a flat grey of level 6 * i + 20: a frame's index can be read back from its mean."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(num_frames):
            pixels = np.full((size[1], size[0], 3), 6 * index + 20, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def frame_index(path: Path) -> int:
    return round((np.asarray(Image.open(path).convert("L"), dtype=np.float32).mean() - 20) / 6)


def ssv2_entry(video_id: str, template: str, thing: str) -> dict:
    return {"id": video_id, "label": template.replace("[something]", thing), "template": template, "placeholders": [thing]}


@pytest.fixture(scope="module")
def ssv2(tmp_path_factory) -> Path:
    """An SSv2-shaped folder: VP9 .webm named by id, train and validation label files, one H.264 .mp4."""
    root = tmp_path_factory.mktemp("ssv2")
    write_video(root / "videos/101.webm", 30)
    write_video(root / "videos/102.webm", 24)
    write_video(root / "videos/201.mp4", 26, codec="libx264")
    (root / "train.json").write_text(json.dumps([ssv2_entry("101", "Dropping [something] onto [something]", "a pen"),
                                                 ssv2_entry("102", "Pushing [something] from left to right", "a cup")]))
    (root / "validation.json").write_text(json.dumps([ssv2_entry("201", "Pushing [something] from left to right", "a box")]))
    return root


def test_ssv2_videos_become_the_numbered_layout_that_make_dataset_reads(ssv2, tmp_path):
    done = run_script("import_videos.py", "--videos", ssv2 / "videos", "--labels", ssv2 / "train.json",
                      "--val-labels", ssv2 / "validation.json", "--output-dir", "raw", "--max-side", 32, "--num-workers", 2,
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote 2 training and 1 held-out clip(s) of 21 frames" in done.stdout
    metadata = {e["video_path"]: e for e in json.loads((tmp_path / "raw/metadata.json").read_text())}
    assert sorted(metadata) == ["train/dropping_something_onto_something/101", "train/pushing_something_from_left_to_right/102",
                                "val/pushing_something_from_left_to_right/201"]
    dropping = metadata["train/dropping_something_onto_something/101"]
    assert dropping["instruction"] == "Dropping a pen onto a pen" and dropping["task_type"] == "dropping_something_onto_something"
    for video_path, total in (("train/dropping_something_onto_something/101", 30), ("val/pushing_something_from_left_to_right/201", 26)):
        folder = tmp_path / "raw" / video_path
        assert sorted(p.name for p in folder.iterdir()) == [f"{i:02d}.jpg" for i in range(21)]
        # The last 21 decoded frames, in order, at the native rate (nothing dropped or repeated), longer side 32.
        assert [frame_index(folder / f"{i:02d}.jpg") for i in range(21)] == list(range(total - 21, total))
        assert Image.open(folder / "00.jpg").size == (32, 24)
    built = run_script("make_dataset.py", "--data-root", "raw", "--output-dir", "processed", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    # Re-importing replaces its own output; a raw root of the user's own is never replaced.
    again = run_script("import_videos.py", "--videos", ssv2 / "videos", "--labels", ssv2 / "train.json",
                       "--val-labels", ssv2 / "validation.json", "--output-dir", "raw", "--max-side", 32, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/metadata.json").write_text('[{"video_path": "train/a/v", "instruction": "x", "task_type": "a"}]')
    refused = run_script("import_videos.py", "--videos", ssv2 / "videos", "--labels", ssv2 / "train.json",
                         "--val-labels", ssv2 / "validation.json", "--output-dir", "mine", cwd=tmp_path)
    assert refused.returncode == 2 and "did not write" in refused.stderr
    assert (tmp_path / "mine/metadata.json").read_text().startswith('[{"video_path": "train/a/v"')


def test_window_policies_and_a_generic_csv(ssv2, tmp_path):
    (tmp_path / "labels.csv").write_text("video,instruction,task_type\n101.webm,drop the pen,drop\n")
    middle = run_script("import_videos.py", "--videos", ssv2 / "videos", "--labels", tmp_path / "labels.csv", "--output-dir",
                        "middle", "--window", "middle", "--num-frames", 22, "--skip-invalid", cwd=tmp_path)
    assert middle.returncode == 0, middle.stderr
    (entry,) = json.loads((tmp_path / "middle/metadata.json").read_text())
    assert entry["video_path"] == "train/drop/101_webm" and entry["instruction"] == "drop the pen" and entry["first_frame"] == 4
    assert frame_index(tmp_path / "middle/train/drop/101_webm/00.jpg") == 4 and (tmp_path / "middle/train/drop/101_webm/21.jpg").is_file()
    # The two unlabelled videos are reported, not imported.
    assert {Path(r["video"]).name for r in json.loads((tmp_path / "middle/skipped_videos.json").read_text())} == {"102.webm", "201.mp4"}
    strided = run_script("import_videos.py", "--videos", ssv2 / "videos", "--labels", tmp_path / "labels.csv", "--output-dir",
                         "strided", "--window", "stride:4", "--skip-invalid", cwd=tmp_path)
    assert strided.returncode == 0, strided.stderr
    starts = sorted(e["first_frame"] for e in json.loads((tmp_path / "strided/metadata.json").read_text()))
    assert starts == [0, 4, 8]  # 30 frames: windows of 21 starting every 4 frames
    bad = run_script("import_videos.py", "--videos", ssv2 / "videos", "--labels", tmp_path / "labels.csv", "--window", "every",
                     "--output-dir", "x", cwd=tmp_path)
    assert bad.returncode == 2 and "--window 'every'" in bad.stderr and "Traceback" not in bad.stderr


def test_bad_videos_and_labels_are_listed_and_nothing_is_written(tmp_path):
    videos = tmp_path / "videos"
    write_video(videos / "1.webm", 25)
    write_video(videos / "2.webm", 10)  # too short
    write_video(videos / "3.webm", 40)
    data = (videos / "3.webm").read_bytes()
    (videos / "3.webm").write_bytes(data[: len(data) // 3])  # truncated
    (videos / "4.webm").write_bytes(b"not a video at all")
    write_video(videos / "5.webm", 22)  # no label
    labels = [ssv2_entry(str(i), "Holding [something]", "a pen") for i in (1, 2, 3, 4, 6)]  # 6: no video
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    done = run_script("import_videos.py", "--videos", videos, "--labels", tmp_path / "labels.json", "--output-dir", "raw",
                      "--num-workers", 2, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("invalid video")]
    assert len(lines) == 5, done.stderr
    text = "\n".join(lines)
    assert "2.webm: has 10 frames, fewer than --num-frames 21" in text
    assert "3.webm: is truncated" in text and "4.webm: cannot be decoded" in text and "5.webm: video without a label" in text
    assert "6: labelled, but no video file" in text
    assert not (tmp_path / "raw").exists() and not list(tmp_path.glob(".raw*"))
    # --skip-invalid keeps the good video and reports the rest.
    done = run_script("import_videos.py", "--videos", videos, "--labels", tmp_path / "labels.json", "--output-dir", "raw",
                      "--skip-invalid", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [e["video_path"] for e in json.loads((tmp_path / "raw/metadata.json").read_text())] == ["train/holding_something/1"]
    assert len(json.loads((tmp_path / "raw/skipped_videos.json").read_text())) == 5
    # A malformed label file is one line.
    (tmp_path / "broken.json").write_text('[{"id": "1", "label": ')
    done = run_script("import_videos.py", "--videos", videos, "--labels", tmp_path / "broken.json", "--output-dir", "raw2",
                      cwd=tmp_path)
    assert done.returncode == 2 and "broken.json: malformed JSON" in done.stderr and "Traceback" not in done.stderr
