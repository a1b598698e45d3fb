"""Launch the video trainer from Python: edit TRAINING_ARG_LIST below and run
`python run_video_training.py`.

VIDEO_TRAIN_PROCESSES sets the process count (default 4). With fewer GPUs
visible it uses what is there and says so; with none it runs CPU processes.
Workers are started with the `spawn` method by
torch.multiprocessing.start_processes (a public API), each with the
environment `torchrun` gives a process (RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), which is what accelerate reads; so CUDA is never
initialised in a forked child. A failing worker makes this script exit
non-zero after printing its error once.
"""

import os
import sys
import tempfile
from pathlib import Path

TRAINING_ARG_LIST = [
    "--pretrained_model_name_or_path", "models/instruct-pix2pix",
    "--custom_unet_path", "models/instruct-pix2pix-video-20frames",
    "--train_data_dir", "processed_dataset_seq",
    "--original_image_column", "input_frames",
    "--edit_prompt_column", "edit_prompt",
    "--edited_image_column", "edited_image",
    "--resolution", "256",
    "--train_batch_size", "2",
    "--gradient_accumulation_steps", "4",
    "--max_train_steps", "500",
    "--learning_rate", "5e-5",
    "--mixed_precision", "fp16",
    "--output_dir", "output_video_model",
    "--checkpointing_steps", "100",
    "--num_train_epochs", "100",
]


def train_worker(rank, arg_list, error_dir, world_size, port):
    """Process ``rank``'s training; a non-zero status ends it with that code,
    which the parent sees. An expected error goes to ``error_dir`` for the
    parent to print once."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import train_video_ip2p
    from ip2p.shared.cli import run_main

    report = Path(error_dir, f"worker-{rank}.txt").write_text
    status = run_main(train_video_ip2p.main, arg_list, report=report)
    if status != 0:
        sys.exit(status)


def process_count() -> int:
    import torch

    requested = int(os.environ.get("VIDEO_TRAIN_PROCESSES", "4"))
    if requested < 1:
        raise SystemExit("error: VIDEO_TRAIN_PROCESSES must be at least 1")
    visible = torch.cuda.device_count()  # reads the driver without creating a CUDA context
    if visible == 0:
        print(f"no GPU visible: running {requested} CPU process(es)")
        return requested
    if visible < requested:
        print(f"VIDEO_TRAIN_PROCESSES={requested} but only {visible} GPU(s) are visible: using {visible}")
        return visible
    return requested


def launch(arg_list) -> int:
    import torch.multiprocessing

    num_processes = process_count()
    port = os.environ.get("MASTER_PORT", "29500")
    with tempfile.TemporaryDirectory(prefix="ip2p-worker-errors-") as error_dir:
        try:
            torch.multiprocessing.start_processes(train_worker, args=(arg_list, error_dir, num_processes, port),
                                                  nprocs=num_processes, join=True, start_method="spawn")
        except Exception as err:  # a worker that raised, or exited non-zero
            errors = sorted({path.read_text() for path in Path(error_dir).glob("worker-*.txt")})
            for line in errors:  # the same mistake on every worker is printed once
                print(line, file=sys.stderr)
            seen = "" if errors else "; see its output above"
            print(f"error: training failed in a worker process ({type(err).__name__}){seen}", file=sys.stderr)
            return 1
    return 0


def check_arguments(arg_list) -> int:
    """Parse and check the arguments once, here, before any worker starts."""
    from ip2p.shared.cli import run_main
    from ip2p.training.video_task import check_paths, parse_video_args

    return run_main(lambda argv: check_paths(parse_video_args(argv)) or 0, arg_list)


if __name__ == "__main__":
    arguments = TRAINING_ARG_LIST + sys.argv[1:]
    sys.exit(check_arguments(arguments) or launch(arguments))
