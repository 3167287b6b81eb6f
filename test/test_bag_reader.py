"""Reading recorded bags: encodings, topic choice, calibration geometry, damaged and bad bags.

Bags are written in each test with rosbags (through :class:`CameraBagWriter`), in both
storage formats where the format matters.
"""

import os
import shutil
import warnings

import cv2
import numpy as np
import pytest

from dna_depth_core.data.camera.calibration import CameraCalibration
from dna_depth_core.data.camera.encodings import rgb8_to_encoding
from dna_depth_core.data.camera.preparation import plan_training_frames
from dna_depth_core.errors import UserError
from dna_depth_core.data.rosbag.reader import (
    DamagedBagWarning,
    RecordedBag,
    decode_image,
    header_stamp_ns,
    read_calibration,
    read_odometry,
    select_camera_topics,
)
from dna_depth_core.data.rosbag.sample_bag import CameraBagWriter

HEIGHT, WIDTH = 48, 64
K = np.array([[40.0, 0.0, 31.5], [0.0, 41.0, 23.5], [0.0, 0.0, 1.0]])
START = 1_700_000_000.0


def _rgb(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _messages(bag: RecordedBag, topic: str):
    return list(bag.messages([topic]))


def test_raw_encodings_decode_to_the_source_pixels(tmp_path):
    rgb = _rgb(0)
    wide = np.random.default_rng(1).integers(0, 65536, (HEIGHT, WIDTH, 3), dtype=np.uint16)
    alpha8 = np.full((HEIGHT, WIDTH, 1), 7, np.uint8)
    alpha16 = np.full((HEIGHT, WIDTH, 1), 700, np.uint16)
    grey = rgb[..., 0]
    grey16 = wide[..., 0]
    # topic: (pixels as stored, encoding, big-endian, row padding, expected RGB)
    cases = {
        "/rgb8": (rgb, "rgb8", False, 0, rgb),
        "/bgr8": (rgb[..., ::-1], "bgr8", False, 5, rgb),
        "/rgba8": (np.concatenate([rgb, alpha8], axis=2), "rgba8", False, 0, rgb),
        "/bgra8": (np.concatenate([rgb[..., ::-1], alpha8], axis=2), "bgra8", False, 3, rgb),
        "/mono8": (grey, "mono8", False, 4, np.repeat(grey[..., None], 3, axis=2)),
        "/rgb16": (wide, "rgb16", False, 0, (wide >> 8).astype(np.uint8)),
        "/rgb16_be": (wide, "rgb16", True, 2, (wide >> 8).astype(np.uint8)),
        "/bgr16": (wide[..., ::-1], "bgr16", False, 0, (wide >> 8).astype(np.uint8)),
        "/bgra16": (np.concatenate([wide[..., ::-1], alpha16], axis=2), "bgra16", True, 0, wide >> 8),
        "/mono16": (grey16, "mono16", True, 6, np.repeat((grey16 >> 8).astype(np.uint8)[..., None], 3, axis=2)),
    }
    with CameraBagWriter(tmp_path / "bag", "sqlite3") as writer:
        for topic, (pixels, encoding, big_endian, padding, _) in cases.items():
            writer.write_image(topic, START, pixels, encoding, is_bigendian=big_endian, row_padding=padding)
    bag = RecordedBag(tmp_path / "bag")
    for topic, (*_, expected) in cases.items():
        (message,) = _messages(bag, topic)
        decoded = decode_image(message)
        assert decoded.dtype == np.uint8 and decoded.shape == (HEIGHT, WIDTH, 3), topic
        np.testing.assert_array_equal(decoded, expected, err_msg=topic)


def test_compressed_png_is_exact_and_jpeg_close(tmp_path):
    # A smooth image so JPEG's error is small and meaningful.
    rgb = cv2.GaussianBlur(_rgb(2), (0, 0), 3).astype(np.uint8)
    with CameraBagWriter(tmp_path / "bag", "mcap") as writer:
        writer.write_compressed_image("/png/compressed", START, rgb, "png")
        writer.write_compressed_image("/jpeg/compressed", START, rgb, "jpeg")
    bag = RecordedBag(tmp_path / "bag")
    np.testing.assert_array_equal(decode_image(_messages(bag, "/png/compressed")[0]), rgb)
    jpeg = decode_image(_messages(bag, "/jpeg/compressed")[0]).astype(float)
    assert np.abs(jpeg - rgb).mean() < 3.0
    # Channel order survives (a BGR mix-up would swap the red and blue means).
    assert np.allclose(jpeg.mean(axis=(0, 1)), rgb.mean(axis=(0, 1)), atol=2.0)


def test_unsupported_encodings_are_user_errors(tmp_path):
    with CameraBagWriter(tmp_path / "bag", "sqlite3") as writer:
        writer.write_image("/depth", START, np.ones((HEIGHT, WIDTH), np.float32), "32FC1")
    (message,) = _messages(RecordedBag(tmp_path / "bag"), "/depth")
    with pytest.raises(UserError, match="32FC1.*--image-topic"):
        decode_image(message)


def _camera_bag(path, storage="sqlite3", cameras=("/camera",), compressed=False, depth=False, frames=3, info=True):
    with CameraBagWriter(path, storage) as writer:
        for index in range(frames):
            stamp = START + 0.1 * index
            for namespace in cameras:
                writer.write_image(f"{namespace}/image_raw", stamp, _rgb(index), "rgb8")
                if compressed:
                    writer.write_compressed_image(f"{namespace}/image_raw/compressed", stamp, _rgb(index))
                if info:
                    writer.write_camera_info(f"{namespace}/camera_info", stamp, HEIGHT, WIDTH, K)
            if depth:
                writer.write_image("/camera/depth_gt", stamp, np.ones((HEIGHT, WIDTH), np.float32), "32FC1")
    return RecordedBag(path)


def test_camera_topics_are_picked_when_unambiguous(tmp_path):
    bag = _camera_bag(tmp_path / "bag", compressed=True, depth=True)
    # Depth images are not camera images, and .../compressed is the same stream as the raw topic.
    topics = select_camera_topics(bag)
    assert (topics.image, topics.camera_info) == ("/camera/image_raw", "/camera/camera_info")
    compressed = select_camera_topics(bag, image_topic="/camera/image_raw/compressed")
    assert compressed.camera_info == "/camera/camera_info"


def test_a_bayer_image_raw_is_read_unless_image_proc_colour_is_beside_it(tmp_path):
    """A machine-vision driver records its Bayer mosaic as image_raw; image_proc's debayered
    image_color beside it is the same camera in full colour."""
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rgb[:] = (200, 40, 30)
    with CameraBagWriter(tmp_path / "raw_only", "sqlite3") as writer:
        writer.write_image("/camera/image_raw", START, rgb8_to_encoding(rgb, "bayer_grbg8"), "bayer_grbg8")
        writer.write_camera_info("/camera/camera_info", START, HEIGHT, WIDTH, K)
    bag = RecordedBag(tmp_path / "raw_only")
    assert select_camera_topics(bag).image == "/camera/image_raw"
    decoded = decode_image(_messages(bag, "/camera/image_raw")[0])
    assert np.abs(decoded[2:-2, 2:-2].astype(int) - (200, 40, 30)).max() <= 3  # red stays red

    with CameraBagWriter(tmp_path / "with_colour", "sqlite3") as writer:
        writer.write_image("/camera/image_raw", START, rgb8_to_encoding(rgb, "bayer_grbg8"), "bayer_grbg8")
        writer.write_image("/camera/image_color", START, rgb, "rgb8")
        writer.write_image("/usb_cam/image_raw", START, rgb8_to_encoding(rgb, "yuv422_yuy2"), "yuv422_yuy2")
        writer.write_camera_info("/camera/camera_info", START, HEIGHT, WIDTH, K)
    with pytest.raises(UserError, match="--image-topic") as error:
        select_camera_topics(RecordedBag(tmp_path / "with_colour"))
    # Two cameras remain: the Bayer stream is left out for its colour sibling, the lone YUV one stays.
    assert "several camera image topics: /camera/image_color, /usb_cam/image_raw;" in str(error.value)


def test_ambiguous_topics_ask_for_the_options_with_candidates(tmp_path):
    bag = _camera_bag(tmp_path / "bag", cameras=("/left", "/right"))
    with pytest.raises(UserError, match="--image-topic") as error:
        select_camera_topics(bag)
    assert "/left/image_raw" in str(error.value) and "/right/image_raw" in str(error.value)
    # With the image chosen, its sibling camera info is found.
    assert select_camera_topics(bag, image_topic="/right/image_raw").camera_info == "/right/camera_info"

    with CameraBagWriter(tmp_path / "two_infos", "sqlite3") as writer:
        writer.write_image("/cam/image", START, _rgb(0), "rgb8")
        for name in ("/calib_a/info", "/calib_b/info"):
            writer.write_camera_info(name, START, HEIGHT, WIDTH, K)
    with pytest.raises(UserError, match="--camera-info-topic") as error:
        select_camera_topics(RecordedBag(tmp_path / "two_infos"))
    assert "/calib_a/info" in str(error.value) and "/calib_b/info" in str(error.value)


def _blob_image(height, width, centre, sigma=2.0):
    rows, columns = np.mgrid[0:height, 0:width]
    blob = 250 * np.exp(-((columns - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * sigma**2))
    return np.repeat(blob.astype(np.uint8)[..., None], 3, axis=2)


def _centroid(image):
    weights = image[..., 0].astype(float)
    weights[weights < 20] = 0
    rows, columns = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    return np.array([(weights * columns).sum(), (weights * rows).sum()]) / weights.sum()


def _calibration(height, width, camera_matrix, model="plumb_bob", distortion=None):
    return CameraCalibration(
        height=height, width=width, camera_matrix=camera_matrix, distortion_model=model,
        distortion=np.zeros(5) if distortion is None else np.asarray(distortion, float),
    )


@pytest.mark.parametrize("raw_size", [(480, 640), (400, 1000)], ids=["crop-height", "crop-width"])
def test_intrinsics_follow_the_crop_and_resize(raw_size):
    height, width = raw_size
    camera_matrix = np.array([[520.0, 0.0, width / 2 - 0.5], [0.0, 515.0, height / 2 + 10.3], [0.0, 0.0, 1.0]])
    geometry = plan_training_frames(raw_size, (64, 96), _calibration(height, width, camera_matrix))
    x0, y0, crop_width, crop_height = geometry.crop_box
    assert crop_width * 64 == pytest.approx(crop_height * 96, abs=96)  # target aspect ratio
    assert (x0 == 0) != (y0 == 0) and (width - crop_width) // 2 == x0 and (height - crop_height) // 2 == y0
    # A centred principal point stays at the centre of the training frame.
    assert geometry.network_intrinsics[0, 2] == pytest.approx(47.5)
    # A scene point imaged as a blob lands where the new intrinsics project it.
    for point in ([0.3, -0.2, 4.0], [-0.5, 0.25, 3.0]):
        raw_pixel = (camera_matrix @ point)[:2] / point[2]
        frame = geometry.apply(_blob_image(height, width, raw_pixel, sigma=4.0))
        expected = (geometry.network_intrinsics @ np.asarray(point, np.float32))[:2] / point[2]
        np.testing.assert_allclose(_centroid(frame), expected, atol=0.15)


@pytest.mark.parametrize(
    "model,distortion",
    [("plumb_bob", [-0.35, 0.12, 0.001, -0.002, 0.0]), ("equidistant", [0.2, -0.05, 0.01, 0.0])],
)
def test_undistortion_moves_pixels_to_their_pinhole_place(model, distortion):
    height, width = 240, 360
    camera_matrix = np.array([[300.0, 0.0, 179.5], [0.0, 300.0, 119.5], [0.0, 0.0, 1.0]])
    calibration = _calibration(height, width, camera_matrix, model, distortion)
    assert calibration.is_distorted
    point = np.array([[[0.9, 0.5, 2.0]]])
    project = cv2.fisheye.projectPoints if model == "equidistant" else cv2.projectPoints
    raw_pixel = project(point, np.zeros(3), np.zeros(3), camera_matrix, np.array(distortion))[0][0, 0]
    image = _blob_image(height, width, raw_pixel)
    undistorted = plan_training_frames((height, width), (64, 96), calibration)
    kept = plan_training_frames((height, width), (64, 96), calibration, image_rectified=True)
    assert undistorted.rectify_maps is not None and kept.rectify_maps is None
    pinhole = (undistorted.network_intrinsics @ point[0, 0].astype(np.float32))[:2] / point[0, 0, 2]
    assert np.abs(_centroid(undistorted.apply(image)) - pinhole).max() < 0.3
    # Without undistortion the blob stays visibly off the pinhole position.
    assert np.abs(_centroid(kept.apply(image)) - pinhole).max() > 1.0
    # Zero distortion: nothing to undo.
    plain = plan_training_frames((height, width), (64, 96), _calibration(height, width, camera_matrix))
    assert plain.rectify_maps is None


def test_calibration_and_odometry_are_read(tmp_path):
    with CameraBagWriter(tmp_path / "bag", "mcap") as writer:
        writer.write_camera_info("/info", START, 0, 0, np.zeros((3, 3)))  # an uncalibrated first message
        writer.write_camera_info("/info", START + 0.1, HEIGHT, WIDTH, K, distortion=[0.1, 0, 0, 0, 0])
        for index in range(4):
            writer.write_odometry("/odom", START + 0.1 * index, [0.5 * index, 0, 0], [0, 0, 0, 1], [5, 0, 0], [0, 0, 0])
    bag = RecordedBag(tmp_path / "bag")
    calibration = read_calibration(bag, "/info")
    np.testing.assert_allclose(calibration.camera_matrix, K)
    assert calibration.is_distorted
    odometry = read_odometry(bag, "/odom")
    np.testing.assert_allclose(odometry.times - START, [0, 0.1, 0.2, 0.3], atol=1e-6)
    np.testing.assert_allclose(odometry.distance(START + 0.05, START + 0.25), 1.0, atol=1e-6)
    assert np.isnan(odometry.distance(START - 1.0, START))


@pytest.mark.parametrize("storage,suffix", [("sqlite3", ".db3"), ("mcap", ".mcap")])
def test_truncated_bag_is_read_up_to_the_damage(tmp_path, storage, suffix):
    frames = 30
    _camera_bag(tmp_path / "bag", storage, frames=frames)
    (storage_file,) = (tmp_path / "bag").glob(f"*{suffix}")
    os.truncate(storage_file, int(storage_file.stat().st_size * 0.6))
    with pytest.warns(DamagedBagWarning, match="damage"):
        bag = RecordedBag(tmp_path / "bag")
    messages = _messages(bag, "/camera/image_raw")
    assert 5 <= len(messages) < frames
    # Every surviving frame is intact and they are the first ones recorded.
    for index, message in enumerate(messages):
        assert abs(header_stamp_ns(message.data) / 1e9 - (START + 0.1 * index)) < 1e-6
        np.testing.assert_array_equal(decode_image(message), _rgb(index))


def test_unclosed_recording_without_metadata_is_read(tmp_path):
    _camera_bag(tmp_path / "bag", "mcap", frames=5)
    (tmp_path / "bag" / "metadata.yaml").unlink()
    with pytest.warns(DamagedBagWarning, match="metadata.yaml"):
        bag = RecordedBag(tmp_path / "bag")
    assert len(_messages(bag, "/camera/image_raw")) == 5


@pytest.mark.parametrize("suffix", [".db3", ".mcap"])
def test_corrupted_or_missing_bags_are_user_errors(tmp_path, suffix):
    with pytest.raises(UserError, match="does not exist"):
        RecordedBag(tmp_path / "missing")
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with warnings.catch_warnings(), pytest.raises(UserError, match="not a readable ROS 2 bag"):
        warnings.simplefilter("ignore", DamagedBagWarning)
        RecordedBag(garbage)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no bag here")
    with pytest.raises(UserError, match="no .db3 or .mcap"):
        RecordedBag(tmp_path / "notes")


def test_missing_topics_and_uncalibrated_cameras_are_user_errors(tmp_path):
    bag = _camera_bag(tmp_path / "bag")
    with pytest.raises(UserError, match="--image-topic.*/camera/image_raw"):
        select_camera_topics(bag, image_topic="/front/image_raw")
    with pytest.raises(UserError, match="--camera-info-topic"):
        select_camera_topics(bag, camera_info_topic="/camera/image_raw")
    with pytest.raises(UserError, match="--odom-topic.*has none"):
        read_odometry(bag, "/odom")

    no_info = _camera_bag(tmp_path / "no_info", info=False)
    with pytest.raises(UserError, match="no sensor_msgs/CameraInfo"):
        select_camera_topics(no_info)

    with CameraBagWriter(tmp_path / "uncalibrated", "sqlite3") as writer:
        writer.write_image("/camera/image_raw", START, _rgb(0), "rgb8")
        writer.write_camera_info("/camera/camera_info", START, HEIGHT, WIDTH, np.zeros((3, 3)))
    with pytest.raises(UserError, match="not calibrated"):
        read_calibration(RecordedBag(tmp_path / "uncalibrated"), "/camera/camera_info")


def test_storage_file_given_directly(tmp_path):
    _camera_bag(tmp_path / "bag", "mcap", frames=2)
    (storage_file,) = (tmp_path / "bag").glob("*.mcap")
    moved = shutil.copy(storage_file, tmp_path / "drive.mcap")
    bag = RecordedBag(moved)
    assert len(_messages(bag, "/camera/image_raw")) == 2
    assert bag.identity()[0][0] == str((tmp_path / "drive.mcap").resolve())
