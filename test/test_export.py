"""ONNX export: a standard-operator graph that ONNX Runtime runs like PyTorch, with our metadata."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from test_inference import make_trained_like

# Every test here exports or runs ONNX: without the export extra the module is skipped, with the reason.
EXPORT_EXTRA = "needs the export extra: pip install -e '.[export]'"
onnx = pytest.importorskip("onnx", reason=EXPORT_EXTRA)
onnxruntime = pytest.importorskip("onnxruntime", reason=EXPORT_EXTRA)
pytest.importorskip("onnxscript", reason=EXPORT_EXTRA)
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import dna_depth_core
from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.cli import main
from dna_depth_core.export import export_onnx, read_onnx_metadata
from dna_depth_core.export.onnx import downgrade_to_opset17
from dna_depth_core.export.verify import MINIMUM_TOLERANCE, TOLERANCE_FACTOR
from dna_depth_core.geometry import disp_to_depth
from dna_depth_core.networks import create_depth_net

HEIGHT, WIDTH = 64, 96
SHIPPED_CHECKPOINT = Path(dna_depth_core.__file__).parent / "assets" / "dna_depth_synthetic.safetensors"
STANDARD_OPERATORS = {"Add", "Concat", "Conv", "Gemm", "Mul", "Pad", "ReduceMean", "Relu", "Resize", "Sigmoid",
                      "Unsqueeze"}


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    net = make_trained_like(create_depth_net("dna_depth_b0"))
    metadata = ModelMetadata(network=net.config, height=HEIGHT, width=WIDTH, depth_scale=2.0, metric=True,
                             provenance={"source": "test"})
    return net, metadata


def run_onnx(model: onnx.ModelProto, images: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["disparity"], {"image": images.numpy()})[0]


def assert_same_depth(disparity: np.ndarray, net, images: torch.Tensor) -> None:
    with torch.no_grad():
        expected = disp_to_depth(net(images, multiscale=False), 0.1, 100.0).numpy()
    depth = disp_to_depth(torch.from_numpy(disparity), 0.1, 100.0).numpy()
    assert depth.shape == expected.shape
    assert np.abs(depth / expected - 1).max() < 1e-3


def dimensions(value) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_cli_writes_dynamic_model_with_metadata(trained, tmp_path, capsys):
    net, metadata = trained
    checkpoint, output = tmp_path / "model.safetensors", tmp_path / "out" / "model.onnx"
    save_checkpoint(checkpoint, net, metadata)

    arguments = ["export", "--checkpoint", str(checkpoint), "--format", "onnx", "-o", str(output), "--dynamic"]
    assert main(arguments + ["--opset", "18"]) == 0
    printed = capsys.readouterr().out
    assert "verified with ONNX Runtime" in printed and "metres" in printed

    model = onnx.load(str(output))
    onnx.checker.check_model(model, full_check=True)
    assert [entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")] == [18]
    assert {node.domain for node in model.graph.node} == {""}
    assert {node.op_type for node in model.graph.node} <= STANDARD_OPERATORS
    assert [(v.name, dimensions(v)) for v in model.graph.input] == [("image", ["batch", 3, "height", "width"])]
    assert [(v.name, dimensions(v)) for v in model.graph.output] == [("disparity", ["batch", 1, "height", "width"])]
    assert dataclasses.asdict(read_onnx_metadata(model)) == dataclasses.asdict(metadata)
    for shape in [(2, 3, HEIGHT, WIDTH), (1, 3, 96, 128)]:
        images = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
        assert_same_depth(run_onnx(model, images), net, images)


def test_export_rejects_sizes_that_are_not_multiples_of_32(trained):
    net, metadata = trained
    with pytest.raises(ValueError, match="multiple of 32"):
        export_onnx(net, metadata, height=100)


def test_cli_reports_bad_input_in_one_line(trained, tmp_path, capsys):
    net, metadata = trained
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, net, metadata)
    output = str(tmp_path / "model.onnx")

    assert main(["export", "--checkpoint", str(checkpoint), "-o", output, "--height", "100"]) == 2
    assert "--height must be a positive multiple of 32, got 100; try 96" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "missing.safetensors"), "-o", output]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "model.onnx").exists()


def _comparison(printed: str) -> tuple[float, float, float]:
    """(difference, allowed, float32 rounding) from the export's verification line."""
    found = re.search(r"float64 PyTorch (\S+) on \d+ rendered street frame\(s\), allowed (\S+) "
                      r"\(10x float32 PyTorch's (\S+)\)", printed)
    assert found, printed
    return tuple(float(value) for value in found.groups())


def test_cli_verifies_a_trained_checkpoint_on_rendered_frames(tmp_path, capsys):
    # The shipped checkpoint is 1e-3 off float64 on uniform noise in float32 PyTorch itself;
    # on a rendered frame the export matches to float32 rounding (10x it, or the floor when
    # the network rounds less than that: the metric-native checkpoint does).
    output = tmp_path / "model.onnx"
    arguments = ["export", "--checkpoint", str(SHIPPED_CHECKPOINT), "-o", str(output), "--height", "64", "--width", "96"]
    assert main(arguments) == 0
    difference, allowed, rounding = _comparison(capsys.readouterr().out)
    expected = max(TOLERANCE_FACTOR * rounding, MINIMUM_TOLERANCE)
    assert 0 < rounding < 1e-5 and difference <= allowed == pytest.approx(expected, rel=0.05)
    assert output.is_file()


def _one_percent_off(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with the weights of its middle convolution 1 % larger: a subtly wrong graph."""
    convolutions = [node for node in model.graph.node if node.op_type == "Conv"]
    weights = {tensor.name: tensor for tensor in model.graph.initializer}[convolutions[len(convolutions) // 2].input[1]]
    weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) * np.float32(1.01), weights.name))
    return model


def test_a_wrong_export_fails_the_check_and_writes_nothing(trained, tmp_path, monkeypatch, capsys):
    net, metadata = trained
    checkpoint, output = tmp_path / "model.safetensors", tmp_path / "model.onnx"
    save_checkpoint(checkpoint, net, metadata)
    output.write_bytes(b"the previous model")
    export = export_onnx
    monkeypatch.setattr("dna_depth_core.cli.export.export_onnx", lambda *a, **k: _one_percent_off(export(*a, **k)))

    assert main(["export", "--checkpoint", str(checkpoint), "-o", str(output)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dna-depth export: error: the exported model does not match the network")
    assert "nothing was written" in error and error.count("\n") == 1
    difference, allowed, _ = _comparison(error)
    assert difference > 100 * allowed
    assert output.read_bytes() == b"the previous model"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx", "model.safetensors"]


def test_downgrade_refuses_opset18_only_features():
    pads = helper.make_tensor("pads", TensorProto.INT64, [2], [1, 1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [3])
    graph = helper.make_graph(
        [helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"], mode="reflect")], "pad_with_axes",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 6])], initializer=[pads, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(ValueError, match="axes input"):
        downgrade_to_opset17(model)
