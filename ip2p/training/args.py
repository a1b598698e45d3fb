"""The one declaration of the trainers' arguments.

Both trainers accept every flag of the diffusers example
``examples/instruct_pix2pix/train_instruct_pix2pix.py`` with the same name,
meaning and default, so existing command lines run unchanged. A trainer
changes only defaults (``build_parser(defaults=...)``), may add its own
flags and leave out shared ones it has no use for; ``--help`` prints every
default, and each entry declares its allowed values, so the parser checks
them. Defaults that depend on the machine or the run are resolved once, by
``ip2p.training.setup.init_run``, into read-only ``ResolvedArgs``; those are
saved as JSON beside every checkpoint and the final model (``save_args``).
"""

import argparse
import json
import os
from pathlib import Path
from typing import Dict, Iterable, NamedTuple, Optional, Tuple

from ..shared.cli import make_parser

ARGS_FILE = "training_args.json"
VAE_SCALE_FACTOR = 8  # SD 1.x and the tiny test VAE both downsample 8x (4 blocks)


class Arg(NamedTuple):
    flag: str
    kind: object  # a type, "store_true", or "bool" (--flag / --no_flag)
    default: object
    help: str
    choices: Optional[Tuple[str, ...]] = None


# Grouped as in the diffusers example.
SHARED_ARGUMENTS = {
    "model": [
        Arg("--pretrained_model_name_or_path", str, None, "pipeline folder or hub id of the base model (required)"),
        Arg("--revision", str, None, "hub revision of the base model"),
        Arg("--variant", str, None, "weight variant of the base model, e.g. fp16"),
        Arg("--non_ema_revision", str, None, "hub revision of the non-EMA UNet (deprecated upstream; default: --revision)"),
    ],
    "data": [
        Arg("--dataset_name", str, None, "hub dataset id, a local dataset folder, or a save_to_disk folder"),
        Arg("--dataset_config_name", str, None, "dataset config name, if the dataset has several"),
        Arg("--train_data_dir", str, None, "a folder with images + metadata.jsonl (file names resolved inside it), or a save_to_disk folder"),
        Arg("--original_image_column", str, "input_image", "column holding the image to edit"),
        Arg("--edited_image_column", str, "edited_image", "column holding the edited (target) image"),
        Arg("--edit_prompt_column", str, "edit_prompt", "column holding the instruction"),
        Arg("--max_train_samples", int, None, "use only this many training samples (after a seeded shuffle)"),
        Arg("--cache_dir", str, None, "where downloaded models and datasets are cached"),
        Arg("--resolution", int, 256, "images are resized (short side) and cropped to this square size"),
        Arg("--center_crop", "store_true", False, "crop the centre instead of a random square"),
        Arg("--random_flip", "store_true", False, "flip samples left-right at random (all images of a sample together)"),
        Arg("--dataloader_num_workers", int, None,
         "data-loading worker processes (0: load in the main process; default: up to 4 with a GPU, 0 on CPU)"),
    ],
    "training": [
        Arg("--output_dir", str, "instruct-pix2pix-model", "where checkpoints, logs and the final pipeline are written"),
        Arg("--overwrite_output_dir", "store_true", False, "start a new run in a folder holding an earlier one (its files "
                                                          "are moved into superseded-<time>/) or other files (left as "
                                                          "they are); never a model the run reads"),
        Arg("--seed", int, None, "seed for reproducible training (each process derives its own stream)"),
        Arg("--train_batch_size", int, 16, "batch size per device"),
        Arg("--num_train_epochs", int, 100, "epochs to train (ignored when --max_train_steps is set)"),
        Arg("--max_train_steps", int, None, "optimizer steps to train; overrides --num_train_epochs"),
        Arg("--gradient_accumulation_steps", int, 1, "micro-batches per optimizer step"),
        Arg("--conditioning_dropout_prob", float, 0.05,
         "per sample, drop only the text, only the image, and both, each with this probability "
         "(InstructPix2Pix paper, sec. 3.3) so both guidance scales work at inference"),
        Arg("--use_ema", "store_true", False, "keep an exponential moving average of the UNet; used for validation and the saved model"),
        Arg("--prediction_type", str, None, "what the UNet predicts: epsilon (the noise), v_prediction (Salimans & Ho "
                                            "2022) or sample (the clean target latent, whose loss at high noise is a "
                                            "regression to the expected next frame); default: the base model's "
                                            "scheduler. Saved with the model",
            choices=("epsilon", "v_prediction", "sample")),
        Arg("--min_train_timestep", int, 0, "train only on noise levels t >= this (of the schedule's 1000 steps): a "
                                            "sample-predicting model sampled with one DDIM step, which starts at "
                                            "t = 999, uses only the high end (900 for learn_synthetic.sh); sampling "
                                            "such a model with many steps asks it about noise levels it never saw"),
    ],
    "optimisation": [
        Arg("--learning_rate", float, 1e-4, "learning rate after warm-up"),
        Arg("--scale_lr", "store_true", False, "multiply the learning rate by processes x batch size x accumulation"),
        Arg("--lr_scheduler", str, "constant", "learning-rate schedule after warm-up",
            choices=("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")),
        Arg("--lr_warmup_steps", int, 500, "optimizer steps of linear warm-up"),
        Arg("--use_8bit_adam", "store_true", False, "8-bit AdamW from bitsandbytes (pip install bitsandbytes)"),
        Arg("--adam_beta1", float, 0.9, "AdamW beta1"),
        Arg("--adam_beta2", float, 0.999, "AdamW beta2"),
        Arg("--adam_weight_decay", float, 1e-2, "AdamW weight decay"),
        Arg("--adam_epsilon", float, 1e-08, "AdamW epsilon"),
        Arg("--max_grad_norm", float, 1.0, "gradient clipping norm"),
    ],
    "logging and validation": [
        Arg("--val_image_url", str, None, "URL or local path of an image to edit at validation"),
        Arg("--validation_prompt", str, None, "instruction used at validation"),
        Arg("--num_validation_images", int, 4, "images generated per validation"),
        Arg("--validation_epochs", int, 1, "validate every this many epochs"),
        Arg("--validation_steps", int, None, "also validate every this many optimizer steps"),
        Arg("--logging_dir", str, "logs", "TensorBoard folder, inside --output_dir"),
        Arg("--logging_steps", int, 10, "reduce the losses across processes and report them every this many optimizer "
                                        "steps (one host sync each time; every step is still logged). A non-finite loss "
                                        "is then found up to this many steps late, but always before a checkpoint is saved"),
        Arg("--report_to", str, "tensorboard", "where scalars and images go", choices=("tensorboard", "wandb", "comet_ml", "mlflow", "all", "none")),
        Arg("--local_rank", int, -1, "set by the launcher; kept for compatibility"),
    ],
    "checkpoints": [
        Arg("--checkpointing_steps", int, 500, "save a resumable checkpoint every this many optimizer steps"),
        Arg("--checkpoints_total_limit", int, None, "keep only the newest this many checkpoints"),
        Arg("--resume_from_checkpoint", str, None, "a checkpoint folder, or 'latest' in --output_dir"),
    ],
    "hub": [
        Arg("--push_to_hub", "store_true", False, "upload the final pipeline (not the checkpoints) to the hub"),
        Arg("--hub_token", str, None, "hub token (default: the logged-in one or $HF_TOKEN)"),
        Arg("--hub_model_id", str, None, "hub repository (default: the name of --output_dir)"),
    ],
    "memory and speed": [
        Arg("--mixed_precision", str, None,
            "default: the accelerate config, else bf16 on a GPU that has it, else no; fp16 falls back to no on CPU",
            choices=("no", "fp16", "bf16")),
        Arg("--gradient_checkpointing", "store_true", False, "recompute activations in the backward pass to save memory"),
        Arg("--cache_latents", "bool", True, "encode each sample with the VAE once and reuse its latents in later epochs and "
                                             "runs; a random crop that varies between epochs cannot be cached, and the "
                                             "run then encodes every step (says so at start)"),
        Arg("--latent_cache_dir", str, "latent_cache", "where cached latents live (keyed by data, resolution and VAE)"),
        Arg("--prompt_cache_mb", int, 1024, "encode each unique instruction once into a table of at most this many MB on the "
                                            "training device, instead of running the text encoder every step (0: off)"),
        Arg("--vae_batch_size", int, 16, "frames per VAE encoder call when filling the latent cache or encoding online "
                                         "(a batch of 32 clips is 672 frames); 16 fits a 24 GB card at 512 px"),
        Arg("--enable_xformers_memory_efficient_attention", "store_true", False,
         "use xformers attention (pip install xformers); same as --attention xformers"),
        Arg("--attention", str, "sdpa", "sdpa (PyTorch's fused attention kernels), eager (plain matmul + softmax) or xformers",
            choices=("sdpa", "eager", "xformers")),
        Arg("--channels_last", "bool", None, "keep the UNet's tensors channels-last (default: on with a GPU)"),
        Arg("--fused_adam", "bool", None, "fused AdamW kernel, on GPU or CPU (default: on unless --use_8bit_adam)"),
        Arg("--torch_compile", "bool", False, "compile the UNet with torch.compile (inductor); the first step takes minutes "
                                              "(printed apart), so it pays only in long runs"),
        Arg("--torch_compile_mode", str, "default", "torch.compile mode with --torch_compile: reduce-overhead also replays "
                                                    "the compiled step as CUDA graphs (fixed shapes: one resolution, full "
                                                    "batches), cutting the host's kernel launches",
            choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")),
        Arg("--cuda_graph_unet", "store_true", False, "record the UNet's forward and backward as CUDA graphs at the first "
                                                      "step and replay them (torch.cuda.make_graphed_callables): fewer host "
                                                      "launches without compiling; one GPU, one process, fixed shapes"),
        Arg("--dataloader_prefetch_factor", int, None, "batches each data-loading worker prepares ahead (PyTorch default: 2)"),
        Arg("--allow_tf32", "store_true", False, "allow TF32 matrix maths on Ampere and newer GPUs"),
    ],
}

def build_parser(description: str, defaults: Optional[Dict[str, object]] = None,
                 groups: Optional[Dict[str, list]] = None, leave_out: Iterable[str] = ()) -> argparse.ArgumentParser:
    """A parser holding the shared arguments (and ``groups`` of extra ones)
    except the flags in ``leave_out``; ``defaults`` maps destination names to
    a trainer's own defaults."""
    parser = make_parser(description)
    for title, arguments in {**SHARED_ARGUMENTS, **(groups or {})}.items():
        group = parser.add_argument_group(title)
        for arg in arguments:
            if arg.flag not in leave_out:
                _add(group, arg)
    if defaults:
        parser.set_defaults(**defaults)
    return parser


def _add(group, arg: Arg) -> None:
    if arg.kind == "store_true":
        group.add_argument(arg.flag, action="store_true", default=arg.default, help=arg.help)
    elif arg.kind == "bool":  # --flag / --no_flag, in the underscore style of the other flags
        group.add_argument(arg.flag, action="store_true", default=arg.default, help=arg.help)
        group.add_argument(f"--no_{arg.flag[2:]}", dest=arg.flag[2:], action="store_false", help=f"turn {arg.flag} off")
    else:
        group.add_argument(arg.flag, type=arg.kind, default=arg.default, help=arg.help, choices=arg.choices)


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
    if args.min_train_timestep < 0:
        parser.error("--min_train_timestep must be at least 0")
    for name in ("train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "resolution"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.resolution % VAE_SCALE_FACTOR:
        nearest = max(VAE_SCALE_FACTOR, round(args.resolution / VAE_SCALE_FACTOR) * VAE_SCALE_FACTOR)
        parser.error(f"--resolution {args.resolution}: the VAE works on {VAE_SCALE_FACTOR}x{VAE_SCALE_FACTOR} pixel "
                     f"blocks; give a multiple of {VAE_SCALE_FACTOR}, e.g. {nearest}")
    if not args.learning_rate > 0:
        parser.error(f"--learning_rate must be above 0, got {args.learning_rate:g}")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        parser.error("--checkpoints_total_limit must be at least 1")
    if args.cuda_graph_unet and args.torch_compile:
        parser.error("give --cuda_graph_unet (records the eager UNet) or --torch_compile (--torch_compile_mode "
                     "reduce-overhead replays the compiled one as CUDA graphs), not both")
    if args.cuda_graph_unet and args.gradient_checkpointing:
        parser.error("--cuda_graph_unet cannot record gradient checkpointing's recomputation: leave one of them out")
    return args


class ResolvedArgs(argparse.Namespace):
    """A run's arguments once every default is resolved: read-only, so what
    ``training_args.json`` records is what every part of the run read."""

    def __init__(self, values: Dict[str, object]):
        self.__dict__.update(values)

    def __setattr__(self, name, value):
        raise AttributeError(f"the run's arguments are read-only once resolved (tried to set {name}); "
                             "resolve it in ip2p.training.setup.init_run")

    def __delattr__(self, name):
        self.__setattr__(name, None)


def save_args(args: argparse.Namespace, folder: Path, extra: Optional[Dict[str, object]] = None) -> None:
    """Write the resolved arguments (and ``extra`` resolved settings, such as
    the objective's measured statistics) as JSON, so a checkpoint or model explains itself."""
    values = {k: (str(v) if isinstance(v, Path) else v) for k, v in {**vars(args), **(extra or {})}.items()}
    values.pop("hub_token", None)  # never write a secret to disk
    (Path(folder) / ARGS_FILE).write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def data_source(args: argparse.Namespace):
    """The ``DataSource`` the flags name: the data package takes these values, never the flags."""
    from ..data.sources import DataSource  # in here: the data package loads torch, and --help must not wait for it

    return DataSource(train_data_dir=args.train_data_dir, dataset_name=args.dataset_name,
                      dataset_config_name=args.dataset_config_name, cache_dir=args.cache_dir)

