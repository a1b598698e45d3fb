"""Turn <data-root>/test_video/ (00.jpg, 01.jpg, test_video.json) into the
single-image layout <data-root>/test_data/ (input_image.jpg, edited_image.jpg,
metadata.jsonl) read by train_instruct_pix2pix.py --train_data_dir.
"""

import sys
from pathlib import Path

from ip2p.shared.atomic_dir import atomic_output_dir
from ip2p.shared.cli import make_parser, run_main
from ip2p.data.single_image import read_test_video, write_single_image_folder


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--data-root", type=Path, default=Path("dataset_root"), help="folder holding test_video/")
    parser.add_argument("--output-dir", type=Path, default=None, help="destination (default: <data-root>/test_data)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output folder even if this script did not write it, or it holds files it did not write")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    output_dir = args.output_dir or args.data_root / "test_data"
    source, edited, instruction, task_type = read_test_video(args.data_root / "test_video")
    with atomic_output_dir(output_dir, "prepare_test_data.py", args.overwrite) as staging:
        write_single_image_folder(staging, source, edited, instruction)
    print(f"wrote {output_dir} ({task_type}: {instruction!r})")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
