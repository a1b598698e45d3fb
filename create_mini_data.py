"""Write a tiny generated data set (dataset_mini/) for smoke tests.

One clip of 21 frames, train/video_test_01/00.jpg ... 20.jpg, and a
metadata.json entry with its instruction and task type (with --test-video also
test_video/ for prepare_test_data.py); the same seed gives byte-identical files. Re-running replaces an earlier mini data set.
"""

import os
import sys
from pathlib import Path

from ip2p.shared.atomic_dir import atomic_output_dir
from ip2p.shared.cli import make_parser, run_main
from ip2p.data.mini_data import write_mini_dataset, write_test_video
from ip2p.data.synthetic import write_synthetic_dataset


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--output-dir", type=Path, default=Path("dataset_mini"), help="folder to write")
    parser.add_argument("--num-frames", type=int, default=21,
                        help="frames per clip (20 observed + 1 target; more for evaluate.py --horizon)")
    parser.add_argument("--size", type=int, default=None, help="frame width and height in pixels (default: 128, or 64 with --synthetic)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same files")
    parser.add_argument("--test-video", action="store_true",
                        help="also write test_video/ (the last two frames + test_video.json) for prepare_test_data.py")
    parser.add_argument("--synthetic", action="store_true",
                        help="write learnable clips of the three task families (train/ and val/) instead of the one mini clip")
    parser.add_argument("--hard", action="store_true",
                        help="with --synthetic: the harder set (textured scenes and objects, a camera drifting sub-pixel, "
                             "anti-aliased sub-pixel motion, JPEG frames); see ip2p/data/synthetic_hard.py")
    parser.add_argument("--physics", action="store_true",
                        help="with --synthetic: rigid bodies whose motion the Bullet engine computes (pybullet): dropping, "
                             "pushing, covering, rolling, a stack falling; an orbiting camera, shadows, textures, JPEG frames; "
                             "see ip2p/data/synthetic_physics.py")
    parser.add_argument("--videos-per-task", type=int, default=30, help="training clips per task family (with --synthetic)")
    parser.add_argument("--val-videos-per-task", type=int, default=5, help="held-out clips per task family (with --synthetic)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                        help="processes rendering --synthetic clips (default: one per usable CPU core); the files are the same at any count")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output folder even if this script did not write it, or it holds files it did not write")
    args = parser.parse_args(argv)
    args.size = args.size or (64 if args.synthetic else 128)
    if (args.hard or args.physics) and not args.synthetic:
        parser.error("--hard and --physics are options of --synthetic")
    if args.hard and args.physics:
        parser.error("choose one of --hard and --physics")
    if args.synthetic and args.num_frames < 21:
        parser.error("--synthetic clips have at least 21 frames (20 observed + 1 target)")
    if args.num_frames < 1 or args.size < 16:
        parser.error("--num-frames must be at least 1 and --size at least 16")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    with atomic_output_dir(args.output_dir, "create_mini_data.py", args.overwrite) as staging:
        if args.synthetic:
            write_synthetic_dataset(staging, args.videos_per_task, args.val_videos_per_task, args.size, args.seed,
                                    hard=args.hard, num_frames=args.num_frames, workers=args.workers,
                                    physics=args.physics)
        else:
            write_mini_dataset(staging, args.num_frames, args.size, args.seed)
        if args.test_video:
            write_test_video(staging, args.num_frames, args.size, args.seed)
    if args.synthetic:
        print(f"wrote {args.videos_per_task} training and {args.val_videos_per_task} held-out clips per task family "
              f"({args.size}x{args.size}{', harder set' if args.hard else ', physics set' if args.physics else ''}) to {args.output_dir}")
    else:
        print(f"wrote {args.num_frames} frames of {args.size}x{args.size} to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
