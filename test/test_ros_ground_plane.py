"""The node's runtime ground-plane scale over real DDS, on a rendered robot-style frame.

The camera of the robot style is 0.5 m above the floor (plumb_bob lens, pitched 5 degrees
down). Everything is the real node (raw frame and camera info in over DDS, rectification,
depth, diagnostics out) except the forward pass, which returns the disparity of the
frame's true depth in a unit of a third of a metre: what a relative-depth network that
got the shape right would predict. With ``ground_plane_scale.enabled`` the published depth
must be metres again.
"""

import itertools

import cv2
import numpy as np
import pytest
import torch
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.data.synthetic import camera_frames, generate_sequence, scene_config
from dna_depth_core.networks import create_depth_net
from dna_depth_ros.ground_scale import GroundPlaneScaler
from dna_depth_ros.node import DepthNode
from dna_depth_ros.probe import DepthNodeProbe

pytestmark = pytest.mark.ros

IMAGE_SIZE = (480, 640)
NETWORK_SIZE = (288, 384)  # what a fine-tune picks for a 4:3 camera
METRES_PER_UNIT = 1 / 3
MIN_DEPTH, MAX_DEPTH = 0.01, 100.0
TIMEOUT = 60.0
_namespaces = itertools.count()


@pytest.fixture(scope="module")
def robot_frame():
    """A raw 640x480 robot frame, its camera info, and its true depth (metres) as the network sees it."""
    config = scene_config("robot", *IMAGE_SIZE, frames_per_sequence=3)
    sequence = generate_sequence(config, seed=3)
    assert config.camera_height == 0.5
    frames, calibration = camera_frames(sequence)
    image = Image(height=IMAGE_SIZE[0], width=IMAGE_SIZE[1], encoding="rgb8", step=IMAGE_SIZE[1] * 3)
    image.data = frames[0].tobytes()
    info = CameraInfo(
        height=calibration.height, width=calibration.width, distortion_model=calibration.distortion_model,
        d=calibration.distortion.tolist(), k=calibration.camera_matrix.reshape(-1).tolist(),
        r=calibration.rectification.reshape(-1).tolist(), p=calibration.projection.reshape(-1).tolist(),
    )  # fmt: skip
    image.header.frame_id = info.header.frame_id = "camera_optical_frame"
    # 4:3 camera, 4:3 network: the network sees the whole rectified image, resized.
    depth = cv2.resize(sequence.depths[0], NETWORK_SIZE[::-1], interpolation=cv2.INTER_NEAREST)
    return image, info, depth


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ground_plane") / "relative.safetensors"
    metadata = ModelMetadata(height=NETWORK_SIZE[0], width=NETWORK_SIZE[1], min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
    save_checkpoint(path, create_depth_net("dna_depth_b0"), metadata)
    return path


def disparity_of(depth_units: np.ndarray) -> torch.Tensor:
    """The network disparity whose depth (dna_depth_core.geometry.disp_to_depth) is ``depth_units``."""
    disparity = (1 / depth_units - 1 / MAX_DEPTH) / (1 / MIN_DEPTH - 1 / MAX_DEPTH)
    return torch.from_numpy(disparity.astype(np.float32))[None, None]


def test_ground_plane_scale_puts_the_camera_half_a_metre_above_the_floor(ros, checkpoint, robot_frame):
    context, executor = ros
    image, info, true_depth = robot_frame
    namespace = f"/ground{next(_namespaces)}"
    parameters = {
        "checkpoint": str(checkpoint), "device": "cpu", "backend": "eager", "warmup_iterations": 0,
        "diagnostics_period": 0.1, "focal_rescale": False, "ground_plane_scale.enabled": True,
        "ground_plane_scale.camera_height": 0.5, "ground_plane_scale.window": 3, "ground_plane_scale.every": 1,
    }  # fmt: skip
    node = DepthNode(
        namespace=namespace, context=context,
        parameter_overrides=[Parameter(name, value=value) for name, value in parameters.items()],
    )  # fmt: skip
    predicted = disparity_of(true_depth / METRES_PER_UNIT)
    node._estimator.predict_disparity = lambda batch: predicted  # the forward pass, see the module docstring
    probe = DepthNodeProbe(namespace=namespace, context=context, outputs=("depth/image", "/diagnostics"))
    executor.add_node(node)
    executor.add_node(probe)

    def depth_of_a_frame() -> np.ndarray:
        image.header.stamp = info.header.stamp = probe.get_clock().now().to_msg()
        probe.camera_info_publisher.publish(info)
        probe.image_publisher.publish(image)
        outputs = probe.wait_for_stamp(("depth/image",), image.header.stamp, TIMEOUT)
        assert outputs is not None, "no depth for the frame"
        msg = outputs["depth/image"]
        return np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width)

    try:
        assert probe.wait_for_node(TIMEOUT), "depth node and probe did not discover each other"
        assert probe.wait_until(lambda: node.output_subscriber_counts()["depth/image"] > 0, TIMEOUT)
        for _ in range(3):
            depth = depth_of_a_frame()
        valid = np.isfinite(depth)
        assert valid.mean() > 0.99
        assert np.median(depth[valid] / true_depth[valid]) == pytest.approx(1.0, rel=0.05)  # metres again
        received = probe.get_clock().now().nanoseconds
        values = probe.wait_for_diagnostics(lambda v: "ground_plane_scale" in v, TIMEOUT, received)
        assert float(values["ground_plane_scale"]) == pytest.approx(METRES_PER_UNIT, rel=0.05)
        assert values["ground_plane_fits"].startswith("3 with a floor")
        assert values["depth_units"] == "metres (ground plane, camera 0.5 m up)"

        node.set_parameters([Parameter("ground_plane_scale.enabled", value=False)])
        depth = depth_of_a_frame()  # applied only when enabled: the network's own unit
        assert np.nanmedian(depth / true_depth) == pytest.approx(1 / METRES_PER_UNIT, rel=1e-3)

        # The floor's direction from the camera's mount (the robot camera is pitched 5 degrees down).
        node.set_parameters([Parameter("ground_plane_scale.enabled", value=True),
                             Parameter("ground_plane_scale.floor_tilt", value="mount"),
                             Parameter("ground_plane_scale.camera_pitch_deg", value=5.0)])
        for _ in range(3):
            depth = depth_of_a_frame()
        assert np.nanmedian(depth / true_depth) == pytest.approx(1.0, rel=0.05)
        received = probe.get_clock().now().nanoseconds
        values = probe.wait_for_diagnostics(lambda v: "from the mount" in v.get("ground_plane_last", ""), TIMEOUT,
                                            received)
        assert "floor tilt 5.0 deg (from the mount)" in values["ground_plane_last"]
        assert float(values["ground_plane_scale"]) == pytest.approx(METRES_PER_UNIT, rel=0.05)
    finally:
        executor.remove_node(probe)
        executor.remove_node(node)
        probe.destroy_node()
        node.destroy_node()


def test_the_floor_is_fitted_on_every_nth_frame_once_one_was_found():
    # A level camera 0.5 m above a floor, depth in thirds of a metre; the upper half a far wall.
    height, width, focal, centre_row = 96, 128, 100.0, 47.5
    intrinsics = np.array([[focal, 0.0, 63.5], [0.0, focal, centre_row], [0.0, 0.0, 1.0]], np.float32)
    below = np.arange(height, dtype=np.float32)[:, None] - centre_row
    metres = np.where(below > 1, 0.5 * focal / np.maximum(below, 1.0), 20.0)
    floor = np.broadcast_to(metres / METRES_PER_UNIT, (height, width)).astype(np.float32)
    no_floor = np.full((height, width), np.nan, np.float32)
    scaler = GroundPlaneScaler()
    scales = [scaler.update(depth, intrinsics, 0.5, window=15, every=3)
              for depth in [no_floor, no_floor, floor, floor, floor, floor, floor]]
    # Fitted while none was found (frames 1-3), then on every third frame (6): 2 fits, 2 failures.
    assert scales[:2] == [None, None]
    assert scales[2:] == pytest.approx([METRES_PER_UNIT] * 5, rel=1e-3)
    assert scaler.notes()["ground_plane_fits"] == "2 with a floor, 2 without"
