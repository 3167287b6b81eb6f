"""A training run's folder and its counters: what a run writes, whether a folder holds one,
when a run has reached its limits, and the summary :meth:`Trainer.fit` returns.

Kept apart from the trainer so that the CLIs can check a folder (and say a run is
finished) without building networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from .config import TrainConfig
from .state import STATE_FILE_NAME, load_training_state


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
            supervision, and the auxiliary loss's values), losses of this process's batch.
        validation: one entry per validation: ``epoch`` (the 1-based epoch it ended, or a
            fraction for the final weights of a run stopped within an epoch), ``step``,
            ``criterion``, ``value`` and the ``metrics`` dict. The final weights are always
            validated (when there is a validation set).
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
        raise run_in_the_way(output_dir)


def run_in_the_way(output_dir: str | Path) -> UserError:
    """The error for a new run started in a folder that holds one."""
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

