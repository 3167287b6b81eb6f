"""Depth metrics, the Eigen-split protocol, the evaluation loop and ``dna-depth evaluate``."""

import csv
import json
import math

import cv2
import numpy as np
import pytest
import torch

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.cli import main
from dna_depth_core.errors import UserError
from dna_depth_core.evaluation import (
    METRIC_NAMES,
    SYNTHETIC_PROTOCOL,
    EvaluationProtocol,
    EvaluationSample,
    NoValidPixelsError,
    SyntheticTestSet,
    compute_depth_metrics,
    evaluate_checkpoint,
    evaluate_depth_map,
    evaluate_predictions,
    garg_crop_mask,
    write_report,
)
from dna_depth_core.networks import create_depth_net


def test_metrics_match_hand_computed_values():
    # gt (1, 2, 4), pred (1, 2, 2): only the last pixel is off, by 2 m (ratio 2).
    metrics = compute_depth_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 2.0]))
    assert metrics["abs_rel"] == pytest.approx((0 + 0 + 2 / 4) / 3)  # 1/6
    assert metrics["sq_rel"] == pytest.approx((0 + 0 + 4 / 4) / 3)  # 1/3
    assert metrics["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert metrics["rmse_log"] == pytest.approx(math.sqrt(math.log(2) ** 2 / 3))
    assert (metrics["d1"], metrics["d2"], metrics["d3"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert tuple(metrics) == METRIC_NAMES


def test_delta_thresholds_are_symmetric_and_strict():
    # max(gt/pred, pred/gt) = 1.2, 1.5, 1.9, 3 against thresholds 1.25, 1.5625, 1.953125.
    metrics = compute_depth_metrics(np.array([1.2, 1.0, 1.9, 3.0]), np.array([1.0, 1.5, 1.0, 1.0]))
    assert (metrics["d1"], metrics["d2"], metrics["d3"]) == pytest.approx((1 / 4, 2 / 4, 3 / 4))
    exact = compute_depth_metrics(np.array([1.25]), np.array([1.0]))
    assert exact["d1"] == 0.0 and exact["d2"] == 1.0


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="matching"):
        compute_depth_metrics(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="> 0"):
        compute_depth_metrics(np.array([1.0, 0.0]), np.ones(2))
    with pytest.raises(NoValidPixelsError):
        compute_depth_metrics(np.zeros(0), np.zeros(0))


def test_garg_crop_bounds_on_kitti_size():
    mask = garg_crop_mask(375, 1242)
    rows, columns = np.nonzero(mask)
    # Rows int(0.40810811 * 375) = 153 to int(0.99189189 * 375) = 371 (exclusive),
    # columns int(0.03594771 * 1242) = 44 to int(0.96405229 * 1242) = 1197 (exclusive).
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (153, 370, 44, 1196)
    assert mask.sum() == (371 - 153) * (1197 - 44)


def test_median_scaling_makes_a_scaled_prediction_perfect(seeded):
    gt = np.random.uniform(2.0, 70.0, size=(60, 90)).astype(np.float32)
    metrics, scale = evaluate_depth_map(gt, gt * 0.37)
    assert scale == pytest.approx(1 / 0.37, rel=1e-5)
    assert metrics["abs_rel"] == pytest.approx(0.0, abs=1e-6) and metrics["rmse"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["d1"] == 1.0
    unscaled, unit = evaluate_depth_map(gt, gt * 0.37, median_scaling=False)
    assert unit == 1.0 and unscaled["abs_rel"] == pytest.approx(0.63, rel=1e-4)


def test_protocol_masks_range_and_crop_and_clamps_predictions():
    gt = np.array([[0.0, 5.0], [100.0, 10.0]], np.float32)  # 0 = unknown, 100 m is beyond max_depth
    pred = np.array([[1.0, 500.0], [1.0, 10.0]], np.float32)  # 500 m clamps to 80
    metrics, _ = evaluate_depth_map(gt, pred, garg_crop=False, median_scaling=False)
    assert metrics["abs_rel"] == pytest.approx((75 / 5 + 0) / 2)
    # A half-size constant prediction is resized to the ground truth before comparison.
    metrics, scale = evaluate_depth_map(
        np.full((8, 12), 4.0, np.float32), np.full((4, 6), 2.0, np.float32), garg_crop=False
    )
    assert scale == pytest.approx(2.0) and metrics["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    outside_crop = np.zeros((375, 1242), np.float32)
    outside_crop[:150] = 10.0  # only rows above the Garg crop have ground truth
    with pytest.raises(NoValidPixelsError):
        evaluate_depth_map(outside_crop, np.ones((192, 640), np.float32))
    with pytest.raises(ValueError, match="finite and > 0"):
        evaluate_depth_map(gt, np.zeros((2, 2), np.float32))


def test_evaluate_predictions_accepts_any_predictor_and_skips_images_without_ground_truth(tmp_path):
    depth = np.linspace(5.0, 50.0, 24 * 32, dtype=np.float32).reshape(24, 32)
    image = np.zeros((24, 32, 3), np.uint8)
    samples = [
        EvaluationSample("ramp", image, depth),
        EvaluationSample("sky", image, np.zeros((24, 32), np.float32)),
        EvaluationSample("half", image, depth / 2),
    ]
    protocol = EvaluationProtocol(garg_crop=False, median_scaling=False)

    def constant_depth(sample: EvaluationSample) -> np.ndarray:
        return np.full((6, 8), 10.0, np.float32)

    result = evaluate_predictions(constant_depth, samples, protocol, num_examples=1, progress=False)
    assert [image.name for image in result.per_image] == ["ramp", "half"] and result.skipped == ["sky"]
    expected = [compute_depth_metrics(d.ravel().astype(np.float64), np.full(d.size, 10.0)) for d in (depth, depth / 2)]
    for name in METRIC_NAMES:
        assert result.metrics[name] == pytest.approx((expected[0][name] + expected[1][name]) / 2)
    assert len(result.examples) == 1 and result.examples[0].prediction.shape == (24, 32)
    oracle = evaluate_predictions(lambda sample: depth, samples[:1], SYNTHETIC_PROTOCOL, progress=False)
    assert oracle.metrics["abs_rel"] == pytest.approx(0.0, abs=1e-6) and oracle.scale_median == pytest.approx(1.0)
    paths = write_report(result, tmp_path, context={"predictor": "constant 10 m"})
    assert set(paths) == {"json", "csv", "png"}
    with pytest.raises(UserError, match="none of the 1 test images"):
        evaluate_predictions(constant_depth, samples[1:2], protocol, progress=False)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A random-weight DNA-Depth-B0 checkpoint with a 64 x 96 input."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.safetensors"
    save_checkpoint(path, create_depth_net("dna_depth_b0"), ModelMetadata(height=64, width=96))
    return path


def test_synthetic_test_set_yields_frames_of_consecutive_seeds():
    samples = SyntheticTestSet("street", num_sequences=2, seed=500, height=16, width=32, frames_per_sequence=3)
    names = [sample.name for sample in samples]
    assert len(samples) == 6 and names == [f"seed{s}/frame{i:03d}" for s in (500, 501) for i in range(3)]
    first = next(iter(samples))
    assert first.image.shape == (16, 32, 3) and first.image.dtype == np.uint8 and first.depth_gt.shape == (16, 32)


def test_evaluate_cli_on_synthetic_scenes_writes_reports(tiny_checkpoint, tmp_path, capsys):
    output = tmp_path / "report"
    argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", "synthetic", "--num-sequences", "1"]
    argv += ["--frames-per-sequence", "3", "--seed", "500", "--device", "cpu", "--output-dir", str(output)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "AbsRel" in printed and "images evaluated: 3" in printed
    summary = json.loads((output / "metrics.json").read_text())
    assert summary["num_images"] == 3 and summary["protocol"]["median_scaling"] is True
    assert summary["protocol"]["garg_crop"] is False and summary["context"]["height"] == 64
    assert set(summary["metrics"]) == set(METRIC_NAMES)
    assert 0 < summary["metrics"]["abs_rel"] < 10 and 0 <= summary["metrics"]["d1"] <= 1
    with open(output / "metrics.csv", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["image", *METRIC_NAMES, "scale"]
    assert [row[0] for row in rows[1:]] == [f"seed500/frame{i:03d}" for i in range(3)] + ["mean"]
    assert float(rows[-1][1]) == pytest.approx(summary["metrics"]["abs_rel"], abs=1e-6)
    figure = cv2.imread(str(output / "examples.png"))
    assert figure is not None and figure.shape[0] > 200 and figure.shape[1] > 800


def test_evaluate_cli_metric_checkpoint_skips_median_scaling_unless_asked(tmp_path, capsys):
    path = tmp_path / "metric.safetensors"
    save_checkpoint(path, create_depth_net("dna_depth_b0"), ModelMetadata(height=32, width=64, metric=True))
    argv = [
        "evaluate",
        "--checkpoint",
        str(path),
        "--data",
        "synthetic",
        "--num-sequences",
        "1",
        "--frames-per-sequence",
        "3",
        "--device",
        "cpu",
        "--num-examples",
        "0",
        "--output-dir",
        str(tmp_path / "metric"),
    ]
    assert main(argv) == 0
    assert json.loads((tmp_path / "metric" / "metrics.json").read_text())["protocol"]["median_scaling"] is False
    assert "median scaling: off" in capsys.readouterr().out
    assert not (tmp_path / "metric" / "examples.png").exists()
    sample = EvaluationSample("one", np.zeros((32, 64, 3), np.uint8), np.full((32, 64), 7.0, np.float32))
    forced = evaluate_checkpoint(path, [sample], SYNTHETIC_PROTOCOL, median_scaling=True, device="cpu", progress=False)
    # Median scaling maps the prediction's median onto the constant 7 m, whatever the random network predicts.
    assert forced.protocol.median_scaling and forced.per_image[0].scale != 1.0
    assert np.median(forced.examples[0].prediction) == pytest.approx(7.0, rel=1e-4)


def test_evaluate_cli_errors_are_one_clear_line(tiny_checkpoint, tmp_path, capsys):
    split = tmp_path / "test_files.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0002_sync 69 l\n")
    kitti = [
        "evaluate",
        "--checkpoint",
        str(tiny_checkpoint),
        "--data",
        "kitti",
        "--data-root",
        str(tmp_path),
        "--split-file",
        str(split),
        "--gt-depths",
        str(tmp_path / "gt_depths.npz"),
    ]
    assert main(kitti) == 2
    error = capsys.readouterr().err
    assert "does not exist" in error and "dna-depth export-gt" in error and "Traceback" not in error
    assert main(kitti[:7]) == 2
    assert "--data kitti needs --split-file, --gt-depths" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.safetensors"), "--data", "synthetic"]) == 2
    assert "does not exist" in capsys.readouterr().err
    synthetic = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", "synthetic", "--frames-per-sequence", "2"]
    assert main(synthetic) == 2
    assert "--frames-per-sequence must be at least 3" in capsys.readouterr().err
