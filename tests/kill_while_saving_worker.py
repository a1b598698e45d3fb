"""Train exactly as train_instruct_pix2pix.py does and SIGKILL the process in
the middle of its second checkpoint: accelerate has written the state into the
staging folder, which is not yet marked complete nor renamed. (A kill timed by
polling the folder from outside missed that window when the machine was busy.)

    python tests/kill_while_saving_worker.py [train_instruct_pix2pix.py flags]
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import accelerate  # noqa: E402

from ip2p.shared.cli import exit_script, run_main  # noqa: E402
from ip2p.training.image_task import image_task, parse_image_args  # noqa: E402
from ip2p.training.trainer import build_trainer  # noqa: E402

save_state, saves = accelerate.Accelerator.save_state, []


def save_then_die(self, *args, **kwargs):
    result = save_state(self, *args, **kwargs)
    saves.append(args)
    if len(saves) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return result


def main(argv=None) -> int:
    args = parse_image_args(argv)
    accelerate.Accelerator.save_state = save_then_die
    build_trainer(args, image_task(args)).run()
    return 0


if __name__ == "__main__":
    exit_script(run_main(main))
