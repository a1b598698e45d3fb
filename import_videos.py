"""Import video files (Something-Something v2 as distributed, or any labelled
videos) into the numbered raw layout that make_dataset.py reads.

  python import_videos.py --videos 20bn-something-something-v2 \\
      --labels labels/train.json --val-labels labels/validation.json --output-dir ssv2_raw

Writes metadata.json and <split>/<task_type>/<id>/00.jpg ... 20.jpg: the
instruction is the SSv2 label, the task type the template without brackets
("dropping_something_onto_something"). Frames are decoded with PyAV at the
video's own frame rate (never resampled), --num-frames consecutive ones per
clip chosen by --window, resized so the longer side is at most --max-side.
--labels may also be a generic JSON list or CSV of {"video": file relative to
--videos, "instruction": text} (optional "task_type"). Bad input (a video that
does not decode, is truncated or too short, a label without a video, a video
without a label, a malformed label file) is listed one line each and nothing
is written; --skip-invalid imports the rest and writes skipped_videos.json.
"""

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ip2p.shared.atomic_dir import atomic_output_dir
from ip2p.shared.cli import UserError, make_parser, run_main

SKIPPED_REPORT = "skipped_videos.json"


def parse_args(argv):
    from ip2p.data.video_import import WINDOW_HELP

    parser = make_parser(__doc__)
    parser.add_argument("--videos", type=Path, required=True, help="folder holding the video files (searched recursively)")
    parser.add_argument("--labels", type=Path, required=True, help="training label file (SSv2 JSON, or generic JSON/CSV)")
    parser.add_argument("--val-labels", type=Path, default=None, help="held-out label file, imported as val/")
    parser.add_argument("--output-dir", type=Path, default=Path("dataset_root"), help="raw data root to write")
    parser.add_argument("--num-frames", type=int, default=21, help="consecutive frames per clip (20 observed + 1 target)")
    parser.add_argument("--window", default="end", help=f"which frames of a longer video: {WINDOW_HELP}")
    parser.add_argument("--max-side", type=int, default=256, help="longest side of the written frames in pixels (never enlarged)")
    parser.add_argument("--skip-invalid", action="store_true", help=f"import the valid videos and list the others in {SKIPPED_REPORT}")
    parser.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1), help="processes decoding videos")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output folder even if this script did not write it, or it holds files it did not write")
    args = parser.parse_args(argv)
    if args.num_frames < 2:
        parser.error("--num-frames must be at least 2 (observed frames and the target)")
    if args.max_side < 16 or args.num_workers < 1:
        parser.error("--max-side must be at least 16 and --num-workers at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from tqdm.auto import tqdm

    from ip2p.data.video_import import check_clip_folders, find_videos, import_video, match_videos, parse_window, read_label_file

    policy = parse_window(args.window)
    entries = read_label_file(args.labels, "train") + (read_label_file(args.val_labels, "val") if args.val_labels else [])
    if args.output_dir.resolve() == args.videos.resolve() or args.output_dir.resolve() in args.videos.resolve().parents:
        raise UserError(f"--output-dir {args.output_dir} would replace the videos folder; choose another output folder")
    matched, problems = match_videos(entries, find_videos(args.videos))
    check_clip_folders(matched)
    metadata = []
    with atomic_output_dir(args.output_dir, "import_videos.py", args.overwrite) as staging:
        with ProcessPoolExecutor(max_workers=args.num_workers) as pool, \
                tqdm(total=len(matched), desc="decoding videos", unit="video") as progress:
            futures = [pool.submit(import_video, entry, policy, args.num_frames, args.max_side, staging) for entry in matched]
            for entry, future in zip(matched, futures):
                result = future.result()
                metadata.extend(result["entries"])
                if result["problem"]:
                    problems.append((str(entry.video), result["problem"]))
                progress.update(1)
        if problems and not args.skip_invalid:
            for name, reason in problems:
                print(f"invalid video {name}: {reason}", file=sys.stderr)
            raise UserError(f"{len(problems)} problem(s) in {args.videos} / the label files (listed above); nothing was written. "
                            "Fix them, or pass --skip-invalid to import the valid videos and get a report")
        if not metadata:
            raise UserError(f"no video in {args.videos} could be imported ({len(problems)} problem(s)); nothing was written")
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
        if problems:
            report = [{"video": name, "reason": reason} for name, reason in problems]
            (staging / SKIPPED_REPORT).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    splits = {split: sum(e["video_path"].startswith(f"{split}/") for e in metadata) for split in ("train", "val")}
    print(f"wrote {splits['train']} training and {splits['val']} held-out clip(s) of {args.num_frames} frames to {args.output_dir}"
          + (f"; skipped {len(problems)}, listed in {args.output_dir / SKIPPED_REPORT}" if problems else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
