"""The node's parameter table against config/dna_depth.yaml and the docs; value checks; checkpoint lookup."""

from pathlib import Path

import pytest
import yaml

from dna_depth_core.errors import UserError
from dna_depth_core.inference import precision
from dna_depth_ros import model_loading
from dna_depth_ros.parameters import (
    PARAMETERS,
    PRECISION_CHOICES,
    effective_depth_range,
    parameter_descriptor,
    settings_from_values,
    with_overrides,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {spec.name: spec.default for spec in PARAMETERS}


def flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_config_yaml_holds_exactly_the_declared_defaults():
    config = yaml.safe_load((ROOT / "config" / "dna_depth.yaml").read_text())
    values = flatten(config["/**"]["ros__parameters"])
    assert values == DEFAULTS
    # ROS parameters are typed: 1 is not 1.0.
    assert {name: type(value) for name, value in values.items()} == {n: type(v) for n, v in DEFAULTS.items()}


def test_every_parameter_is_described_and_bounded():
    for spec in PARAMETERS:
        descriptor = parameter_descriptor(spec)
        assert len(descriptor.description) > 20, spec.name
        if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool):
            assert descriptor.integer_range or descriptor.floating_point_range, spec.name
        if spec.choices:
            assert spec.default in spec.choices and "one of" in descriptor.additional_constraints
    assert settings_from_values(DEFAULTS).points_stride == 1


def test_docs_list_every_parameter_and_topic():
    docs = (ROOT / "docs" / "ros_node.md").read_text()
    for spec in PARAMETERS:
        assert f"`{spec.name}`" in docs, spec.name
    for topic in (
        "image",
        "image/compressed",
        "camera_info",
        "depth/image",
        "depth/camera_info",
        "depth/colored",
        "points",
        "/diagnostics",
    ):
        assert f"`{topic}`" in docs, topic


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"device": "gpu"}, "device must be auto, cpu, cuda or cuda:N"),
        ({"output_resolution": "huge"}, "output_resolution must be one of"),
        ({"points.stride": 0}, "points.stride must be in [1, 64]"),
        ({"colored.auto_range": False, "colored.min_depth": 5.0, "colored.max_depth": 5.0}, "colored.min_depth (5.0)"),
    ],
)
def test_invalid_values_are_rejected_with_a_reason(changes, message):
    with pytest.raises(ValueError) as error:
        settings_from_values({**DEFAULTS, **changes})
    assert message in str(error.value)


def test_depth_range_defaults_to_the_checkpoint_and_rejects_empty_ranges():
    settings = settings_from_values(DEFAULTS)
    assert effective_depth_range(settings, 0.1, 100.0, 2.0) == (0.2, 200.0)
    settings = settings_from_values(with_overrides(settings, {"depth_scale": 0.5, "max_depth": 20.0}))
    assert effective_depth_range(settings, 0.1, 100.0, 2.0) == (0.05, 20.0)
    settings = settings_from_values(with_overrides(settings, {"min_depth": 30.0}))
    with pytest.raises(ValueError, match="must be smaller than max_depth"):
        effective_depth_range(settings, 0.1, 100.0, 2.0)


def test_missing_checkpoints_explain_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr(model_loading, "shipped_checkpoint_path", lambda: tmp_path / "absent.safetensors")
    with pytest.raises(UserError) as error:
        model_loading.resolve_checkpoint("")
    assert "checkpoint:=" in str(error.value) and "dna-depth import-weights" in str(error.value)
    with pytest.raises(UserError, match="does not exist"):
        model_loading.resolve_checkpoint(str(tmp_path / "nope.safetensors"))
    shipped = tmp_path / "present.safetensors"
    shipped.write_bytes(b"")
    monkeypatch.setattr(model_loading, "shipped_checkpoint_path", lambda: shipped)
    assert model_loading.resolve_checkpoint("") == shipped


def test_shipped_checkpoint_lives_in_the_core_package():
    path = model_loading.shipped_checkpoint_path()
    assert path.parent.name == "assets" and path.parent.parent.name == "dna_depth_core"


def test_precision_choices_are_the_cores():
    assert PRECISION_CHOICES == precision.PRECISION_CHOICES

