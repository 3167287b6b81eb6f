"""Unit tests of the node's building blocks: image decoding (the core's, on rclpy messages),
camera info in and out, cloud, colours, slot."""

import importlib.util
import struct
import threading

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointField, RegionOfInterest
from std_msgs.msg import Header

from dna_depth_core.data.camera.encodings import ENCODINGS
from dna_depth_core.data.camera.preparation import FramePreparation, plan_for_checkpoint
from dna_depth_ros.bad_input import BadInput
from dna_depth_ros.camera_model import PinholeIntrinsics, calibration_from_message, depth_camera_info
from dna_depth_ros.colorize import colorize_depth, colour_table, valid_depth_range
from dna_depth_ros.conversions import (
    ReusedBuffer,
    bgr8_image_msg,
    check_image,
    depth_image_msg,
    image_to_rgb,
    to_byte_array,
)
from dna_depth_ros.frame_slot import LatestFrameSlot
from dna_depth_ros.point_cloud import PointCloudBuilder

MAX_PIXELS = 1 << 20


def random_rgb(height=5, width=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(rgb: np.ndarray, encoding: str, padding: int = 0, big_endian: bool = False) -> Image:
    """Build an Image message from RGB the straightforward way (per-channel reorder, byte packing)."""
    height, width = rgb.shape[:2]
    order = encoding.rstrip("0123456789")
    bits = int(encoding[len(order) :])
    grey = np.round(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
    channels = {
        "rgb": rgb,
        "bgr": rgb[..., ::-1],
        "mono": grey,
        "rgba": np.dstack([rgb, np.full((height, width), 9, np.uint8)]),
        "bgra": np.dstack([rgb[..., ::-1], np.full((height, width), 9, np.uint8)]),
    }[order]
    if bits == 16:
        # Low byte set to a value that must not leak into the 8-bit result.
        channels = channels.astype(np.uint16) * 256 + 77
        channels = channels.astype(">u2" if big_endian else "<u2")
    row = channels.reshape(height, -1).view(np.uint8)
    row = np.hstack([row, np.full((height, padding), 0xAB, np.uint8)])
    return Image(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=big_endian,
        step=row.shape[1],
        data=to_byte_array(row),
    )


@pytest.mark.parametrize("encoding", sorted(name for name, layout in ENCODINGS.items() if not layout.subsampled))
@pytest.mark.parametrize("padding", [0, 5])
def test_every_encoding_decodes_to_rgb(encoding, padding):
    rgb = random_rgb()
    msg = encode(rgb, encoding, padding)
    check_image(msg, MAX_PIXELS)
    decoded = image_to_rgb(msg, MAX_PIXELS)
    assert decoded.dtype == np.uint8 and decoded.shape == rgb.shape
    if encoding.startswith("mono"):
        expected = np.repeat(np.round(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None], 3, axis=2)
        np.testing.assert_array_equal(decoded, expected)
    else:
        np.testing.assert_array_equal(decoded, rgb)


def test_big_endian_16_bit_and_zero_copy_rgb8():
    rgb = random_rgb()
    msg = encode(rgb, "rgb16", big_endian=True)
    np.testing.assert_array_equal(image_to_rgb(msg, MAX_PIXELS), rgb)
    plain = encode(rgb, "rgb8")
    view = image_to_rgb(plain, MAX_PIXELS)
    assert np.shares_memory(view, np.frombuffer(plain.data, np.uint8))


@pytest.mark.parametrize(
    "change, kind",
    [
        (dict(encoding="nv21"), "unsupported_encoding"),
        (dict(encoding="32FC1"), "unsupported_encoding"),
        (dict(height=0), "empty_image"),
        (dict(data=[]), "empty_image"),
        (dict(step=20), "invalid_step"),
        (dict(height=6), "data_size_mismatch"),
        (dict(data=list(range(10))), "data_size_mismatch"),
    ],
)
def test_bad_images_are_rejected_by_kind(change, kind):
    msg = encode(random_rgb(), "rgb8")
    for field, value in change.items():
        setattr(msg, field, value)
    with pytest.raises(BadInput) as error:
        check_image(msg, MAX_PIXELS)
    assert error.value.kind == kind


def test_too_large_image_is_rejected_before_its_data_is_read():
    msg = Image(height=3000, width=4000, encoding="rgb8", step=12000)  # no data at all
    with pytest.raises(BadInput) as error:
        check_image(msg, 4000 * 2999)
    assert error.value.kind == "empty_image"
    msg.data = [0]
    with pytest.raises(BadInput) as error:
        check_image(msg, 4000 * 2999)
    assert error.value.kind == "image_too_large"


@pytest.mark.parametrize(
    "extension, image_format", [(".png", "png"), (".png", "rgb8; png compressed bgr8"), (".jpg", "jpeg")]
)
def test_compressed_images_decode_to_rgb(extension, image_format):
    rgb = random_rgb(16, 24)
    rgb[:8] = (200, 30, 10)  # a flat region JPEG keeps almost exactly
    ok, blob = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    decoded = image_to_rgb(CompressedImage(format=image_format, data=to_byte_array(blob)), MAX_PIXELS)
    assert decoded.shape == rgb.shape
    if extension == ".png":
        np.testing.assert_array_equal(decoded, rgb)
    else:
        assert np.abs(decoded[2:6, 2:20].astype(int) - (200, 30, 10)).max() < 12


@pytest.mark.parametrize(
    "image_format, data, max_pixels, kind",
    [
        ("jpeg", b"", MAX_PIXELS, "empty_image"),
        ("jpeg", b"not a jpeg at all", MAX_PIXELS, "undecodable_image"),
        ("16UC1; compressedDepth png", b"\x89PNG", MAX_PIXELS, "unsupported_encoding"),
        ("tiff", b"II*\x00", MAX_PIXELS, "unsupported_encoding"),
        ("png", cv2.imencode(".png", np.zeros((40, 40, 3), np.uint8))[1].tobytes(), 1000, "image_too_large"),
    ],
)
def test_bad_compressed_images_are_rejected_by_kind(image_format, data, max_pixels, kind):
    with pytest.raises(BadInput) as error:
        image_to_rgb(
            CompressedImage(format=image_format, data=to_byte_array(np.frombuffer(data, np.uint8))), max_pixels
        )
    assert error.value.kind == kind


def test_output_images_round_trip_through_their_bytes():
    header = Header(frame_id="camera_optical")
    depth = np.random.default_rng(1).random((4, 6), dtype=np.float32)
    depth[1, 2] = np.nan
    msg = depth_image_msg(depth, header)
    assert (msg.encoding, msg.step, msg.header.frame_id) == ("32FC1", 24, "camera_optical")
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.float32).reshape(4, 6), depth)
    bgr = random_rgb(4, 6)
    msg = bgr8_image_msg(bgr, header)
    assert (msg.encoding, msg.step) == ("bgr8", 18)
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.uint8).reshape(4, 6, 3), bgr)


def camera_info(k=(400.0, 0.0, 320.0, 0.0, 410.0, 240.0, 0.0, 0.0, 1.0), p=None, width=640, height=480, **fields):
    info = CameraInfo(width=width, height=height, k=list(k), **fields)
    if p is not None:
        info.p = list(p)
    return info


def _image_camera(info):
    """Projection matrix of the published image under the core's policy (binning and ROI applied)."""
    calibration = calibration_from_message(info, "/camera/camera_info")
    size = calibration.image_size
    return plan_for_checkpoint(FramePreparation(crop="centre"), size, size, calibration, image_rectified=True)


def test_intrinsics_prefer_p_and_fall_back_to_k():
    from_k = _image_camera(camera_info())
    np.testing.assert_allclose(from_k.camera_projection[:, :3], [[400, 0, 320], [0, 410, 240], [0, 0, 1]])
    assert from_k.image_size == (480, 640)
    p = (380.0, 0, 300.0, -38.0, 0, 390.0, 250.0, 0, 0, 0, 1, 0)
    np.testing.assert_allclose(_image_camera(camera_info(p=p)).camera_projection, np.reshape(p, (3, 4)))


def test_roi_and_binning_map_intrinsics_onto_the_published_image():
    info = camera_info(binning_x=2, binning_y=2, roi=RegionOfInterest(x_offset=100, y_offset=40, width=400, height=300))
    plan = _image_camera(info)
    # f / 2 and (c - offset - 0.5) / 2: a 2x2 super-pixel's centre is half a full pixel in.
    np.testing.assert_allclose(plan.camera_projection[:, :3], [[200, 0, 109.75], [0, 205, 99.75], [0, 0, 1]])
    assert plan.image_size == (150, 200)


@pytest.mark.parametrize(
    "k", [(0.0, 0, 320, 0, 410, 240, 0, 0, 1), (400, 0, 320, 0, -1, 240, 0, 0, 1), (float("nan"),) * 9]
)
def test_camera_info_without_usable_focal_length_is_bad_input(k):
    with pytest.raises(BadInput) as error:
        calibration_from_message(camera_info(k=k), "/camera/camera_info")
    assert error.value.kind == "invalid_camera_info" and "/camera/camera_info" in str(error.value)


def test_depth_camera_info_is_the_pinhole_camera_of_the_depth_image():
    projection = np.array([[95.0, 0.125, 75.0, -9.5], [0.0, 195.0, 125.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    info = depth_camera_info(projection, (240, 160), Header(frame_id="optical"))
    assert (info.width, info.height, info.header.frame_id) == (160, 240, "optical")
    np.testing.assert_allclose(info.p, projection.reshape(-1))
    np.testing.assert_allclose(info.k, projection[:, :3].reshape(-1))
    assert list(info.d) == [0.0] * 5 and list(info.r) == np.eye(3).reshape(-1).tolist()
    assert (info.binning_x, info.binning_y, info.roi.width, info.roi.height) == (0, 0, 0, 0)


def decode_cloud(msg):
    """Fields of a PointCloud2 read from its bytes with struct, independently of the builder."""
    offsets = {field.name: (field.offset, field.datatype) for field in msg.fields}
    assert all(datatype == PointField.FLOAT32 for _, datatype in offsets.values())
    data = bytes(msg.data)
    points = {}
    for name, (offset, _) in offsets.items():
        code = ">f" if msg.is_bigendian else "<f"
        points[name] = np.array(
            [
                [
                    struct.unpack_from(code, data, row * msg.row_step + column * msg.point_step + offset)[0]
                    for column in range(msg.width)
                ]
                for row in range(msg.height)
            ],
            dtype=np.float32,
        )
    return points, data


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_point_cloud_back_projects_each_kept_pixel(stride):
    depth = np.random.default_rng(2).uniform(1, 10, (7, 9)).astype(np.float32)
    depth[3, 3] = np.nan
    rgb = random_rgb(7, 9)
    intrinsics = PinholeIntrinsics(fx=5.0, fy=6.0, cx=4.2, cy=3.1)
    builder = PointCloudBuilder((7, 9), intrinsics, stride, with_rgb=True)
    msg = builder.build(depth, Header(frame_id="optical"), rgb)
    assert (msg.height, msg.width, msg.is_dense, msg.point_step) == (-(-7 // stride), -(-9 // stride), False, 16)
    points, data = decode_cloud(msg)
    rows, columns = np.mgrid[0:7:stride, 0:9:stride]
    z = depth[rows, columns]
    np.testing.assert_allclose(points["z"], z)
    np.testing.assert_allclose(points["x"], (columns - 4.2) / 5.0 * z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(points["y"], (rows - 3.1) / 6.0 * z, rtol=1e-5, atol=1e-6)
    assert np.isnan(points["x"]).sum() == np.isnan(z).sum()
    for row in range(msg.height):
        for column in range(msg.width):
            packed = struct.unpack_from("<I", data, row * msg.row_step + column * msg.point_step + 12)[0]
            colour = ((packed >> 16) & 255, (packed >> 8) & 255, packed & 255)
            assert colour == tuple(rgb[row * stride, column * stride])


def test_point_cloud_without_rgb_has_xyz_only():
    builder = PointCloudBuilder((2, 3), PinholeIntrinsics(1.0, 1.0, 1.0, 1.0), 1, with_rgb=False)
    msg = builder.build(np.ones((2, 3), np.float32), Header())
    assert [field.name for field in msg.fields] == ["x", "y", "z"] and msg.point_step == 12
    assert builder.matches((2, 3), PinholeIntrinsics(1.0, 1.0, 1.0, 1.0), 1, False)
    assert not builder.matches((2, 3), PinholeIntrinsics(1.0, 1.0, 1.0, 1.5), 1, False)


def test_colorize_marks_invalid_black_and_maps_the_range_ends():
    depth = np.array([[1.0, 2.0, 3.0, np.nan]], np.float32)
    valid = np.isfinite(depth).view(np.uint8)
    table = colour_table("turbo")
    coloured = colorize_depth(depth, 1.0, 3.0, "turbo", valid)
    np.testing.assert_array_equal(coloured[0, 0], table[255, 0])  # near end
    np.testing.assert_array_equal(coloured[0, 2], table[1, 0])  # far end
    np.testing.assert_array_equal(coloured[0, 3], (0, 0, 0))
    assert valid_depth_range(depth, valid) == (1.0, 3.0)
    # Outside a fixed range: the end colours.
    far_and_near = colorize_depth(np.array([[0.1, 99.0]], np.float32), 1.0, 3.0, "jet")
    np.testing.assert_array_equal(far_and_near[0], colour_table("jet")[[255, 1], 0])
    with pytest.raises(ValueError, match="unknown colour map"):
        colour_table("sparkly")


def test_reused_buffer_becomes_the_message_data_and_is_reused_only_once_released():
    buffer = ReusedBuffer()
    depth = buffer.take((2, 3), np.float32)
    depth[:] = 1.5
    kept = depth_image_msg(depth, Header())
    assert kept.data.buffer_info()[0] == depth.ctypes.data  # the message holds these bytes: no copy
    del depth
    second = buffer.take((2, 3), np.float32)  # kept still holds the first: a new buffer
    second[:] = 2.5
    assert np.frombuffer(kept.data, np.float32).tolist() == [1.5] * 6
    address = second.ctypes.data
    del second
    assert buffer.take((2, 3), np.float32).ctypes.data == address  # released: the same bytes again
    assert buffer.take((3, 3), np.float32).shape == (3, 3)  # another size: a new buffer
    # An array that is only part of a buffer is copied.
    part = ReusedBuffer().take((2, 3), np.float32)[:1]
    assert depth_image_msg(np.ascontiguousarray(part), Header()).data.buffer_info()[0] != part.ctypes.data


def test_latest_frame_slot_keeps_only_the_newest_item():
    slot = LatestFrameSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # replaced 1 before anyone took it
    assert slot.take() == 2
    taken = []
    consumer = threading.Thread(target=lambda: taken.append(slot.take()))
    consumer.start()
    slot.put(3)
    consumer.join(timeout=5)
    assert taken == [3]
    slot.close()
    assert slot.take() is None


@pytest.mark.skipif(importlib.util.find_spec("cv_bridge") is None, reason="cv_bridge needs a ROS 2 install")
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8"])
def test_cv_bridge_agrees_with_the_numpy_view(encoding):
    from cv_bridge import CvBridge

    msg = encode(random_rgb(), encoding)
    bridged = CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8")
    np.testing.assert_array_equal(image_to_rgb(msg, MAX_PIXELS), bridged if bridged.ndim == 3 else bridged[..., None])


@pytest.mark.skipif(importlib.util.find_spec("sensor_msgs_py") is None, reason="sensor_msgs_py needs a ROS 2 install")
def test_sensor_msgs_py_reads_our_cloud():
    from sensor_msgs_py import point_cloud2

    depth = np.full((3, 4), 2.0, np.float32)
    msg = PointCloudBuilder((3, 4), PinholeIntrinsics(2.0, 2.0, 1.5, 1.0), 1, with_rgb=False).build(depth, Header())
    xyz = point_cloud2.read_points_numpy(msg, field_names=("x", "y", "z"))
    np.testing.assert_allclose(xyz[:, 2], 2.0)
    np.testing.assert_allclose(xyz[:4, 0], (np.arange(4) - 1.5) / 2.0 * 2.0)


def test_throttled_log_reports_how_many_messages_it_held_back(monkeypatch):
    from dna_depth_ros import diagnostics

    clock = [100.0]
    monkeypatch.setattr(diagnostics.time, "monotonic", lambda: clock[0])
    lines = []
    log = diagnostics.ThrottledLog(lines.append, period=5.0)
    log("empty_image", "first")
    log("empty_image", "second")
    log("image_too_large", "other kind")
    clock[0] += 5.0
    log("empty_image", "third")
    assert lines == ["first", "other kind", "third (1 similar message(s) suppressed)"]
