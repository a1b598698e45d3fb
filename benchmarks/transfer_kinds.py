"""The two steps of benchmarks/transfer.sh that are not the chain's own scripts.

    python benchmarks/transfer_kinds.py merge OUTPUT KIND=RAW_ROOT [KIND=RAW_ROOT ...]
        one raw root (numbered layout with metadata.json) holding every clip of
        the given roots, train/ and val/, under task folders named KIND-TASK
        (frames hard-linked where the file system allows, else copied);
        OUTPUT must not exist yet.
    python benchmarks/transfer_kinds.py table RUN_FOLDER
        the leave-one-kind-out table of a transfer.sh run, as markdown on
        stdout and as table.json in RUN_FOLDER.

The table reads, for each left-out kind K, ``without-K/held-out/metrics.json``
(the model trained without K, on K's held-out clips) and
``without-K/seed-*/eval/metrics.json`` (the same model on the held-out clips of
the kinds it was trained on, task types named KIND-TASK): the per-sample
scores evaluate.py saves, regrouped by kind and task.
"""

import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ip2p.evaluation.scoring import summarise  # noqa: E402
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


def read_samples(metrics: Path) -> List[dict]:
    """evaluate.py's per-sample scores, an undefined one (written as null: nothing moved) back to NaN."""
    samples = json.loads(metrics.read_text(encoding="utf-8"))["samples"]
    return [{key: float("nan") if value is None else value for key, value in sample.items()} for sample in samples]


def samples_by_kind(run: Path, left_out: str) -> Dict[str, List[dict]]:
    """{kind: per-sample scores} of the model trained without ``left_out``: its own held-out kind, and the
    held-out clips of the kinds it was trained on (task types un-prefixed)."""
    fold = run / f"without-{left_out}"
    held_out = fold / "held-out" / "metrics.json"
    in_kind = sorted(fold.glob("seed-*/eval/metrics.json"))
    if not held_out.is_file() or len(in_kind) != 1:
        raise UserError(f"{fold} lacks held-out/metrics.json or seed-*/eval/metrics.json: did that fold finish?")
    kinds = {left_out: read_samples(held_out)}
    for sample in read_samples(in_kind[0]):
        kind, task = sample["task_type"].split(SEPARATOR, 1)
        kinds.setdefault(kind, []).append({**sample, "task_type": task})
    return kinds


def metric_cells(group: dict) -> str:
    return " / ".join(f"{group[m]:.{4 if m == 'ssim' else 2}f}" if not math.isnan(group[m]) else "n/a"
                      for m in ("psnr", "ssim", "moving_psnr"))


def differences(summary: dict, group: str) -> str:
    model, flow = summary["model"][group], summary["flow_extrapolation"][group]
    return " / ".join(f"{model[m] - flow[m]:+.{4 if m == 'ssim' else 2}f}" for m in ("psnr", "ssim", "moving_psnr"))


def table(run: Path) -> int:
    kinds = sorted(p.name[len("without-"):] for p in run.glob("without-*") if p.is_dir())
    if not kinds:
        raise UserError(f"{run} holds no without-KIND folder: run benchmarks/transfer.sh first")
    folds = {left_out: {kind: summarise(samples) for kind, samples in samples_by_kind(run, left_out).items()}
             for left_out in kinds}
    lines = ["Overall PSNR / SSIM / moving-region PSNR on each kind's held-out clips. *Left out*: the model never saw "
             "that kind; *in kind*: a model trained on it (with one other kind), on the same clips.", "",
             "| kind | clips | model, left out | flow extrapolation | copy-last | model − flow, left out "
             "| model − flow, in kind |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind in kinds:
        summary = folds[kind][kind]
        in_kind = "; ".join(f"{differences(folds[other][kind], 'overall')} (without {other})"
                            for other in kinds if other != kind and kind in folds[other])
        lines.append(f"| {kind} | {summary['model']['overall']['count']} | {metric_cells(summary['model']['overall'])} "
                     f"| {metric_cells(summary['flow_extrapolation']['overall'])} "
                     f"| {metric_cells(summary['copy_last']['overall'])} | **{differences(summary, 'overall')}** "
                     f"| {in_kind} |")
    for kind in kinds:
        summary = folds[kind][kind]
        groups = [g for g in summary["model"] if g != "overall"] + ["overall"]
        lines += ["", f"Left out: **{kind}** (trained on {', '.join(k for k in kinds if k != kind)}); "
                  "PSNR / SSIM / moving-region PSNR per task:", "",
                  "| row | " + " | ".join(groups) + " |", "|" + " --- |" * (len(groups) + 1)]
        for row, name in ROWS.items():
            lines.append(f"| {name} | " + " | ".join(metric_cells(summary[row][g]) for g in groups) + " |")
        lines.append("| model − flow | " + " | ".join(differences(summary, g) for g in groups) + " |")
    text = "\n".join(lines) + "\n"
    document = {left_out: {kind: {row: summary[row] for row in ROWS} for kind, summary in by_kind.items()}
                for left_out, by_kind in folds.items()}
    (run / "table.json").write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
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
