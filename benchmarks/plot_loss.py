"""Draw the training loss from a run's TensorBoard logs as a PNG (PIL only).

    python benchmarks/plot_loss.py OUTPUT_DIR/logs loss.png [--smooth 50]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ip2p.shared.cli import UserError, run_main  # noqa: E402


def read_scalars(log_dir: Path, tag: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(Path(log_dir).rglob("events.out.tfevents.*"))
    points = {}
    for event_file in events:
        accumulator = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
        accumulator.Reload()
        if tag in accumulator.Tags().get("scalars", []):
            points.update({event.step: event.value for event in accumulator.Scalars(tag)})
    if not points:
        raise UserError(f"no '{tag}' scalars in TensorBoard logs under {log_dir}; point at the run's logs folder")
    steps = np.array(sorted(points))
    return steps, np.array([points[s] for s in steps])


def plot(steps, values, smooth: int, title: str, size=(640, 360)) -> Image.Image:
    width, height = size
    left, right, top, bottom = 60, 20, 30, 40
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    kernel = np.ones(min(smooth, len(values))) / min(smooth, len(values))
    smoothed = np.convolve(values, kernel, mode="valid")
    low, high = 0.0, float(np.percentile(values, 99)) * 1.05
    x = lambda s: left + (s - steps[0]) / max(1, steps[-1] - steps[0]) * (width - left - right)  # noqa: E731
    y = lambda v: top + (1 - (min(v, high) - low) / (high - low)) * (height - top - bottom)  # noqa: E731
    draw.line([(x(s), y(v)) for s, v in zip(steps, values)], fill=(190, 200, 230), width=1)
    draw.line([(x(s), y(v)) for s, v in zip(steps[len(steps) - len(smoothed):], smoothed)], fill=(30, 60, 170), width=2)
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for fraction in (0, 0.5, 1):
        value = low + fraction * (high - low)
        draw.text((5, y(value) - 6), f"{value:.3f}", fill="black")
        step = int(steps[0] + fraction * (steps[-1] - steps[0]))
        draw.text((x(step) - 15, height - bottom + 5), str(step), fill="black")
    draw.text((left, 8), f"{title} (light: per step, dark: mean of {len(kernel)})", fill="black")
    draw.text((width // 2 - 30, height - 18), "optimizer step", fill="black")
    return image


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log_dir", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--tag", default="train/loss")
    parser.add_argument("--smooth", type=int, default=50, help="moving-average window in steps")
    args = parser.parse_args(argv)
    steps, values = read_scalars(args.log_dir, args.tag)
    plot(steps, values, args.smooth, args.tag).save(args.output)
    print(f"wrote {args.output} ({len(steps)} steps, last {args.smooth}-step mean {values[-args.smooth:].mean():.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
