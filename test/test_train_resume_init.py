"""A run started with ``--init`` from networks its config does not build resumes exactly."""

import pytest
import torch
import yaml

from dna_depth_core.checkpoint import ModelMetadata, load_checkpoint, save_checkpoint
from dna_depth_core.data.synthetic import SyntheticSceneConfig, SyntheticTripletDataset
from dna_depth_core.networks import PoseNet, create_depth_net
from dna_depth_core.training import LAST_CHECKPOINT, Trainer, load_train_config

HEIGHT, WIDTH = 64, 96


def _config(output_dir, *overrides):
    # The recipe builds tf_efficientnet_b0 and resnet18; the start below has neither.
    return load_train_config(None, [
        "data.dataset=synthetic", f"data.height={HEIGHT}", f"data.width={WIDTH}", "data.batch_size=2",
        "data.num_workers=0", "runtime.progress=false", "runtime.checkpoint_every_steps=0", "runtime.tensorboard=false",
        "runtime.image_every_steps=0", "runtime.seed=5", f"runtime.output_dir={output_dir}", *overrides,
    ])


def test_a_run_from_another_architecture_resumes_exactly_with_the_recipe_config(tmp_path):
    data = SyntheticTripletDataset(SyntheticSceneConfig(height=HEIGHT, width=WIDTH, frames_per_sequence=6), 1, 0)
    torch.manual_seed(0)
    start = tmp_path / "start.safetensors"
    save_checkpoint(start, create_depth_net(encoder="efficientnet_b0"),
                    ModelMetadata(height=HEIGHT, width=WIDTH, pose_encoder="resnet10t"), PoseNet("resnet10t"))

    uninterrupted = Trainer(_config(tmp_path / "a", "optim.max_steps=3"), data, init_checkpoint=start).fit()
    first = Trainer(_config(tmp_path / "b", "optim.max_steps=1"), data, init_checkpoint=start)
    first.fit()
    recorded = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert recorded["model"]["pose_encoder"] == "resnet10t"  # what was built, not the config's resnet18

    resumed = Trainer(_config(tmp_path / "b", "optim.max_steps=3"), data)  # no --init: the recipe's networks
    summary = resumed.fit(resume=True)
    assert resumed.pose_encoder == "resnet10t" and resumed.depth_net.config.encoder == "efficientnet_b0"
    assert [r["step"] for r in summary.history] == [2, 3]
    assert [r["loss"] for r in summary.history] == pytest.approx(
        [r["loss"] for r in uninterrupted.history[1:]], rel=1e-6)
    final_a = load_checkpoint(tmp_path / "a" / LAST_CHECKPOINT, with_pose=True)
    final_b = load_checkpoint(tmp_path / "b" / LAST_CHECKPOINT, with_pose=True)
    for mine, theirs in ((final_a.depth_net, final_b.depth_net), (final_a.pose_net, final_b.pose_net)):
        reference = theirs.state_dict()
        assert all(torch.equal(value, reference[key]) for key, value in mine.state_dict().items())
