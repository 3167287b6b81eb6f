"""The trainer's checkpoints and resume state: what it writes after each epoch (and every
``runtime.checkpoint_every_steps``) and how ``fit(resume=True)`` restores it.

A mixin of :class:`~dna_depth_core.training.trainer.Trainer`, kept apart so that the
training loop and the file formats of a run each read on their own; it uses the
trainer's networks, optimiser, counters and random generators.
"""

from __future__ import annotations

from datetime import datetime, timezone

from tqdm import tqdm

from ..checkpoint import ModelMetadata, load_state_strict, read_metadata, save_checkpoint
from ..config import config_to_dict
from ..errors import UserError
from ..networks import DepthNet, PoseNet
from .distributed import barrier, gather_objects
from .run_folder import BEST_CHECKPOINT, LAST_CHECKPOINT
from .state import capture_rng_state, load_training_state, restore_rng_state, save_training_state


class RunCheckpoints:
    """Checkpoint metadata, saving and resuming for the trainer (see the module docstring)."""

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
            depth_scale=self.depth_scale,
            metric=self.metric,
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

    def _adopt_run_architecture(self, pose_encoder: str) -> None:
        """Train the networks the run was built with (its last checkpoint's depth network, its
        resume state's pose encoder) where the config builds others: a run started with
        ``--init`` resumes exactly from the recipe's config too."""
        last = self.output_dir / LAST_CHECKPOINT
        network = read_metadata(last).network if last.is_file() else self.depth_net.config
        if pose_encoder == self.pose_encoder and network == self.depth_net.config:
            return
        if self.context.is_main and self.config.runtime.progress:
            tqdm.write(f"resuming with the run's own networks (depth encoder {network.encoder}, pose encoder "
                       f"{pose_encoder}), not the config's (depth {self.depth_net.config.encoder}, pose "
                       f"{self.pose_encoder})")
        self._adopt_networks(DepthNet(network).train(), PoseNet(pose_encoder).train(), pose_encoder)

    def _load_state(self) -> None:
        state = load_training_state(self.state_path)
        self._adopt_run_architecture(state["pose_encoder"])
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
