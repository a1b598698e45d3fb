"""Run under torchrun by the multi-process tests: train exactly as
``train_video_ip2p.py`` (``video``) or ``train_instruct_pix2pix.py``
(``image``) does, then write the UNet weights this process ended with to
``REPLICA_DIR/rank<R>.safetensors``. The tests compare those files tensor for
tensor with each other and with the saved pipeline, instead of trusting the
trainer's own "weights identical" line.

    python -m torch.distributed.run ... tests/replica_weights_worker.py video|image REPLICA_DIR [trainer flags]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safetensors.torch import save_file  # noqa: E402

from ip2p.shared.cli import exit_script, run_main  # noqa: E402


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    kind, replica_dir, trainer_argv = argv[0], Path(argv[1]), argv[2:]
    from ip2p.training.image_task import image_task, parse_image_args
    from ip2p.training.saving import unwrap
    from ip2p.training.trainer import build_trainer
    from ip2p.training.video_task import parse_video_args, video_task

    parse, task = (parse_video_args, video_task) if kind == "video" else (parse_image_args, image_task)
    args = parse(trainer_argv)
    trainer = build_trainer(args, task(args))
    rank = trainer.accelerator.process_index
    trainer.run()
    weights = unwrap(trainer.accelerator, trainer.models.unet).state_dict()
    replica_dir.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.detach().cpu().contiguous() for name, tensor in weights.items()}, replica_dir / f"rank{rank}.safetensors")
    return 0


if __name__ == "__main__":
    exit_script(run_main(main))
