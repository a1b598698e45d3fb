"""How many PyTorch operations the video trainer's step dispatches, row by row.

A measure of the step's host work that does not depend on the device. In an
eager step on a GPU nearly every operation that is not a view launches at
least one kernel. On a slow host each dispatch costs tens of microseconds,
so this count tells how much a step can be launch-bound. It also shows, on
a CPU, what a change saves before a GPU measures it.

The rows are ``benchmarks/throughput.py``'s eager step rows, built the same
way: the trainer from ``build_trainer`` on a fresh copy of the random model,
one batch of its data. After two warm-up steps, one step (``micro_step`` +
``optimizer_step``) runs under a ``TorchDispatchMode`` that counts every aten
operation. Views (outputs that alias an input, no kernel), dtype casts
(``_to_copy``: under autocast, mostly each weight's cast and its gradient's),
host reads (operations whose result Python needs, such as ``.item()``: on a
GPU each one waits for the device) and the rest are counted apart. Prints
one markdown table. torch's default AdamW loops over the tensors on a CPU
but runs foreach kernels on a GPU: the rows before "fused AdamW" count more
on a CPU than a GPU would dispatch.

    python benchmarks/op_count.py --config sd15 --resolution 64 --batch-size 1   # SD-1.5 shapes, on CPU
    python benchmarks/op_count.py --row "fused AdamW" --row EMA                   # tiny model, two rows
"""

import sys
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.throughput import CONFIGS, Bench, release_row, rows_for, runs_op_by_op, work_folder  # noqa: E402
from ip2p.shared.cli import UserError, at_least, make_parser, run_main  # noqa: E402

WARMUP_STEPS = 2
# Operations whose result the host needs: on a GPU each waits for the device's queue.
HOST_READS = {"_local_scalar_dense", "is_nonzero", "equal", "nonzero", "masked_select", "_unique2", "unique_dim",
              "unique_consecutive"}


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny", help="model shape: tiny or sd15")
    parser.add_argument("--resolution", type=at_least(8), default=64, help="training resolution (the count hardly depends on it)")
    parser.add_argument("--batch-size", type=at_least(1), default=2, help="per-device batch size")
    parser.add_argument("--row", action="append", metavar="LABEL_PART",
                        help="count only the rows whose label contains this text (repeatable; default: every eager step row)")
    parser.add_argument("--work-dir", type=Path, help="keep the generated clips here and reuse them (default: a temporary folder)")
    return parser.parse_args(argv)


def step_rows(config: str, parts) -> list:
    """throughput.py's rows that time one eager step, or those whose label contains one of ``parts``."""
    rows = [(label, options) for label, options in rows_for(config)
            if runs_op_by_op(options) and not options.get("whole_trainer")]
    return [(label, options) for label, options in rows if not parts or any(part in label for part in parts)]


def count_operations(step) -> Counter:
    """The aten operations one call of ``step`` dispatches: "all", "views", "dtype casts", "host reads" and each name."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts = Counter()

    class Counting(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            counts["all"] += 1
            counts[str(func.overloadpacket)] += 1
            if func.is_view:
                counts["views"] += 1
            elif func.overloadpacket.__name__ == "_to_copy":
                counts["dtype casts"] += 1
            elif func.overloadpacket.__name__ in HOST_READS:
                counts["host reads"] += 1
            return func(*args, **(kwargs or {}))

    with Counting():
        step()
    return counts


def count_row(bench: Bench, row: dict) -> Counter:
    try:
        _, step = bench.trainer_step(row, WARMUP_STEPS + 2)
        for _ in range(WARMUP_STEPS):  # lazy state (optimizer moments, autocast's first casts) is made here, not counted
            step()
        return count_operations(step)
    finally:
        release_row(bench.device)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = step_rows(args.config, args.row)
    if not rows:
        raise UserError(f"no eager step row's label contains {' or '.join(map(repr, args.row))}; "
                        f"the rows are: {', '.join(label for label, _ in step_rows(args.config, None))}")
    with work_folder(args.work_dir) as work:
        bench = Bench(args, work)
        print(f"{args.config}-shaped 84-channel UNet, {args.resolution} px, batch {args.batch_size}: "
              "aten operations dispatched by one training step")
        print("| configuration | operations | views (no kernel) | dtype casts | host reads (a GPU sync each) | others |\n"
              "| --- | --- | --- | --- | --- | --- |")
        for index, (label, options) in enumerate(rows):
            row = dict(label=label, resolution=args.resolution, batch_size=args.batch_size, index=index, options=options)
            with redirect_stdout(sys.stderr):  # the trainer's own lines; stdout carries the table alone
                counts = count_row(bench, row)
            others = counts["all"] - counts["views"] - counts["dtype casts"] - counts["host reads"]
            print(f"| {label} | {counts['all']} | {counts['views']} | {counts['dtype casts']} | {counts['host reads']} | {others} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
