"""Convert raw clip folders into the processed DatasetDict used for training.

Reads either raw layout (metadata.json + 00.jpg ... 20.jpg, or
observe_NN.jpg + target.jpg + label.txt), checks every frame, and saves a
DatasetDict with `train` and `test` splits. Any bad sample stops the run and is
listed, one line each; with --skip-invalid the good samples are kept and the
bad ones are written to skipped_samples.json in the output folder.
"""

import json
import os
import sys
from collections import Counter
from pathlib import Path

from ip2p.shared.atomic_dir import atomic_output_dir
from ip2p.shared.cli import UserError, make_parser, run_main
from ip2p.data.processed import SKIPPED_REPORT_FILE, assign_splits, save_processed_dataset
from ip2p.data.raw_data import scan_raw_data


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--data-root", type=Path, default=Path("dataset_mini"), help="folder holding the raw clips")
    parser.add_argument("--metadata", type=Path, default=None,
                        help="metadata JSON file (default: <data-root>/metadata.json if present, else the observe_NN layout)")
    parser.add_argument("--output-dir", type=Path, default=Path("processed_dataset_seq"), help="where the DatasetDict is saved")
    parser.add_argument("--num-input-frames", type=int, default=20, help="observed frames per sample (the target is the frame after them)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="fraction of train held out as test when there is no raw val/ split")
    parser.add_argument("--seed", type=int, default=0, help="seed for the held-out fraction")
    parser.add_argument("--skip-invalid", action="store_true", help="keep going without bad samples and report them instead of stopping")
    parser.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1), help="threads that decode frames while checking")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output folder even if this script did not write it, or it holds files it did not write")
    args = parser.parse_args(argv)
    if args.num_input_frames < 1:
        parser.error("--num-input-frames must be at least 1")
    if not 0.0 < args.val_fraction < 1.0:
        parser.error("--val-fraction must be between 0 and 1 (exclusive)")
    return args


def check_output_is_not_input(data_root: Path, output_dir: Path) -> None:
    data_abs, out_abs = data_root.resolve(), output_dir.resolve()
    if out_abs == data_abs or out_abs in data_abs.parents:
        raise UserError(f"--output-dir {output_dir} would replace the data root {data_root}; choose another output folder")


def main(argv=None) -> int:
    args = parse_args(argv)
    check_output_is_not_input(args.data_root, args.output_dir)

    # Scan and check every sample before writing anything:
    scan = scan_raw_data(args.data_root, args.num_input_frames, args.metadata, args.num_workers)
    for note in scan.notes:
        print(f"note: {note}")
    if scan.problems and not args.skip_invalid:
        for problem in scan.problems:
            print(f"invalid sample {problem.line()}", file=sys.stderr)
        raise UserError(
            f"{len(scan.problems)} of {len(scan.problems) + len(scan.samples)} samples in {args.data_root} are invalid "
            "(listed above); fix them, or pass --skip-invalid to build from the valid ones and get a report"
        )
    if not scan.samples:
        raise UserError(f"no valid samples in {args.data_root} ({len(scan.problems)} invalid); nothing to build")

    # Split and save, all or nothing:
    train, test, split_note = assign_splits(scan.samples, args.val_fraction, args.seed)
    provenance = {
        "layout": scan.layout,
        "split": split_note,
        "skipped": len(scan.problems),
        "task_types": dict(Counter(s.task_type for s in scan.samples)),
    }
    with atomic_output_dir(args.output_dir, "make_dataset.py", args.overwrite) as staging:
        save_processed_dataset(staging, args.output_dir, args.data_root, {"train": train, "test": test},
                               args.num_input_frames, provenance)
        if scan.problems:
            report = [problem.to_dict() for problem in scan.problems]
            (staging / SKIPPED_REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    # Report:
    print(f"layout: {scan.layout}")
    print(f"split: {split_note}")
    print(f"kept {len(scan.samples)} samples, skipped {len(scan.problems)} "
          f"(train {len(train)}, test {len(test)}; task types: {dict(provenance['task_types'])})")
    if scan.problems:
        print(f"skipped samples and reasons: {args.output_dir / SKIPPED_REPORT_FILE}")
    print(f"saved {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
