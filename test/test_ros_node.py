"""The depth node over real DDS on loopback: outputs, conventions, bad input, load, parameters.

One rclpy context and executor per module; each node runs in its own namespace with a
``DepthNodeProbe`` beside it, and a tiny random-weight checkpoint (64x96) keeps inference fast.
Over 500 lines because splitting it would start a second rclpy context and node fixture per
file, which costs CI more than the length costs a reader.
"""

import contextlib
import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointField

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.data.camera.calibration import CameraCalibration
from dna_depth_core.errors import UserError
from dna_depth_core.inference import DepthEstimator
from dna_depth_core.networks import create_depth_net
from dna_depth_ros.node import DepthNode
from dna_depth_ros.probe import DepthNodeProbe

pytestmark = pytest.mark.ros

CONFIG = Path(__file__).resolve().parents[1] / "config" / "dna_depth.yaml"
NETWORK_SIZE = (64, 96)
IMAGE_SIZE = (96, 192)  # wider than the network (64x96): its centre 144x96 is kept, scaled by 2/3
CROP_X0 = 24
ALL_OUTPUTS = ("depth/image", "depth/camera_info", "depth/colored", "points")
MAX_INPUT_PIXELS = 100_000
P_INTRINSICS = dict(fx=160.0, fy=150.0, cx=95.0, cy=49.0)
TIMEOUT = 20.0
_namespaces = itertools.count()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ros_node") / "tiny.safetensors"
    metadata = ModelMetadata(height=NETWORK_SIZE[0], width=NETWORK_SIZE[1], min_depth=0.1, max_depth=100.0)
    save_checkpoint(path, create_depth_net("dna_depth_b0"), metadata)
    return path


@pytest.fixture(scope="module")
def estimator(checkpoint):
    return DepthEstimator.from_checkpoint(checkpoint, device="cpu")


@contextlib.contextmanager
def running_node(ros, checkpoint, parameters=None, cli_args=None, compressed=False, outputs=None):
    """A DepthNode and a probe in a fresh namespace, connected; both destroyed afterwards."""
    context, executor = ros
    namespace = f"/test{next(_namespaces)}"
    overrides = {
        "checkpoint": str(checkpoint),
        "device": "cpu",
        "warmup_iterations": 1,
        "diagnostics_period": 0.1,
        "max_input_pixels": MAX_INPUT_PIXELS,
    }
    overrides.update(parameters or {})
    if cli_args:  # let the parameter files decide
        overrides = {"checkpoint": str(checkpoint), "diagnostics_period": 0.1}
    node = DepthNode(
        namespace=namespace,
        context=context,
        cli_args=cli_args,
        parameter_overrides=[Parameter(name, value=value) for name, value in overrides.items()],
    )
    probe_options = {} if outputs is None else {"outputs": outputs}
    probe = DepthNodeProbe(namespace=namespace, context=context, compressed=compressed, **probe_options)
    executor.add_node(node)
    executor.add_node(probe)
    try:
        assert probe.wait_for_node(TIMEOUT), "depth node and probe did not discover each other"
        if outputs is None:
            assert probe.wait_until(lambda: all(node.output_subscriber_counts().values()), TIMEOUT)
        yield node, probe
    finally:
        executor.remove_node(probe)
        executor.remove_node(node)
        probe.destroy_node()
        node.destroy_node()


def scene(height=IMAGE_SIZE[0], width=IMAGE_SIZE[1]) -> np.ndarray:
    """A deterministic, smooth RGB test image (compresses well, varied enough for the network)."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([columns / width * 255, rows / height * 255, 128 + 100 * np.sin(columns / 9 + rows / 13)], axis=2)
    return rgb.clip(0, 255).astype(np.uint8)


def image_msg(probe, rgb, encoding="rgb8") -> Image:
    pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1]}[encoding]
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, step=rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(pixels).tobytes()
    msg.header.stamp = probe.get_clock().now().to_msg()
    msg.header.frame_id = "camera_optical"
    return msg


def camera_info_msg(height=IMAGE_SIZE[0], width=IMAGE_SIZE[1], with_p=True) -> CameraInfo:
    info = CameraInfo(height=height, width=width, distortion_model="plumb_bob", d=[0.0] * 5)
    info.header.frame_id = "camera_optical"
    info.k = [150.0, 0.0, 96.0, 0.0, 140.0, 48.0, 0.0, 0.0, 1.0]  # differs from P: P must win
    if with_p:
        p = P_INTRINSICS
        info.p = [p["fx"], 0.0, p["cx"], 0.0, 0.0, p["fy"], p["cy"], 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def calibration(info=None) -> CameraCalibration:
    """The core calibration of a test camera info (what the node derives from it)."""
    return CameraCalibration.from_camera_info(info or camera_info_msg())


def network_camera(fx, fy, cx, cy):
    """Intrinsics of the network input: the centre crop shifts cx, the 2/3 resize scales
    with the pixel-centre convention ((c + 0.5) * s - 0.5)."""
    scale = 2 / 3
    return fx * scale, fy * scale, (cx - CROP_X0 + 0.5) * scale - 0.5, (cy + 0.5) * scale - 0.5


def serve(probe, msg, topics=ALL_OUTPUTS, info=None):
    """Publish camera info and an image; return the outputs with the image's stamp."""
    probe.camera_info_publisher.publish(info or camera_info_msg())
    probe.image_publisher.publish(msg)
    outputs = probe.wait_for_stamp(topics, msg.header.stamp, TIMEOUT)
    assert outputs is not None, f"no outputs on {topics} for the frame"
    return outputs


def depth_array(msg) -> np.ndarray:
    assert msg.encoding == "32FC1" and msg.step == msg.width * 4
    return np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width)


def cloud_fields(msg) -> dict[str, np.ndarray]:
    """Each float32 field of an organised cloud as (height, width), read via its offset and the steps."""
    raw = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.row_step)[:, : msg.width * msg.point_step]
    raw = raw.reshape(msg.height, msg.width, msg.point_step)
    fields = {}
    for field in msg.fields:
        assert field.datatype == PointField.FLOAT32 and field.count == 1
        fields[field.name] = raw[..., field.offset : field.offset + 4].copy().view("<f4")[..., 0]
    return fields


def diagnostics_count(probe, key, at_least, timeout=TIMEOUT) -> int:
    values = probe.wait_for_diagnostics(lambda v: int(v.get(key, -1)) >= at_least, timeout)
    return int(values.get(key, -1))


# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_node(ros, checkpoint):
    with running_node(ros, checkpoint) as running:
        yield running


def test_outputs_follow_ros_conventions(default_node, estimator):
    node, probe = default_node
    rgb = scene()
    msg = image_msg(probe, rgb)
    outputs = serve(probe, msg)
    height, width = NETWORK_SIZE

    depth_msg = outputs["depth/image"]
    assert depth_msg.header == msg.header  # same stamp and frame
    assert (depth_msg.height, depth_msg.width) == (height, width)
    depth = depth_array(depth_msg)
    # Known answer: the core estimator on the same pixels and calibration (the raw image with K
    # remapped to P's camera, centre-cropped, resized; depth times the focal-length factor).
    np.testing.assert_allclose(depth, estimator.estimate(rgb, calibration()), rtol=1e-4)
    assert np.isfinite(depth).all()
    assert estimator.plan(IMAGE_SIZE, calibration()).depth_factor > 1.1  # a longer focal length than KITTI's

    info = outputs["depth/camera_info"]
    assert info.header == msg.header and (info.height, info.width) == (height, width)
    fx, fy, cx, cy = network_camera(**P_INTRINSICS)
    np.testing.assert_allclose(info.p, [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], rtol=1e-6)
    np.testing.assert_allclose(info.k, [fx, 0, cx, 0, fy, cy, 0, 0, 1], rtol=1e-6)  # the rectified camera
    assert list(info.d) == [0.0] * 5

    colored = outputs["depth/colored"]
    assert colored.header == msg.header and colored.encoding == "bgr8"
    assert (colored.height, colored.width, colored.step) == (height, width, width * 3)

    cloud = outputs["points"]
    assert cloud.header == msg.header and (cloud.height, cloud.width) == (height, width)
    assert cloud.is_dense is False and [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    points = cloud_fields(cloud)
    rows, columns = np.mgrid[0:height, 0:width]
    np.testing.assert_allclose(points["z"], depth, rtol=1e-6)
    np.testing.assert_allclose(points["x"], (columns - cx) / fx * depth, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(points["y"], (rows - cy) / fy * depth, rtol=1e-5, atol=1e-7)
    packed = points["rgb"].view(np.uint32)
    network_rgb = estimator.plan(IMAGE_SIZE, calibration()).apply(rgb)
    np.testing.assert_array_equal((packed >> 16) & 255, network_rgb[..., 0])
    np.testing.assert_array_equal(packed & 255, network_rgb[..., 2])

    values = probe.wait_for_diagnostics(lambda v: int(v.get("frames_processed", 0)) >= 1)
    assert float(values["forward_ms_p50"]) > 0 and float(values["overhead_ratio"]) >= 0


def test_camera_info_without_p_falls_back_to_k(default_node):
    node, probe = default_node
    outputs = serve(probe, image_msg(probe, scene()), info=camera_info_msg(with_p=False))
    height, width = NETWORK_SIZE
    fx, fy, cx, cy = network_camera(150.0, 140.0, 96.0, 48.0)
    np.testing.assert_allclose(outputs["depth/camera_info"].p, [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0])
    points = cloud_fields(outputs["points"])
    depth = depth_array(outputs["depth/image"])
    np.testing.assert_allclose(points["x"], (np.arange(width) - cx) / fx * depth, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(points["y"], (np.arange(height)[:, None] - cy) / fy * depth, rtol=1e-5, atol=1e-7)


def test_bgr8_input_gives_the_same_depth_as_rgb8(default_node):
    node, probe = default_node
    rgb = scene()
    from_rgb = depth_array(serve(probe, image_msg(probe, rgb), ("depth/image",))["depth/image"])
    from_bgr = depth_array(serve(probe, image_msg(probe, rgb, "bgr8"), ("depth/image",))["depth/image"])
    np.testing.assert_allclose(from_bgr, from_rgb, rtol=1e-5)


def set_parameters(probe, node, **values):
    """Set parameters over the parameter service; returns the per-parameter results."""
    client = AsyncParameterClient(probe, node.get_fully_qualified_name())
    assert client.wait_for_services(timeout_sec=TIMEOUT)
    future = client.set_parameters([Parameter(name.replace("__", "."), value=value) for name, value in values.items()])
    assert probe.wait_until(future.done, TIMEOUT)
    return future.result().results


def test_out_of_range_depth_becomes_nan_everywhere(default_node):
    node, probe = default_node
    rgb = scene()
    reference = depth_array(serve(probe, image_msg(probe, rgb), ("depth/image",))["depth/image"])
    threshold = float(np.median(reference))
    results = set_parameters(probe, node, invalid_outside_range=True, max_depth=threshold)
    assert all(result.successful for result in results)
    try:
        outputs = serve(probe, image_msg(probe, rgb))
    finally:
        assert all(r.successful for r in set_parameters(probe, node, invalid_outside_range=False, max_depth=0.0))
    depth = depth_array(outputs["depth/image"])
    invalid = reference > threshold
    assert 0 < invalid.sum() < invalid.size
    assert np.isnan(depth[invalid]).all()
    np.testing.assert_allclose(depth[~invalid], reference[~invalid], rtol=1e-5)
    points = cloud_fields(outputs["points"])
    assert all(np.isnan(points[axis][invalid]).all() for axis in "xyz")
    assert np.isfinite(points["z"][~invalid]).all()
    colored = np.frombuffer(outputs["depth/colored"].data, np.uint8).reshape(*NETWORK_SIZE, 3)
    assert (colored[invalid] == 0).all() and (colored[~invalid].sum(axis=1) > 0).all()


def test_runtime_parameter_change_and_rejection(default_node):
    node, probe = default_node
    results = set_parameters(probe, node, points__stride=2, colored__colormap="jet")
    assert all(result.successful for result in results)
    try:
        cloud = serve(probe, image_msg(probe, scene()), ("points",))["points"]
        assert (cloud.height, cloud.width) == (NETWORK_SIZE[0] // 2, NETWORK_SIZE[1] // 2)
        assert node.get_parameter("colored.colormap").value == "jet"
    finally:
        assert all(r.successful for r in set_parameters(probe, node, points__stride=1, colored__colormap="turbo"))

    rejected = {
        "colored.colormap": ("sparkly", "colored.colormap must be one of"),
        "points.stride": (0, ""),  # outside the declared integer range
        "device": ("cuda", ""),  # read-only
    }
    for name, (value, reason) in rejected.items():
        (result,) = set_parameters(probe, node, **{name.replace(".", "__"): value})
        assert not result.successful and reason in result.reason, (name, result.reason)
    (result,) = set_parameters(probe, node, min_depth=50.0)
    # The checkpoint's max (100 m) stays above 50 m: accepted; then max 10 m < min 50 m is not.
    assert result.successful
    (result,) = set_parameters(probe, node, max_depth=10.0)
    assert not result.successful and "must be smaller than max_depth" in result.reason
    assert set_parameters(probe, node, min_depth=0.0)[0].successful
    assert node.get_parameter("points.stride").value == 1


def bad_images(probe):
    good = image_msg(probe, scene())

    def variant(**fields):
        msg = image_msg(probe, scene())
        for name, value in fields.items():
            setattr(msg, name, value)
        return msg

    big = scene(300, 400)  # 120 000 pixels > MAX_INPUT_PIXELS
    return {
        "unsupported_encoding": variant(encoding="nv21"),
        "empty_image": variant(height=0, width=0, step=0, data=b""),
        "invalid_step": variant(step=good.width),
        "data_size_mismatch": variant(data=bytes(good.data)[:-7]),
        "image_too_large": image_msg(probe, big),
    }


@pytest.mark.parametrize(
    "kind", ["unsupported_encoding", "empty_image", "invalid_step", "data_size_mismatch", "image_too_large"]
)
def test_bad_image_is_counted_and_the_next_good_frame_served(default_node, kind):
    node, probe = default_node
    key = f"bad_input.{kind}"
    before = diagnostics_count(probe, key, 0)
    probe.image_publisher.publish(bad_images(probe)[kind])
    assert diagnostics_count(probe, key, before + 1) == before + 1
    serve(probe, image_msg(probe, scene()))


def test_bad_camera_info_is_counted_and_the_last_good_one_kept(default_node):
    node, probe = default_node
    serve(probe, image_msg(probe, scene()))  # caches a good camera info
    before = diagnostics_count(probe, "bad_input.invalid_camera_info", 0)
    zero_focal = camera_info_msg(with_p=False)
    zero_focal.k = [0.0, 0.0, 96.0, 0.0, 0.0, 48.0, 0.0, 0.0, 1.0]
    probe.camera_info_publisher.publish(zero_focal)
    assert diagnostics_count(probe, "bad_input.invalid_camera_info", before + 1) == before + 1
    msg = image_msg(probe, scene())
    probe.image_publisher.publish(msg)
    assert probe.wait_for_stamp(ALL_OUTPUTS, msg.header.stamp, TIMEOUT) is not None


def test_camera_info_of_another_resolution_is_counted_and_depth_still_served(default_node):
    node, probe = default_node
    before = diagnostics_count(probe, "bad_input.camera_info_mismatch", 0)
    msg = image_msg(probe, scene())
    outputs = serve(probe, msg, ("depth/image", "depth/colored"), info=camera_info_msg(height=480, width=640))
    assert outputs["depth/image"].header == msg.header
    assert diagnostics_count(probe, "bad_input.camera_info_mismatch", before + 1) == before + 1
    assert not any(r.msg.header.stamp == msg.header.stamp for r in probe.received["points"])
    serve(probe, image_msg(probe, scene()))  # a matching camera info restores everything


def all_frames_accounted_for(values) -> bool:
    """Every received frame was processed, dropped, skipped or rejected: none in flight."""
    if "frames_received" not in values:
        return False
    frame_kinds = [key for key in values if key.startswith("bad_input.") and "camera_info" not in key]
    handled = ("frames_processed", "frames_dropped", "frames_skipped_no_subscribers", "frames_processing_errors")
    return int(values["frames_received"]) == sum(int(values[key]) for key in (*handled, *frame_kinds))


def test_burst_keeps_only_the_latest_frame(default_node):
    node, probe = default_node
    keys = ("frames_received", "frames_processed", "frames_dropped")
    now = probe.get_clock().now().nanoseconds
    start = probe.wait_for_diagnostics(all_frames_accounted_for, received_after_ns=now)
    assert all_frames_accounted_for(start)
    outputs_before = probe.count("depth/image")
    probe.camera_info_publisher.publish(camera_info_msg())
    rgb = scene()
    burst = [image_msg(probe, rgb) for _ in range(100)]
    for index, msg in enumerate(burst):
        msg.header.stamp.nanosec = index  # distinct stamps even within one clock tick
        probe.image_publisher.publish(msg)
        # ~500 frames/s: faster than inference, slow enough for the subscription callback
        # to see most frames rather than the DDS reader history keeping only the newest 5.
        time.sleep(0.002)
    # Latest-only: the final frame is always processed, whatever was dropped before it.
    assert probe.wait_for_stamp(("depth/image",), burst[-1].header.stamp, TIMEOUT) is not None

    now = probe.get_clock().now().nanoseconds
    values = probe.wait_for_diagnostics(all_frames_accounted_for, received_after_ns=now)
    delta = {key: int(values[key]) - int(start[key]) for key in keys}
    assert all_frames_accounted_for(values), values
    assert delta["frames_received"] <= 100 and delta["frames_dropped"] >= 1
    assert 1 <= delta["frames_processed"] < delta["frames_received"], delta
    assert probe.count("depth/image") - outputs_before <= delta["frames_processed"]


def test_yaml_parameter_file_is_loaded(ros, checkpoint, tmp_path):
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        yaml.safe_dump(
            {
                "/**": {
                    "ros__parameters": {
                        "device": "cpu",
                        "warmup_iterations": 1,
                        "output_resolution": "input",
                        "points": {"stride": 4},
                        "colored": {"colormap": "viridis"},
                    }
                }
            }
        )
    )
    cli_args = ["--ros-args", "--params-file", str(CONFIG), "--params-file", str(overrides)]
    with running_node(ros, checkpoint, cli_args=cli_args) as (node, probe):
        defaults = yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]
        assert node.get_parameter("max_input_pixels").value == defaults["max_input_pixels"]
        assert node.get_parameter("colored.colormap").value == "viridis"
        outputs = serve(probe, image_msg(probe, scene()))
        assert (outputs["depth/image"].height, outputs["depth/image"].width) == IMAGE_SIZE
        info = outputs["depth/camera_info"]
        assert (info.height, info.width) == IMAGE_SIZE
        np.testing.assert_allclose(info.p, camera_info_msg().p)  # the rectified camera image: P
        cloud = outputs["points"]
        assert (cloud.height, cloud.width) == (IMAGE_SIZE[0] // 4, IMAGE_SIZE[1] // 4)


def test_compressed_input(ros, checkpoint, estimator):
    with running_node(ros, checkpoint, parameters={"image_transport": "compressed"}, compressed=True) as (node, probe):
        rgb = scene()
        msg = CompressedImage(format="png")
        msg.data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
        msg.header.stamp = probe.get_clock().now().to_msg()
        msg.header.frame_id = "camera_optical"
        outputs = serve(probe, msg)
        np.testing.assert_allclose(depth_array(outputs["depth/image"]), estimator.estimate(rgb, calibration()),
                                   rtol=1e-4)

        garbage = CompressedImage(format="jpeg", data=b"\xff\xd8 definitely not a jpeg")
        garbage.header.stamp = probe.get_clock().now().to_msg()
        probe.image_publisher.publish(garbage)
        assert diagnostics_count(probe, "bad_input.undecodable_image", 1) == 1
        jpeg = CompressedImage(format="rgb8; jpeg compressed bgr8")
        jpeg.data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
        jpeg.header.stamp = probe.get_clock().now().to_msg()
        serve(probe, jpeg)


def test_inference_skipped_without_subscribers_unless_disabled(ros, checkpoint):
    with running_node(ros, checkpoint, outputs=("/diagnostics",)) as (node, probe):
        probe.image_publisher.publish(image_msg(probe, scene()))
        values = probe.wait_for_diagnostics(lambda v: int(v.get("frames_skipped_no_subscribers", 0)) >= 1)
        assert values["frames_processed"] == "0"
        assert all(result.successful for result in set_parameters(probe, node, skip_without_subscribers=False))
        probe.image_publisher.publish(image_msg(probe, scene()))
        assert diagnostics_count(probe, "frames_processed", 1) == 1


def test_input_resolution_covers_the_camera_image_with_nan_outside_the_network_view(ros, checkpoint, estimator):
    with running_node(ros, checkpoint, parameters={"output_resolution": "input"}) as (node, probe):
        rgb = scene()
        outputs = serve(probe, image_msg(probe, rgb))
    depth = depth_array(outputs["depth/image"])
    assert depth.shape == IMAGE_SIZE
    seen = np.zeros(IMAGE_SIZE, bool)
    seen[:, CROP_X0 : IMAGE_SIZE[1] - CROP_X0] = True  # the centre 144x96 the network saw
    assert np.isnan(depth[~seen]).all() and np.isfinite(depth[seen]).all()
    np.testing.assert_allclose(depth, estimator.estimate(rgb, calibration(), resolution="input"), rtol=1e-4)
    info = outputs["depth/camera_info"]
    assert (info.height, info.width) == IMAGE_SIZE
    np.testing.assert_allclose(info.p, camera_info_msg().p)  # the rectified camera image's own camera
    points = cloud_fields(outputs["points"])
    assert points["z"].shape == IMAGE_SIZE and np.isnan(points["z"][~seen]).all()
    rows, columns = np.mgrid[0 : IMAGE_SIZE[0], 0 : IMAGE_SIZE[1]]
    p = P_INTRINSICS
    np.testing.assert_allclose(points["x"][seen], ((columns - p["cx"]) / p["fx"] * depth)[seen], rtol=1e-5, atol=1e-7)
    colored = np.frombuffer(outputs["depth/colored"].data, np.uint8).reshape(*IMAGE_SIZE, 3)
    assert (colored[~seen] == 0).all()


def test_focal_rescale_and_undistort_parameters(default_node, estimator):
    node, probe = default_node
    rgb = scene()
    rescaled = depth_array(serve(probe, image_msg(probe, rgb), ("depth/image",))["depth/image"])
    assert node.prepare(image_msg(probe, rgb)).plan.rectify_maps is not None  # K -> P remap of the raw image
    assert all(r.successful for r in set_parameters(probe, node, focal_rescale=False, undistort=False))
    try:
        plain = depth_array(serve(probe, image_msg(probe, rgb), ("depth/image",))["depth/image"])
        assert node.prepare(image_msg(probe, rgb)).plan.rectify_maps is None
    finally:
        assert all(r.successful for r in set_parameters(probe, node, focal_rescale=True, undistort=True))
    # undistort false: the image is taken as rectified already (P, no remap from K); no focal factor.
    expected = estimator.estimate(rgb, calibration(), image_rectified=True)
    factor = estimator.plan(IMAGE_SIZE, calibration(), image_rectified=True).depth_factor
    np.testing.assert_allclose(plain, expected / factor, rtol=1e-4)
    np.testing.assert_allclose(rescaled, estimator.estimate(rgb, calibration()), rtol=1e-4)


def test_calibration_file_replaces_the_camera_info_topic(ros, checkpoint, estimator, tmp_path):
    p = P_INTRINSICS
    calibration_file = tmp_path / "camera.yaml"
    calibration_file.write_text(yaml.safe_dump({
        "image_width": IMAGE_SIZE[1], "image_height": IMAGE_SIZE[0], "camera_name": "test",
        "camera_matrix": {"rows": 3, "cols": 3, "data": [p["fx"], 0, p["cx"], 0, p["fy"], p["cy"], 0, 0, 1]},
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
    }))
    with running_node(ros, checkpoint, parameters={"camera_info_file": str(calibration_file)}) as (node, probe):
        msg = image_msg(probe, scene())
        probe.image_publisher.publish(msg)  # no camera_info message at all
        outputs = probe.wait_for_stamp(ALL_OUTPUTS, msg.header.stamp, TIMEOUT)
        assert outputs is not None
        fx, fy, cx, cy = network_camera(**p)
        np.testing.assert_allclose(outputs["depth/camera_info"].p, [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], rtol=1e-6)
        values = probe.wait_for_diagnostics(lambda v: "camera_info" in v)
        assert values["camera_info"] == f"file {calibration_file}"

    (tmp_path / "broken.yaml").write_text("image_width: 640\n")
    context, _ = ros
    with pytest.raises(UserError, match="broken.yaml.*image_height") as error:
        DepthNode(namespace="/broken_calibration", context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)), Parameter("device", value="cpu"),
            Parameter("warmup_iterations", value=0),
            Parameter("camera_info_file", value=str(tmp_path / "broken.yaml"))])
    assert "\n" not in str(error.value)
