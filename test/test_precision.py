"""Reduced precision: the ground-truth budget's verdict, the record in checkpoints, the ``auto`` choice,
bf16 and int8 on the CPU judged on the shipped checkpoint, the float16 graph of GPU engines."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from dna_depth_core.checkpoint import load_checkpoint, save_checkpoint
from dna_depth_core.evaluation.precision_budget import (
    budget_test_sets, measure_configurations, predict_depths,
)
from dna_depth_core.inference import DepthEstimator
from dna_depth_core.inference import precision as precision_module
from dna_depth_core.inference.backends import backend_available, create_runner, resolve_configuration
from dna_depth_core.inference.model_cache import cached_onnx_model
from dna_depth_core.inference.precision import (
    AccuracyBudget, AccuracyChange, MeasuredConfiguration, PrecisionRecord, budget_verdict, cpu_has_bf16,
    read_checkpoint_precision, weights_fingerprint, write_checkpoint_precision,
)
from dna_depth_core.errors import UserError
from dna_depth_core.checkpoint import shipped_checkpoint_path

CPU = torch.device("cpu")
HEIGHT, WIDTH = 64, 192
"""Test size of the shipped network (trained at 320x96): small enough for seconds-long tests."""

needs_openvino = pytest.mark.skipif(not backend_available("openvino", CPU), reason="pip install openvino onnxscript")
needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no AVX512-BF16 or AMX")


@pytest.fixture(scope="module", autouse=True)
def export_cache(tmp_path_factory):
    """One ONNX cache for the module (and the commands it starts): each export is made once."""
    with pytest.MonkeyPatch.context() as patch:
        directory = tmp_path_factory.mktemp("cache")
        patch.setenv("DNA_DEPTH_CACHE_DIR", str(directory))
        yield directory


@pytest.fixture(scope="module")
def shipped():
    checkpoint = load_checkpoint(shipped_checkpoint_path())
    return checkpoint.depth_net, dataclasses.replace(checkpoint.metadata, height=HEIGHT, width=WIDTH)


@pytest.fixture(scope="module")
def test_sets():
    return budget_test_sets(HEIGHT, WIDTH, sequences=1, frames=3)


def measured(precision: str, backend: str, latency_ms: float, met: bool, device: str = "cpu") -> MeasuredConfiguration:
    return MeasuredConfiguration(precision, backend, device, float(latency_ms), 0.0, 0.0, 0.0, met)


def record_for(network, metadata, *entries: MeasuredConfiguration) -> PrecisionRecord:
    return PrecisionRecord(weights=weights_fingerprint(network), height=metadata.height, width=metadata.width,
                           machine="test", configurations=list(entries))


def test_budget_verdict_holds_each_limit_inclusively_and_in_both_directions():
    budget = AccuracyBudget()
    assert budget_verdict(AccuracyChange(0.003, -0.005, 0.03)).met
    assert budget_verdict(AccuracyChange(-0.003, 0.005, 0.0)).met
    cases = {
        AccuracyChange(0.0031, 0.0, 0.0): "AbsRel",
        AccuracyChange(-0.0031, 0.0, 0.0): "AbsRel",
        AccuracyChange(0.0, -0.0051, 0.0): "d1",
        AccuracyChange(0.0, 0.0, 0.0301): "p99",
        AccuracyChange(float("nan"), 0.0, 0.0): "AbsRel",
    }
    for change, named in cases.items():
        verdict = budget_verdict(change, budget)
        assert not verdict.met and len(verdict.failures) == 1 and named in verdict.failures[0], change
        assert str(verdict).startswith("FAILS")


def test_worst_change_keeps_the_sign_of_the_largest_magnitude():
    worst = AccuracyChange.worst([AccuracyChange(0.001, -0.004, 0.01), AccuracyChange(-0.002, 0.001, 0.02)])
    assert worst == AccuracyChange(-0.002, -0.004, 0.02)


def test_record_round_trips_through_json_and_rejects_newer_formats():
    record = PrecisionRecord(weights="abc", height=96, width=320, machine="m", test_data="t", int8_calibration="c",
                             configurations=[measured("bf16", "openvino", 12.5, True)])
    assert PrecisionRecord.from_json(record.to_json()) == record
    with pytest.raises(UserError, match="newer"):
        PrecisionRecord.from_json('{"version": 99}')
    with pytest.raises(UserError, match="not valid JSON"):
        PrecisionRecord.from_json("{")


def test_fastest_within_budget_skips_failed_unusable_and_other_devices():
    record = PrecisionRecord(configurations=[
        measured("fp32", "openvino", 100, True), measured("int8", "openvino", 40, False),
        measured("bf16", "openvino", 50, True), measured("fp16", "tensorrt", 5, True, device="cuda"),
    ])
    assert record.fastest_within_budget("cpu", lambda p, b: True).precision == "bf16"
    assert record.fastest_within_budget("cpu", lambda p, b: p != "bf16").precision == "fp32"
    assert record.fastest_within_budget("cuda", lambda p, b: True).backend == "tensorrt"
    assert record.fastest_within_budget("cpu", lambda p, b: False) is None


def test_auto_without_a_record_runs_float32(shipped):
    network, metadata = shipped
    estimator = DepthEstimator(network, metadata, device="cpu")
    assert estimator.precision == "fp32" and "no precision record" in estimator.configuration_reason


def test_auto_takes_the_fastest_recorded_configuration_that_met_the_budget(shipped, monkeypatch):
    network, metadata = shipped
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr("dna_depth_core.inference.backends.backend_available", lambda name, device: True)
    record = record_for(network, metadata, measured("fp32", "openvino", 100, True),
                        measured("bf16", "openvino", 50, True), measured("fp32", "eager", 10, False))
    size, weights = (metadata.height, metadata.width), record.weights
    chosen = resolve_configuration("auto", "auto", CPU, record, weights, size)
    assert (chosen.precision, chosen.backend) == ("bf16", "openvino") and "50.0 ms" in chosen.reason
    # A backend named explicitly restricts the choice to what that backend ran.
    assert resolve_configuration("auto", "eager", CPU, record, weights, size).precision == "fp32"
    failed = record_for(network, metadata, measured("bf16", "openvino", 50, False))
    assert resolve_configuration("auto", "auto", CPU, failed, weights, size).reason.startswith("no recorded")
    # bf16 recorded on another machine is not run on a CPU without bf16 units.
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset())
    assert resolve_configuration("auto", "auto", CPU, record, weights, size).precision == "fp32"


def test_a_record_for_other_weights_or_size_is_ignored_with_a_warning(shipped):
    network, metadata = shipped
    record = record_for(network, metadata, measured("bf16", "openvino", 1, True))
    size = (metadata.height, metadata.width)
    with pytest.warns(RuntimeWarning, match="other weights"):
        assert resolve_configuration("auto", "eager", CPU, record, "0" * 24, size).precision == "fp32"
    with pytest.warns(RuntimeWarning, match="measured at"):
        resized = resolve_configuration("auto", "eager", CPU, record, record.weights, (HEIGHT, WIDTH * 2))
    assert resized.precision == "fp32"


@needs_openvino
@needs_bf16
def test_the_estimator_runs_what_its_record_chose(shipped):
    network, metadata = shipped
    record = record_for(network, metadata, measured("fp32", "openvino", 100, True),
                        measured("bf16", "openvino", 50, True))
    estimator = DepthEstimator(network, metadata, device="cpu", precision_record=record)
    assert (estimator.precision, estimator.backend) == ("bf16", "openvino")
    assert estimator.predict_disparity(torch.rand(1, 3, HEIGHT, WIDTH)).dtype == torch.float32


def test_bf16_is_refused_on_cpus_without_bf16_units(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    with pytest.raises(ValueError, match="AVX512-BF16 or AMX"):
        resolve_configuration("bf16", "auto", CPU)


@pytest.mark.parametrize(("precision", "backend", "message"), [
    ("fp16", "auto", "CUDA only"),
    ("int8", "auto", "calibrate-precision"),
    ("bf16", "eager", "use openvino"),
    ("fp32", "tensorrt", "cannot run"),
    ("double", "auto", "choose one of auto, fp32, bf16, int8, fp16"),
])
def test_impossible_choices_say_what_to_do(precision, backend, message, monkeypatch):
    # A CPU with bf16 units, so that bf16's message is about the backend on any machine
    # (on one without, the refusal names the CPU first: the test above).
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    with pytest.raises(ValueError, match=message):
        resolve_configuration(precision, backend, CPU)


def test_an_int8_model_that_failed_is_explained():
    failed = MeasuredConfiguration("int8", "openvino", "cpu", 5, 0.01, 0.02, 0.09, False)
    record = PrecisionRecord(configurations=[failed])
    with pytest.raises(ValueError, match="failed the accuracy budget.*9.0%"):
        resolve_configuration("int8", "auto", CPU, record)


def test_checkpoint_stores_record_and_int8_model_and_the_estimator_reads_them(shipped, tmp_path):
    network, metadata = shipped
    source, destination = tmp_path / "plain.safetensors", tmp_path / "measured.safetensors"
    save_checkpoint(source, network, metadata)
    assert read_checkpoint_precision(source) == (None, None)
    record = record_for(network, metadata, measured("fp32", "eager", 1.0, True))
    write_checkpoint_precision(source, destination, record, b"\x08\x01int8 model bytes")
    assert read_checkpoint_precision(destination) == (record, b"\x08\x01int8 model bytes")
    loaded = load_checkpoint(destination)  # the extra tensor does not disturb loading the networks
    assert weights_fingerprint(loaded.depth_net) == record.weights
    estimator = DepthEstimator.from_checkpoint(destination, device="cpu")
    assert (estimator.precision, estimator.backend) == ("fp32", "eager")
    # Writing again replaces both (no int8 model: none stored).
    write_checkpoint_precision(destination, destination, dataclasses.replace(record, machine="again"), None)
    assert read_checkpoint_precision(destination) == (dataclasses.replace(record, machine="again"), None)


@needs_openvino
@needs_bf16
def test_bf16_on_the_shipped_checkpoint_is_judged_on_ground_truth(shipped, test_sets):
    network, metadata = shipped
    configurations = [("fp32", "openvino"), ("bf16", "openvino")]
    results = {(r.precision, r.backend): r for r in measure_configurations(
        network, metadata, CPU, configurations, test_sets, rounds=1, log=lambda line: None)}
    float32, bf16 = results[("fp32", "openvino")], results[("bf16", "openvino")]
    assert set(bf16.per_style) == {test_set.style for test_set in test_sets}
    assert float32.verdict.met and float32.change.pixel_change_p99 < 1e-3
    # bf16 really changes depth (8 mantissa bits), by well under the 3 % per-pixel budget.
    assert 1e-3 < bf16.change.pixel_change_p99 < 0.03
    assert bf16.verdict == budget_verdict(bf16.change)


@needs_openvino
def test_the_onnx_backends_run_on_the_thread_count_they_are_given(shipped):
    # benchmarks/inference.py --threads 1 --clock cpu times one thread: the engines must not take one per core.
    network, metadata = shipped
    openvino_runner = create_runner("openvino", "fp32", network, metadata, CPU, True, threads=1)
    openvino_runner(torch.rand(1, 3, HEIGHT, WIDTH))
    compiled = openvino_runner.requests[(1, 3, HEIGHT, WIDTH)].get_compiled_model()
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    if backend_available("onnxruntime", CPU):
        session = create_runner("onnxruntime", "fp32", network, metadata, CPU, True, threads=1).session
        assert session.get_session_options().intra_op_num_threads == 1


@needs_openvino
@needs_bf16
def test_bf16_runs_the_first_layers_in_float32_and_changes_depth_less_than_plain_bf16(shipped, test_sets):
    from dna_depth_core.inference.backends import OpenVinoRunner
    from dna_depth_core.inference.openvino_bf16 import early_layer_names, float32_layers_in_compiled

    network, metadata = shipped
    path = cached_onnx_model(network, metadata)
    mixed, plain = OpenVinoRunner(path, 1, "bf16"), OpenVinoRunner(path, 1, "bf16", float32_early_layers=False)
    street = test_sets[:1]
    reference = predict_depths(lambda images: network(images, multiscale=False), street, metadata, CPU)[0]

    def p99(runner) -> float:
        depths = predict_depths(runner, street, metadata, CPU)[0]
        return float(np.percentile(np.concatenate([np.abs(d - r).ravel() / r.ravel()
                                                   for d, r in zip(depths, reference)]), 99))

    mixed_p99, plain_p99 = p99(mixed), p99(plain)
    model = mixed.model.clone()
    model.reshape({model.inputs[0].any_name: [1, 3, HEIGHT, WIDTH]})
    early = early_layer_names(model)
    compiled = mixed.requests[(1, 3, HEIGHT, WIDTH)].get_compiled_model()
    float32, bf16 = float32_layers_in_compiled(compiled, early)
    assert float32 >= 5 and bf16 == 0  # the stem and the first blocks' convolutions
    everything = {op.get_friendly_name() for op in model.get_ordered_ops()}
    assert float32_layers_in_compiled(compiled, everything)[1] > 20  # the rest is bf16
    assert 1e-4 < mixed_p99 < plain_p99 and mixed_p99 < 0.03


def test_the_float32_layers_are_those_above_an_eighth_of_the_input_width(shipped):
    openvino = pytest.importorskip("openvino")
    from dna_depth_core.inference.openvino_bf16 import early_layer_names

    network, metadata = shipped
    model = openvino.Core().read_model(str(cached_onnx_model(network, metadata)))
    model.reshape({model.inputs[0].any_name: [1, 3, HEIGHT, WIDTH]})
    names = early_layer_names(model)
    widths = {op.get_friendly_name(): op.outputs()[0].get_partial_shape() for op in model.get_ordered_ops()}
    spatial = [widths[name] for name in names if widths[name].rank.get_length() == 4 and widths[name][3].get_length() > 1]
    assert min(shape[3].get_length() for shape in spatial) == WIDTH // 8  # the first 1/8 map itself
    assert max(shape[3].get_length() for shape in spatial) <= WIDTH // 2 + 1  # the stem's output (and its pad)
    assert len(names) < len(widths) / 4  # the encoder's start, not the network


@pytest.mark.slow  # minutes of ONNX export and quantisation on 2 cores
@needs_openvino
def test_int8_is_calibrated_on_training_frames_and_runs(shipped, test_sets):
    from dna_depth_core.export.quantize import quantize_int8, training_frames

    network, metadata = shipped
    frames, description = training_frames(metadata, count=2)
    assert len(frames) == 2 and frames[0].shape == (HEIGHT, WIDTH, 3) and "street" in description
    int8_model = quantize_int8(network, metadata, frames)
    import onnx

    graph = onnx.load_from_string(int8_model).graph
    assert sum(node.op_type == "QuantizeLinear" for node in graph.node) > 10
    estimator = DepthEstimator(network, metadata, device="cpu", precision="int8", int8_model=int8_model)
    assert (estimator.precision, estimator.backend) == ("int8", "openvino")
    reference = predict_depths(lambda images: network(images, multiscale=False), test_sets[:1], metadata, CPU)[0]
    quantized = predict_depths(estimator.predict_disparity, test_sets[:1], metadata, CPU)[0]
    change = np.median(np.abs(quantized[0] - reference[0]) / reference[0])
    assert 0 < change < 0.2  # quantised, yet the same depth map (whether within budget is measured, not assumed)


def test_training_frames_need_synthetic_provenance(shipped):
    _, metadata = shipped
    from dna_depth_core.export.quantize import training_frames

    with pytest.raises(UserError, match="finetune-bag --int8"):
        training_frames(dataclasses.replace(metadata, provenance={"trained_on": "a bag"}))


@pytest.mark.slow  # minutes of ONNX export and quantisation on 2 cores
@pytest.mark.skipif(not backend_available("onnxruntime", CPU), reason="pip install onnxruntime onnxscript")
def test_float16_graph_of_gpu_engines_agrees_with_float32(shipped, test_sets):
    import onnxruntime

    network, metadata = shipped
    paths = [cached_onnx_model(network, metadata, float16=half) for half in (False, True)]
    images = np.stack([image for test_set in test_sets for image in test_set.images]).transpose(0, 3, 1, 2)
    images = images.astype(np.float32) / 255.0
    disparities = []
    for path in paths:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].type == session.get_outputs()[0].type == "tensor(float)"
        disparities.append(session.run(None, {"image": images})[0])
    depth = [1 / (1 / metadata.max_depth + (1 / metadata.min_depth - 1 / metadata.max_depth) * d) for d in disparities]
    relative = np.abs(depth[1] - depth[0]) / depth[0]
    assert 0 < np.percentile(relative, 99) < 0.01


@pytest.mark.slow  # minutes of ONNX export and quantisation on 2 cores
def test_calibrate_precision_command_records_what_auto_then_runs(shipped, tmp_path):
    network, metadata = shipped
    source, output = tmp_path / "model.safetensors", tmp_path / "measured.safetensors"
    save_checkpoint(source, network, metadata)
    command = [sys.executable, "-c", "import sys; from dna_depth_core.cli import main; sys.exit(main())",
               "calibrate-precision", str(source), "-o", str(output), "--no-int8", "--sequences", "1", "--frames", "3",
               "--rounds", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| fp32 | eager |" in result.stdout and "precision 'auto' on cpu runs" in result.stdout
    record, int8_model = read_checkpoint_precision(output)
    assert int8_model is None and {entry.precision for entry in record.configurations} >= {"fp32"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        estimator = DepthEstimator.from_checkpoint(output, device="cpu")
    expected = record.fastest_within_budget("cpu", lambda p, b: True)
    assert (estimator.precision, estimator.backend) == (expected.precision, expected.backend)

    bad = subprocess.run([*command[:7], "--frames", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--frames must be at least 1" in bad.stderr


@pytest.mark.slow  # minutes of ONNX export and quantisation on 2 cores
def test_export_writes_the_float16_graph_with_the_record_and_refuses_a_missing_int8_model(shipped, tmp_path, capsys):
    import onnx

    from dna_depth_core.cli import main
    from dna_depth_core.inference.precision import RECORD_KEY

    network, metadata = shipped
    source, measured_path = tmp_path / "model.safetensors", tmp_path / "measured.safetensors"
    save_checkpoint(source, network, metadata)
    record = record_for(network, metadata, measured("fp32", "openvino", 10, True))
    write_checkpoint_precision(source, measured_path, record, None)
    output = tmp_path / "model_fp16.onnx"
    assert main(["export", "--checkpoint", str(measured_path), "-o", str(output), "--precision", "fp16",
                 "--no-verify"]) == 0
    model = onnx.load(str(output))
    assert {tensor.data_type for tensor in model.graph.initializer} >= {10}  # float16 weights
    stored = {prop.key: prop.value for prop in model.metadata_props}[RECORD_KEY]
    assert PrecisionRecord.from_json(stored) == read_checkpoint_precision(measured_path)[0]
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(measured_path), "-o", str(tmp_path / "int8.onnx"),
                 "--precision", "int8", "--no-verify"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no int8 model" in error and not (tmp_path / "int8.onnx").exists()
