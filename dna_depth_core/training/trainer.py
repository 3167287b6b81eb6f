"""The self-supervised trainer: one process, many GPUs or many nodes, resumable to the step.

Use it as a library with any dataset yielding the samples of :mod:`dna_depth_core.data`::

    trainer = Trainer(load_train_config("config/train_synthetic.yaml"), train_set, val_set)
    summary = trainer.fit()            # or fit(resume=True) to continue runtime.output_dir

``dna-depth train`` builds the datasets from the config and calls the same class. Run
folder (``runtime.output_dir``): ``last.safetensors`` (every epoch and every
``checkpoint_every_steps``), ``best.safetensors`` (best validation), ``train_state.pt``
(resume state), ``config.yaml`` and ``tensorboard/``. With ``optim.ema_decay`` the
checkpoints and validation use a moving average of the weights. Validation runs after
every ``validation.every_epochs`` epochs and on the final weights of every run.

The run folder's names and checks are :mod:`.run_folder`, seeds and networks
:mod:`.startup`, checkpoints and the resume state :mod:`.run_checkpoints`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..checkpoint import Checkpoint
from ..config import save_config
from ..data.camera.preparation import preparation_of_dataset
from ..errors import UserError
from ..networks.checkpointing import batch_norm_statistics_restored
from ..networks.cpu_kernels import prefer_onednn_for_pointwise_convolutions
from .augment import augment_batch
from .config import TrainConfig, check_train_config
from .distributed import DistributedContext, any_process, broadcast_buffers, setup_distributed, teardown_distributed
from .logger import TrainingLogger
from .objective import ObjectiveOutput, compute_objective, mirror_transforms
from .run_checkpoints import RunCheckpoints
from .run_folder import (
    BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT, RUN_FILES, TENSORBOARD_DIR, TrainingSummary, holds_run,
    limit_reached, run_in_the_way,
)
from .sampler import ResumableShardSampler
from .startup import build_networks, derived_seed, seed_everything, seed_worker
from .state import STATE_FILE_NAME
from .validation import ValidationResult, validate

AuxiliaryLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
"""An extra training term: ``(disparity (B, 1, H, W) of the target frames at full resolution,
intrinsics (B, 3, 3) px, flipped (B,) bool: the samples augmentation mirrored left-right)
-> (scalar loss added to the objective, values to record)``; e.g. the ground-plane scale
term of :mod:`dna_depth_core.training.finetune_scale`."""


class Trainer(RunCheckpoints):
    """Self-supervised training of a DNA-Depth depth network with a pose network.

    Single process by default; under ``torchrun`` (or with a process group already
    initialised by the caller) every process trains a shard of each epoch with
    DistributedDataParallel, and rank 0 logs and writes checkpoints.

    Args:
        config: the run's configuration (checked here).
        train_dataset: samples with ``frames`` ``(3, 3, H, W)``, ``intrinsics`` ``(3, 3)``,
            for speed supervision ``source_distance`` ``(2,)`` and for ``true_motion``
            ``target_to_source`` ``(2, 4, 4)`` (see :mod:`dna_depth_core.data`); H x W must
            equal ``data.height x data.width``.
        val_dataset: optional held-out samples (with ``depth_gt`` for AbsRel validation).
        init_checkpoint: start from this checkpoint's depth (and pose, if stored) weights
            instead of ``model`` (fine-tuning): a file, or networks already loaded (and
            adjusted, see :mod:`~dna_depth_core.training.calibration`), which are then
            trained in place. Ignored by ``fit(resume=True)``, which restores the run's own
            weights.
        dataset_description: how checkpoint provenance names the training data; defaults
            to the dataset's class name and size.
        depth_scale: metres per network depth unit that every checkpoint of the run records
            (1.0: the network predicts metres, or its depth is relative).
        metric: whether the checkpoints are metric; ``None``: when speed-supervised
            (``speed_weight > 0``).
        auxiliary_loss: an extra term added to the objective every step (see
            :data:`AuxiliaryLoss`), ``None`` for none.

    :meth:`fit` runs once per trainer; it also ends a process group the trainer started.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_dataset: Dataset,
        val_dataset: Dataset | None = None,
        init_checkpoint: str | Path | Checkpoint | None = None,
        dataset_description: str | None = None,
        depth_scale: float = 1.0,
        metric: bool | None = None,
        auxiliary_loss: AuxiliaryLoss | None = None,
    ) -> None:
        check_train_config(config)
        self.config = config
        self.depth_scale = depth_scale
        self.auxiliary_loss = auxiliary_loss
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
        self.metric_depth = config.speed_weight > 0 or config.true_motion.enabled
        self.metric = self.metric_depth if metric is None else metric
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        self.true_motion = config.true_motion
        if self.true_motion.enabled and "target_to_source" not in train_dataset[0]:
            raise UserError(
                "true_motion.warp / true_motion.pose_weight need samples with 'target_to_source' (the true camera "
                f"motion), which {type(train_dataset).__name__} does not give; use data that knows its poses "
                "(data.dataset: synthetic), or set true_motion.warp=false true_motion.pose_weight=0"
            )

        # Same seed on every process: identical initial weights (DDP also broadcasts them).
        seed_everything(config.runtime.seed)
        self._adopt_networks(*build_networks(config, init_checkpoint))
        # From here on every process draws its own dropout, auto-mask noise and augmentation.
        rank, seed = self.context.rank, config.runtime.seed
        seed_everything(derived_seed(seed, rank, 0))
        self.augment_generator = torch.Generator().manual_seed(derived_seed(seed, rank, 1))
        self.loader_generator = torch.Generator().manual_seed(derived_seed(seed, rank, 2))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

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
        self._validated_at_step: int | None = None

    def _adopt_networks(self, depth_net: nn.Module, pose_net: nn.Module, pose_encoder: str) -> None:
        """Train these networks: on the device, wrapped for DDP, with a fresh optimiser, schedule
        and weight averages (a resume then loads their states). The run's config (its
        ``config.yaml`` and the checkpoints' provenance) records the pose encoder built."""
        optim = self.config.optim
        self.config = replace(self.config, model=replace(self.config.model, pose_encoder=pose_encoder))
        self.pose_encoder = pose_encoder
        self.depth_net = depth_net.to(self.device, memory_format=self.memory_format)
        self.pose_net = pose_net.to(self.device, memory_format=self.memory_format)
        if self.device.type == "cpu":  # the same arithmetic through faster kernels on one thread
            prefer_onednn_for_pointwise_convolutions(self.depth_net)
            prefer_onednn_for_pointwise_convolutions(self.pose_net)
        self.activation_checkpointing = optim.activation_checkpointing
        if self.activation_checkpointing:
            self.depth_net.set_activation_checkpointing(True)
            self.pose_net.set_activation_checkpointing(True)
        self.depth_model: nn.Module = self.depth_net
        self.pose_model: nn.Module = self.pose_net
        if self.context.is_distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.depth_model = DistributedDataParallel(self.depth_net, device_ids=device_ids)
            self.pose_model = DistributedDataParallel(self.pose_net, device_ids=device_ids)
        parameters = list(self.depth_net.parameters()) + list(self.pose_net.parameters())
        self.optimizer = torch.optim.Adam(parameters, lr=optim.lr, betas=tuple(optim.betas),
                                          weight_decay=optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, optim.lr_milestones, optim.lr_gamma)
        # Weight averages (optim.ema_decay > 0) that validation and checkpoints use.
        self.depth_average = self.pose_average = None
        if optim.ema_decay > 0:
            self.depth_average = ModelEmaV3(self.depth_net, decay=optim.ema_decay, use_warmup=True)
            self.pose_average = ModelEmaV3(self.pose_net, decay=optim.ema_decay, use_warmup=True)

    def _loader(self, dataset: Dataset, sampler: ResumableShardSampler, drop_last: bool) -> DataLoader:
        workers = self.config.data.num_workers
        return DataLoader(
            dataset, batch_size=self.config.data.batch_size, sampler=sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", drop_last=drop_last, generator=self.loader_generator,
            worker_init_fn=seed_worker if workers > 0 else None,
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
                raise run_in_the_way(self.output_dir)
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
        self._saved_at_step = self._validated_at_step = None
        stop_reason = None
        try:
            while self.epoch < config.optim.epochs and stop_reason is None:
                stop_reason = self._run_epoch(logger, summary)
                if stop_reason is None:
                    self._end_epoch(logger, summary)
            broadcast_buffers(self.context, self.depth_net)
            broadcast_buffers(self.context, self.pose_net)
            # The final weights are validated too, not only those of whole epochs, so that a
            # run stopped by max_steps or the time limit can still pick its best checkpoint.
            improved = False
            if self.val_loader is not None and self._validated_at_step != self.step:
                # Its random draws (auto-mask noise) must not shift a resumed run's streams.
                devices = [self.device] if self.device.type == "cuda" else []
                with torch.random.fork_rng(devices=devices):
                    improved = self._validate_and_record(logger, summary)
            if self._saved_at_step != self.step or improved:
                self._save_checkpoints(best=improved)
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
        if config.speed_weight > 0:
            if source_distance is None:
                raise UserError(
                    "speed_weight > 0 needs samples with 'source_distance' (metres travelled to each source "
                    "frame); use data that records speed or odometry, or set speed_weight=0"
                )
            source_distance = source_distance.to(self.device, non_blocking=True)
        augmented = augment_batch(frames, intrinsics, config.augmentation, self.augment_generator)
        true_target_to_source = None
        if self.true_motion.enabled:
            true_target_to_source = mirror_transforms(batch["target_to_source"].to(self.device, non_blocking=True),
                                                      augmented.flipped)
        # Held means held: in eval mode the depth network neither updates its batch-norm
        # statistics nor drops paths, so the pose network learns against the very depth
        # network the warm-up ends with.
        self.depth_net.train(self.step >= config.optim.pose_warmup_steps)
        self.optimizer.zero_grad(set_to_none=True)
        output = compute_objective(
            self.depth_model, self.pose_model, augmented.frames, augmented.network_frames, augmented.intrinsics,
            config.loss, config.speed_weight, source_distance,
            autocast=self.amp, memory_format=self.memory_format,
            true_motion=self.true_motion, true_target_to_source=true_target_to_source,
        )
        total, self._auxiliary_record = output.total, {}
        if self.auxiliary_loss is not None:
            auxiliary, self._auxiliary_record = self.auxiliary_loss(output.disparities[0], augmented.intrinsics,
                                                                        augmented.flipped)
            total = total + auxiliary
        self._step_loss = float(total.detach())
        if not self.amp and not torch.isfinite(total):
            raise UserError(
                f"the loss became {float(total)} at step {self.step + 1}; training diverged. "
                "Lower optim.lr or check the data (frames in [0, 1], correct intrinsics)"
            )
        # The recomputation of checkpointed segments would update batch-norm statistics twice.
        with (batch_norm_statistics_restored(self.depth_net, self.pose_net) if self.activation_checkpointing
              else nullcontext()):
            self.scaler.scale(total).backward()
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
            "loss": self._step_loss,
            "photometric": float(output.loss.photometric.detach()),
            "smoothness": float(output.loss.smoothness.detach()),
        }
        if output.speed is not None:
            record["speed"] = float(output.speed.detach())
        if output.pose is not None:
            record["pose"] = float(output.pose.detach())
        record.update(self._auxiliary_record)
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
            improved = self._validate_and_record(logger, summary)
        self._save_checkpoints(best=improved)

    def _validate_and_record(self, logger: TrainingLogger, summary: TrainingSummary) -> bool:
        """Validate the current weights, log and record the result; whether it is the best so far."""
        result = self._validate()
        self._validated_at_step = self.step
        self.last_validation = result
        whole_epoch = self.batch_in_epoch == 0
        epoch = self.epoch if whole_epoch else self.epoch + self.batch_in_epoch / self.train_sampler.batches_per_epoch
        summary.validation.append({"epoch": epoch, "step": self.step, "criterion": result.criterion,
                                   "value": result.value, "metrics": result.metrics})
        logger.scalars(self.step, {f"val/{name}": value for name, value in result.metrics.items()})
        improved = self.best_value is None or result.value < self.best_value
        if improved:
            self.best_criterion, self.best_value = result.criterion, result.value
        if self.context.is_main and self.config.runtime.progress:
            when = f"epoch {self.epoch}" if whole_epoch else f"step {self.step} (final weights)"
            tqdm.write(f"{when}: validation {result.criterion} {result.value:.4f}" + (" (best)" if improved else ""))
        return improved

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
