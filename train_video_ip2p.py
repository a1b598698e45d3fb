"""Train the 20-frame next-frame predictor: InstructPix2Pix with its UNet
widened to 4 + 4 x N input channels, conditioned on the N observed frames.

Takes the original project's argument list unchanged plus every flag of
train_instruct_pix2pix.py. The frame count comes from the data and is checked
against the UNet. Latents are cached on disk by default (--no_cache_latents
to turn it off). Runs under `accelerate launch`, torchrun, plain python, or
run_video_training.py.
"""

from ip2p.shared.cli import exit_script, run_main
from ip2p.training.video_task import parse_video_args


def main(argv=None) -> int:
    args = parse_video_args(argv, description=__doc__)
    from ip2p.training.trainer import build_trainer
    from ip2p.training.video_task import video_task

    # Build (data, latent cache, models, optimizer, resumed state), then train and save:
    build_trainer(args, video_task(args)).run()
    return 0


if __name__ == "__main__":
    exit_script(run_main(main))
