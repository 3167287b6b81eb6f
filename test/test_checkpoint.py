"""The ``.safetensors`` checkpoint format: round trip, strict tensor checks, bad files, atomic writes."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dna_depth_core.checkpoint import (
    CheckpointError,
    ModelMetadata,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from dna_depth_core.networks import DepthNetConfig, PoseNet, create_depth_net
from dna_depth_core.paths import atomic_write


def _randomize_batch_norm_statistics(module: torch.nn.Module) -> None:
    """Non-default running statistics, so a checkpoint that dropped them would be noticed."""
    generator = torch.Generator().manual_seed(1)
    for name, buffer in module.named_buffers():
        if name.endswith("running_mean"):
            buffer.copy_(0.1 * torch.randn(buffer.shape, generator=generator))
        elif name.endswith("running_var"):
            buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))


@pytest.fixture(scope="module")
def networks():
    torch.manual_seed(0)
    depth_net = create_depth_net("dna_depth_b0", input_mean=(0.4, 0.45, 0.5), input_std=(0.2, 0.25, 0.3))
    pose_net = PoseNet()
    _randomize_batch_norm_statistics(depth_net)
    _randomize_batch_norm_statistics(pose_net)
    return depth_net.eval(), pose_net.eval()


METADATA = ModelMetadata(
    height=96, width=320, min_depth=0.5, max_depth=80.0, depth_scale=2.5, metric=True, pose_encoder="resnet18",
    provenance={"data": "unit test", "steps": 3},
)


@pytest.fixture(scope="module")
def saved(networks, tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint") / "model.safetensors"
    save_checkpoint(path, networks[0], METADATA, pose_net=networks[1])
    return path


def test_round_trip_keeps_outputs_and_metadata(networks, saved):
    depth_net, pose_net = networks
    checkpoint = load_checkpoint(saved, with_pose=True)
    assert checkpoint.metadata == dataclasses.replace(METADATA, network=depth_net.config)
    assert checkpoint.metadata.network == DepthNetConfig(
        encoder="tf_efficientnet_b0", input_mean=(0.4, 0.45, 0.5), input_std=(0.2, 0.25, 0.3)
    )
    assert read_metadata(saved) == checkpoint.metadata
    assert not checkpoint.depth_net.training and not checkpoint.pose_net.training

    images, later = torch.rand(2, 1, 3, 64, 96)
    with torch.no_grad():
        for mine, theirs in zip(checkpoint.depth_net(images, multiscale=True), depth_net(images, multiscale=True)):
            assert torch.equal(mine, theirs)
        for mine, theirs in zip(checkpoint.pose_net(images, later), pose_net(images, later)):
            assert torch.equal(mine, theirs)


def test_pose_network_is_optional(networks, tmp_path):
    path = tmp_path / "depth_only.safetensors"
    save_checkpoint(path, networks[0], dataclasses.replace(METADATA, pose_encoder=None))
    checkpoint = load_checkpoint(path)
    assert checkpoint.pose_net is None and checkpoint.metadata.pose_encoder is None
    with pytest.raises(CheckpointError, match="holds no pose network"):
        load_checkpoint(path, with_pose=True)
    with pytest.raises(ValueError, match="pose_encoder"):
        save_checkpoint(path, networks[0], dataclasses.replace(METADATA, pose_encoder=None), pose_net=networks[1])


def _rewrite(source, target, change) -> None:
    """Copy checkpoint ``source`` to ``target`` with ``change(tensors)`` applied."""
    with safe_open(str(source), framework="pt") as handle:
        header = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    change(tensors)
    save_file(tensors, str(target), metadata=header)


def test_mismatching_tensors_are_all_listed(saved, tmp_path):
    def damage(tensors):
        del tensors["depth.decoder.nodes.y2.fuse.pointwise.bias"]
        del tensors["depth.encoder.blocks.3.1.bn2.running_var"]
        tensors["depth.decoder.extra.weight"] = torch.zeros(3)
        tensors["depth.decoder.heads.0.conv.pointwise.weight"] = torch.zeros(2, 32, 1, 1)

    path = tmp_path / "damaged.safetensors"
    _rewrite(saved, path, damage)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "missing (2): decoder.nodes.y2.fuse.pointwise.bias, encoder.blocks.3.1.bn2.running_var" in message
    assert "unexpected (1): decoder.extra.weight" in message
    assert ("wrong shape (1): decoder.heads.0.conv.pointwise.weight: file (2, 32, 1, 1) vs network (1, 32, 1, 1)"
            in message)


def test_damaged_pose_tensors_are_reported(saved, tmp_path):
    path = tmp_path / "damaged_pose.safetensors"
    _rewrite(saved, path, lambda tensors: tensors.pop("pose.decoder.6.bias"))
    load_checkpoint(path)  # the depth network alone is intact
    with pytest.raises(CheckpointError, match=r"(?s)pose network .* missing \(1\): decoder.6.bias"):
        load_checkpoint(path, with_pose=True)


def test_files_that_are_not_checkpoints(tmp_path):
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(missing)

    random_bytes = tmp_path / "noise.safetensors"
    random_bytes.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match="not a DNA-Depth checkpoint .*not a readable .safetensors file"):
        load_checkpoint(random_bytes)

    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="safetensors file but not a DNA-Depth checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="import-weights"):
        read_metadata(foreign)


def test_corrupted_or_newer_metadata(saved, tmp_path):
    with safe_open(str(saved), framework="pt") as handle:
        header = handle.metadata()
    tensor = {"depth.x": torch.zeros(1)}
    cases = {
        "corrupted metadata": {**header, "dna_depth": "{not json"},
        "invalid metadata": {**header, "dna_depth": '{"height": "tall"}'},
        "newer than this": {**header, "format_version": "99"},
    }
    for expected, metadata in cases.items():
        path = tmp_path / f"{expected.replace(' ', '_')}.safetensors"
        save_file(tensor, str(path), metadata=metadata)
        with pytest.raises(CheckpointError, match=expected):
            read_metadata(path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"previous checkpoint")

    def failing_writer(temporary):
        temporary.write_bytes(b"half a checkp")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, failing_writer)
    assert path.read_bytes() == b"previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]  # no temporary left behind

    atomic_write(path, lambda temporary: temporary.write_bytes(b"new checkpoint"))
    assert path.read_bytes() == b"new checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
