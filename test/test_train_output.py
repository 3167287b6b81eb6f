"""``dna-depth train`` keeps the better model: the starting model (``--init``) when training made
the validation error worse, said in one line and recorded in ``report.json``; the run stays
resumable.

The choice itself (:func:`~dna_depth_core.training.run_output.finish_run`) is tested in
seconds on a run folder of real checkpoint files and a trainer's summary; whole tiny runs
(64x96 synthetic streets, 1-2 steps, the shipped model as the start) through the command's
``main`` take a minute and are ``slow``.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dna_depth_core.checkpoint import ModelMetadata, read_metadata, save_checkpoint, shipped_checkpoint_path
from dna_depth_core.cli import main as dna_depth
from dna_depth_core.networks import create_depth_net
from dna_depth_core.training.run_folder import TrainingSummary
from dna_depth_core.training.run_output import (
    OUTPUT_CHECKPOINT, REPORT_FILE, STARTING_MODEL, file_sha256, finish_run,
)

from test_cli_routes import _train

SHIPPED = shipped_checkpoint_path()
WORSE_LINE = "training made the validation AbsRel worse"


# ------------------------------------------------------------------ the choice, in seconds

@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return create_depth_net("dna_depth_b0")


def _run_folder(folder: Path, network, best_step: int | None, last_step: int) -> None:
    """``best.safetensors`` (when ``best_step``) and ``last.safetensors`` written at those steps."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, step in (("best", best_step), ("last", last_step)):
        if step is not None:
            save_checkpoint(folder / f"{name}.safetensors", network,
                            ModelMetadata(height=64, width=96, provenance={"step": step, "file": name}))


def _summary(folder: Path, validations: dict[int, float], steps: int) -> TrainingSummary:
    """What the trainer returns after validating at ``validations`` (step -> AbsRel)."""
    entries = [{"epoch": step, "step": step, "criterion": "abs_rel", "value": value,
                "metrics": {"abs_rel": value, "photometric": 0.1 + value / 10}} for step, value in validations.items()]
    best = min(validations, key=validations.get) if validations else None
    return TrainingSummary(steps=steps, epochs_completed=steps, validation=entries,
                           best_criterion="abs_rel" if validations else None,
                           best_value=validations[best] if validations else None,
                           last_checkpoint=folder / "last.safetensors",
                           best_checkpoint=folder / "best.safetensors" if validations else None)


def _start(folder: Path, network, abs_rel: float | None) -> dict:
    path = folder / "start.safetensors"
    save_checkpoint(path, network, ModelMetadata(height=64, width=96, provenance={"file": "start"}))
    return {"checkpoint": str(path), "sha256": file_sha256(path), "criterion": None if abs_rel is None else "abs_rel",
            "metrics": None if abs_rel is None else {"abs_rel": abs_rel, "photometric": 0.1 + abs_rel / 10}}


def _finish(folder: Path, summary: TrainingSummary, start: dict | None, validation: bool = True):
    """:func:`finish_run` on ``folder``; the report and the warning lines."""
    trainer = SimpleNamespace(output_dir=folder)  # validations come from the summary: no network runs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = finish_run(trainer, summary, object() if validation else None, start)
    assert report == json.loads((folder / REPORT_FILE).read_text())
    return report, [str(warning.message) for warning in caught]


def _output_is(folder: Path, name: str) -> bool:
    return (folder / OUTPUT_CHECKPOINT).read_bytes() == (folder / name).read_bytes()


def test_a_start_better_than_the_best_checkpoint_is_the_output(tmp_path, network):
    _run_folder(tmp_path, network, best_step=2, last_step=4)
    start = _start(tmp_path, network, abs_rel=0.30)
    report, lines = _finish(tmp_path, _summary(tmp_path, {2: 0.35, 4: 0.40}, steps=4), start)
    assert lines == ["training made the validation AbsRel worse (0.3000 -> 0.3500 for best.safetensors); the output "
                     "is the starting model"]
    assert report["output_model"] == STARTING_MODEL and _output_is(tmp_path, "start.safetensors")
    assert report["warnings"] == lines
    validation = report["validation"]
    assert validation["before"] == validation["after"] == start["metrics"]
    assert validation["best_checkpoint"]["abs_rel"] == 0.35 and validation["final_weights"]["abs_rel"] == 0.40
    assert (report["photometric_before"], report["photometric_best_checkpoint"], report["photometric_final_weights"],
            report["photometric_after"]) == pytest.approx((0.13, 0.135, 0.14, 0.13))


def test_a_better_best_checkpoint_is_the_output_and_worse_final_weights_are_said(tmp_path, network):
    _run_folder(tmp_path, network, best_step=2, last_step=4)
    report, lines = _finish(tmp_path, _summary(tmp_path, {2: 0.25, 4: 0.28}, steps=4),
                            _start(tmp_path, network, abs_rel=0.30))
    assert report["output_model"] == "best.safetensors" and _output_is(tmp_path, "best.safetensors")
    assert report["validation"]["after"] == report["validation"]["best_checkpoint"]
    assert lines == ["the final weights are worse than the best checkpoint (validation AbsRel 0.2500 -> 0.2800); "
                     "the output is best.safetensors"]

    # A random start (no --init): the same comparison of the final weights, nothing to say when they are the best.
    report, lines = _finish(tmp_path, _summary(tmp_path, {2: 0.29, 4: 0.28}, steps=4), None)
    assert report["starting_model"] is None and report["photometric_before"] is None and lines == []


def test_a_start_that_changed_or_went_since_the_run_began_is_not_the_output(tmp_path, network):
    _run_folder(tmp_path, network, best_step=2, last_step=2)
    start = _start(tmp_path, network, abs_rel=0.30)
    save_checkpoint(start["checkpoint"], network, ModelMetadata(height=64, width=96, provenance={"file": "another"}))
    report, lines = _finish(tmp_path, _summary(tmp_path, {2: 0.35}, steps=2), start)
    assert report["output_model"] == "best.safetensors" and _output_is(tmp_path, "best.safetensors")
    assert len(lines) == 1 and "has changed or gone since the run began; the output is best.safetensors" in lines[0]
    Path(start["checkpoint"]).unlink()
    report, lines = _finish(tmp_path, _summary(tmp_path, {2: 0.35}, steps=2), start)
    assert report["output_model"] == "best.safetensors" and len(lines) == 1 and "changed or gone" in lines[0]


def test_without_a_validation_set_the_output_is_the_final_weights(tmp_path, network):
    _run_folder(tmp_path, network, best_step=None, last_step=3)
    report, lines = _finish(tmp_path, _summary(tmp_path, {}, steps=3), _start(tmp_path, network, None),
                            validation=False)
    assert report["output_model"] == "last.safetensors" and _output_is(tmp_path, "last.safetensors")
    assert lines == ["no validation set: the output is the final weights, not compared with the starting model "
                     "(--init)"]
    assert read_metadata(tmp_path / OUTPUT_CHECKPOINT).provenance["step"] == 3


# ------------------------------------------------------------------ whole runs (slow)

def _with_validation(output: Path, *extra: str) -> list[str]:
    """A tiny run with a validation set: 3 training and 3 validation triplets, batch 2."""
    return [*_train(output, *extra), "data.synthetic.val_sequences=1"]


def _warnings(text: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", text) if line.startswith("warning: ")]


@pytest.mark.slow  # a minute of CPU: three tiny runs of the shipped model
def test_a_worse_run_from_init_keeps_the_starting_model_and_resumes(tmp_path, capsys):
    """The shipped model trained at a far too high rate: the output is the starting model,
    byte for byte, one warning line says so, the report records the start, the best
    checkpoint, the final weights and the output; --resume continues the run's own weights
    and compares with the same start."""
    output = tmp_path / "run"
    assert dna_depth([*_with_validation(output, "optim.max_steps=1", "optim.lr=0.02"), "--init", str(SHIPPED)]) == 0
    printed = capsys.readouterr()
    report = json.loads((output / REPORT_FILE).read_text())
    assert report == json.loads(printed.out[printed.out.index("{"):])
    assert report["validation_criterion"] == "abs_rel"
    before, best = report["validation"]["before"], report["validation"]["best_checkpoint"]
    assert best["abs_rel"] > before["abs_rel"]
    assert report["output_model"] == STARTING_MODEL and report["validation"]["after"] == before
    assert report["photometric_after"] == report["photometric_before"] == before["photometric"]
    assert report["photometric_best_checkpoint"] == best["photometric"]
    assert report["starting_model"]["checkpoint"] == str(SHIPPED.resolve())
    lines = _warnings(printed.err)
    assert len(lines) == 1 and WORSE_LINE in lines[0] and "the output is the starting model" in lines[0]
    assert report["warnings"] == [lines[0][len("warning: "):]]
    assert (output / OUTPUT_CHECKPOINT).read_bytes() == SHIPPED.read_bytes()
    assert read_metadata(output / "last.safetensors").provenance["step"] == 1

    assert dna_depth([*_with_validation(output, "optim.max_steps=2", "optim.lr=0.02"), "--resume"]) == 0
    printed = capsys.readouterr()
    resumed = json.loads((output / REPORT_FILE).read_text())
    assert resumed["steps"] == 2 and resumed["starting_model"] == report["starting_model"]
    assert resumed["validation"]["before"] == before
    kept = resumed["output_model"] == STARTING_MODEL
    assert kept == (resumed["validation"]["best_checkpoint"]["abs_rel"] > before["abs_rel"])
    assert (WORSE_LINE in printed.err) == kept

    # Finished, with its output chosen: a resume changes nothing.
    files = {path.name: path.stat().st_mtime_ns for path in output.iterdir()}
    assert dna_depth([*_with_validation(output, "optim.max_steps=2"), "--resume"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert {path.name: path.stat().st_mtime_ns for path in output.iterdir()} == files


@pytest.mark.slow  # a minute of CPU: two tiny runs
def test_a_random_start_outputs_its_best_checkpoint_and_compares_the_final_weights(tmp_path, capsys):
    output = tmp_path / "run"
    assert dna_depth(_with_validation(output, "optim.max_steps=2", "optim.epochs=2")) == 0
    printed = capsys.readouterr()
    report = json.loads((output / REPORT_FILE).read_text())
    assert report["starting_model"] is None and report["validation"]["before"] is None
    assert report["output_model"] == "best.safetensors"
    assert (output / OUTPUT_CHECKPOINT).read_bytes() == (output / "best.safetensors").read_bytes()
    best, final = report["validation"]["best_checkpoint"], report["validation"]["final_weights"]
    assert report["validation"]["after"] == best and final["abs_rel"] >= best["abs_rel"]
    worse = [line for line in _warnings(printed.err) if "the final weights are worse than the best" in line]
    assert len(worse) == (final["abs_rel"] > best["abs_rel"])

    # --overwrite starts afresh: the previous output and report are not left behind as this run's.
    assert dna_depth([*_train(output, "optim.max_steps=1"), "--overwrite", "--init", str(SHIPPED)]) == 0
    printed = capsys.readouterr()
    report = json.loads((output / REPORT_FILE).read_text())
    assert report["output_model"] == "last.safetensors" and report["validation"]["best_checkpoint"] is None
    assert (output / OUTPUT_CHECKPOINT).read_bytes() == (output / "last.safetensors").read_bytes()
    lines = _warnings(printed.err)
    assert len(lines) == 1 and "no validation set" in lines[0]
