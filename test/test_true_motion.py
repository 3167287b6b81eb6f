"""``true_motion``: warping with, and supervising the pose network on, the camera's true motion."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from dna_depth_core.checkpoint import read_metadata
from dna_depth_core.data.synthetic import SyntheticSceneConfig, SyntheticTripletDataset, scene_config
from dna_depth_core.errors import UserError
from dna_depth_core.geometry import pose_vector_to_transform, warp_to_target
from dna_depth_core.losses import photometric_error
from dna_depth_core.training import LAST_CHECKPOINT, Trainer, load_train_config
from dna_depth_core.training.augment import flip_horizontally
from dna_depth_core.training.config import TrainConfig
from dna_depth_core.training.objective import mirror_transforms, pose_loss

HEIGHT, WIDTH = 64, 96
REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def street():
    """One street sequence of 6 frames at 96x128: 4 triplets with exact depth and poses."""
    return SyntheticTripletDataset(SyntheticSceneConfig(height=96, width=128, frames_per_sequence=6), 1, seed=4)


def _warp_error(sample: dict, depth_factor: float, flip: bool = False) -> float:
    """Mean photometric error of both sources warped into the target with the sample's true motion."""
    frames, intrinsics = sample["frames"][None], sample["intrinsics"][None]
    depth = sample["depth_gt"][None].clone()
    transforms = sample["target_to_source"][None]
    if flip:
        flipped = torch.tensor([True])
        frames, intrinsics = flip_horizontally(frames, intrinsics, flipped)
        depth, _ = flip_horizontally(depth, sample["intrinsics"][None], flipped)
        transforms = mirror_transforms(transforms, flipped)
    known = depth > 0  # sky has no depth
    errors = []
    for source in (0, 2):
        warped, valid = warp_to_target(frames[:, source], depth.clamp_min(1.0) * depth_factor,
                                       transforms[:, source // 2], intrinsics)
        error = photometric_error(warped, frames[:, 1])
        errors.append(error[valid & known])
    return float(torch.cat(errors).mean())


def test_the_true_motion_warps_a_rendered_triplet_with_its_true_depth(street):
    sample = street[1]
    assert sample["target_to_source"].shape == (2, 4, 4)
    # The translation's length is the distance travelled to each source.
    torch.testing.assert_close(sample["target_to_source"][:, :3, 3].norm(dim=-1), sample["source_distance"])
    exact, doubled = _warp_error(sample, 1.0), _warp_error(sample, 2.0)
    assert exact < 0.5 * doubled, f"true depth {exact:.4f} vs depth x 2 {doubled:.4f}"
    # A mirrored sample is explained by the mirrored motion just as well.
    assert _warp_error(sample, 1.0, flip=True) == pytest.approx(exact, rel=0.05)
    assert _warp_error(sample, 1.0, flip=True) < 0.5 * _warp_error(sample, 2.0, flip=True)


@pytest.mark.parametrize("style", ["street", "corridor", "robot"])
def test_the_metric_recipe_frames_are_explained_best_by_their_true_depth_near_and_far(style):
    """What the shipped model's recipe trains on (its first entry of each style, a held-out
    seed): with the true motion, the photometric error of the pixels in each depth bin up
    to 8 m is lower at their true depth than at a compressed (x 0.64, what the shipped model
    reads in robot rooms at 4-8 m) or a stretched (x 1.25) one. So the frames, their depth
    and their motion agree, and the loss does not itself teach the compression."""
    config = load_train_config(REPOSITORY / "config" / "train_metric_shipped.yaml", [])
    data, options = config.data, config.data.synthetic
    entry = next(entry for entry in options.mix if entry.style == style)
    scenes = scene_config(style, data.height, data.width, 16, options.fps, entry.camera_height,
                          entry.horizontal_fov_deg, entry.distortion)
    triplets = SyntheticTripletDataset(scenes, 1, seed=500_000, frame_spacing=entry.frame_spacing or 1)
    bins = [(0.5, 2.0), (2.0, 4.0), (4.0, 8.0)]
    errors = {(low, factor): [] for low, _ in bins for factor in (0.64, 1.0, 1.25)}
    for index in range(0, len(triplets), 2):
        sample = triplets[index]
        frames, intrinsics = sample["frames"][None], sample["intrinsics"][None]
        depth, transforms = sample["depth_gt"][None], sample["target_to_source"][None]
        for low, high in bins:
            inside = (depth >= low) & (depth < high)
            if inside.sum() < 200:
                continue
            for factor in (0.64, 1.0, 1.25):
                scaled = torch.where(inside, depth * factor, depth).clamp_min(0.1)
                per_source = [photometric_error(warp_to_target(frames[:, source], scaled, transforms[:, source // 2],
                                                               intrinsics)[0], frames[:, 1]) for source in (0, 2)]
                errors[(low, factor)].append(float(torch.minimum(*per_source)[inside].mean()))
    checked = [(low, high) for low, high in bins if errors[(low, 1.0)]]
    assert (4.0, 8.0) in checked, f"no {style} frame has 200 pixels 4-8 m away"
    for low, high in checked:
        compressed, true, stretched = (sum(errors[(low, f)]) / len(errors[(low, f)]) for f in (0.64, 1.0, 1.25))
        assert true < min(compressed, stretched), (
            f"{style} {low:g}-{high:g} m: error {true:.4f} at the true depth, {compressed:.4f} at x 0.64, "
            f"{stretched:.4f} at x 1.25")


def test_the_pose_loss_is_zero_for_the_true_motion_and_measures_errors():
    true = pose_vector_to_transform(torch.tensor([[0.0, 0.02, 0.0]]), torch.tensor([[0.0, 0.0, 0.5]]))[:, None]
    assert pose_loss(true, true).item() == 0.0
    off_10_percent = true.clone()
    off_10_percent[..., 0, 3] += 0.05  # 10 % of the 0.5 m travelled
    assert pose_loss(off_10_percent, true).item() == pytest.approx(0.1, rel=1e-4)
    turned = pose_vector_to_transform(torch.tensor([[0.0, 0.03, 0.0]]), torch.tensor([[0.0, 0.0, 0.5]]))[:, None]
    # 0.01 rad too far about y, weighted 10 like a 10 % translation error (the cosines' second
    # order adds 2.5 % at these angles).
    assert pose_loss(turned, true, rotation_weight=10.0).item() == pytest.approx(0.1025, rel=1e-3)
    standing = torch.eye(4).expand(1, 1, 4, 4).clone()
    moved = standing.clone()
    moved[..., 2, 3] = 0.01
    assert pose_loss(moved, standing, min_distance=0.02).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\(B, S, 4, 4\)"):
        pose_loss(true, true[0])


def _config(output_dir, *overrides):
    return load_train_config(None, [
        "data.dataset=synthetic", f"data.height={HEIGHT}", f"data.width={WIDTH}", "data.batch_size=2",
        "data.num_workers=0", "runtime.progress=false", "runtime.checkpoint_every_steps=0", "runtime.tensorboard=false",
        "runtime.image_every_steps=0", f"runtime.output_dir={output_dir}", "validation.every_epochs=0", *overrides,
    ])


@pytest.fixture(scope="module")
def triplets():
    return SyntheticTripletDataset(SyntheticSceneConfig(height=HEIGHT, width=WIDTH, frames_per_sequence=6), 1, 0)


def test_the_switch_is_off_by_default_and_checked():
    assert not TrainConfig().true_motion.enabled
    with pytest.raises(UserError, match="true_motion.pose_weight"):
        load_train_config(None, ["true_motion.pose_weight=-1"])
    with pytest.raises(UserError, match="true_motion.min_distance"):
        load_train_config(None, ["true_motion.min_distance=0"])


def test_true_motion_on_data_without_poses_is_one_clear_error(tmp_path, triplets):
    class NoPoses(Dataset):
        def __len__(self):
            return len(triplets)

        def __getitem__(self, index):
            sample = dict(triplets[index])
            del sample["target_to_source"]
            return sample

    for switch in ("true_motion.warp=true", "true_motion.pose_weight=1"):
        with pytest.raises(UserError, match="'target_to_source'.*data.dataset: synthetic"):
            Trainer(_config(tmp_path, switch, "optim.max_steps=1"), NoPoses())
    Trainer(_config(tmp_path, "optim.max_steps=1"), NoPoses())  # off: not needed


def test_true_motion_training_is_metric_and_only_the_pose_loss_moves_the_pose_network(tmp_path, triplets):
    warp_only = Trainer(_config(tmp_path / "warp", "true_motion.warp=true", "optim.max_steps=2"), triplets)
    weights = {key: value.clone() for key, value in warp_only.pose_net.named_parameters()}
    summary = warp_only.fit()
    assert "pose" not in summary.history[0] and summary.history[0]["photometric"] > 0
    assert all(torch.equal(value, weights[key]) for key, value in warp_only.pose_net.named_parameters())
    assert read_metadata(tmp_path / "warp" / LAST_CHECKPOINT).metric

    supervised = Trainer(_config(tmp_path / "pose", "true_motion.warp=true", "true_motion.pose_weight=1",
                                 "optim.lr=1e-3", "optim.max_steps=4"), triplets)
    summary = supervised.fit()
    pose = [record["pose"] for record in summary.history]
    assert pose[0] > 0 and min(pose[-2:]) < pose[0], pose
    assert read_metadata(tmp_path / "pose" / LAST_CHECKPOINT).metric
