"""Write a tiny generated data set (dataset_mini/) for smoke tests.

One clip of 21 frames, train/video_test_01/00.jpg ... 20.jpg, and a
metadata.json entry with its instruction and task type (with --test-video also
test_video/ for prepare_test_data.py); the same seed gives byte-identical files. Re-running replaces an earlier mini data set.
"""

import sys
from pathlib import Path

from ip2p.atomic_dir import atomic_output_dir
from ip2p.cli import make_parser, run_main
from ip2p.mini_data import is_mini_dataset, write_mini_dataset, write_test_video


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--output-dir", type=Path, default=Path("dataset_mini"), help="folder to write")
    parser.add_argument("--num-frames", type=int, default=21, help="frames in the clip (20 observed + 1 target)")
    parser.add_argument("--size", type=int, default=128, help="frame width and height in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same files")
    parser.add_argument("--test-video", action="store_true",
                        help="also write test_video/ (the last two frames + test_video.json) for prepare_test_data.py")
    args = parser.parse_args(argv)
    if args.num_frames < 1 or args.size < 16:
        parser.error("--num-frames must be at least 1 and --size at least 16")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    with atomic_output_dir(args.output_dir, is_ours=is_mini_dataset) as staging:
        write_mini_dataset(staging, args.num_frames, args.size, args.seed)
        if args.test_video:
            write_test_video(staging, args.num_frames, args.size, args.seed)
    print(f"wrote {args.num_frames} frames of {args.size}x{args.size} to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
