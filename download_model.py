"""Fetch timbrooks/instruct-pix2pix (configs + safetensors only), or build a
tiny random pipeline of the same layout offline with --tiny.

The endpoint is --endpoint, else $HF_ENDPOINT (`source setup_mirror.sh` sets
it to a mirror), else https://huggingface.co. Re-running the same command
resumes an interrupted download and skips files already complete. The result
is loaded once as a pipeline before success is reported.
"""

import sys
from pathlib import Path

from ip2p.shared.atomic_dir import atomic_output_dir, check_replaceable, mark_owner
from ip2p.shared.cli import make_parser, run_main
from ip2p.models.hub import DEFAULT_REPO_ID, download_pipeline, resolve_endpoint, verify_pipeline
from ip2p.models.tiny_model import UNET_ATTENTION

REAL_MODEL_DIR = Path("models/instruct-pix2pix")
TINY_MODEL_DIR = Path("models/tiny-instruct-pix2pix")


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--repo-id", default=DEFAULT_REPO_ID, help="model repository on the hub")
    parser.add_argument("--local-dir", type=Path, default=None,
                        help=f"destination (default: {REAL_MODEL_DIR}, or {TINY_MODEL_DIR} with --tiny)")
    parser.add_argument("--endpoint", default=None, help="hub or mirror URL (default: $HF_ENDPOINT, else https://huggingface.co)")
    parser.add_argument("--revision", default="main", help="branch, tag or commit to fetch")
    parser.add_argument("--variant", default=None, help="weight variant to fetch, e.g. fp16 (default: the plain weights)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the endpoint before giving up")
    parser.add_argument("--tiny", action="store_true", help="build a tiny random pipeline offline instead of downloading")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tiny pipeline's weights (with --tiny)")
    parser.add_argument("--fit-vae-frames", type=Path, default=None,
                        help="with --tiny: fit the tiny VAE on the images under this folder so it can encode real frames")
    parser.add_argument("--fit-vae-steps", type=int, default=600, help="optimizer steps of that fit")
    parser.add_argument("--fit-vae-crop", type=int, default=32,
                        help="side in pixels of the random square crops the fit trains on (whole frames when they are "
                             "no larger); a multiple of the VAE's downsampling")
    parser.add_argument("--unet-channels", default="32,64", help="with --tiny: UNet block widths")
    parser.add_argument("--unet-attention", choices=tuple(UNET_ATTENTION), default="all",
                        help="with --tiny: where the UNet attends (self-attention and the instruction's cross-attention): "
                             "all = the full-resolution level and the mid block; mid = the mid block only (a CPU training "
                             "step about a third cheaper)")
    parser.add_argument("--vae-channels", default="8,16,16,16", help="with --tiny: VAE block widths (4 blocks: 8x downsampling)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output folder even if this script did not write it, or it holds files it did not write")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tiny:
        from ip2p.models.tiny_model import save_tiny_pipeline
        from ip2p.models.vae_fit import channel_list

        local_dir = args.local_dir or TINY_MODEL_DIR
        with atomic_output_dir(local_dir, "download_model.py", args.overwrite) as staging:
            save_tiny_pipeline(staging, args.seed, channel_list(args.unet_channels), channel_list(args.vae_channels),
                               args.fit_vae_frames, args.fit_vae_steps, args.fit_vae_crop, args.unet_attention)
    else:
        local_dir = args.local_dir or REAL_MODEL_DIR
        if not (Path(local_dir) / ".cache" / "huggingface").is_dir():  # not a download of ours to resume
            check_replaceable(local_dir, "download_model.py", args.overwrite)
        endpoint = resolve_endpoint(args.endpoint)
        print(f"fetching {args.repo_id}@{args.revision} from {endpoint} into {local_dir}")
        download_pipeline(args.repo_id, local_dir, endpoint, args.revision, args.variant, args.timeout)
        mark_owner(local_dir, "download_model.py")
    print(verify_pipeline(local_dir, None if args.tiny else args.variant))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
