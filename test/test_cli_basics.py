"""The ``dna-depth`` command line: help, ``info`` in-process, and the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.cli import main
from dna_depth_core.data.camera import FramePreparation
from dna_depth_core.networks import PoseNet, create_depth_net


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cli") / "model.safetensors"
    metadata = ModelMetadata(height=192, width=640, pose_encoder="resnet18",
                             provenance={"data": "KITTI test drive", "epochs": 2})
    save_checkpoint(path, create_depth_net("dna_depth_b0"), metadata, pose_net=PoseNet())
    return path


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "info" in text and "import-weights" in text
    for subcommand in ("info", "import-weights"):
        with pytest.raises(SystemExit):
            main([subcommand, "--help"])
        assert "usage: dna-depth " + subcommand in capsys.readouterr().out


def test_info_prints_metadata_and_parameter_counts(checkpoint, capsys):
    assert main(["info", str(checkpoint)]) == 0
    text = capsys.readouterr().out
    for expected in (
        "tf_efficientnet_b0", "640 x 192", "none (network takes RGB in [0, 1])", "0.1 to 100",
        "relative", "resnet18", "encoder 3,595,388 (3.595 M), decoder 554,564 (0.555 M)",
        "total   4,149,952 (4.150 M)", "pose    12,498,950", "data: KITTI test drive",
    ):
        assert expected in text, expected

    assert main(["info", "--json", str(checkpoint)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["parameters"] == {"encoder": 3_595_388, "decoder": 554_564, "total": 4_149_952, "pose": 12_498_950}
    assert summary["metadata"]["width"] == 640 and summary["metadata"]["metric"] is False


def test_info_prints_the_preparation_record(tmp_path, capsys):
    path = tmp_path / "robot.safetensors"
    preparation = FramePreparation(rectified=True, crop="centre", fx=0.5, fy=0.6667, cx=0.5045, cy=0.4893)
    torch.manual_seed(0)
    save_checkpoint(path, create_depth_net("dna_depth_b0"), ModelMetadata(height=288, width=384,
                                                                           preparation=preparation))
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert ("preparation     rectified (raw images undistorted first); centre crop to the input's aspect ratio "
            "(no stretching), resize to 384 x 288") in text
    assert "training camera fx/W 0.5, fy/H 0.6667, cx/W 0.5045, cy/H 0.4893" in text
    # A checkpoint trained on raw frames says so; old ones carry the KITTI recipe's record.
    save_checkpoint(path, create_depth_net("dna_depth_b0"), ModelMetadata(
        height=192, width=640, preparation=FramePreparation(rectified=False)))
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "raw images, not rectified; resize to 640 x 192 whole when within 2% of its aspect ratio" in text
    assert "fx/W 0.58, fy/H 1.92" in text


def test_info_says_what_the_precision_record_lets_auto_run(checkpoint, tmp_path, capsys):
    from dna_depth_core.inference.precision import (
        MeasuredConfiguration, PrecisionRecord, weights_fingerprint, write_checkpoint_precision,
    )
    from dna_depth_core.checkpoint import load_checkpoint

    assert main(["info", str(checkpoint)]) == 0
    assert "precision       no record: 'auto' runs float32" in capsys.readouterr().out

    def entry(precision: str, latency: float, met: bool) -> MeasuredConfiguration:
        return MeasuredConfiguration(precision, "openvino", "cpu", latency, 0.001, -0.002, 0.012, met)

    record = PrecisionRecord(weights=weights_fingerprint(load_checkpoint(checkpoint).depth_net), height=192,
                             width=640, machine="a test CPU", test_data="synthetic test sequences",
                             configurations=[entry("fp32", 200.0, True), entry("bf16", 80.0, True),
                                             entry("int8", 60.0, False)])
    measured = tmp_path / "measured.safetensors"
    write_checkpoint_precision(checkpoint, measured, record, None)
    assert main(["info", str(measured)]) == 0
    text = capsys.readouterr().out
    assert "cpu at 640x192: fastest within the accuracy budget bf16 on openvino" in text
    assert "int8 openvino 60.0 ms (fails, p99 1.20%)" in text and "measured on a test CPU" in text
    assert main(["info", "--json", str(measured)]) == 0
    assert json.loads(capsys.readouterr().out)["precision"]["for_these_weights"] is True

    record.weights = "other"
    write_checkpoint_precision(checkpoint, measured, record, None)
    assert main(["info", str(measured)]) == 0
    assert "measured for other weights: 'auto' ignores it" in capsys.readouterr().out


def test_info_errors_are_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.safetensors")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dna-depth info: error: checkpoint") and "does not exist" in error
    assert error.count("\n") == 1

    not_a_checkpoint = tmp_path / "notes.txt"
    not_a_checkpoint.write_text("hello")
    assert main(["info", str(not_a_checkpoint)]) == 2
    error = capsys.readouterr().err
    assert "is not a DNA-Depth checkpoint" in error and error.count("\n") == 1


def test_info_summarises_provenance_without_paths(tmp_path, capsys):
    path = tmp_path / "model.safetensors"
    provenance = {"tool": "dna-depth finetune-bag", "init_checkpoint": "/home/builder/runs/street/last.safetensors",
                  "training": {"tool": "dna-depth train", "step": 300, "validation": {"criterion": "abs_rel",
                               "value": 0.32591}, "config": {"runtime": {"output_dir": "/tmp/build/run"}}}}
    torch.manual_seed(0)
    save_checkpoint(path, create_depth_net("dna_depth_b0"), ModelMetadata(height=64, width=96, provenance=provenance))
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    summary = text[text.index("provenance"):]
    assert "init_checkpoint: last.safetensors" in summary and "/home/builder" not in summary
    assert "training: tool dna-depth train, step 300, validation abs_rel 0.3259" in summary
    assert "/tmp/build" not in summary and "output_dir" not in summary and "--verbose" in summary

    assert main(["info", "--verbose", str(path)]) == 0
    text = capsys.readouterr().out
    assert "/home/builder/runs/street/last.safetensors" in text and '"output_dir": "/tmp/build/run"' in text


def test_checkpoint_errors_name_every_tool_that_writes_checkpoints(tmp_path, capsys):
    not_a_checkpoint = tmp_path / "model.safetensors"
    not_a_checkpoint.write_bytes(b"\x00" * 64)
    assert main(["info", str(not_a_checkpoint)]) == 2
    error = capsys.readouterr().err
    assert all(tool in error for tool in ("'dna-depth train'", "'dna-depth finetune-bag'", "'dna-depth import-weights'"))


def test_installed_console_script(checkpoint):
    script = Path(sys.executable).with_name("dna-depth")
    command = str(script) if script.exists() else shutil.which("dna-depth")
    assert command, "the dna-depth console script is not installed (pip install -e .)"
    result = subprocess.run([command, "info", str(checkpoint)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    assert "tf_efficientnet_b0" in result.stdout and "640 x 192" in result.stdout
