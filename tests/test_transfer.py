"""Transfer to kinds never seen: the fallback to flow, choosing its margin, and transfer.sh's merge and table."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, numbered_clip_root, run_script

sys.path.insert(0, str(REPO / "benchmarks"))
import transfer_kinds  # noqa: E402


def test_fallback_keeps_flow_where_the_model_corrects_it_by_less_than_the_margin():
    from ip2p.models.video_pipeline import fall_back_to_flow

    flow, image = torch.zeros(1, 3, 1, 3), torch.full((1, 3, 1, 3), 0.5)
    correction = torch.tensor([[[[0.0, 0.1, 0.9]]]])  # per pixel: none, at the margin, far above it
    out = fall_back_to_flow(image, flow, correction, margin=0.1, softness=1e-3)
    torch.testing.assert_close(out[0, :, 0], torch.tensor([[0.0, 0.25, 0.5]] * 3))
    # The output lies between flow and the model's image, whatever the margin.
    loose = fall_back_to_flow(image, flow, correction, margin=0.05, softness=0.1)
    assert ((loose >= 0) & (loose <= 0.5)).all() and loose[0, 0, 0, 2] > loose[0, 0, 0, 0]


def gains(psnr, moving, ssim=0.0, task_psnr=None):
    """``margin_gains``-shaped numbers for one margin: overall, and two task types."""
    task = {"psnr": psnr if task_psnr is None else task_psnr, "ssim": ssim, "moving_psnr": moving}
    return {"overall": {"psnr": psnr, "ssim": ssim, "moving_psnr": moving}, "a": dict(task), "b": dict(task)}


def test_the_margin_chosen_gains_most_among_those_nowhere_behind_flow():
    from ip2p.evaluation.calibration import choose_margin, shortfall

    # 0 gains most overall but is behind flow on moving pixels; 4 and 8 are not (4 within the tolerance); 4 gains more.
    assert choose_margin({0.0: gains(0.9, -0.3), 4.0: gains(0.6, -0.04), 8.0: gains(0.4, 0.1), 32.0: gains(0.0, 0.0)}) == 4.0
    assert choose_margin({0.0: gains(0.9, -0.3), 4.0: gains(0.6, -0.06), 8.0: gains(0.4, 0.1), 32.0: gains(0.0, 0.0)}) == 8.0
    # Equal gains: the larger margin (closer to flow). Behind everywhere: the smallest shortfall.
    assert choose_margin({4.0: gains(0.5, 0.1), 8.0: gains(0.5, 0.1)}) == 8.0
    assert choose_margin({0.0: gains(0.9, -0.3), 4.0: gains(0.6, -0.1, ssim=-0.0005)}) == 4.0
    # A task behind flow counts even when the overall figure is not; SSIM counts in hundredths.
    assert shortfall(gains(0.2, 0.0, task_psnr=-0.2)) == pytest.approx(0.2)
    assert shortfall(gains(0.2, 0.0, ssim=-0.003)) == pytest.approx(0.3)
    assert shortfall(gains(0.2, math.nan)) == 0.0  # nothing moved: no moving-region figure to fall behind on


def test_merge_puts_every_clip_of_each_kind_under_its_kind_and_make_dataset_reads_it(tmp_path):
    first = numbered_clip_root(tmp_path / "first")
    second = numbered_clip_root(tmp_path / "second", train=("roll_object",), val=("roll_object", "drop_object"))
    merged = tmp_path / "merged"
    assert transfer_kinds.merge(merged, {"easy": tmp_path / "first", "physics": tmp_path / "second"}) == 0
    entries = json.loads((merged / "metadata.json").read_text())
    assert [e["task_type"] for e in entries] == [f"easy-{e['task_type']}" for e in first] + [
        f"physics-{e['task_type']}" for e in second]
    for entry, source_root, source in zip(entries, [tmp_path / "first"] * 4 + [tmp_path / "second"] * 3, first + second):
        assert entry["instruction"] == source["instruction"] and entry["video_path"].split("/")[0] == source["video_path"].split("/")[0]
        frames = sorted((merged / entry["video_path"]).iterdir())
        assert [f.read_bytes() for f in frames] == [f.read_bytes() for f in sorted((source_root / source["video_path"]).iterdir())]
    with pytest.raises(transfer_kinds.UserError, match="exists"):
        transfer_kinds.merge(merged, {"easy": tmp_path / "first"})
    done = run_script("make_dataset.py", "--data-root", merged, "--output-dir", tmp_path / "processed", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    from ip2p.data.processed import load_processed_dataset
    dataset = load_processed_dataset(tmp_path / "processed")
    assert (len(dataset.splits["train"]), len(dataset.splits["test"])) == (4, 3)


def scored(task_type: str, model: float, flow: float, copy_last: float, moving=None) -> dict:
    sample = {"sample": "x", "task_type": task_type, "instruction": "x"}
    for row, value in (("model", model), ("flow_extrapolation", flow), ("copy_last", copy_last),
                       ("latent_copy_last", 0.0), ("vae_reconstruction", 0.0)):
        sample.update({f"{row}_psnr": value, f"{row}_ssim": value / 100, f"{row}_moving_psnr": moving})
    return sample


def write_metrics(path: Path, samples) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"samples": samples}))


def test_transfer_table_scores_each_kind_left_out_and_in_kind(tmp_path, capsys):
    # Left out easy: 2 easy clips; in kind: 1 hard clip. Left out hard: 1 hard clip; in kind: 2 easy clips.
    write_metrics(tmp_path / "without-easy/held-out/metrics.json",
                  [scored("drop_object", 30, 29, 25, moving=20), scored("move_object", 32, 31, 27, moving=None)])
    write_metrics(tmp_path / "without-easy/seed-0/eval/metrics.json", [scored("hard-drop_object", 28, 28.5, 24, 18)])
    write_metrics(tmp_path / "without-hard/held-out/metrics.json", [scored("drop_object", 26, 27, 24, 17)])
    write_metrics(tmp_path / "without-hard/seed-0/eval/metrics.json",
                  [scored("easy-drop_object", 33, 29, 25, 22), scored("easy-move_object", 35, 31, 27, 24)])
    assert transfer_kinds.table(tmp_path) == 0
    text = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| easy") or line.startswith("| hard")}
    # easy left out: model 31.00 vs flow 30.00 (+1.00), moving only where defined (20 vs 20 -> +0.00);
    # easy in kind (the model without hard): 34 vs 30, +4.00.
    assert "31.00 / 0.3100 / 20.00" in rows["easy"] and "**+1.00 / +0.0100 / +0.00**" in rows["easy"]
    assert "+4.00 / +0.0400 / +0.00 (without hard)" in rows["easy"]
    assert "**-1.00 / -0.0100 / +0.00**" in rows["hard"] and "-0.50 / -0.0050 / +0.00 (without easy)" in rows["hard"]
    document = json.loads((tmp_path / "table.json").read_text())
    assert document["easy"]["hard"]["model"]["overall"]["psnr"] == 28.0  # the in-kind group, un-prefixed
    assert set(document["hard"]["easy"]["model"]) == {"overall", "drop_object", "move_object"}
    (tmp_path / "without-hard/held-out/metrics.json").unlink()
    with pytest.raises(transfer_kinds.UserError, match="without-hard lacks held-out/metrics.json"):
        transfer_kinds.table(tmp_path)
