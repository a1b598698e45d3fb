"""The training engine both trainers share: ``build_trainer(args, task)``
assembles a run (accelerator, models, data, optimizer, state) and
``Trainer.run()`` trains it, checkpoints, validates and saves the pipeline.

A trainer describes itself with a ``TrainingTask`` (how many conditioning
frames, how to build its dataset, its objective, its pipeline, how to
validate). Single-image InstructPix2Pix is the case of one conditioning
frame. The recipe is the InstructPix2Pix paper's (Brooks et al. 2023): UNet
input ``[noisy latents, conditioning latents]``, the objective's target
latents noised with the training schedule, and conditioning dropout for two
guidance scales.
"""

import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.batches import EpochBatchSampler, collate
from ..models.latents import FrameLatents, encode_frame_latents
from ..models.loading import Models, load_models
from ..models.text import encode_prompts
from ..models.widening import widen_unet_input
from ..shared.cli import UserError, leave_process_group
from .args import ResolvedArgs, save_args
from .caches import build_prompt_table, fill_latent_cache
from .checkpoints import (TrainState, find_checkpoint, later_checkpoints, list_checkpoints, load_checkpoint, remove_partial_checkpoints,
                          save_checkpoint)
from .conditioning import apply_conditioning_dropout, conditioning_dropout_masks
from .cuda_graphs import GraphedUNet, check_cuda_graph_unet
from .engines import (check_cuda_graph_accumulation, check_fsdp_settings, configure_deepspeed, gathered_unet, load_fp32_masters,
                      mark_step_end, uses_deepspeed, uses_fsdp, whole_parameters)
from .objectives import FrameObjective, denoising_target, draw_timesteps
from .run_folder import check_output_dir, prepare_output_dir
from .run_logger import RunLogger
from .saving import check_replicas_in_sync, inference_pipeline, push_pipeline, save_pipeline, unwrap
from .setup import configure_models, init_run, make_optimization
from .speed import allocate_gradients, keeps_gradient_buffers, loader_options, replays_cuda_graphs, wait_for_device


@dataclass
class TrainingTask:
    name: str  # tracker project name
    script: str  # the trainer script, named in the output folder's owner record
    num_conditioning_frames: int
    build_dataset: Callable  # (args, tokenizer) -> torch Dataset addressed by (epoch, index)
    pipeline_class: type
    objective: object = field(default_factory=FrameObjective)  # see ip2p.training.objectives
    pipeline_kwargs: dict = field(default_factory=dict)  # fixed extra constructor arguments of pipeline_class
    validation_images: Optional[Callable] = None  # (pipeline, args, generator) -> PIL images; None: no validation
    unet_folder: Optional[str] = None  # a UNet to train instead of the base model's (--custom_unet_path)


def build_trainer(args, task: TrainingTask, models: Optional[Models] = None) -> "Trainer":
    """A run ready to train. ``args`` as parsed (every default is resolved
    here, read-only afterwards); ``models`` are loaded from
    ``--pretrained_model_name_or_path`` unless given (the benchmark's random ones)."""
    # Setup: resolved arguments, accelerator, output folder:
    accelerator, args = init_run(args)
    if uses_fsdp(accelerator):
        check_fsdp_settings(accelerator)
    check_cuda_graph_unet(accelerator, args)  # first: it refuses the engines that the next check names
    check_cuda_graph_accumulation(accelerator, args)
    output_dir = Path(args.output_dir)
    check_output_dir(args, task.script)  # on every process, before any of them writes
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        prepare_output_dir(args, task.script)
        remove_partial_checkpoints(output_dir)

    # Models, data (with the caches that replace per-step encoding) and the objective's statistics:
    models = models or load_models(args.pretrained_model_name_or_path, args.revision, args.variant, args.non_ema_revision,
                                   args.cache_dir, task.unet_folder)
    widen_unet_input(models.unet, task.num_conditioning_frames)
    weight_dtype = configure_models(args, models, accelerator)
    dataset = task.build_dataset(args, models.tokenizer)
    if args.cache_latents:
        fill_latent_cache(dataset, models, accelerator, args, weight_dtype)
    prompt_table = build_prompt_table(dataset, models, accelerator, args)
    objective_settings = task.objective.prepare(dataset, models.vae, accelerator.device, weight_dtype)
    if objective_settings:
        accelerator.print(f"objective {task.objective.name}: " + ", ".join(f"{k} {v}" for k, v in objective_settings.items()))
    sampler = EpochBatchSampler(len(dataset), args.train_batch_size, accelerator.process_index, accelerator.num_processes, args.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                         **loader_options(args, accelerator.device.type))
    max_steps = args.max_train_steps or math.ceil(args.num_train_epochs * sampler.batches_per_epoch() / args.gradient_accumulation_steps)

    # Optimizer, then the state (a checkpoint restores both):
    optimizer, lr_scheduler, ema = make_optimization(args, models.unet, accelerator, max_steps)
    if uses_deepspeed(accelerator):
        configure_deepspeed(accelerator, args, report=accelerator.print)
    models.unet, optimizer = accelerator.prepare(models.unet, optimizer)
    accelerator.register_for_checkpointing(lr_scheduler)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    state = restore_state(args, accelerator, optimizer, lr_scheduler, ema)
    if keeps_gradient_buffers(args):
        allocate_gradients(models.unet.parameters())

    trainer = Trainer(args=args, task=task, models=models, accelerator=accelerator, loader=loader, sampler=sampler,
                      optimizer=optimizer, lr_scheduler=lr_scheduler, ema=ema, generator=torch.Generator(device=accelerator.device),
                      weight_dtype=weight_dtype, state=state, max_steps=max_steps, objective_settings=objective_settings,
                      logger=RunLogger(accelerator, output_dir), prompt_table=prompt_table,
                      empty_text=encode_prompts(models.tokenizer, models.text_encoder, [""], accelerator.device),
                      graphed_unet=GraphedUNet(models.unet, accelerator.autocast) if args.cuda_graph_unet else None)
    if accelerator.is_main_process:  # training_args.json is written with the weights it describes, not before
        accelerator.init_trackers(task.name, config=_tracker_config(args))
    accelerator.print(f"training {len(dataset)} samples for {max_steps} steps: {accelerator.num_processes} process(es) x batch "
                      f"{args.train_batch_size} x accumulation {args.gradient_accumulation_steps} on {accelerator.device}")
    return trainer


def restore_state(args, accelerator, optimizer, lr_scheduler, ema=None) -> TrainState:
    """The checkpoint ``--resume_from_checkpoint`` names, loaded (EMA weights
    moved back to the training device) with this run's optimizer settings
    applied; else a fresh state."""
    output_dir = Path(args.output_dir)
    checkpoint = find_checkpoint(output_dir, args.resume_from_checkpoint, report=accelerator.print)
    if checkpoint is None:
        if args.resume_from_checkpoint == "latest":
            accelerator.print(f"no intact checkpoint in {output_dir}; starting a new run")
        return TrainState(seed=args.seed)
    set_aside_later_checkpoints(output_dir, checkpoint, args.resume_from_checkpoint, accelerator)
    with keep_new_hyperparameters(optimizer, lr_scheduler, accelerator.print):
        try:
            state = load_checkpoint(accelerator, checkpoint)
        except Exception as err:  # noqa: BLE001 - a file the checks above could not see as damaged
            raise UserError(f"cannot resume from {checkpoint} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                            "resume from an earlier checkpoint") from None
    if ema is not None:
        ema.to(accelerator.device)  # accelerate loads registered objects onto the CPU; EMAModel keeps them there
    accelerator.print(f"resumed from {checkpoint} at step {state.global_step}")
    return state


def set_aside_later_checkpoints(output_dir: Path, checkpoint: Path, request: str, accelerator) -> None:
    """Checkpoints later than the one resumed from would outrank the new run's
    (``latest``, pruning). ``latest`` only passes over damaged ones: those
    are renamed ``*.damaged``; a checkpoint named on purpose with later ones
    beside it is refused, naming them. None is ever deleted."""
    later = later_checkpoints(output_dir, checkpoint)
    if later and request != "latest":
        raise UserError(f"resuming from {checkpoint.name}, but {', '.join(p.name for p in later)} of a later point exist in "
                        f"{output_dir}; move them out of the folder (pruning would delete them), or resume from latest")
    if later and accelerator.is_main_process:
        for damaged in later:
            damaged.rename(damaged.with_name(f"{damaged.name}.damaged"))
            accelerator.print(f"moved the damaged {damaged.name} aside to {damaged.name}.damaged")


OPTIMIZER_SETTINGS = ("betas", "eps", "weight_decay")


@contextmanager
def keep_new_hyperparameters(optimizer, lr_scheduler, report):
    """Loading a checkpoint restores the optimizer's and the schedule's saved
    settings; this run's flags (learning rate, AdamW's betas, eps, weight
    decay) are put back over them, and each change is reported once, so what
    ``training_args.json`` records is what trains."""
    groups = optimizer.param_groups
    base_lrs = list(lr_scheduler.base_lrs)
    settings = [{name: _plain(group[name]) for name in OPTIMIZER_SETTINGS if name in group} for group in groups]
    yield
    changes = []
    if [float(lr) for lr in lr_scheduler.base_lrs] != base_lrs:
        changes.append(f"learning rate {lr_scheduler.base_lrs[0]:g} -> {base_lrs[0]:g}")
        lr_scheduler.base_lrs = base_lrs
        for group, base, factor in zip(groups, base_lrs, lr_scheduler.lr_lambdas):
            group["initial_lr"], group["lr"] = base, base * factor(lr_scheduler.last_epoch)
        lr_scheduler._last_lr = [group["lr"] for group in groups]
    for index, (group, wanted) in enumerate(zip(groups, settings)):
        for name, value in wanted.items():
            if _plain(group[name]) != value:
                if index == 0:
                    changes.append(f"{name} {_plain(group[name])} -> {value}")
                group[name] = tuple(value) if name == "betas" else value
    if changes:
        report(f"resumed with this run's settings, not the checkpoint's: {', '.join(changes)}")


def _plain(value):
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)


class ThroughputMeter:
    """Samples per second, timed from the end of the first step: that step
    carries the one-time costs (compilation, allocator and kernel warm-up).
    Time spent ``paused()`` (checkpoints, validation: reported apart) is left
    out, so the rate is training's own, data loading and logging included;
    ``sync`` waits for the device's queued steps first, so their time stays
    in. Read it after a host sync (the loss reduction), or it times queued work."""

    def __init__(self, samples_per_step: int, sync: Callable[[], None] = lambda: None):
        self.samples_per_step, self.sync = samples_per_step, sync
        self.started, self.timed_from, self.steps_timed, self.paused_seconds = time.perf_counter(), None, 0, 0.0

    @contextmanager
    def paused(self):
        self.sync()
        began = time.perf_counter()
        try:
            yield
        finally:
            if self.timed_from is not None:
                self.paused_seconds += time.perf_counter() - began

    def step(self) -> None:
        if self.timed_from is None:
            self.timed_from = time.perf_counter()
        else:
            self.steps_timed += 1

    @property
    def first_step_seconds(self) -> float:
        return self.timed_from - self.started

    @property
    def samples_per_second(self) -> float:
        now = time.perf_counter()
        if self.steps_timed == 0:
            return self.samples_per_step / max(self.timed_from - self.started, 1e-9)
        return self.steps_timed * self.samples_per_step / max(now - self.timed_from - self.paused_seconds, 1e-9)


@dataclass
class Trainer:
    """A built run (see ``build_trainer``): the loop and the step, and the
    bookkeeping around them (accumulation, logging, checkpoints, validation)."""

    args: ResolvedArgs
    task: TrainingTask
    models: Models
    accelerator: object
    loader: torch.utils.data.DataLoader
    sampler: EpochBatchSampler
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    ema: Optional[object]
    generator: torch.Generator  # this process's noise, timesteps and dropout; re-seeded every micro-batch
    weight_dtype: torch.dtype  # of the frozen VAE and text encoder
    state: TrainState
    max_steps: int
    objective_settings: dict  # what the saved pipeline needs to invert the objective
    logger: RunLogger
    empty_text: torch.Tensor  # the empty prompt's encoding, for text dropout
    prompt_table: Optional[torch.Tensor] = None  # every instruction's encoding, when cached (items then carry prompt_index)
    graphed_unet: Optional[GraphedUNet] = None  # --cuda_graph_unet: the UNet's call, replayed as CUDA graphs
    last_validated_step: Optional[int] = None

    def run(self) -> Path:
        """Train to the last step, then save the final pipeline; returns its folder."""
        accumulation = self.args.gradient_accumulation_steps
        device = self.accelerator.device
        meter = ThroughputMeter(accumulation * self.args.train_batch_size * self.accelerator.num_processes,
                                sync=lambda: wait_for_device(device))
        loss_sum, micro_steps, pending = torch.zeros((), device=device), 0, []
        with tqdm(total=self.max_steps, initial=self.state.global_step, desc="training",
                  disable=not self.accelerator.is_main_process) as progress:
            for batch in self.batches(meter.paused):
                self.generator.manual_seed(self.noise_seed(micro_steps % accumulation))
                micro_steps += 1
                last_micro_step = micro_steps % accumulation == 0
                loss_sum += self.micro_step(batch, last_micro_step)
                if not last_micro_step:
                    continue
                self.optimizer_step()
                self.state.global_step += 1
                meter.step()
                if meter.steps_timed == 0:  # host time: compilation happens on the host, the GPU's queue is short then
                    self.accelerator.print(f"first step of this run: {meter.first_step_seconds:.1f} s (compilation, CUDA graph "
                                           "recording and warm-up; left out of samples/s)")
                # The loss stays on the device until reported; the learning rate is this step's, a host float.
                pending.append((loss_sum / accumulation, self.lr_scheduler.get_last_lr()[0]))
                loss_sum = torch.zeros_like(loss_sum)
                if self.report_due(len(pending)):
                    self.report(progress, pending, meter.samples_per_second)
                    pending = []
                self.checkpoint_and_validate(meter.paused)
                if self.state.global_step >= self.max_steps:
                    break
        if self.last_validated_step != self.state.global_step:
            self.validate()  # the trained model is always shown once
        return self.finish()

    def batches(self, paused=nullcontext) -> Iterator[dict]:
        """This process's micro-batches from the saved data position on, until
        the last step; keeps the state's position current, validates at epoch
        ends (inside ``paused()``, see ``validate``)."""
        state = self.state
        while state.global_step < self.max_steps:
            self.sampler.set_position(state.epoch, state.batch_in_epoch)
            for batch in self.loader:
                if "errors" in batch:
                    more = f" (and {len(batch['errors']) - 1} more in this batch)" if len(batch["errors"]) > 1 else ""
                    raise UserError(batch["errors"][0] + more)
                state.batch_in_epoch += 1
                yield batch
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            if state.epoch % self.args.validation_epochs == 0:
                self.validate(paused)

    def noise_seed(self, micro_in_step: int) -> int:
        """The seed of this process's draws for one micro-batch: a function of
        the position alone, so a resumed run draws what an uninterrupted one
        would, whatever device type or process count saved the checkpoint."""
        position = self.state.global_step * self.args.gradient_accumulation_steps + micro_in_step
        return ((self.args.seed * 1_000_003 + self.accelerator.process_index) * 1_000_000_007 + position) % 2**63

    def micro_step(self, batch: dict, last_micro_step: bool = True) -> torch.Tensor:
        """Forward and backward of one micro-batch; returns the detached loss.
        Gradients are synchronised across processes only on the last micro-step."""
        accelerator = self.accelerator
        if replays_cuda_graphs(self.args):
            torch.compiler.cudagraph_mark_step_begin()  # the last replay's outputs are dead: its buffers may be reused
        deepspeed = uses_deepspeed(accelerator)
        if deepspeed:
            mark_step_end(accelerator, last_micro_step)
        with nullcontext() if last_micro_step else accelerator.no_sync(self.models.unet):
            with accelerator.autocast():
                loss = self.loss(batch)
            # DeepSpeed divides by the accumulation itself (configure_deepspeed told it how many).
            accelerator.backward(loss if deepspeed else loss / self.args.gradient_accumulation_steps)
        return loss.detach()

    def loss(self, batch: dict) -> torch.Tensor:
        """Denoising loss of one micro-batch (MSE in fp32)."""
        models, device, generator = self.models, self.accelerator.device, self.generator
        target_latents, condition_latents = self.latents(batch)
        batch_size = target_latents.shape[0]
        noise = torch.randn(target_latents.shape, generator=generator, device=device, dtype=target_latents.dtype)
        timesteps = draw_timesteps(models.noise_scheduler, batch_size, generator, device, self.args.min_train_timestep)
        noisy_latents = models.noise_scheduler.add_noise(target_latents, noise, timesteps)
        text = self.text_embeddings(batch)
        drop_text, drop_image = conditioning_dropout_masks(batch_size, self.args.conditioning_dropout_prob, generator, device)
        text, condition_latents = apply_conditioning_dropout(text, self.empty_text, condition_latents, drop_text, drop_image)
        model_input = torch.cat([noisy_latents, condition_latents.to(noisy_latents.dtype)], dim=1)
        if self.args.channels_last:
            model_input = model_input.contiguous(memory_format=torch.channels_last)
        if uses_deepspeed(self.accelerator):  # its UNet holds bf16/fp16 weights and runs without autocast
            model_input, text = model_input.to(self.weight_dtype), text.to(self.weight_dtype)
        if self.graphed_unet is not None:
            prediction = self.graphed_unet(model_input, timesteps, text)
        else:
            prediction = models.unet(model_input, timesteps, encoder_hidden_states=text).sample
        target = denoising_target(models.noise_scheduler, target_latents, noise, timesteps)
        return F.mse_loss(prediction.float(), target.float())

    def text_embeddings(self, batch: dict) -> torch.Tensor:
        """The instructions' encodings: rows of the prompt table, else the text encoder's output."""
        device = self.accelerator.device
        if "prompt_index" in batch:
            return self.prompt_table[batch["prompt_index"].to(device, non_blocking=True)]
        with torch.no_grad():
            return self.models.text_encoder(batch["input_ids"].to(device, non_blocking=True))[0]

    def latents(self, batch: dict):
        """The objective's (target, conditioning) latents, from the latents the
        batch carries (latent cache), else from encoding its pixels."""
        vae, device = self.models.vae, self.accelerator.device
        if "target_moments" in batch:  # pinned by the loader on a GPU
            latents = FrameLatents(batch["condition_latents"], batch["target_moments"]).to(device, non_blocking=True)
        else:
            pixels = torch.cat([batch["condition_pixels"], batch["target_pixels"][:, None]], dim=1)
            latents = encode_frame_latents(vae, pixels.to(device, dtype=self.weight_dtype, non_blocking=True), self.args.vae_batch_size)
        return self.task.objective.latents(latents, vae.config.scaling_factor, self.generator)

    def report_due(self, steps_pending: int) -> bool:
        """Losses are reduced every --logging_steps steps, and before anything that must not follow a bad one."""
        step, args = self.state.global_step, self.args
        return (steps_pending >= args.logging_steps or step % args.checkpointing_steps == 0 or step >= self.max_steps
                or bool(args.validation_steps) and step % args.validation_steps == 0)

    def mean_losses(self, losses: List[torch.Tensor]) -> List[float]:
        """The pending steps' losses averaged over processes (one host sync); a non-finite one stops the run."""
        means = self.accelerator.gather(torch.stack(losses)[None]).mean(dim=0).tolist()
        first_step = self.state.global_step - len(losses) + 1
        for step, mean in enumerate(means, start=first_step):
            if not math.isfinite(mean):
                checkpoints = list_checkpoints(Path(self.args.output_dir))
                last = f"the last good checkpoint is {checkpoints[-1]}" if checkpoints else "no checkpoint was saved yet"
                self.accelerator.end_training()
                raise UserError(f"loss became {mean} at step {step}; training stopped and {last}. "
                                "Resume from it with a lower --learning_rate (or --mixed_precision bf16 instead of fp16)")
        return means

    def optimizer_step(self) -> None:
        self.accelerator.clip_grad_norm_(self.models.unet.parameters(), self.args.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=not keeps_gradient_buffers(self.args))
        if self.ema is not None:
            with whole_parameters(self.accelerator, self.models.unet) as parameters:
                self.ema.step(parameters)

    def report(self, progress, pending: List[Tuple[torch.Tensor, float]], samples_per_second: float) -> None:
        """Log every pending step's loss and learning rate (and the current rate), update the progress bar."""
        interval = max(1, self.args.checkpointing_steps // 5)
        means = self.mean_losses([loss for loss, _ in pending])
        first_step = self.state.global_step - len(means) + 1
        for step, loss, (_, learning_rate) in zip(range(first_step, first_step + len(means)), means, pending):
            self.logger.scalars({"train/loss": loss, "train/learning_rate": learning_rate,
                                 "train/samples_per_second": samples_per_second}, step)
            if self.accelerator.is_main_process and (step % interval == 0 or step == 1):
                progress.write(f"step {step}: loss {loss:.4f}, lr {learning_rate:.2e}, {samples_per_second:.1f} samples/s")
        progress.update(len(means))
        progress.set_postfix(loss=f"{means[-1]:.4f}", lr=f"{learning_rate:.2e}", samples_per_s=f"{samples_per_second:.1f}")

    def checkpoint_and_validate(self, paused=nullcontext) -> None:
        """What is due after an optimizer step, inside ``paused()`` (the throughput meter leaves it out)."""
        step = self.state.global_step
        if step % self.args.checkpointing_steps == 0:
            with paused():
                began = time.perf_counter()
                save_checkpoint(self.accelerator, Path(self.args.output_dir), self.state, self.args.checkpoints_total_limit,
                                self.save_args)
                seconds = time.perf_counter() - began
            self.logger.scalars({"train/checkpoint_seconds": seconds}, step)
            if self.accelerator.is_main_process:
                tqdm.write(f"saved checkpoint-{step} in {seconds:.1f} s (not counted in samples/s)")
        if self.args.validation_steps and step % self.args.validation_steps == 0:
            self.validate(paused)

    def validate(self, paused=nullcontext) -> None:
        """Run the task's validation on the main process, with EMA weights if
        kept, inside ``paused()`` (entered only when there is validation to run:
        it may wait for the device)."""
        accelerator, step = self.accelerator, self.state.global_step
        self.last_validated_step = step
        if self.task.validation_images is None:
            return
        images = None
        with paused():
            began = time.perf_counter()
            with self.averaged_weights() as unet:  # every process enters: under FSDP it gathers the weights
                if unet is not None:
                    generator = torch.Generator(device=accelerator.device).manual_seed(self.args.seed)
                    unet.eval()
                    with accelerator.autocast():
                        images = self.task.validation_images(self.pipeline(unet), self.args, generator)
                    unet.train()
            if images:
                folder = self.logger.images("validation", images, step)
                tqdm.write(f"validation images ({time.perf_counter() - began:.1f} s, not counted in samples/s): {folder}")
            accelerator.wait_for_everyone()

    @contextmanager
    def averaged_weights(self):
        """On the main process, the plain UNet holding the EMA weights (if kept)
        until the block ends; None on the others. Every process must enter."""
        if uses_fsdp(self.accelerator):  # a copy: the wrapped module cannot run on one process alone
            yield gathered_unet(self.accelerator, self.models.unet, self.ema)
            return
        if not self.accelerator.is_main_process:
            yield None
            return
        unet = unwrap(self.accelerator, self.models.unet)
        if self.ema is None:
            yield unet
            return
        self.ema.store(unet.parameters())
        self.ema.copy_to(unet.parameters())
        try:
            yield unet
        finally:
            self.ema.restore(unet.parameters())

    def pipeline(self, unet):
        return inference_pipeline(self.task.pipeline_class, self.models, unet, {**self.task.pipeline_kwargs, **self.objective_settings})

    def save_args(self, folder: Path) -> None:
        save_args(self.args, folder, extra=self.objective_settings)

    def finish(self) -> Path:
        """Check that every process holds the same weights, then save the final pipeline (EMA weights if kept)."""
        accelerator, output_dir = self.accelerator, Path(self.args.output_dir)
        if uses_fsdp(accelerator):  # each process holds its own shard, one copy of every weight: nothing to compare
            unet = gathered_unet(accelerator, self.models.unet, self.ema)  # every process takes part; EMA weights if kept
        else:
            check_replicas_in_sync(accelerator, self.models.unet)
            unet = unwrap(accelerator, self.models.unet)
            if uses_deepspeed(accelerator):
                load_fp32_masters(unet)  # gathers the shards: every process takes part
            if self.ema is not None:
                self.ema.copy_to(unet.parameters())
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save_pipeline(self.pipeline(unet), output_dir, self.save_args)
            accelerator.print(f"saved the trained pipeline to {output_dir}")
            if self.args.push_to_hub:
                push_pipeline(self.args, output_dir)
        leave_process_group(barrier=accelerator.wait_for_everyone)  # before end_training, which destroys the group without waiting for the others
        accelerator.end_training()
        return output_dir


def _tracker_config(args) -> dict:
    # TensorBoard's hparams accept only numbers, strings and booleans.
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items() if k != "hub_token"}
