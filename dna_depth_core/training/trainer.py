"""The self-supervised trainer: one process, many GPUs or many nodes, resumable to the step.

Use it as a library with any dataset yielding the samples of :mod:`dna_depth_core.data`::

    trainer = Trainer(load_train_config("config/train_synthetic.yaml"), train_set, val_set)
    summary = trainer.fit()            # or fit(resume=True) to continue runtime.output_dir

``dna-depth train`` builds the datasets from the config and calls the same class. Run
folder (``runtime.output_dir``): ``last.safetensors`` (every epoch and every
``checkpoint_every_steps``), ``best.safetensors`` (best validation), ``train_state.pt``
(resume state), ``config.yaml`` and ``tensorboard/``. With ``optim.ema_decay`` the
checkpoints and validation use a moving average of the weights.
"""

from __future__ import annotations

import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..checkpoint import Checkpoint, ModelMetadata, load_checkpoint, load_state_strict, read_metadata, save_checkpoint
from ..config import config_to_dict, save_config
from ..data.camera.preparation import preparation_of_dataset
from ..errors import UserError
from ..networks import DepthNet, PoseNet, create_depth_net
from ..networks.checkpointing import batch_norm_statistics_restored
from .augment import augment_batch
from .config import TrainConfig, check_train_config
from .distributed import (
    DistributedContext, any_process, barrier, broadcast_buffers, gather_objects, setup_distributed,
    teardown_distributed,
)
from .logger import TrainingLogger
from .objective import ObjectiveOutput, compute_objective
from .sampler import ResumableShardSampler
from .state import STATE_FILE_NAME, capture_rng_state, load_training_state, restore_rng_state, save_training_state
from .validation import ValidationResult, validate

LAST_CHECKPOINT = "last.safetensors"
BEST_CHECKPOINT = "best.safetensors"
CONFIG_FILE = "config.yaml"
TENSORBOARD_DIR = "tensorboard"
RUN_FILES = (LAST_CHECKPOINT, BEST_CHECKPOINT, STATE_FILE_NAME, CONFIG_FILE, TENSORBOARD_DIR)
"""What a run writes in its folder: the files ``--overwrite`` replaces."""


@dataclass
class TrainingSummary:
    """What :meth:`Trainer.fit` did.

    Steps and epochs are counted the way the progress bar shows them: step 1 is the
    first optimiser step, epoch 1 the first pass over the data.

    Attributes:
        steps: optimiser steps of the whole run (including those before a resume).
        epochs_completed: full passes over the training data of the whole run.
        epochs: epochs of the whole run including the part of the current one
            (2.5: halfway through epoch 3).
        history: one entry per step of this ``fit`` call: ``step``, ``epoch`` (the
            1-based epoch it belongs to), ``seconds`` (wall time of the step, data
            loading included), ``lr``, ``loss``,
            ``photometric``, ``smoothness`` (and ``speed`` in metres with speed
            supervision), losses of this process's batch.
        validation: one entry per validation: ``epoch`` (the 1-based epoch it ended), ``step``, ``criterion``,
            ``value`` and the ``metrics`` dict.
        best_criterion: ``"abs_rel"`` or ``"photometric"`` (see
            :class:`~dna_depth_core.training.validation.ValidationResult`), ``None``
            without validation.
        best_value: best criterion value so far.
        last_checkpoint: path of ``last.safetensors``.
        best_checkpoint: path of ``best.safetensors``, ``None`` without validation.
        stop_reason: ``"completed"``, ``"max_steps"``, ``"time_limit"``, or
            ``"already_finished"`` for a resume of a run that had reached its limits
            (nothing trained, nothing written).
        images_per_second: mean training throughput of this call, target images over all
            processes.
    """

    steps: int
    epochs_completed: int
    epochs: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    best_criterion: str | None = None
    best_value: float | None = None
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    stop_reason: str = "completed"
    images_per_second: float = 0.0


def derived_seed(seed: int, rank: int, purpose: int) -> int:
    """An independent 63-bit seed for one purpose (augmentation, data loading...) of one process."""
    return int(np.random.SeedSequence([seed, rank, purpose]).generate_state(2, dtype=np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    """Data-loader workers: seed numpy and python from the per-worker torch seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def build_networks(config: TrainConfig, init_checkpoint: str | Path | Checkpoint | None) -> tuple[DepthNet, PoseNet, str]:
    """Depth and pose networks from the config, or from ``init_checkpoint`` where it has them.

    With an initial checkpoint its depth network (architecture and weights) replaces
    ``model.variant``/``model.encoder``, and its pose network, if stored, replaces a
    fresh ``model.pose_encoder`` one. A :class:`Checkpoint` already loaded is used as is.

    Returns:
        ``(depth_net, pose_net, pose_encoder_name)``, in train mode on the CPU.

    Raises:
        UserError: unknown encoder, missing weight file, weights not downloadable, bad checkpoint.
    """
    model = config.model
    try:
        if init_checkpoint is not None:
            loaded = init_checkpoint
            if not isinstance(loaded, Checkpoint):
                with_pose = read_metadata(init_checkpoint).pose_encoder is not None
                loaded = load_checkpoint(init_checkpoint, with_pose=with_pose)
            depth_net = loaded.depth_net
            pose_encoder = loaded.metadata.pose_encoder or model.pose_encoder
            pose_net = loaded.pose_net or PoseNet(pose_encoder, pretrained=model.pose_pretrained)
        else:
            overrides = {"encoder": model.encoder} if model.encoder else {}
            depth_net = create_depth_net(model.variant, pretrained=model.pretrained, **overrides)
            pose_encoder = model.pose_encoder
            pose_net = PoseNet(pose_encoder, pretrained=model.pose_pretrained)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        raise UserError(f"cannot build the networks: {error}") from None
    return depth_net.train(), pose_net.train(), pose_encoder


def holds_run(output_dir: str | Path) -> bool:
    """Whether ``output_dir`` holds a training run (a checkpoint or a resume state)."""
    return any((Path(output_dir) / name).exists() for name in (LAST_CHECKPOINT, STATE_FILE_NAME))


def check_run_folder(output_dir: str | Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run over an existing one unless asked to.

    Raises:
        UserError: ``resume`` and ``overwrite`` together, or a new run (neither) in a
            folder that :func:`holds_run`.
    """
    if resume and overwrite:
        raise UserError("--resume continues the run in runtime.output_dir, --overwrite replaces it; choose one")
    if not resume and not overwrite and holds_run(output_dir):
        raise _run_in_the_way(output_dir)


def _run_in_the_way(output_dir: str | Path) -> UserError:
    return UserError(
        f"{str(output_dir)!r} already holds a training run; continue it with --resume, replace it with "
        "--overwrite, or choose another runtime.output_dir"
    )


def limit_reached(config: TrainConfig, epochs_completed: int, step: int) -> str | None:
    """``"completed"`` or ``"max_steps"`` when a run at this point has nothing left to train, else ``None``."""
    if epochs_completed >= config.optim.epochs:
        return "completed"
    if config.optim.max_steps and step >= config.optim.max_steps:
        return "max_steps"
    return None


def finished_run(config: TrainConfig) -> str | None:
    """When the run in ``config.runtime.output_dir`` has already reached ``config``'s
    ``optim.epochs`` or ``optim.max_steps``, which and where (``"optim.max_steps=6,
    reached at step 6"``); ``None`` otherwise, and when there is no resume state
    (:meth:`Trainer.fit` then says so).
    """
    path = Path(config.runtime.output_dir) / STATE_FILE_NAME
    if not path.is_file():
        return None
    state = load_training_state(path)
    reason = limit_reached(config, state["epoch"], state["step"])
    if reason is None:
        return None
    limit = (f"optim.epochs={config.optim.epochs}" if reason == "completed"
             else f"optim.max_steps={config.optim.max_steps}")
    return f"{limit}, reached at step {state['step']}"


class Trainer:
    """Self-supervised training of a DNA-Depth depth network with a pose network.

    Single process by default; under ``torchrun`` (or with a process group already
    initialised by the caller) every process trains a shard of each epoch with
    DistributedDataParallel, and rank 0 logs and writes checkpoints.

    Args:
        config: the run's configuration (checked here).
        train_dataset: samples with ``frames`` ``(3, 3, H, W)``, ``intrinsics`` ``(3, 3)``
            and, for speed supervision, ``source_distance`` ``(2,)`` (see
            :mod:`dna_depth_core.data`); H x W must equal ``data.height x data.width``.
        val_dataset: optional held-out samples (with ``depth_gt`` for AbsRel validation).
        init_checkpoint: start from this checkpoint's depth (and pose, if stored) weights
            instead of ``model`` (fine-tuning): a file, or networks already loaded (and
            adjusted, see :mod:`~dna_depth_core.training.calibration`), which are then
            trained in place. Ignored by ``fit(resume=True)``, which restores the run's own
            weights.
        dataset_description: how checkpoint provenance names the training data; defaults
            to the dataset's class name and size.

    :meth:`fit` runs once per trainer; it also ends a process group the trainer started.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_dataset: Dataset,
        val_dataset: Dataset | None = None,
        init_checkpoint: str | Path | Checkpoint | None = None,
        dataset_description: str | None = None,
    ) -> None:
        check_train_config(config)
        self.config = config
        self.context: DistributedContext = setup_distributed(config.runtime.device)
        self.device = self.context.device
        self.output_dir = Path(config.runtime.output_dir)
        self.init_checkpoint = None if init_checkpoint is None else (
            "networks given in memory" if isinstance(init_checkpoint, Checkpoint) else str(init_checkpoint))
        self.dataset_description = (
            dataset_description or f"{type(train_dataset).__name__} ({len(train_dataset)} samples)"
        )
        self.frame_preparation = preparation_of_dataset(train_dataset)
        self.amp = config.runtime.amp and self.device.type == "cuda"
        self.memory_format = torch.channels_last if config.runtime.channels_last else torch.contiguous_format
        self.metric_depth = config.speed_weight > 0
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        # Same seed on every process: identical initial weights (DDP also broadcasts them).
        seed_everything(config.runtime.seed)
        depth_net, pose_net, self.pose_encoder = build_networks(config, init_checkpoint)
        self.depth_net = depth_net.to(self.device, memory_format=self.memory_format)
        self.pose_net = pose_net.to(self.device, memory_format=self.memory_format)
        self.activation_checkpointing = config.optim.activation_checkpointing
        if self.activation_checkpointing:
            self.depth_net.set_activation_checkpointing(True)
            self.pose_net.set_activation_checkpointing(True)
        self.depth_model: nn.Module = self.depth_net
        self.pose_model: nn.Module = self.pose_net
        if self.context.is_distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.depth_model = DistributedDataParallel(self.depth_net, device_ids=device_ids)
            self.pose_model = DistributedDataParallel(self.pose_net, device_ids=device_ids)
        # From here on every process draws its own dropout, auto-mask noise and augmentation.
        rank, seed = self.context.rank, config.runtime.seed
        seed_everything(derived_seed(seed, rank, 0))
        self.augment_generator = torch.Generator().manual_seed(derived_seed(seed, rank, 1))
        self.loader_generator = torch.Generator().manual_seed(derived_seed(seed, rank, 2))

        optim = config.optim
        parameters = list(self.depth_net.parameters()) + list(self.pose_net.parameters())
        self.optimizer = torch.optim.Adam(parameters, lr=optim.lr, betas=tuple(optim.betas),
                                          weight_decay=optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, optim.lr_milestones, optim.lr_gamma)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        # Weight averages (optim.ema_decay > 0) that validation and checkpoints use.
        self.depth_average = self.pose_average = None
        if optim.ema_decay > 0:
            self.depth_average = ModelEmaV3(self.depth_net, decay=optim.ema_decay, use_warmup=True)
            self.pose_average = ModelEmaV3(self.pose_net, decay=optim.ema_decay, use_warmup=True)

        self.train_sampler = ResumableShardSampler(len(train_dataset), config.data.batch_size, rank,
                                                   self.context.world_size, shuffle=True, seed=seed)
        if self.train_sampler.batches_per_epoch == 0:
            raise UserError(
                f"the training set has {len(train_dataset)} samples, fewer than one batch of "
                f"{config.data.batch_size} per process x {self.context.world_size} processes; "
                "add data or lower data.batch_size"
            )
        self.train_loader = self._loader(train_dataset, self.train_sampler, drop_last=True)
        self.val_loader = None
        if val_dataset is not None and len(val_dataset) > 0:
            val_sampler = ResumableShardSampler(len(val_dataset), config.data.batch_size, rank,
                                                self.context.world_size, shuffle=False)
            self.val_loader = self._loader(val_dataset, val_sampler, drop_last=False)

        self.epoch = 0
        self.batch_in_epoch = 0
        self.step = 0
        self.best_criterion: str | None = None
        self.best_value: float | None = None
        self.last_validation: ValidationResult | None = None
        self._epoch_loader_state = self.loader_generator.get_state()
        # Per-fit bookkeeping: wall-clock start, throughput totals, step of the last checkpoint.
        self._started = 0.0
        self._images_trained, self._training_seconds = 0, 0.0
        self._saved_at_step: int | None = None

    def _loader(self, dataset: Dataset, sampler: ResumableShardSampler, drop_last: bool) -> DataLoader:
        workers = self.config.data.num_workers
        return DataLoader(
            dataset, batch_size=self.config.data.batch_size, sampler=sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", drop_last=drop_last, generator=self.loader_generator,
            worker_init_fn=_seed_worker if workers > 0 else None,
        )

    @property
    def state_path(self) -> Path:
        return self.output_dir / STATE_FILE_NAME

    # ----------------------------------------------------------------------------- loop

    def fit(self, resume: bool = False, overwrite: bool = False) -> TrainingSummary:
        """Train until ``optim.epochs`` (or ``optim.max_steps`` / the time limit).

        Args:
            resume: continue the run in ``runtime.output_dir`` from its ``train_state.pt``
                exactly where it stopped (weights, optimiser, schedule, counters, RNG). A
                run that already reached its limits is left as it is (``stop_reason``
                ``"already_finished"``).
            overwrite: start a new run in a folder that holds one, deleting its
                :data:`RUN_FILES` first (without it that is an error).

        Returns:
            :class:`TrainingSummary`.

        Raises:
            UserError: no resume state, a run in the way, data that does not fit the
                config, a diverged loss.
        """
        try:
            return self._fit(resume, overwrite)
        finally:
            teardown_distributed(self.context)

    def _fit(self, resume: bool, overwrite: bool) -> TrainingSummary:
        config = self.config
        if resume:
            self._load_state()
            if limit_reached(config, self.epoch, self.step) is not None:
                if self.context.is_main and config.runtime.progress:
                    tqdm.write(f"the run in {self.output_dir} had already reached its limits at step {self.step}; "
                               "nothing trained")
                return self._summary(TrainingSummary(steps=self.step, epochs_completed=self.epoch),
                                     "already_finished")
        elif any_process(self.context, self.context.is_main and holds_run(self.output_dir)):
            if not overwrite:
                raise _run_in_the_way(self.output_dir)
            if self.context.is_main:
                self._delete_run_files()
        if self.context.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.output_dir / CONFIG_FILE)
        logger = TrainingLogger(self.output_dir / TENSORBOARD_DIR,
                                enabled=self.context.is_main and config.runtime.tensorboard)
        if self.context.is_main and config.runtime.progress:
            tqdm.write(
                f"training on {self.device} x {self.context.world_size} process(es), "
                f"{self.train_sampler.batches_per_epoch} steps per epoch, "
                f"{'resuming at step ' + str(self.step) if resume else 'from the start'}; run folder {self.output_dir}"
            )
        summary = TrainingSummary(steps=self.step, epochs_completed=self.epoch)
        self._started = time.monotonic()
        self._images_trained, self._training_seconds = 0, 0.0
        self._saved_at_step = None
        stop_reason = None
        try:
            while self.epoch < config.optim.epochs and stop_reason is None:
                stop_reason = self._run_epoch(logger, summary)
                if stop_reason is None:
                    self._end_epoch(logger, summary)
            broadcast_buffers(self.context, self.depth_net)
            broadcast_buffers(self.context, self.pose_net)
            if self._saved_at_step != self.step:
                self._save_checkpoints(best=False)
        finally:
            logger.close()
        if self._training_seconds > 0:
            summary.images_per_second = self._images_trained / self._training_seconds
        return self._summary(summary, stop_reason or "completed")

    def _summary(self, summary: TrainingSummary, stop_reason: str) -> TrainingSummary:
        """``summary`` completed with the run's counters, best result and checkpoint paths."""
        batches = self.train_sampler.batches_per_epoch
        # A run stopped by max_steps on an epoch's last batch has trained that epoch in full.
        summary.steps, summary.epochs_completed = self.step, self.epoch + self.batch_in_epoch // batches
        summary.epochs = self.epoch + self.batch_in_epoch / batches
        summary.best_criterion, summary.best_value = self.best_criterion, self.best_value
        summary.last_checkpoint = self.output_dir / LAST_CHECKPOINT
        summary.best_checkpoint = self.output_dir / BEST_CHECKPOINT if self.best_value is not None else None
        summary.stop_reason = stop_reason
        return summary

    def _delete_run_files(self) -> None:
        """Remove the previous run's :data:`RUN_FILES` (``fit(overwrite=True)``)."""
        for name in RUN_FILES:
            path = self.output_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def _run_epoch(self, logger: TrainingLogger, summary: TrainingSummary) -> str | None:
        """Train the rest of the current epoch; returns why training must stop early, or ``None``."""
        config = self.config
        self.train_sampler.set_epoch(self.epoch, self.batch_in_epoch)
        self.loader_generator.set_state(self._epoch_loader_state)
        progress = tqdm(
            total=self.train_sampler.batches_per_epoch, initial=self.batch_in_epoch,
            desc=f"epoch {self.epoch + 1}/{config.optim.epochs}", unit="step", dynamic_ncols=True,
            disable=not (self.context.is_main and config.runtime.progress),
        )
        window_images, window_start = 0, time.monotonic()
        step_start = time.monotonic()
        try:
            for batch in self.train_loader:
                output, network_frames = self._train_step(batch)
                self.batch_in_epoch += 1
                self.step += 1
                now = time.monotonic()
                batch_images = batch["frames"].shape[0] * self.context.world_size
                self._images_trained += batch_images
                self._training_seconds += now - step_start
                window_images += batch_images
                record = self._record(output, now - step_start)
                summary.history.append(record)
                progress.update()
                progress.set_postfix(loss=f"{record['loss']:.4f}",
                                     img_s=f"{batch_images / max(now - step_start, 1e-9):.1f}")
                if self.step % config.runtime.log_every_steps == 0:
                    self._log_scalars(logger, record, window_images / max(now - window_start, 1e-9))
                    window_images, window_start = 0, now
                if config.runtime.image_every_steps and self.step % config.runtime.image_every_steps == 0:
                    logger.images(self.step, network_frames[0, 1], output.disparities[0][0], output.loss.automask[0])
                stop_reason = self._stop_reason()
                if stop_reason is not None:
                    return stop_reason
                if config.runtime.checkpoint_every_steps and self.step % config.runtime.checkpoint_every_steps == 0:
                    self._save_checkpoints(best=False)
                step_start = time.monotonic()
        finally:
            progress.close()
        return None

    def _train_step(self, batch: dict[str, torch.Tensor]) -> tuple[ObjectiveOutput, torch.Tensor]:
        """One optimiser step; returns the objective and the ``(B, 3, 3, H, W)`` network inputs."""
        config = self.config
        frames = batch["frames"].to(self.device, non_blocking=True)
        intrinsics = batch["intrinsics"].to(self.device, non_blocking=True)
        expected = (3, 3, config.data.height, config.data.width)
        if tuple(frames.shape[1:]) != expected:
            raise UserError(
                f"training samples have frames of shape {tuple(frames.shape[1:])}, the config asks for {expected} "
                "(data.height, data.width); make the dataset produce that size"
            )
        source_distance = batch.get("source_distance")
        if self.metric_depth:
            if source_distance is None:
                raise UserError(
                    "speed_weight > 0 needs samples with 'source_distance' (metres travelled to each source "
                    "frame); use data that records speed or odometry, or set speed_weight=0"
                )
            source_distance = source_distance.to(self.device, non_blocking=True)
        augmented = augment_batch(frames, intrinsics, config.augmentation, self.augment_generator)
        # Held means held: in eval mode the depth network neither updates its batch-norm
        # statistics nor drops paths, so the pose network learns against the very depth
        # network the warm-up ends with.
        self.depth_net.train(self.step >= config.optim.pose_warmup_steps)
        self.optimizer.zero_grad(set_to_none=True)
        output = compute_objective(
            self.depth_model, self.pose_model, augmented.frames, augmented.network_frames, augmented.intrinsics,
            config.loss, config.speed_weight if self.metric_depth else 0.0, source_distance,
            autocast=self.amp, memory_format=self.memory_format,
        )
        if not self.amp and not torch.isfinite(output.total):
            raise UserError(
                f"the loss became {float(output.total)} at step {self.step + 1}; training diverged. "
                "Lower optim.lr or check the data (frames in [0, 1], correct intrinsics)"
            )
        # The recomputation of checkpointed segments would update batch-norm statistics twice.
        with (batch_norm_statistics_restored(self.depth_net, self.pose_net) if self.activation_checkpointing
              else nullcontext()):
            self.scaler.scale(output.total).backward()
        if self.step < config.optim.pose_warmup_steps:
            for parameter in self.depth_net.parameters():
                parameter.grad = None  # Adam leaves parameters without a gradient untouched
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.depth_average is not None:  # step: this step's 1-based number, for the warm-up
            self.depth_average.update(self.depth_net, step=self.step + 1)
            self.pose_average.update(self.pose_net, step=self.step + 1)
        return output, augmented.network_frames

    def published_networks(self) -> tuple[nn.Module, nn.Module]:
        """``(depth_net, pose_net)`` that validation and checkpoints use: the weight averages
        with ``optim.ema_decay > 0``, else the trained networks themselves."""
        if self.depth_average is None:
            return self.depth_net, self.pose_net
        return self.depth_average.module, self.pose_average.module

    def _log_scalars(self, logger: TrainingLogger, record: dict[str, float], images_per_second: float) -> None:
        not_losses = ("step", "epoch", "seconds", "lr")
        losses = {f"train/{name}": value for name, value in record.items() if name not in not_losses}
        logger.scalars(self.step, losses | {
            "lr": record["lr"],
            "train/images_per_second": images_per_second,
            "epoch": self.epoch + self.batch_in_epoch / self.train_sampler.batches_per_epoch,
        })

    def _record(self, output: ObjectiveOutput, seconds: float) -> dict[str, float]:
        record = {
            "step": self.step,
            "epoch": self.epoch + 1,
            "seconds": seconds,
            "lr": self.optimizer.param_groups[0]["lr"],
            "loss": float(output.total.detach()),
            "photometric": float(output.loss.photometric.detach()),
            "smoothness": float(output.loss.smoothness.detach()),
        }
        if output.speed is not None:
            record["speed"] = float(output.speed.detach())
        return record

    def _stop_reason(self) -> str | None:
        if self.config.optim.max_steps and self.step >= self.config.optim.max_steps:
            return "max_steps"
        limit = self.config.runtime.time_limit_minutes
        if limit > 0 and any_process(self.context, time.monotonic() - self._started >= 60.0 * limit):
            return "time_limit"
        return None

    def _end_epoch(self, logger: TrainingLogger, summary: TrainingSummary) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        self.scheduler.step()
        self._epoch_loader_state = self.loader_generator.get_state()
        improved = False
        every = self.config.validation.every_epochs
        if self.val_loader is not None and every and self.epoch % every == 0:
            result = self._validate()
            self.last_validation = result
            summary.validation.append({"epoch": self.epoch, "step": self.step, "criterion": result.criterion,
                                       "value": result.value, "metrics": result.metrics})
            logger.scalars(self.step, {f"val/{name}": value for name, value in result.metrics.items()})
            improved = self.best_value is None or result.value < self.best_value
            if improved:
                self.best_criterion, self.best_value = result.criterion, result.value
            if self.context.is_main and self.config.runtime.progress:
                tqdm.write(f"epoch {self.epoch}: validation {result.criterion} {result.value:.4f}"
                           + (" (best)" if improved else ""))
        self._save_checkpoints(best=improved)

    def _validate(self) -> ValidationResult:
        validation = self.config.validation
        depth_net, pose_net = self.published_networks()
        try:
            return validate(
                depth_net, pose_net, self.val_loader, self.context, self.config.loss, self.metric_depth,
                validation.min_depth, validation.max_depth, validation.garg_crop,
                autocast=self.amp, memory_format=self.memory_format,
            )
        finally:
            self.depth_net.train()
            self.pose_net.train()

    # ------------------------------------------------------------------ checkpoints

    def metadata(self) -> ModelMetadata:
        """Checkpoint metadata of the current weights, with provenance (config, epoch, step, data)."""
        validation = None
        if self.last_validation is not None:
            validation = {"criterion": self.last_validation.criterion, "value": self.last_validation.value}
        return ModelMetadata(
            height=self.config.data.height,
            width=self.config.data.width,
            preparation=self.frame_preparation,
            min_depth=self.config.loss.min_depth,
            max_depth=self.config.loss.max_depth,
            depth_scale=1.0,
            metric=self.metric_depth,
            pose_encoder=self.pose_encoder,
            provenance={
                "tool": "dna-depth train",
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "dataset": self.dataset_description,
                "epochs_completed": self.epoch,
                "step": self.step,
                "processes": self.context.world_size,
                "init_checkpoint": self.init_checkpoint,
                "validation": validation,
                "config": config_to_dict(self.config),
            },
        )

    def _save_checkpoints(self, best: bool) -> None:
        """Write ``last`` (and ``best``) checkpoints and the resume state (rank 0, between barriers)."""
        rng_states = gather_objects(self.context, capture_rng_state(self.augment_generator, self._epoch_loader_state))
        barrier(self.context)
        if self.context.is_main:
            metadata = self.metadata()
            depth_net, pose_net = self.published_networks()
            save_checkpoint(self.output_dir / LAST_CHECKPOINT, depth_net, metadata, pose_net)
            if best:
                save_checkpoint(self.output_dir / BEST_CHECKPOINT, depth_net, metadata, pose_net)
            averages = {}
            if self.depth_average is not None:
                averages = {"depth_average": self.depth_average.module.state_dict(),
                            "pose_average": self.pose_average.module.state_dict()}
            save_training_state(self.state_path, averages | {
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "step": self.step,
                "best_criterion": self.best_criterion,
                "best_value": self.best_value,
                "world_size": self.context.world_size,
                "pose_encoder": self.pose_encoder,
                "depth_net": self.depth_net.state_dict(),
                "pose_net": self.pose_net.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng_states,
            })
        barrier(self.context)
        self._saved_at_step = self.step

    def _load_state(self) -> None:
        state = load_training_state(self.state_path)
        if state["pose_encoder"] != self.pose_encoder:
            raise UserError(
                f"cannot resume: the run's pose network uses {state['pose_encoder']!r}, this config builds "
                f"{self.pose_encoder!r}; resume with the run's config ({self.output_dir / 'config.yaml'})"
            )
        load_state_strict(self.depth_net, state["depth_net"], f"resume state {str(self.state_path)!r}")
        load_state_strict(self.pose_net, state["pose_net"], f"pose network in resume state {str(self.state_path)!r}")
        if (self.depth_average is not None) != ("depth_average" in state):
            raise UserError(
                f"cannot resume: the run was saved {'with' if 'depth_average' in state else 'without'} weight "
                f"averaging and this config has optim.ema_decay={self.config.optim.ema_decay}; resume with the "
                f"run's config ({self.output_dir / 'config.yaml'})"
            )
        if self.depth_average is not None:
            load_state_strict(self.depth_average.module, state["depth_average"], "depth weight average in resume state")
            load_state_strict(self.pose_average.module, state["pose_average"], "pose weight average in resume state")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.best_criterion, self.best_value = state["best_criterion"], state["best_value"]
        if self.batch_in_epoch > self.train_sampler.batches_per_epoch:
            raise UserError(
                f"cannot resume: the run stopped after batch {self.batch_in_epoch} of an epoch but the data now "
                f"gives {self.train_sampler.batches_per_epoch} batches per epoch; resume with the same data, "
                "batch size and number of processes"
            )
        rng_states = state["rng"]
        if len(rng_states) == self.context.world_size:
            self._epoch_loader_state = restore_rng_state(rng_states[self.context.rank], self.augment_generator)
        elif self.context.is_main:
            tqdm.write(
                f"note: the run was saved with {len(rng_states)} processes and resumes with "
                f"{self.context.world_size}; weights and schedule continue, random streams restart"
            )
