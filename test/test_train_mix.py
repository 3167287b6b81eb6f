"""``data.synthetic.mix``: several scene styles and cameras in one training set."""

from __future__ import annotations

import pytest
import torch

from dna_depth_core.cli.train import build_datasets
from dna_depth_core.errors import UserError
from dna_depth_core.training import load_train_config

SMALL = ["data.dataset=synthetic", "data.height=64", "data.width=96", "data.synthetic.frames_per_sequence=4"]


def test_mixed_entries_are_rendered_with_their_own_camera_and_concatenated():
    config = load_train_config({"data": {"synthetic": {"mix": [
        {"style": "street", "seed": 3, "camera_height": 2.0},
        {"style": "robot", "train_sequences": 2, "val_sequences": 0, "camera_height": 0.3},
    ]}}}, SMALL + ["data.synthetic.train_sequences=1", "data.synthetic.val_sequences=1"])
    train, val, description = build_datasets(config)
    street, robot = train.datasets
    assert len(street) == 2 and len(robot) == 4 and len(val) == 2  # frames 1..2 of each sequence
    assert street.config.camera_height == 2.0 and robot.config.camera_height == 0.3
    assert description == ("synthetic street: 1 sequences x 4 frames, seed 3, camera height 2.0; "
                           "robot: 2 sequences x 4 frames, seed 0, camera height 0.3")
    assert train[len(street)]["source_distance"].shape == (2,)


def test_a_bad_mix_entry_is_named():
    config = load_train_config({"data": {"synthetic": {"mix": [{"style": "street"}, {"style": "sky"}]}}}, SMALL)
    with pytest.raises(UserError, match=r"data.synthetic.mix\[1\].*sky"):
        build_datasets(config)


def test_a_mix_entry_spaces_its_sources_and_gives_their_true_motion():
    config = load_train_config({"data": {"synthetic": {"frames_per_sequence": 6, "mix": [
        {"style": "robot", "train_sequences": 1, "val_sequences": 1, "frame_spacing": 2},
    ]}}}, SMALL[:3])
    train, val, description = build_datasets(config)
    assert len(train) == 2 and len(val) == 4  # frames 2..3 with sources 2 away; validation: neighbours
    assert description.endswith("frame spacing 2")
    sample, centres = train[0], torch.from_numpy(train.sequences[0].poses[:, :3, 3])
    assert sample["target_to_source"].shape == (2, 4, 4)
    torch.testing.assert_close(sample["target_to_source"][:, :3, 3].norm(dim=-1), sample["source_distance"])
    torch.testing.assert_close(sample["source_distance"], (centres[[0, 4]] - centres[2]).norm(dim=-1))
    too_wide = load_train_config({"data": {"synthetic": {"mix": [{"style": "robot", "frame_spacing": 2}]}}}, SMALL)
    with pytest.raises(UserError, match=r"mix\[0\]: frame_spacing 2 needs more than 4 frames_per_sequence"):
        build_datasets(too_wide)
