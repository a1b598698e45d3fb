"""Transfer to kinds never seen: the fallback to flow, choosing its margin, and transfer.sh's merge and table."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import REPO, numbered_clip_root, run_script
from ip2p.evaluation.scoring import prediction_file

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
    sample = {"sample": f"val/{task_type}/video_{model}", "task_type": task_type, "instruction": "x"}
    for row, value in (("model", model), ("flow_extrapolation", flow), ("copy_last", copy_last),
                       ("latent_copy_last", 0.0), ("vae_reconstruction", 0.0)):
        sample.update({f"{row}_psnr": value, f"{row}_ssim": value / 100, f"{row}_moving_psnr": moving})
    return sample


def write_json(path: Path, document) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def calibrated(task_type: str, flow: float, by_margin: dict) -> dict:
    """A calibration.json sample: flow's PSNR and the model's at each margin (SSIM = PSNR / 100, moving = PSNR - 10)."""
    scores = lambda psnr: {"psnr": psnr, "ssim": psnr / 100, "moving_psnr": psnr - 10}  # noqa: E731
    return {"sample": "x", "task_type": task_type, "flow": scores(flow),
            "margins": {margin: scores(psnr) for margin, psnr in by_margin.items()}}


MARGINS = ("0.0", "4.0", "8.0")  # every fold's calibration scores the same margins


def write_fold(run: Path, left_out: str, margin: float, held_out: list, in_kind: list, sweep_gain: float) -> None:
    fold = run / f"without-{left_out}"
    write_json(fold / "calibration/calibration.json", {
        "chosen_fallback_margin": margin, "gains_over_flow": dict.fromkeys(MARGINS, {}), "samples": in_kind})
    write_json(fold / "held-out/metrics.json", {"samples": held_out})
    for index, row in enumerate(("copy_last", "flow_extrapolation", "model", "truth")):
        (fold / "held-out/predictions" / row).mkdir(parents=True)
        for sample in held_out:
            Image.new("RGB", (16, 16), (60 * index, 0, 0)).save(fold / "held-out/predictions" / row / prediction_file(sample["sample"]))
    gains = {"psnr": sweep_gain, "ssim": 0.0, "moving_psnr": None}
    write_json(fold / "held-out-sweep/calibration.json", {"gains_over_flow": dict.fromkeys(
        MARGINS, {"overall": gains, "drop_object": gains, "move_object": gains})})
    steps = lambda psnr: [{"step": 1, "psnr": psnr}, {"step": 2, "psnr": psnr - 3}]  # noqa: E731
    write_json(fold / "horizon/metrics.json", {"horizon": {"model": steps(30), "flow_extrapolation": steps(29),
                                                           "copy_last": steps(25)}})


def test_transfer_table_scores_each_kind_left_out_and_in_kind(tmp_path, capsys):
    # Left out easy (margin 4): 2 easy clips, model 31 vs flow 29.5. In kind for hard: the model without easy on a
    # hard clip at its margin 4: 28.5 vs 28 (+0.50). Left out hard (margin 8): 26 vs 27; in kind for easy: +2.00.
    write_fold(tmp_path, "easy", 4.0, [scored("drop_object", 30, 28, 25, moving=20), scored("move_object", 32, 31, 27)],
               [calibrated("hard-drop_object", 28, {"0.0": 27, "4.0": 28.5})], sweep_gain=-1.5)
    write_fold(tmp_path, "hard", 8.0, [scored("drop_object", 26, 27, 24, 17)],
               [calibrated("easy-drop_object", 30, {"0.0": 33, "8.0": 32}), calibrated("easy-move_object", 30, {"0.0": 31, "8.0": 32})],
               sweep_gain=0.25)
    assert transfer_kinds.table(tmp_path) == 0
    text = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith(("| easy | 2", "| hard | 1"))}
    easy, hard = rows["easy"].split(" | "), rows["hard"].split(" | ")
    assert easy[2] == "4" and easy[3] == "31.00 / 0.3100 / 20.00" and easy[6] == "**+1.50 / +0.0150 / +0.00**"
    assert easy[7] == "-1.50 / +0.0000 / n/a"  # the same model at margin 0, from the sweep
    assert easy[8] == "+2.00 / +0.0200 / +2.00 (without hard) |"  # in kind: the model without hard at its margin 8
    assert hard[2] == "8" and hard[6] == "**-1.00 / -0.0100 / +0.00**" and hard[8] == "+0.50 / +0.0050 / +0.50 (without easy) |"
    assert "| easy | model | 30.00 | 27.00 |" in text and "| hard | copy-last | 25.00 | 22.00 |" in text
    # The worst left-out clips first, one strip each: last | flow | model | truth | error.
    assert "- easy: val/move_object/video_32 +1.00 dB, val/drop_object/video_30 +2.00 dB" in text
    strips = Image.open(tmp_path / "worst-easy.png")
    assert strips.size == (5 * 128, 2 * 128) and strips.getpixel((2 * 128 + 5, 5)) == (120, 0, 0)  # the model's image
    document = json.loads((tmp_path / "table.json").read_text())
    assert document["easy"]["left_out"]["model"]["overall"]["psnr"] == 31.0 and document["hard"]["margin"] == 8.0
    assert "Left out: **easy** (trained on hard; margin 4)" in text
    (tmp_path / "without-hard/horizon/metrics.json").unlink()
    with pytest.raises(transfer_kinds.UserError, match="without-hard/horizon/metrics.json is missing"):
        transfer_kinds.table(tmp_path)


def test_transfer_table_of_one_fold_names_the_kinds_it_was_trained_on(tmp_path, capsys):
    # FOLDS=hard: only without-hard exists; its training kinds come from its calibration clips, not other folds.
    write_fold(tmp_path, "hard", 8.0, [scored("drop_object", 26, 27, 24, 17)],
               [calibrated("easy-drop_object", 30, {"0.0": 33, "8.0": 32}),
                calibrated("physics-roll_object", 30, {"0.0": 31, "8.0": 30})], sweep_gain=0.25)
    assert transfer_kinds.table(tmp_path) == 0
    text = capsys.readouterr().out
    assert "Left out: **hard** (trained on easy, physics; margin 8)" in text
