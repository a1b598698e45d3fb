"""Check a processed dataset (and optionally a model folder) before training.

Dataset: features and sequence lengths, split sizes, that every frame path
resolves and decodes, and that frame sizes agree. Model (--model): a complete
pipeline folder with safetensors weights whose UNet width fits the frame count.
Prints a short summary; exits non-zero on any problem.
"""

import os
import sys
from collections import Counter
from pathlib import Path

from ip2p.data.checks import dataset_problems
from ip2p.data.processed import load_processed_dataset
from ip2p.models.files import pipeline_folder_problems, unet_channels_check
from ip2p.shared.cli import UserError, make_parser, run_main


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--dataset", type=Path, default=Path("processed_dataset_seq"), help="output of make_dataset.py")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="raw data root, if it moved away from where ip2p_source.json says (default: as recorded)")
    parser.add_argument("--model", type=Path, default=None, help="pipeline folder to check as well")
    parser.add_argument("--num-input-frames", type=int, default=20, help="frames per sample the dataset must have")
    parser.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1), help="threads that decode frames")
    return parser.parse_args(argv)


def image_sizes(dataset, limit: int = 50) -> Counter:
    """Target sizes of the first samples of each split, for the summary."""
    sizes = Counter()
    for split in dataset.splits.values():
        for row in split.select(range(min(limit, len(split)))):
            sizes[f"{row['edited_image'].width}x{row['edited_image'].height}"] += 1
    return sizes


def main(argv=None) -> int:
    args = parse_args(argv)
    dataset = load_processed_dataset(args.dataset, args.data_root)
    problems = dataset_problems(dataset, args.num_input_frames, args.num_workers)
    split_sizes = ", ".join(f"{name} {len(split)}" for name, split in dataset.splits.items())
    print(f"dataset {args.dataset}: {split_sizes}; frames resolved under {dataset.data_root or 'the stored paths'}")
    if not problems:
        print(f"frames per sample: {args.num_input_frames} + target; target sizes (first samples): {dict(image_sizes(dataset))}")
    if args.model is not None:
        model_problems = pipeline_folder_problems(args.model)
        if not model_problems:
            channel_problem, note = unet_channels_check(args.model, args.num_input_frames)
            model_problems = [channel_problem] if channel_problem else []
            if note:
                print(f"model {args.model}: complete pipeline; {note}")
        problems.extend(model_problems)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        raise UserError(f"{len(problems)} problem(s) found (listed above)")
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
