"""The output of a ``dna-depth train`` run: the better of its starting model and its best
checkpoint, and ``report.json`` beside the run's checkpoints.

A new run with ``--init`` validates its starting model first (:func:`starting_model`: the
trainer's validation, same set, criterion and loss) and writes it into ``report.json`` at
once (:func:`begin_run`), so that a killed and resumed run still compares with it. At the
end, :func:`finish_run` compares the best checkpoint with the start on the validation
criterion (AbsRel with ground truth, else the photometric error): when training made it
worse, one warning line says so and the output is the starting model. A random start (no
``--init``) is not worth comparing with: the final weights are compared with the best
checkpoint instead. :data:`OUTPUT_CHECKPOINT` is a byte-for-byte copy of the file chosen;
the run's checkpoints and resume state stay as the trainer wrote them, so the run resumes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ..checkpoint import load_checkpoint, read_metadata
from ..paths import atomic_write
from .guardrails import CRITERION_NAMES, validation_error, worse_than_start
from .run_folder import BEST_CHECKPOINT, TrainingSummary
from .state import STATE_FILE_NAME
from .trainer import Trainer
from .validation import PHOTOMETRIC

OUTPUT_CHECKPOINT = "output.safetensors"
"""The run's output in its folder: the starting model, ``best.safetensors`` or, without a
validation set, ``last.safetensors``."""
REPORT_FILE = "report.json"
STARTING_MODEL = "starting model (--init)"
"""``output_model`` of a run whose output is its starting model."""


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def starting_model(trainer: Trainer, val_dataset: Dataset | None, init: str | Path) -> dict[str, Any]:
    """The record of a run's starting model: its file, the file's SHA-256 and its validation
    (``criterion``, ``metrics``; ``None`` without a validation set) as the trainer validates,
    on copies of the trainer's networks (call it before :meth:`Trainer.fit`, which trains
    them in place)."""
    record = {"checkpoint": str(Path(init).resolve()), "sha256": file_sha256(init), "criterion": None,
              "metrics": None}
    if val_dataset is not None:
        result = validation_error(copy.deepcopy(trainer.depth_net), copy.deepcopy(trainer.pose_net), val_dataset,
                                  trainer.config, trainer.metric_depth, trainer.device)
        record.update(criterion=result.criterion, metrics=result.metrics)
    return record


def _write_report(run_dir: Path, report: dict[str, Any]) -> None:
    atomic_write(run_dir / REPORT_FILE, lambda temporary: temporary.write_text(json.dumps(report, indent=2)))


def begin_run(run_dir: str | Path, start: dict[str, Any] | None) -> None:
    """A new run: forget a previous run's output and report, and record ``start`` (from
    :func:`starting_model`, ``None`` for a random start)."""
    run_dir = Path(run_dir)
    for name in (OUTPUT_CHECKPOINT, REPORT_FILE):
        (run_dir / name).unlink(missing_ok=True)
    if start is not None:
        _write_report(run_dir, {"starting_model": start})


def recorded_start(run_dir: str | Path) -> dict[str, Any] | None:
    """The starting model :func:`begin_run` recorded in ``run_dir``, ``None`` when there is none."""
    path = Path(run_dir) / REPORT_FILE
    return json.loads(path.read_text()).get("starting_model") if path.is_file() else None


def output_written(run_dir: str | Path) -> bool:
    """Whether the run in ``run_dir`` chose its output after its last training step (a run
    killed before it did resumes into :func:`finish_run`)."""
    run_dir = Path(run_dir)
    report, state = run_dir / REPORT_FILE, run_dir / STATE_FILE_NAME
    if not (report.is_file() and state.is_file() and (run_dir / OUTPUT_CHECKPOINT).is_file()):
        return False
    return report.stat().st_mtime >= state.stat().st_mtime and "output_model" in json.loads(report.read_text())


def _metrics_of(trainer: Trainer, val_dataset: Dataset, summary: TrainingSummary, checkpoint: Path,
                step: int) -> dict[str, float]:
    """Validation metrics of the run's ``checkpoint`` written at ``step``: from this fit's
    validations, or validated afresh (a resumed run validated it before it stopped)."""
    for entry in reversed(summary.validation):
        if entry["step"] == step:
            return entry["metrics"]
    model = load_checkpoint(checkpoint, with_pose=True)
    return validation_error(model.depth_net, model.pose_net, val_dataset, trainer.config, trainer.metric_depth,
                            trainer.device).metrics


def finish_run(trainer: Trainer, summary: TrainingSummary, val_dataset: Dataset | None,
               start: dict[str, Any] | None) -> dict[str, Any]:
    """Choose the run's output, write it and ``report.json``, warn in one line each about
    what got worse; returns the report.

    Args:
        trainer: the trainer after :meth:`~Trainer.fit`.
        summary: what it returned.
        val_dataset: the validation set the trainer used, ``None`` without one.
        start: the starting model's record (:func:`starting_model`), ``None`` for a random start.
    """
    run_dir = trainer.output_dir
    best, last = summary.best_checkpoint, summary.last_checkpoint
    criterion = summary.best_criterion
    problems, kept_start = [], False
    before = best_metrics = final_metrics = None
    if val_dataset is not None and best is not None:
        best_metrics = _metrics_of(trainer, val_dataset, summary, best, int(read_metadata(best).provenance["step"]))
        final_metrics = _metrics_of(trainer, val_dataset, summary, last, summary.steps)
    if start is not None:
        before = start["metrics"]
        if best_metrics is None:
            problems.append("no validation set: the output is the final weights, not compared with the starting "
                            "model (--init)")
        elif start["criterion"] == criterion:
            worse = worse_than_start("training", criterion, before[criterion], best_metrics[criterion],
                                     BEST_CHECKPOINT)
            unchanged = Path(start["checkpoint"]).is_file() and file_sha256(start["checkpoint"]) == start["sha256"]
            if worse is not None and not unchanged:
                problems.append(f"training made the validation {CRITERION_NAMES.get(criterion, criterion)} worse "
                                f"than the starting model's, but {start['checkpoint']} has changed or gone since the "
                                f"run began; the output is {BEST_CHECKPOINT}")
            elif worse is not None:
                problems.append(worse)
                kept_start = True
    if not kept_start and best_metrics is not None and final_metrics[criterion] > best_metrics[criterion]:
        problems.append(f"the final weights are worse than the best checkpoint (validation "
                        f"{CRITERION_NAMES.get(criterion, criterion)} {best_metrics[criterion]:.4f} -> "
                        f"{final_metrics[criterion]:.4f}); the output is {BEST_CHECKPOINT}")
    source = Path(start["checkpoint"]) if kept_start else (best if best_metrics is not None else last)
    atomic_write(run_dir / OUTPUT_CHECKPOINT, lambda temporary: shutil.copyfile(source, temporary))
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    after = before if kept_start else best_metrics

    def photometric(metrics: dict[str, float] | None) -> float | None:
        return None if metrics is None else metrics[PHOTOMETRIC]

    report = {
        "stop_reason": summary.stop_reason,
        "steps": summary.steps,
        "epochs_completed": summary.epochs_completed,
        "epochs": round(summary.epochs, 2),
        "final_loss": summary.history[-1]["loss"] if summary.history else None,
        "best": {criterion: summary.best_value} if criterion else None,
        "images_per_second": round(summary.images_per_second, 2),
        "last_checkpoint": str(last),
        "best_checkpoint": str(best) if best else None,
        "output_checkpoint": str(run_dir / OUTPUT_CHECKPOINT),
        "output_model": STARTING_MODEL if kept_start else source.name,
        "starting_model": start,
        "validation_criterion": criterion,
        "photometric_before": photometric(before),
        "photometric_best_checkpoint": photometric(best_metrics),
        "photometric_final_weights": photometric(final_metrics),
        "photometric_after": photometric(after),
        "validation": {"before": before, "best_checkpoint": best_metrics, "final_weights": final_metrics,
                       "after": after},
        "warnings": problems,
    }
    _write_report(run_dir, report)
    return report
