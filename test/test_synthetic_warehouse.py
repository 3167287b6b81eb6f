"""The held-out ``warehouse`` style: the ground robot's camera down an aisle between racks, with
exact depth and poses, deterministic per seed, recorded like the robot style."""

import numpy as np
import pytest

from dna_depth_core.data.rosbag.reader import RecordedBag
from dna_depth_core.data.rosbag.sample_bag import make_sample_bag
from dna_depth_core.data.synthetic import STYLES, WarehouseSceneConfig, generate_sequence, scene_config

from test_synthetic_robot import back_project, reproject

SIZE = (96, 128)
FRAMES = 3


@pytest.fixture(scope="module")
def pinhole():
    """Three small frames of seed 5 through an ideal pinhole camera (raw = rectified)."""
    config = scene_config("warehouse", *SIZE, frames_per_sequence=FRAMES, distortion=False)
    return config, generate_sequence(config, seed=5)


def test_warehouse_depth_and_poses_agree_and_the_camera_rides_low(pinhole):
    config, sequence = pinhole
    assert "warehouse" in STYLES and isinstance(config, WarehouseSceneConfig) and config.style == "warehouse"
    depths = sequence.depths
    assert (depths > 0).all() and depths.min() < 1.0 and 8.0 < depths.max() < 40.0  # indoors: no sky
    # Depth carried from one frame into another with the poses lands on that frame's depth (up
    # to the bilinear sampling of a small image); with the wrong pose it does not.
    def error(source: int, target: int, pose: np.ndarray | None = None) -> float:
        depth, landing, _, _, inside, _ = reproject(sequence, source, target, pose)
        assert inside.mean() > 0.6
        return float(np.median(np.abs(landing - depth)[inside] / depth[inside]))

    assert error(1, 2) < 1e-3 and error(1, 0) < 1e-3
    shifted = sequence.poses[2].astype(np.float64).copy()
    shifted[1, 3] += 0.05  # 5 cm lower: the floor 12 % nearer
    assert error(1, 2, shifted) > 20 * error(1, 2)
    # The camera 0.4 m above the floor (world y = 0), driving straight down the aisle (+z).
    np.testing.assert_allclose(-sequence.poses[:, 1, 3], config.camera_height, atol=1e-6)
    steps = np.diff(sequence.poses[:, :3, 3].astype(np.float64), axis=0)
    speed = np.linalg.norm(steps, axis=1) * config.fps
    assert np.all((speed > 0.5 * config.speed) & (speed < 1.1 * config.speed))
    assert np.all(steps[:, 2] > 0.99 * np.linalg.norm(steps, axis=1))
    # The bottom rows see the floor: back-projected into the world they lie at y = 0.
    points = back_project(depths[0], sequence.intrinsics).T.reshape(*SIZE, 3)[-4:, 48:80].reshape(-1, 3)
    world = points @ sequence.poses[0, :3, :3].T.astype(np.float64) + sequence.poses[0, :3, 3]
    np.testing.assert_allclose(world[:, 1], 0.0, atol=1e-3)


def test_warehouse_renders_the_same_per_seed_and_another_aisle_per_other_seed():
    config = scene_config("warehouse", *SIZE, frames_per_sequence=FRAMES)  # the robot's distorted lens
    first, again, other = (generate_sequence(config, seed) for seed in (2, 2, 3))
    for name in ("raw_images", "images", "depths", "poses"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.images, other.images)
    assert not np.array_equal(first.raw_images, first.images)  # raw frames are distorted


def test_a_warehouse_camera_outside_a_ground_robot_height_is_refused():
    with pytest.raises(ValueError, match=r"camera_height must be in \[0.3, 0.6\] m for style 'warehouse'"):
        scene_config("warehouse", *SIZE, camera_height=1.2)


def test_a_warehouse_bag_is_recorded_like_the_robot_style(tmp_path):
    bag = RecordedBag(make_sample_bag(tmp_path / "bag", style="warehouse", frames=FRAMES, height=SIZE[0],
                                      width=SIZE[1], progress=False))
    for topic in ("/camera/image_raw", "/camera/camera_info", "/camera/depth_gt", "/camera/depth_gt_raw", "/odom",
                  "/tf_static"):
        assert topic in bag.topics
    assert bag.message_counts["/camera/image_raw"] == FRAMES
