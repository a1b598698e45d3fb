"""Run under torchrun by test_training_setup.py: resolve a run's arguments
without --seed as the trainers do, and print the seed and the sample indices
this process would train in the first epoch."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ip2p.data.batches import EpochBatchSampler  # noqa: E402
from ip2p.training.setup import init_run  # noqa: E402
from ip2p.training.video_task import parse_video_args  # noqa: E402

args = parse_video_args(["--pretrained_model_name_or_path", "unused", "--train_data_dir", "unused",
                         "--output_dir", sys.argv[1], "--train_batch_size", "2", "--report_to", "none"])
accelerator, resolved = init_run(args)
sampler = EpochBatchSampler(10, resolved.train_batch_size, accelerator.process_index, accelerator.num_processes, resolved.seed)
indices = [index for batch in sampler for _, index in batch]
print(f"rank {accelerator.process_index} seed {resolved.seed} indices {','.join(map(str, indices))}", flush=True)
accelerator.wait_for_everyone()
