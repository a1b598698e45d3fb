"""The two steps of benchmarks/transfer.sh that are not the chain's own scripts.

    python benchmarks/transfer_kinds.py merge OUTPUT KIND=RAW_ROOT [KIND=RAW_ROOT ...]
        one raw root (numbered layout with metadata.json) holding every clip of
        the given roots, train/ and val/, under task folders named KIND-TASK
        (frames hard-linked where the file system allows, else copied);
        OUTPUT must not exist yet.
    python benchmarks/transfer_kinds.py table RUN_FOLDER
        the leave-one-kind-out table of a transfer.sh run, as markdown on
        stdout and as table.json in RUN_FOLDER.

The table reads, for each left-out kind K, what transfer.sh wrote under
``without-K/``: ``calibration/calibration.json`` (the margin chosen, and every
margin's per-sample scores on the held-out clips of the kinds the model was
trained on, task types KIND-TASK, regrouped by kind: the in-kind figures),
``held-out/metrics.json`` and ``held-out/predictions/`` (K's held-out clips at
that margin), ``held-out-sweep/calibration.json`` (every margin there) and
``horizon/metrics.json`` (the rollouts).
"""

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ip2p.evaluation.calibration import margin_gains  # noqa: E402
from ip2p.evaluation.scoring import METRICS, error_image, metric_cells, prediction_file, summarise  # noqa: E402
from ip2p.shared.images import make_strip  # noqa: E402
from ip2p.shared.cli import UserError, run_main  # noqa: E402

ROWS = {"model": "model", "flow_extrapolation": "flow extrapolation", "copy_last": "copy-last"}
SEPARATOR = "-"


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def merge(output: Path, roots: Dict[str, Path]) -> int:
    if output.exists():
        raise UserError(f"{output} exists; merge writes a new folder only")
    entries = []
    output.mkdir(parents=True)
    for kind, root in roots.items():
        metadata = root / "metadata.json"
        if not metadata.is_file():
            raise UserError(f"{metadata} is missing: merge reads the numbered layout with metadata.json")
        for entry in json.loads(metadata.read_text(encoding="utf-8")):
            split, task, clip = Path(entry["video_path"]).parts
            task_type = f"{kind}{SEPARATOR}{task}"
            target = output / split / task_type / clip
            target.mkdir(parents=True)
            for frame in sorted((root / entry["video_path"]).iterdir()):
                link_or_copy(frame, target / frame.name)
            entries.append({**entry, "video_path": f"{split}/{task_type}/{clip}", "task_type": task_type})
    (output / "metadata.json").write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    print(f"merged {len(entries)} clips of {', '.join(roots)} into {output}")
    return 0


def no_nulls(value):
    """JSON's null (an undefined metric: nothing moved) back to NaN, in nested dicts and lists."""
    if value is None:
        return float("nan")
    if isinstance(value, dict):
        return {key: no_nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [no_nulls(item) for item in value]
    return value


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} is missing: did that fold of transfer.sh finish?")
    return no_nulls(json.loads(path.read_text(encoding="utf-8")))


def by_kind(samples: List[dict]) -> List[dict]:
    """Merged-set samples (task types KIND-TASK) grouped by kind instead of task."""
    return [{**sample, "task_type": sample["task_type"].split(SEPARATOR, 1)[0]} for sample in samples]


def gap(summary: dict, group: str) -> dict:
    return {m: summary["model"][group][m] - summary["flow_extrapolation"][group][m] for m in METRICS}


class Fold:
    """What transfer.sh wrote for one left-out kind: the margin chosen on the training kinds' held-out clips
    (calibration/), the left-out kind scored with it (held-out/), the sweep of every margin there
    (held-out-sweep/) and the rollouts (horizon/)."""

    def __init__(self, run: Path, left_out: str):
        folder = run / f"without-{left_out}"
        calibration = read_json(folder / "calibration" / "calibration.json")
        self.margin = calibration["chosen_fallback_margin"]
        self.margins = list(calibration["gains_over_flow"])
        self.in_kind = margin_gains(by_kind(calibration["samples"]), [self.margins[0], str(self.margin)])
        self.trained_on = sorted(group for group in self.in_kind[self.margins[0]] if group != "overall")
        self.samples = read_json(folder / "held-out" / "metrics.json")["samples"]
        self.summary = summarise(self.samples)
        self.predictions = folder / "held-out" / "predictions"
        self.sweep = read_json(folder / "held-out-sweep" / "calibration.json")["gains_over_flow"]
        self.horizon = read_json(folder / "horizon" / "metrics.json")["horizon"]


def worst_strips(fold: Fold, count: int = 4, size: int = 128):
    """The ``count`` left-out clips where the model falls furthest behind flow (whole-frame PSNR), one strip
    each: last observed | flow extrapolation | model | truth | model error x4."""
    worst = sorted(fold.samples, key=lambda s: s["model_psnr"] - s["flow_extrapolation_psnr"])[:count]
    strips = []
    for sample in worst:
        name = prediction_file(sample["sample"])
        last, flow, model, truth = (Image.open(fold.predictions / row / name).convert("RGB")
                                    for row in ("copy_last", "flow_extrapolation", "model", "truth"))
        strips.append(make_strip([last, flow, model, truth, error_image(model, truth)], size))
    grid = Image.new("RGB", (strips[0].width, size * len(strips)))
    for index, strip in enumerate(strips):
        grid.paste(strip, (0, index * size))
    return grid, [(s["sample"], s["model_psnr"] - s["flow_extrapolation_psnr"]) for s in worst]


def table(run: Path) -> int:
    kinds = sorted(p.name[len("without-"):] for p in run.glob("without-*") if p.is_dir())
    if not kinds:
        raise UserError(f"{run} holds no without-KIND folder: run benchmarks/transfer.sh first")
    folds = {kind: Fold(run, kind) for kind in kinds}
    lines = ["PSNR / SSIM / moving-region PSNR on each kind's held-out clips. *Left out*: the model never saw that "
             "kind; its fallback margin was chosen on the held-out clips of the two kinds it was trained on (*in "
             "kind*, the model − flow figures at that margin). *No fallback*: the same model at margin 0.", "",
             "| kind left out | clips | margin | model | flow extrapolation | copy-last | model − flow "
             "| model − flow, no fallback | model − flow, in kind |", "|" + " --- |" * 9]
    for kind, fold in folds.items():
        overall = fold.summary
        in_kind = "; ".join(f"{metric_cells(folds[other].in_kind[str(folds[other].margin)][kind], True)} (without {other})"
                            for other in kinds if kind in folds[other].trained_on)
        lines.append(f"| {kind} | {overall['model']['overall']['count']} | {fold.margin:g} "
                     f"| {metric_cells(overall['model']['overall'])} | {metric_cells(overall['flow_extrapolation']['overall'])} "
                     f"| {metric_cells(overall['copy_last']['overall'])} | **{metric_cells(gap(overall, 'overall'), True)}** "
                     f"| {metric_cells(fold.sweep[fold.margins[0]]['overall'], True)} | {in_kind} |")
    for kind, fold in folds.items():
        groups = [g for g in fold.summary["model"] if g != "overall"] + ["overall"]
        lines += ["", f"Left out: **{kind}** (trained on {', '.join(fold.trained_on)}; margin "
                  f"{fold.margin:g}); PSNR / SSIM / moving-region PSNR per task:", "",
                  "| row | " + " | ".join(groups) + " |", "|" + " --- |" * (len(groups) + 1)]
        for row, name in ROWS.items():
            lines.append(f"| {name} | " + " | ".join(metric_cells(fold.summary[row][g]) for g in groups) + " |")
        lines.append("| model − flow | " + " | ".join(metric_cells(gap(fold.summary, g), True) for g in groups) + " |")
        lines.append("| model − flow, no fallback | " + " | ".join(
            metric_cells(fold.sweep[fold.margins[0]][g], True) for g in groups) + " |")
    margins = folds[kinds[0]].margins
    lines += ["", "Overall PSNR of model − flow on the left-out kind at every margin (the chosen one in bold):", "",
              "| kind left out | " + " | ".join(f"{float(m):g}" for m in margins) + " |", "|" + " --- |" * (len(margins) + 1)]
    for kind, fold in folds.items():
        lines.append(f"| {kind} | " + " | ".join(
            (f"**{fold.sweep[m]['overall']['psnr']:+.2f}**" if float(m) == fold.margin else f"{fold.sweep[m]['overall']['psnr']:+.2f}")
            for m in margins) + " |")
    steps = [entry["step"] for entry in folds[kinds[0]].horizon["model"]]
    lines += ["", "Rollouts on longer clips of the left-out kind (`evaluate.py --horizon`): PSNR at each step ahead:", "",
              "| kind left out | row | " + " | ".join(f"t+{s}" for s in steps) + " |", "|" + " --- |" * (len(steps) + 2)]
    for kind, fold in folds.items():
        for row, name in ROWS.items():
            lines.append(f"| {kind} | {name} | " + " | ".join(f"{e['psnr']:.2f}" for e in fold.horizon[row]) + " |")
    lines += ["", "The worst left-out clips (model − flow PSNR), strips in worst-KIND.png (last observed | flow | model "
              "| truth | model error x4):", ""]
    for kind, fold in folds.items():
        grid, worst = worst_strips(fold)
        grid.save(run / f"worst-{kind}.png")
        lines.append(f"- {kind}: " + ", ".join(f"{sample} {gain:+.2f} dB" for sample, gain in worst))
    text = "\n".join(lines) + "\n"
    document = {kind: {"margin": fold.margin, "left_out": {row: fold.summary[row] for row in ROWS},
                       "no_fallback_gain": fold.sweep[fold.margins[0]], "sweep": fold.sweep, "in_kind_gain": fold.in_kind,
                       "horizon": fold.horizon} for kind, fold in folds.items()}
    (run / "table.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(text, end="")
    return 0


def main(argv) -> int:
    if len(argv) >= 3 and argv[0] == "merge":
        pairs = [arg.split("=", 1) for arg in argv[2:]]
        if any(len(pair) != 2 for pair in pairs):
            raise UserError("merge takes KIND=RAW_ROOT arguments")
        return merge(Path(argv[1]), {kind: Path(root) for kind, root in pairs})
    if len(argv) == 2 and argv[0] == "table":
        return table(Path(argv[1]))
    raise UserError("usage: transfer_kinds.py merge OUTPUT KIND=RAW_ROOT ... | transfer_kinds.py table RUN_FOLDER")


if __name__ == "__main__":
    sys.exit(run_main(main, sys.argv[1:]))
