"""The one declaration of the trainers' arguments.

Both trainers accept every flag of the diffusers example
``examples/instruct_pix2pix/train_instruct_pix2pix.py`` with the same name,
meaning and default, so existing command lines run unchanged. A trainer
changes only defaults (``build_parser(defaults=...)``) and may add its own
flags; ``--help`` prints every default. The resolved arguments are saved as
JSON beside every checkpoint and the final model (``save_args``).
"""

import argparse
import json
import os
from pathlib import Path
from typing import Dict, Optional

from .cli import make_parser

ARGS_FILE = "training_args.json"

# (flag, type/action, default, help), grouped as in the diffusers example.
SHARED_ARGUMENTS = {
    "model": [
        ("--pretrained_model_name_or_path", str, None, "pipeline folder or hub id of the base model (required)"),
        ("--revision", str, None, "hub revision of the base model"),
        ("--variant", str, None, "weight variant of the base model, e.g. fp16"),
        ("--non_ema_revision", str, None, "hub revision of the non-EMA UNet (deprecated upstream; default: --revision)"),
    ],
    "data": [
        ("--dataset_name", str, None, "hub dataset id, a local dataset folder, or a save_to_disk folder"),
        ("--dataset_config_name", str, None, "dataset config name, if the dataset has several"),
        ("--train_data_dir", str, None, "a folder with images + metadata.jsonl (file names resolved inside it), or a save_to_disk folder"),
        ("--original_image_column", str, "input_image", "column holding the image to edit"),
        ("--edited_image_column", str, "edited_image", "column holding the edited (target) image"),
        ("--edit_prompt_column", str, "edit_prompt", "column holding the instruction"),
        ("--max_train_samples", int, None, "use only this many training samples (after a seeded shuffle)"),
        ("--cache_dir", str, None, "where downloaded models and datasets are cached"),
        ("--resolution", int, 256, "images are resized (short side) and cropped to this square size"),
        ("--center_crop", "store_true", False, "crop the centre instead of a random square"),
        ("--random_flip", "store_true", False, "flip samples left-right at random (all images of a sample together)"),
        ("--dataloader_num_workers", int, None,
         "data-loading worker processes (0: load in the main process; default: up to 4 with a GPU, 0 on CPU)"),
    ],
    "training": [
        ("--output_dir", str, "instruct-pix2pix-model", "where checkpoints, logs and the final pipeline are written"),
        ("--seed", int, None, "seed for reproducible training (each process derives its own stream)"),
        ("--train_batch_size", int, 16, "batch size per device"),
        ("--num_train_epochs", int, 100, "epochs to train (ignored when --max_train_steps is set)"),
        ("--max_train_steps", int, None, "optimizer steps to train; overrides --num_train_epochs"),
        ("--gradient_accumulation_steps", int, 1, "micro-batches per optimizer step"),
        ("--conditioning_dropout_prob", float, 0.05,
         "per sample, drop only the text, only the image, and both, each with this probability "
         "(InstructPix2Pix paper, sec. 3.3) so both guidance scales work at inference"),
        ("--use_ema", "store_true", False, "keep an exponential moving average of the UNet; used for validation and the saved model"),
    ],
    "optimisation": [
        ("--learning_rate", float, 1e-4, "learning rate after warm-up"),
        ("--scale_lr", "store_true", False, "multiply the learning rate by processes x batch size x accumulation"),
        ("--lr_scheduler", str, "constant",
         "linear, cosine, cosine_with_restarts, polynomial, constant or constant_with_warmup"),
        ("--lr_warmup_steps", int, 500, "optimizer steps of linear warm-up"),
        ("--use_8bit_adam", "store_true", False, "8-bit AdamW from bitsandbytes (pip install bitsandbytes)"),
        ("--adam_beta1", float, 0.9, "AdamW beta1"),
        ("--adam_beta2", float, 0.999, "AdamW beta2"),
        ("--adam_weight_decay", float, 1e-2, "AdamW weight decay"),
        ("--adam_epsilon", float, 1e-08, "AdamW epsilon"),
        ("--max_grad_norm", float, 1.0, "gradient clipping norm"),
    ],
    "logging and validation": [
        ("--val_image_url", str, None, "URL or local path of an image to edit at validation"),
        ("--validation_prompt", str, None, "instruction used at validation"),
        ("--num_validation_images", int, 4, "images generated per validation"),
        ("--validation_epochs", int, 1, "validate every this many epochs"),
        ("--validation_steps", int, None, "also validate every this many optimizer steps"),
        ("--logging_dir", str, "logs", "TensorBoard folder, inside --output_dir"),
        ("--report_to", str, "tensorboard", "tensorboard, wandb, all, or none"),
        ("--local_rank", int, -1, "set by the launcher; kept for compatibility"),
    ],
    "checkpoints": [
        ("--checkpointing_steps", int, 500, "save a resumable checkpoint every this many optimizer steps"),
        ("--checkpoints_total_limit", int, None, "keep only the newest this many checkpoints"),
        ("--resume_from_checkpoint", str, None, "a checkpoint folder, or 'latest' in --output_dir"),
    ],
    "hub": [
        ("--push_to_hub", "store_true", False, "upload the final pipeline (not the checkpoints) to the hub"),
        ("--hub_token", str, None, "hub token (default: the logged-in one or $HF_TOKEN)"),
        ("--hub_model_id", str, None, "hub repository (default: the name of --output_dir)"),
    ],
    "memory and speed": [
        ("--mixed_precision", str, None,
         "no, fp16 or bf16 (default: the accelerate config, else bf16 on a GPU that has it, else no); fp16 falls back to no on CPU"),
        ("--gradient_checkpointing", "store_true", False, "recompute activations in the backward pass to save memory"),
        ("--enable_xformers_memory_efficient_attention", "store_true", False,
         "use xformers attention (pip install xformers); same as --attention xformers"),
        ("--attention", str, "sdpa", "sdpa (PyTorch's fused attention kernels), eager (plain matmul + softmax) or xformers"),
        ("--channels_last", "bool", None, "keep the UNet's tensors channels-last (default: on with a GPU)"),
        ("--fused_adam", "bool", None, "fused AdamW kernel (default: on with a GPU)"),
        ("--torch_compile", "store_true", False, "compile the UNet with torch.compile (inductor); first steps take minutes"),
        ("--dataloader_prefetch_factor", int, None, "batches each data-loading worker prepares ahead (PyTorch default: 2)"),
        ("--allow_tf32", "store_true", False, "allow TF32 matrix maths on Ampere and newer GPUs"),
    ],
}

CHOICES = {"--mixed_precision": ["no", "fp16", "bf16"], "--attention": ["sdpa", "eager", "xformers"]}


def build_parser(description: str, defaults: Optional[Dict[str, object]] = None,
                 groups: Optional[Dict[str, list]] = None) -> argparse.ArgumentParser:
    """A parser holding the shared arguments (and ``groups`` of extra ones);
    ``defaults`` maps destination names to a trainer's own defaults."""
    parser = make_parser(description)
    for title, arguments in {**SHARED_ARGUMENTS, **(groups or {})}.items():
        group = parser.add_argument_group(title)
        for flag, kind, default, help_text in arguments:
            if kind == "store_true":
                group.add_argument(flag, action="store_true", default=default, help=help_text)
            elif kind == "bool":  # --flag / --no_flag, in the underscore style of the other flags
                group.add_argument(flag, action="store_true", default=default, help=help_text)
                group.add_argument(f"--no_{flag[2:]}", dest=flag[2:], action="store_false", help=f"turn {flag} off")
            else:
                group.add_argument(flag, type=kind, default=default, help=help_text, choices=CHOICES.get(flag))
    if defaults:
        parser.set_defaults(**defaults)
    return parser


def parse_training_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    env_rank = int(os.environ.get("LOCAL_RANK", -1))
    if env_rank != -1:
        args.local_rank = env_rank
    if args.pretrained_model_name_or_path is None:
        parser.error("--pretrained_model_name_or_path is required")
    if args.dataset_name is None and args.train_data_dir is None:
        parser.error("give --train_data_dir (a folder) or --dataset_name (hub id or folder)")
    if args.non_ema_revision is None:
        args.non_ema_revision = args.revision
    if not 0.0 <= args.conditioning_dropout_prob <= 1.0 / 3.0:
        parser.error("--conditioning_dropout_prob must be between 0 and 1/3 (three disjoint cases share it)")
    for name in ("train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "resolution"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def save_args(args: argparse.Namespace, folder: Path) -> None:
    """Write the resolved arguments as JSON, so a checkpoint or model explains itself."""
    values = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    values.pop("hub_token", None)  # never write a secret to disk
    (Path(folder) / ARGS_FILE).write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
