"""The ground-robot synthetic style: exact depth and poses, a 0.5 m camera, a real plumb_bob lens, its bag."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dna_depth_core.cli import main as dna_depth
from dna_depth_core.data.rosbag.reader import (
    RecordedBag,
    decode_image,
    read_calibration,
    read_odometry,
    select_camera_topics,
)
from dna_depth_core.data.rosbag.sample_bag import write_robot_bag
from dna_depth_core.data.rosbag.transforms import floor_normal
from dna_depth_core.data.synthetic import (
    DEFAULT_DISTORTION,
    STYLES,
    RobotSceneConfig,
    RobotSequence,
    SyntheticTripletDataset,
    generate_sequence,
    scene_config,
)
from dna_depth_core.geometry.ground_plane import ground_plane_scale

FRAMES = 4
PINHOLE = (0.0,) * 5


@pytest.fixture(scope="module")
def distorted() -> RobotSequence:
    """Four 640x480 frames through the default wide-angle lens."""
    return generate_sequence(RobotSceneConfig(frames_per_sequence=FRAMES), seed=3)


@pytest.fixture(scope="module")
def pinhole() -> RobotSequence:
    """The same drive through an ideal pinhole camera with the same K."""
    return generate_sequence(RobotSceneConfig(frames_per_sequence=FRAMES, distortion=PINHOLE), seed=3)


def back_project(depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """float64 (3, H*W) camera-frame points of a depth map (pixel centres at integers)."""
    height, width = depth.shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([cols.ravel(), rows.ravel(), np.ones(cols.size)])
    return np.linalg.inv(intrinsics.astype(np.float64)) @ pixels * depth.reshape(1, -1).astype(np.float64)


def bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(n,) samples of a (H, W) image at (n,) pixel positions, n = H * W."""
    shape = image.shape[:2]
    return cv2.remap(image.astype(np.float32), u.reshape(shape).astype(np.float32),
                     v.reshape(shape).astype(np.float32), cv2.INTER_LINEAR).reshape(-1)


def reproject(sequence: RobotSequence, source: int, target: int, target_pose: np.ndarray | None = None):
    """Move frame ``source``'s pixels into frame ``target`` with the ground truth: their
    depth in the target camera, the target's depth where they land, where they land,
    which land inside the image, and which of those are visible (not occluded)."""
    points = back_project(sequence.depths[source], sequence.intrinsics)
    pose = sequence.poses[target] if target_pose is None else target_pose
    relative = np.linalg.inv(pose.astype(np.float64)) @ sequence.poses[source].astype(np.float64)
    moved = relative[:3, :3] @ points + relative[:3, 3:4]
    z = np.where(moved[2] > 1e-3, moved[2], 1.0)
    k = sequence.intrinsics.astype(np.float64)
    u, v = k[0, 0] * moved[0] / z + k[0, 2], k[1, 1] * moved[1] / z + k[1, 2]
    height, width = sequence.depths.shape[1:]
    inside = (moved[2] > 1e-3) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    landing = bilinear(sequence.depths[target], u, v)
    visible = inside & (np.abs(landing - moved[2]) < 0.02 * moved[2])
    return moved[2], landing, u, v, inside, visible


def test_depth_poses_and_intrinsics_agree_across_frames(pinhole):
    """Every frame is rendered on its own: depth carried into another frame with the poses
    lands on that frame's own depth (geometry) and colour (photometry); a wrong pose does not."""

    def errors(source: int, target: int, target_pose: np.ndarray | None = None):
        """Relative depth error of the pixels landing inside, colour error of the visible ones."""
        depth, landing, u, v, inside, visible = reproject(pinhole, source, target, target_pose)
        colour = np.stack([bilinear(pinhole.images[target][..., c], u, v) for c in range(3)], 1)
        photometric = np.abs(colour - pinhole.images[source].reshape(-1, 3)).mean(1) / 255
        return (np.abs(landing - depth) / depth)[inside], photometric[visible], visible.mean()

    for source, target in ((1, 2), (1, 0), (0, 3)):
        geometric, photometric, overlap = errors(source, target)
        assert overlap > 0.6
        assert np.median(geometric) < 1e-4  # float32 rounding: about 3e-6
        assert np.median(photometric) < 0.005 and (photometric < 0.05).mean() > 0.95
    shifted = pinhole.poses[2].astype(np.float64).copy()
    shifted[:3, 3] += pinhole.poses[2, :3, 3] - pinhole.poses[1, :3, 3]
    wrong_geometric, wrong_photometric, _ = errors(1, 2, shifted)
    right_geometric, right_photometric, _ = errors(1, 2)
    assert np.median(wrong_geometric) > 100 * np.median(right_geometric)
    assert wrong_photometric.mean() > 3 * right_photometric.mean()


def test_camera_is_half_a_metre_above_the_floor_and_the_robot_drives(pinhole):
    config = RobotSceneConfig()
    np.testing.assert_allclose(-pinhole.poses[:, 1, 3], config.camera_height, atol=1e-6)
    # From the depth alone: fit a plane to the lowest image rows (floor), trimming
    # whatever stands on it; the camera centre is 0.5 m from it and it is level.
    for frame in range(FRAMES):
        points = back_project(pinhole.depths[frame], pinhole.intrinsics).T.reshape(480, 640, 3)
        floor = points[-60:, 160:480].reshape(-1, 3)
        keep = np.ones(len(floor), bool)
        for _ in range(4):
            centre = floor[keep].mean(0)
            normal = np.linalg.svd(floor[keep] - centre, full_matrices=False)[2][-1]
            residual = np.abs((floor - centre) @ normal)
            keep = residual < max(0.01, np.percentile(residual, 60))
        assert keep.mean() > 0.5
        assert abs(abs(centre @ normal) - 0.5) < 0.01
        down = pinhole.poses[frame, :3, :3].astype(np.float64).T @ [0.0, 1.0, 0.0]
        assert abs(abs(normal @ down) - 1) < 1e-3
    # The optical axis looks 5 degrees down; the base moves forward along its heading.
    forward = pinhole.poses[:, :3, 2].astype(np.float64)
    np.testing.assert_allclose(np.degrees(np.arcsin(forward[:, 1])), config.camera_pitch_deg, atol=1e-3)
    steps = np.diff(pinhole.base_poses[:, :3, 3], axis=0)
    heading = pinhole.base_poses[:-1, :3, 2]
    speed = np.linalg.norm(steps, axis=1) * config.fps
    assert np.all((speed > 0.5 * config.speed) & (speed < 1.1 * config.speed))
    assert np.all(np.sum(steps * heading, axis=1) > 0.95 * np.linalg.norm(steps, axis=1))
    np.testing.assert_allclose(pinhole.base_poses[:, 1, 3], 0.0)
    # Indoors and near: every pixel sees something, some of it within a metre.
    assert (pinhole.depths > 0).all() and pinhole.depths.min() < 1.0 and pinhole.depths.max() < 40


def test_distortion_is_real_and_undistorting_the_raw_frame_gives_the_pinhole_render(distorted, pinhole):
    np.testing.assert_array_equal(distorted.poses, pinhole.poses)
    # The same rays in the rectified geometry (a canvas's principal point rounds differently).
    np.testing.assert_allclose(distorted.depths, pinhole.depths, rtol=1e-5)
    np.testing.assert_array_equal(pinhole.raw_images, pinhole.images)
    calibration = distorted.calibration
    np.testing.assert_allclose(calibration.distortion, DEFAULT_DISTORTION)
    np.testing.assert_allclose(calibration.projection[:, :3], calibration.camera_matrix)
    for frame in range(FRAMES):
        raw = distorted.raw_images[frame].astype(np.float64)
        ideal = pinhole.images[frame].astype(np.float64)
        undistorted = cv2.undistort(
            distorted.raw_images[frame], calibration.camera_matrix, calibration.distortion,
            newCameraMatrix=calibration.projection[:, :3],
        ).astype(np.float64)
        difference = np.abs(undistorted - ideal).mean(2)  # grey levels; two bilinear resamplings
        assert difference.mean() < 2.0 and np.percentile(difference, 95) < 10
        assert np.abs(raw - ideal).mean() > 5 * difference.mean()  # the lens bends the image a lot
        np.testing.assert_array_equal(distorted.images[frame], cv2.remap(
            distorted.raw_images[frame],
            *cv2.initUndistortRectifyMap(calibration.camera_matrix, calibration.distortion, np.eye(3),
                                         calibration.camera_matrix, (640, 480), cv2.CV_32FC1),
            cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        ))
    # Raw-geometry depth: rectified points projected through the lens by OpenCV land on
    # raw pixels of the same depth.
    points = back_project(distorted.depths[1], distorted.intrinsics)
    sample = np.arange(0, points.shape[1], 97)
    projected, _ = cv2.projectPoints(points[:, sample].T, np.zeros(3), np.zeros(3), calibration.camera_matrix,
                                     calibration.distortion)
    u, v = np.rint(projected[:, 0]).astype(int).T
    inside = (u >= 0) & (u < 640) & (v >= 0) & (v < 480)
    relative = np.abs(distorted.raw_depths[1][v[inside], u[inside]] / points[2, sample][inside] - 1)
    assert np.median(relative) < 0.005 and (relative < 0.05).mean() > 0.9


def test_robot_bag_reads_back_with_the_project_reader(distorted, tmp_path):
    bag_path = write_robot_bag(tmp_path / "robot", distorted)
    bag = RecordedBag(bag_path)
    topics = select_camera_topics(bag)
    assert (topics.image, topics.camera_info) == ("/camera/image_raw", "/camera/camera_info")
    calibration = read_calibration(bag, topics.camera_info)
    assert (calibration.width, calibration.height, calibration.distortion_model) == (640, 480, "plumb_bob")
    np.testing.assert_allclose(calibration.distortion, DEFAULT_DISTORTION)
    np.testing.assert_allclose(calibration.camera_matrix, distorted.calibration.camera_matrix)
    np.testing.assert_allclose(calibration.projection[:, :3], calibration.camera_matrix)
    np.testing.assert_allclose(calibration.rectification, np.eye(3))
    assert calibration.is_distorted
    images = [decode_image(message) for message in bag.messages([topics.image])]
    np.testing.assert_array_equal(np.stack(images), distorted.raw_images)
    for topic, truth in (("/camera/depth_gt", distorted.depths), ("/camera/depth_gt_raw", distorted.raw_depths)):
        maps = [message.deserialize() for message in bag.messages([topic])]
        assert all((m.encoding, m.height, m.width, m.header.frame_id) == ("32FC1", 480, 640, "camera_optical_frame")
                   for m in maps)
        depth = np.stack([np.frombuffer(m.data, np.float32).reshape(480, 640) for m in maps])
        np.testing.assert_array_equal(np.nan_to_num(depth, nan=0.0), truth)

    # Odometry is the base's; with the mount from /tf_static it gives the camera's exact motion.
    track = read_odometry(bag, "/odom")
    travelled = np.linalg.norm(np.diff(distorted.base_poses[:, :3, 3], axis=0), axis=1)
    np.testing.assert_allclose(track.distance(track.times[:-1], track.times[1:]), travelled, atol=1e-6)
    (static,) = [message.deserialize() for message in bag.messages(["/tf_static"])]
    mount = {(t.header.frame_id, t.child_frame_id): to_matrix(t.transform) for t in static.transforms}
    base_to_optical = mount["base_link", "camera_link"] @ mount["camera_link", "camera_optical_frame"]
    np.testing.assert_allclose(base_to_optical[:3, 3], [0.15, 0.0, 0.5], atol=1e-9)
    # The floor's direction for --camera-height: the mount's, as the rendered floor shows it.
    normal, line = floor_normal(bag, "camera_optical_frame")
    rendered = ground_plane_scale(distorted.depths[0], distorted.intrinsics, 0.5)
    assert np.degrees(np.arccos(min(1.0, float(normal @ rendered.normal)))) < 1.0
    assert "base_link -> camera_optical_frame: 5.0 degrees" in line
    assert floor_normal(bag, "another_frame")[0] is None
    odom = [message.deserialize() for message in bag.messages(["/odom"])]
    tf = [message.deserialize().transforms[0] for message in bag.messages(["/tf"])]
    assert all((t.header.frame_id, t.child_frame_id) == ("odom", "base_link") for t in tf)
    cameras = []
    for message, transform in zip(odom, tf, strict=True):
        pose = message.pose.pose
        base = to_matrix(pose)
        np.testing.assert_allclose(base, to_matrix(transform.transform), atol=1e-9)
        assert abs(pose.position.z) < 1e-9  # planar: base_link on the floor
        cameras.append(base @ base_to_optical)
    for index in range(1, FRAMES):
        from_bag = np.linalg.inv(cameras[0]) @ cameras[index]
        truth = np.linalg.inv(distorted.poses[0].astype(np.float64)) @ distorted.poses[index]
        np.testing.assert_allclose(from_bag, truth, atol=1e-5)


def to_matrix(pose) -> np.ndarray:
    """(4, 4) from a geometry_msgs Pose or Transform."""
    position = getattr(pose, "position", None) or pose.translation
    q = getattr(pose, "orientation", None) or pose.rotation
    x, y, z, w = q.x, q.y, q.z, q.w
    matrix = np.eye(4)
    matrix[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    matrix[:3, 3] = position.x, position.y, position.z
    return matrix


def test_make_sample_bag_robot_style_from_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        dna_depth(["make-sample-bag", "--help"])
    help_text = capsys.readouterr().out
    assert "robot" in help_text and "plumb_bob" in help_text and "--camera-height" in help_text
    assert dna_depth(["make-sample-bag", str(tmp_path / "x"), "--style", "street", "--fov", "500"]) == 2
    error = capsys.readouterr().err
    assert "horizontal_fov_deg" in error and error.count("\n") == 1

    script = Path(sys.executable).with_name("dna-depth")
    command = str(script) if script.exists() else shutil.which("dna-depth")
    assert command, "the dna-depth console script is not installed (pip install -e .)"
    out = tmp_path / "robot_bag"
    result = subprocess.run([command, "make-sample-bag", str(out), "--style", "robot", "--frames", "3",
                             "--format", "mcap"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    bag = RecordedBag(out)
    assert bag.message_counts["/camera/image_raw"] == 3 and bag.message_counts["/tf_static"] == 1
    calibration = read_calibration(bag, "/camera/camera_info")
    assert (calibration.width, calibration.height, calibration.distortion_model) == (640, 480, "plumb_bob")
    assert np.any(calibration.distortion != 0)


def test_scene_configs_of_every_style_and_the_training_dataset():
    assert STYLES == ("street", "corridor", "robot", "warehouse")
    robot = scene_config("robot", 96, 128, frames_per_sequence=3, camera_height=0.3, horizontal_fov_deg=70,
                         distortion=False)
    assert isinstance(robot, RobotSceneConfig) and robot.camera_height == 0.3 and robot.distortion == PINHOLE
    np.testing.assert_allclose(robot.intrinsics()[0, 0], 64 / np.tan(np.radians(35)), rtol=1e-6)
    street = scene_config("street", 96, 320, horizontal_fov_deg=90)
    np.testing.assert_allclose(street.intrinsics()[[0, 1], [0, 1]], [160, 160], rtol=1e-6)
    with pytest.raises(ValueError, match="distortion needs style robot"):
        scene_config("corridor", 96, 320, distortion=True)
    with pytest.raises(ValueError, match="valid styles"):
        scene_config("desert", 96, 320)

    dataset = SyntheticTripletDataset(scene_config("robot", 96, 128, frames_per_sequence=3), num_sequences=1, seed=5)
    sample = dataset[0]
    assert sample["frames"].shape == (3, 3, 96, 128) and sample["depth_gt"].shape == (1, 96, 128)
    np.testing.assert_allclose(sample["intrinsics"].numpy(), dataset.sequences[0].intrinsics)
    assert torch.all(sample["depth_gt"] > 0) and 0.05 < float(sample["source_distance"].min()) < 0.12


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"distortion": (-2.0, 0.0, 0.0, 0.0, 0.0)}, "cannot be inverted|pinhole pixels"),
        ({"distortion": (0.1, 0.0)}, "5 plumb_bob coefficients"),
        ({"camera_height": 3.0}, "camera_height"),
        ({"horizontal_fov_deg": 170.0}, "horizontal_fov_deg"),
        ({"speed": 10.0}, "speed"),
        ({"frames_per_sequence": 2}, "frames_per_sequence"),
    ],
)
def test_invalid_robot_config_is_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        RobotSceneConfig(height=48, width=64, **overrides)


def test_same_seed_same_drive_other_seed_other_rooms():
    config = RobotSceneConfig(height=48, width=64, frames_per_sequence=3)
    first, again, other = (generate_sequence(config, seed) for seed in (1, 1, 2))
    for name in ("raw_images", "images", "depths", "raw_depths", "poses", "base_poses"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.depths, other.depths)


def test_training_config_keys_pick_the_robot_camera():
    from dna_depth_core.cli.train import build_datasets
    from dna_depth_core.errors import UserError
    from dna_depth_core.training import load_train_config

    keys = ["data.dataset=synthetic", "data.height=64", "data.width=96", "data.synthetic.style=robot",
            "data.synthetic.train_sequences=1", "data.synthetic.val_sequences=0",
            "data.synthetic.frames_per_sequence=3", "data.synthetic.camera_height=0.3",
            "data.synthetic.horizontal_fov_deg=80", "data.synthetic.distortion=false"]
    train, val, description = build_datasets(load_train_config(None, keys))
    assert val is None and "robot" in description
    assert isinstance(train.config, RobotSceneConfig) and (train.config.height, train.config.width) == (64, 96)
    assert train.config.camera_height == 0.3 and train.config.distortion == PINHOLE
    np.testing.assert_allclose(-train.sequences[0].poses[:, 1, 3], 0.3, atol=1e-6)
    with pytest.raises(UserError, match="distortion needs style robot"):
        street = [*keys, "data.synthetic.style=street", "data.synthetic.distortion=true"]
        build_datasets(load_train_config(None, street))
