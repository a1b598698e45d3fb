"""Evaluate a trained video model on held-out clips, against baselines.

For every sample: the model's prediction and four reference rows on the same
samples (optical-flow extrapolation, copy-last-frame, latent copy-last, VAE
reconstruction of the truth), scored with PSNR and SSIM over the whole frame
and PSNR over the pixels that move (definitions in docs/evaluation.md), overall and
per task type. Writes metrics.json, metrics.csv and grid.png (last observed |
flow extrapolation | model | truth | model error), with --save-predictions
every row's prediction as PNG, and prints a markdown table. With --horizon K
(a raw data root whose clips have at least 20 + K frames) it rolls out K
frames from the first 20 of each clip's last 20 + K and scores every step for
the model, flow extrapolation and copy-last: metrics.json / metrics.csv with a
horizon field, and horizon.png. With --calibrate-fallback M1,M2,... it
scores the model at each fallback margin instead (held-out clips of the kinds
it was trained on), writes calibration.json and prints the margin it chooses
(ip2p/evaluation/calibration.py). Sampling settings default to the ones saved
with the model at training time.
"""

import argparse
import sys
from pathlib import Path

from ip2p.models.samplers import SAMPLERS, add_sampling_arguments, chosen_settings, use_sampler
from ip2p.shared.cli import UserError, at_least, make_parser, run_main


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="trained video pipeline folder")
    parser.add_argument("--data", type=Path, required=True, help="a processed dataset, or a raw data root (either layout)")
    parser.add_argument("--split", default="test", help="split to evaluate (raw data: val/ is 'test')")
    parser.add_argument("--resolution", type=int, default=None, help="evaluation size (default: the model's training resolution)")
    add_sampling_arguments(parser)
    parser.add_argument("--sampler", choices=["saved", *SAMPLERS], default="saved",
                        help="sampler: the model's saved one, deterministic DDIM, or stochastic Euler ancestral")
    parser.add_argument("--horizon", type=int, default=None, metavar="K",
                        help="score a K-frame rollout step by step instead (raw clips of at least 20 + K frames)")
    parser.add_argument("--calibrate-fallback", type=margin_list, default=None, metavar="M1,M2,...",
                        help="score the model at each of these fallback margins (grey levels) against flow "
                             "extrapolation, write calibration.json and print the margin chosen")
    parser.add_argument("--batch-size", type=at_least(1), default=8, help="clips predicted together")
    parser.add_argument("--max-samples", type=at_least(1), default=None, help="evaluate only the first N samples")
    parser.add_argument("--grid-samples", type=at_least(1), default=8, help="samples shown in grid.png")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling noise")
    parser.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                        help="auto: bf16 on a GPU (fp16 without bf16), fp32 on CPU")
    parser.add_argument("--output-dir", type=Path, default=Path("eval_out"), help="where results are written")
    parser.add_argument("--save-predictions", type=Path, default=None, metavar="DIR",
                        help="also write every row's prediction for every sample as DIR/<row>/<sample id, / as __>.png "
                             "at the evaluation resolution, and the truth as DIR/truth/..., so any metric can be recomputed")
    args = parser.parse_args(argv)
    if args.horizon is not None and args.horizon < 1:
        parser.error("--horizon must be at least 1")
    if args.horizon and args.calibrate_fallback:
        parser.error("--calibrate-fallback scores single next-frame predictions: leave out --horizon")
    return args


def margin_list(text: str):
    """``"0,4,8"`` -> ``[0.0, 4.0, 8.0]``: grey levels, at least 0, no repeats."""
    try:
        margins = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give grey levels separated by commas, e.g. 0,4,8,16") from None
    if any(margin < 0 for margin in margins) or len(set(margins)) != len(margins):
        raise argparse.ArgumentTypeError(f"{text!r}: margins must be at least 0 and each given once")
    return margins


def in_batches(samples: list, batch_size: int, desc: str, evaluate) -> list:
    """``evaluate(batch)`` over ``samples`` in batches under a progress bar; the results, joined."""
    from tqdm.auto import tqdm

    results = []
    with tqdm(total=len(samples), desc=desc, unit="sample") as progress:
        for start in range(0, len(samples), batch_size):
            batch = samples[start:start + batch_size]
            results.extend(evaluate(batch))
            progress.update(len(batch))
    return results


def calibrate_fallback(args, pipeline, samples, resolution: int, settings: dict, generator, meta: dict) -> int:
    import json

    from ip2p.evaluation.calibration import calibration_batch, calibration_table, choose_margin, margin_gains
    from ip2p.evaluation.scoring import no_nan

    if pipeline.config.motion_prior != "flow" or settings["output_mode"] == "frame":
        raise UserError(f"{args.model}: a fallback margin needs a model trained with --motion_prior flow and "
                        "output mode blend or composite")
    margins = args.calibrate_fallback
    results = in_batches(samples, args.batch_size, "calibrating", lambda batch: calibration_batch(
        pipeline, batch, resolution, settings, margins, generator))
    gains = margin_gains(results, margins)
    chosen = choose_margin(gains)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    document = {**meta, "chosen_fallback_margin": chosen, "gains_over_flow": {str(m): g for m, g in gains.items()},
                "samples": results}
    (args.output_dir / "calibration.json").write_text(json.dumps(no_nan(document), indent=2) + "\n", encoding="utf-8")
    print(calibration_table(gains, chosen))
    print(f"chosen fallback margin: {chosen:g} grey levels (use --fallback-margin {chosen:g}); "
          f"wrote {args.output_dir}/calibration.json ({len(samples)} clips)")
    return 0


def evaluate_horizon(args, pipeline, resolution: int, settings: dict, generator, meta: dict) -> int:
    from ip2p.evaluation.horizon import (evaluate_horizon_batch, horizon_samples, horizon_table, summarise_horizon,
                                         write_horizon_outputs)

    samples = horizon_samples(args.data, args.split, pipeline.num_frames, args.horizon)[: args.max_samples]
    if not samples:
        raise UserError(f"{args.data} has no clips of {pipeline.num_frames + args.horizon} frames in split {args.split!r}")
    results = in_batches(samples, args.batch_size, f"rolling out {args.horizon} frames", lambda batch: evaluate_horizon_batch(
        pipeline, batch, resolution, settings, generator, args.horizon))
    summary = summarise_horizon(results, args.horizon)
    write_horizon_outputs(args.output_dir, results, summary, meta)
    print(horizon_table(summary))
    print(f"wrote {args.output_dir}/metrics.json, metrics.csv, horizon.png ({len(samples)} clips, {args.horizon} steps)")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from ip2p.evaluation.samples import samples_from_data
    from ip2p.evaluation.scoring import evaluate_batch, markdown_table, summarise, write_outputs
    from ip2p.models.video_pipeline import inference_device_and_dtype, load_video_pipeline, model_resolution
    from ip2p.shared.metrics import unavailable_metrics

    device, dtype = inference_device_and_dtype(args.precision)
    pipeline = load_video_pipeline(args.model, device, dtype)
    use_sampler(pipeline, args.sampler)
    resolution = args.resolution or model_resolution(args.model)
    settings = chosen_settings(pipeline, args)
    if args.horizon:  # what the rollouts sample with, so that metrics.json records it
        settings = pipeline.rollout_settings(args.horizon, settings)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    meta = {"model": str(args.model), "data": str(args.data), "split": args.split, "resolution": resolution,
            "settings": {**settings, "seed": args.seed, "sampler": type(pipeline.scheduler).__name__}}
    if args.horizon:
        return evaluate_horizon(args, pipeline, resolution, settings, generator, meta)
    samples = samples_from_data(args.data, args.split, pipeline.num_frames)[: args.max_samples]
    if not samples:
        raise UserError(f"{args.data} has no samples in split {args.split!r}; choose another --split or --data")
    if args.calibrate_fallback:
        return calibrate_fallback(args, pipeline, samples, resolution, settings, generator, meta)
    results = in_batches(samples, args.batch_size, "evaluating", lambda batch: evaluate_batch(
        pipeline, batch, resolution, settings, generator, args.save_predictions))
    summary = summarise(results)
    meta["unavailable_metrics"] = unavailable_metrics()
    write_outputs(args.output_dir, results, summary, meta, args.grid_samples, resolution)
    print(markdown_table(summary))
    for metric, reason in meta["unavailable_metrics"].items():
        print(f"{metric}: unavailable ({reason})")
    print(f"wrote {args.output_dir}/metrics.json, metrics.csv, grid.png"
          + (f"; predictions of every row under {args.save_predictions}" if args.save_predictions else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
