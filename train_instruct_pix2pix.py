"""Fine-tune InstructPix2Pix on (input image, instruction, edited image) triples.

Accepts every flag of the diffusers example of the same name with the same
meaning and default, so existing command lines and `accelerate launch`
recipes run unchanged. Runs on CPU, one GPU, or many through accelerate.
"""

from ip2p.shared.cli import exit_script, run_main
from ip2p.training.image_task import parse_image_args


def main(argv=None) -> int:
    args = parse_image_args(argv, description=__doc__)
    from ip2p.training.image_task import image_task
    from ip2p.training.trainer import build_trainer

    # Build (data, models, optimizer, resumed state), then train and save:
    build_trainer(args, image_task(args)).run()
    return 0


if __name__ == "__main__":
    exit_script(run_main(main))
