"""The preparation contract's core (no ROS): encodings, calibration files and policy, frame plans."""

import json
import math

import cv2
import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from dna_depth_core.checkpoint import METADATA_KEY, ModelMetadata, read_metadata, save_checkpoint
from dna_depth_core.data.camera.calibration import CalibrationError, CalibrationMismatchError, CameraCalibration
from dna_depth_core.data.camera.encodings import (
    ENCODINGS,
    ImageDecodeError,
    compressed_to_rgb8,
    raw_to_rgb8,
    rgb8_to_encoding,
)
from dna_depth_core.data.camera.network_size import pick_network_size
from dna_depth_core.data.camera.preparation import (
    FramePreparation,
    _pyramid_step,
    is_rectified_topic,
    plan_for_checkpoint,
    plan_training_frames,
)
from dna_depth_core.losses import SelfSupervisedLossConfig, self_supervised_loss
from dna_depth_core.networks import create_depth_net

K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])


def _rgb(height=6, width=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _raw(pixels, encoding, padding=0, big_endian=False):
    """``(step, data)`` of ``pixels`` (already in ``encoding``) as a driver would send them."""
    values = pixels.astype(pixels.dtype.newbyteorder(">" if big_endian else "<"))
    rows = values.reshape(pixels.shape[0], -1).view(np.uint8)
    rows = np.hstack([rows, np.full((rows.shape[0], padding), 0xAB, np.uint8)])
    return rows.shape[1], rows.tobytes()


# ---------------------------------------------------------------- encodings


EXACT_ENCODINGS = sorted(name for name, layout in ENCODINGS.items() if not layout.subsampled)
SUBSAMPLED_ENCODINGS = sorted(name for name, layout in ENCODINGS.items() if layout.subsampled)


@pytest.mark.parametrize("encoding", EXACT_ENCODINGS)
@pytest.mark.parametrize("big_endian", [False, True])
def test_every_encoding_round_trips_through_its_pixels(encoding, big_endian):
    rgb = _rgb()
    pixels = rgb8_to_encoding(rgb, encoding)
    step, data = _raw(pixels, encoding, padding=3, big_endian=big_endian)
    decoded = raw_to_rgb8(encoding, 6, 8, step, big_endian, data)
    expected = rgb if not encoding.startswith("mono") else cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
                                                                        cv2.COLOR_GRAY2RGB)
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize("encoding", SUBSAMPLED_ENCODINGS)
def test_bayer_and_yuv_decode_to_the_colours_the_camera_saw(encoding):
    """Uniform patches come back in their own colour (a swapped Bayer pattern or chroma
    order would turn red into blue), smooth images within a few grey levels."""
    height, width = 24, 32
    patches = np.zeros((height, width, 3), np.uint8)
    colours = [(220, 40, 30), (30, 200, 60), (40, 50, 210), (128, 128, 128)]
    for index, colour in enumerate(colours):
        patches[:, index * 8 : index * 8 + 8] = colour
    rows, columns = np.mgrid[0:height, 0:width]
    smooth = np.stack([columns * 6, rows * 8, 255 - columns * 4 - rows * 3], axis=2).astype(np.uint8)
    for rgb, tolerance in ((patches, 3), (smooth, 6)):
        pixels = rgb8_to_encoding(rgb, encoding)
        step, data = _raw(pixels, encoding, padding=4)
        decoded = raw_to_rgb8(encoding, height, width, step, False, data)
        assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
        if rgb is patches:  # away from the patch edges, where demosaicing mixes neighbours
            inner = [decoded[2:-2, index * 8 + 2 : index * 8 + 6] for index in range(len(colours))]
            for patch, colour in zip(inner, colours):
                assert np.abs(patch.astype(int) - colour).max() <= tolerance, (encoding, colour, patch[0, 0])
        else:
            assert np.abs(decoded[2:-2, 2:-2].astype(int) - rgb[2:-2, 2:-2]).max() <= tolerance, encoding


def test_yuv_422_needs_an_even_width():
    with pytest.raises(ImageDecodeError, match="odd") as error:
        raw_to_rgb8("yuv422_yuy2", 2, 5, 10, False, bytes(20))
    assert error.value.kind == "invalid_step"


def test_16_bit_keeps_the_high_byte_and_rgb8_is_a_view():
    wide = np.random.default_rng(1).integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    step, data = _raw(wide, "bgr16", big_endian=True)
    np.testing.assert_array_equal(raw_to_rgb8("bgr16", 4, 5, step, True, data), (wide[..., ::-1] >> 8))
    buffer = np.frombuffer(_rgb(4, 5).tobytes(), np.uint8)
    assert np.shares_memory(raw_to_rgb8("rgb8", 4, 5, 15, False, buffer), buffer)


@pytest.mark.parametrize(
    "fields, kind",
    [
        (dict(encoding="nv21"), "unsupported_encoding"),
        (dict(encoding="32FC1"), "unsupported_encoding"),
        (dict(height=0), "empty_image"),
        (dict(step=10), "invalid_step"),
        (dict(height=7), "data_size_mismatch"),
        (dict(max_pixels=47), "image_too_large"),
    ],
)
def test_bad_raw_images_fail_by_kind(fields, kind):
    arguments = dict(encoding="rgb8", height=6, width=8, step=24, is_bigendian=False, data=_rgb().tobytes())
    arguments.update(fields)
    with pytest.raises(ImageDecodeError) as error:
        raw_to_rgb8(**arguments)
    assert error.value.kind == kind


def test_compressed_images_decode_and_depth_or_garbage_is_rejected():
    rgb = _rgb(16, 24)
    png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1]
    np.testing.assert_array_equal(compressed_to_rgb8("rgb8; png compressed bgr8", png), rgb)
    np.testing.assert_array_equal(compressed_to_rgb8("", png), rgb)  # decoded by content
    for image_format, data, kind in [("16UC1; compressedDepth png", png, "unsupported_encoding"),
                                     ("jpeg", b"\xff\xd8 not a jpeg", "undecodable_image"),
                                     ("jpeg", b"", "empty_image")]:
        with pytest.raises(ImageDecodeError) as error:
            compressed_to_rgb8(image_format, data)
        assert error.value.kind == kind
    with pytest.raises(ImageDecodeError) as error:
        compressed_to_rgb8("png", png, max_pixels=100)
    assert error.value.kind == "image_too_large"


# ---------------------------------------------------------------- calibration


def _calibration_yaml(path, **changes):
    content = {
        "image_width": 640,
        "image_height": 480,
        "camera_name": "front",
        "camera_matrix": {"rows": 3, "cols": 3, "data": K.reshape(-1).tolist()},
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": [-0.3, 0.1, 0.001, -0.002, 0.0]},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": np.eye(3).reshape(-1).tolist()},
        "projection_matrix": {"rows": 3, "cols": 4,
                              "data": [450.0, 0, 320, 0, 0, 455.0, 240, 0, 0, 0, 1, 0]},
    }
    content.update(changes)
    content = {key: value for key, value in content.items() if value is not None}
    path.write_text(yaml.safe_dump(content))
    return path


def test_calibration_yaml_is_read_as_camera_calibration_writes_it(tmp_path):
    calibration = CameraCalibration.from_yaml(_calibration_yaml(tmp_path / "front.yaml"))
    assert (calibration.width, calibration.height, calibration.image_size) == (640, 480, (480, 640))
    np.testing.assert_array_equal(calibration.camera_matrix, K)
    np.testing.assert_allclose(calibration.projection[:, :3], [[450, 0, 320], [0, 455, 240], [0, 0, 1]])
    assert calibration.is_distorted and "front" in calibration.source
    minimal = CameraCalibration.from_yaml(_calibration_yaml(
        tmp_path / "minimal.yaml", distortion_model=None, distortion_coefficients=None, rectification_matrix=None,
        projection_matrix=None, camera_name=None))
    assert not minimal.is_distorted
    np.testing.assert_array_equal(minimal.projection, np.hstack([K, np.zeros((3, 1))]))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(image_width=None), "image_width must be a positive integer"),
        (dict(camera_matrix=None), "has no camera_matrix"),
        (dict(camera_matrix={"rows": 3, "cols": 3, "data": [1, 2, 3]}), "3x3 but its data has 3 numbers"),
        (dict(projection_matrix={"rows": 3, "cols": 3, "data": K.reshape(-1).tolist()}), "must have 12 numbers"),
        (dict(camera_matrix={"rows": 3, "cols": 3, "data": ["a"] * 9}), "list of numbers"),
        (dict(camera_matrix={"rows": 3, "cols": 3, "data": [0] * 9}, projection_matrix=None), "not calibrated"),
        (dict(distortion_model="kannala_brandt"), "cannot be undone here"),
        (dict(distortion_coefficients={"rows": 1, "cols": 3, "data": [0.1, 0, 0]}), "3 plumb_bob distortion"),
    ],
)
def test_bad_calibration_files_are_one_clear_error(tmp_path, changes, message):
    with pytest.raises(CalibrationError, match=message) as error:
        CameraCalibration.from_yaml(_calibration_yaml(tmp_path / "bad.yaml", **changes))
    assert "\n" not in str(error.value) and "bad.yaml" in str(error.value)


def test_unreadable_calibration_files_are_one_clear_error(tmp_path):
    with pytest.raises(CalibrationError, match="cannot read"):
        CameraCalibration.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("image_width: [640\n  camera_matrix: {")
    with pytest.raises(CalibrationError, match="not valid YAML") as error:
        CameraCalibration.from_yaml(tmp_path / "broken.yaml")
    assert "\n" not in str(error.value)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(CalibrationError, match="must be a mapping"):
        CameraCalibration.from_yaml(tmp_path / "list.yaml")


def test_binning_and_roi_map_the_calibration_onto_the_published_image():
    calibration = CameraCalibration(640, 480, K, binning_x=2, binning_y=2, roi=(100, 40, 400, 300))
    assert calibration.image_size == (150, 200)
    plan = plan_for_checkpoint(FramePreparation(crop="centre"), (150, 200), (150, 200), calibration)
    # Full-resolution pixel U is image pixel (U - offset - 0.5) / 2: f / 2, (c - offset - 0.5) / 2.
    np.testing.assert_allclose(plan.camera_projection[:, :3], [[250, 0, 109.5], [0, 250, 99.5], [0, 0, 1]])
    with pytest.raises(CalibrationMismatchError, match="200x150 images after binning/ROI"):
        calibration.check_image_size((480, 640))
    assert CameraCalibration(0, 0, K).image_size is None  # unset: any size is accepted


def test_rectification_with_binning_matches_the_full_resolution_result_binned():
    """One policy: rectifying a binned image equals rectifying the full frame, then binning."""
    distortion = [-0.3, 0.1, 0.0, 0.0, 0.0]
    full = CameraCalibration(640, 480, K, distortion=distortion)
    binned = CameraCalibration(640, 480, K, distortion=distortion, binning_x=2, binning_y=2)
    rows, columns = np.mgrid[0:480, 0:640]
    image = (128 + 100 * np.sin(columns / 23.0) * np.cos(rows / 17.0)).astype(np.uint8)
    image = np.repeat(image[..., None], 3, axis=2)
    preparation = FramePreparation(crop="centre")
    full_pinhole = plan_for_checkpoint(preparation, (480, 640), (480, 640), full).rectify(image)
    small = cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA)
    binned_pinhole = plan_for_checkpoint(preparation, (240, 320), (240, 320), binned).rectify(small)
    expected = cv2.resize(full_pinhole, (320, 240), interpolation=cv2.INTER_AREA)
    inside = (slice(20, -20), slice(20, -20))  # away from the black border the remap leaves
    assert np.abs(binned_pinhole[inside].astype(int) - expected[inside]).mean() < 2.0


@pytest.mark.parametrize(
    "k, p", [(np.zeros(9), np.zeros(12)), ([0.0, 0, 320, 0, 410, 240, 0, 0, 1], None), ([float("nan")] * 9, None)]
)
def test_camera_info_without_usable_focal_length_is_an_error(k, p):
    with pytest.raises(CalibrationError, match="not calibrated|no usable intrinsics"):
        CameraCalibration(640, 480, k, projection=p)


# ---------------------------------------------------------------- plans


def _blob(height, width, centre, sigma=4.0):
    rows, columns = np.mgrid[0:height, 0:width]
    blob = 250 * np.exp(-((columns - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * sigma**2))
    return np.repeat(blob.astype(np.uint8)[..., None], 3, axis=2)


def _centroid(image):
    weights = image[..., 0].astype(float)
    weights[weights < 20] = 0
    rows, columns = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    return np.array([(weights * columns).sum(), (weights * rows).sum()]) / weights.sum()


@pytest.mark.parametrize("model, distortion", [("plumb_bob", [-0.35, 0.12, 0.001, -0.002, 0.0]),
                                               ("rational_polynomial", [-0.3, 0.1, 0, 0, 0, 0.01, 0.0, 0.0]),
                                               ("equidistant", [0.2, -0.05, 0.01, 0.0])])
def test_a_scene_point_lands_where_the_network_intrinsics_project_it(model, distortion):
    calibration = CameraCalibration(640, 480, K, distortion_model=model, distortion=distortion)
    plan = plan_training_frames((480, 640), (288, 384), calibration)
    assert plan.rectify_maps is not None
    project = cv2.fisheye.projectPoints if model == "equidistant" else cv2.projectPoints
    for point in ([0.4, -0.3, 2.0], [-0.6, 0.2, 3.0]):
        raw = project(np.array([[point]]), np.zeros(3), np.zeros(3), K, np.array(distortion))[0][0, 0]
        network_image = plan.apply(_blob(480, 640, raw))
        expected = (plan.network_intrinsics @ np.asarray(point, np.float32))[:2] / point[2]
        np.testing.assert_allclose(_centroid(network_image), expected, atol=0.3)


def _fine_texture(height, width):
    """uint8 RGB noise with detail down to a couple of camera pixels (standard deviation ~55
    grey levels): what aliasing or blurring shows on first."""
    noise = np.random.default_rng(0).normal(0.0, 1.0, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.5) * 300 + 128, 0, 255).astype(np.uint8)


def _sharpness(image):
    return np.abs(np.diff(image.astype(np.float32), axis=1)).mean()


@pytest.mark.parametrize("distortion", [[-0.28, 0.07, 8e-4, -5e-4, 0.0], [0.0] * 5], ids=["wide-angle", "pinhole"])
@pytest.mark.parametrize("image_size, network_size", [((480, 640), (160, 224)), ((480, 640), (288, 384)),
                                                       ((720, 1280), (160, 224)), ((720, 1280), (288, 384)),
                                                       ((1080, 1920), (160, 224))])
def test_one_resampling_gives_what_remapping_then_area_resizing_gives(image_size, network_size, distortion):
    """apply() filters and samples once, at the network size; on finely textured frames it
    must agree with rectifying the whole image and area-resizing the crop, and be as sharp
    (neither aliased nor blurred)."""
    height, width = image_size
    camera = np.array([[width / 2, 0, width / 2 - 0.5], [0, width / 2, height / 2 - 0.5], [0, 0, 1]])
    plan = plan_training_frames(image_size, network_size, CameraCalibration(width, height, camera,
                                                                            distortion=distortion))
    image = _fine_texture(height, width)
    x0, y0, crop_width, crop_height = plan.crop_box
    reference = cv2.resize(plan.rectify(image)[y0 : y0 + crop_height, x0 : x0 + crop_width], network_size[::-1],
                           interpolation=cv2.INTER_AREA)
    network = plan.apply(image)
    assert np.abs(network.astype(np.float32) - reference).mean() < 0.1 * image.std()
    assert 0.9 < _sharpness(network) / _sharpness(reference) < 1.1


@pytest.mark.parametrize("image_size, network_size", [((480, 640), (160, 224)), ((720, 1280), (288, 384)),
                                                       ((1080, 1920), (160, 224))])
def test_filtering_only_the_window_the_samples_read_changes_nothing(image_size, network_size):
    """apply() filters only the part of the frame its samples reach (plus the filters' reach);
    that must give exactly what filtering the whole frame gives (even boxes and pyramid
    steps included)."""
    height, width = image_size
    camera = np.array([[width / 2, 0, width / 2 - 0.5], [0, width / 2, height / 2 - 0.5], [0, 0, 1]])
    plan = plan_training_frames(image_size, network_size, CameraCalibration(width, height, camera,
                                                                            distortion=[-0.28, 0.07, 0, 0, 0]))
    levels, box, window, map_x, map_y = plan._network_sampling[1:]
    assert window != (slice(0, height), slice(0, width))  # the lens leaves part of the frame unread
    image = _fine_texture(height, width)
    whole = image
    for _ in range(levels):
        whole = _pyramid_step(whole)
    whole = cv2.blur(whole, box) if box != (1, 1) else whole
    # The maps are relative to the window's corner, which lies on the last level's grid: they
    # sample the filtered whole frame from there on (the same coordinates, so the same weights).
    offset_y, offset_x = (part.start // 2**levels for part in window)
    assert all(part.start % 2**levels == 0 for part in window)
    expected = cv2.remap(whole[offset_y:, offset_x:], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    np.testing.assert_array_equal(plan.apply(image), expected)


def test_already_rectified_images_are_not_remapped_and_use_p():
    calibration = CameraCalibration(640, 480, K, distortion=[-0.3, 0.1, 0, 0, 0],
                                    projection=[450.0, 0, 320, 0, 0, 455, 240, 0, 0, 0, 1, 0])
    plan = plan_training_frames((480, 640), (288, 384), calibration, image_rectified=True)
    assert plan.rectify_maps is None
    np.testing.assert_allclose(plan.camera_projection[:, :3], [[450, 0, 320], [0, 455, 240], [0, 0, 1]])
    raw_trained = plan_for_checkpoint(FramePreparation(rectified=False), (288, 384), (480, 640), calibration)
    assert raw_trained.rectify_maps is None
    np.testing.assert_allclose(raw_trained.camera_projection[:, :3], K)


def test_crop_keeps_the_centre_and_the_way_back_is_nan_outside():
    calibration = CameraCalibration(640, 480, K)
    plan = plan_for_checkpoint(FramePreparation(crop="centre", fx=500 / 640, fy=500 / 213.33), (192, 640),
                               (480, 640), calibration)
    assert plan.crop_box == (0, 144, 640, 192)
    image = _rgb(480, 640)
    np.testing.assert_array_equal(plan.apply(image), image[144:336])  # same size: no resampling
    depth = np.arange(192 * 640, dtype=np.float32).reshape(192, 640)
    back = plan.to_image(depth)
    assert back.shape == (480, 640)
    assert np.isnan(back[:144]).all() and np.isnan(back[336:]).all()
    np.testing.assert_array_equal(back[144:336], depth)
    # The camera matrix at the network input is the camera's shifted by the crop.
    np.testing.assert_allclose(plan.network_intrinsics, [[500, 0, 319.5], [0, 500, 95.5], [0, 0, 1]])


def _wide_angle_calibration():
    """A barrel-distorted lens whose P keeps the whole raw view (as ``cv2.getOptimalNewCameraMatrix``
    with alpha 1 makes it): the rectified image has black corners with no raw pixel behind them."""
    return CameraCalibration(640, 480, K, distortion=[-0.35, 0.12, 0.001, -0.002, 0.0],
                             projection=[380.0, 0, 319.5, 0, 0, 380.0, 239.5, 0, 0, 0, 1, 0])


def test_the_rectification_border_is_nan_on_the_way_back():
    calibration = _wide_angle_calibration()
    plan = plan_for_checkpoint(FramePreparation(crop="centre", fx=380 / 480, fy=380 / 360), (288, 384),
                               (480, 640), calibration)
    rectified_white = plan.rectify(np.full((480, 640, 3), 255, np.uint8))[..., 0]
    back = plan.to_image(np.ones((288, 384), np.float32))
    # Black and half-black (blended with the border) pixels are NaN; the others keep their depth
    # (but for a few on the border's edge that cv2.remap's 1/32-pixel rounding makes white).
    border = rectified_white < 255
    assert border.sum() > 1000
    assert np.isnan(back[border]).all()
    assert np.isnan(back[~border]).sum() <= 0.001 * border.sum() and (back[np.isfinite(back)] == 1).all()
    # At the network size, the mask marks the same border.
    network_white = plan.apply(np.full((480, 640, 3), 255, np.uint8))[..., 0]
    assert not plan.network_mask[network_white < 255].any()
    assert (~plan.network_mask[network_white == 255]).sum() <= 0.01 * (network_white < 255).sum()
    # ... and network-size maps (the node's output_resolution network) are NaN on it.
    masked = plan.mask_border(np.ones((288, 384), np.float32))
    np.testing.assert_array_equal(np.isnan(masked), ~plan.network_mask)
    # Without distortion no pixel is lost.
    assert plan_training_frames((480, 640), (288, 384), CameraCalibration(640, 480, K)).source_mask is None


def test_the_way_back_picks_the_nearest_network_pixel_in_one_remap():
    # Wider than the network (a crop) and enlarged by 1.67 with a border: what cv2.resize's
    # nearest neighbour gives inside the view, NaN (uint8: black) outside it and on the border.
    plan = plan_for_checkpoint(FramePreparation(crop="centre", fx=380 / 480, fy=380 / 360), (288, 384),
                               (480, 720), CameraCalibration(720, 480, K, distortion=[-0.35, 0.12, 0.001, -0.002, 0.0],
                                                             projection=[380.0, 0, 359.5, 0, 0, 380.0, 239.5, 0, 0, 0,
                                                                         1, 0]))
    x0, y0, crop_width, crop_height = plan.crop_box
    assert (x0, crop_width) == (40, 640) and plan.source_mask is not None
    depth = np.random.default_rng(1).uniform(1, 9, (288, 384)).astype(np.float32)
    expected = np.full((480, 720), np.nan, np.float32)
    expected[:, 40:680] = cv2.resize(depth, (640, 480), interpolation=cv2.INTER_NEAREST)
    expected[~plan.source_mask] = np.nan
    out = np.empty((480, 720), np.float32)
    assert plan.to_image(depth, out=out) is out
    np.testing.assert_array_equal(out, expected)
    colours = _rgb(288, 384)
    coloured = plan.to_image(colours)
    assert coloured.dtype == np.uint8 and coloured.shape == (480, 720, 3)
    np.testing.assert_array_equal(coloured[np.isnan(expected)], 0)
    np.testing.assert_array_equal(coloured[:, 40:680][plan.source_mask[:, 40:680]],
                                  cv2.resize(colours, (640, 480), interpolation=cv2.INTER_NEAREST)[
                                      plan.source_mask[:, 40:680]])
    # The network pixels that reach the image: their statistics are the image's.
    assert plan.shown_mask is not None and not plan.shown_mask.all()
    assert depth[plan.shown_mask].min() == np.nanmin(out) and depth[plan.shown_mask].max() == np.nanmax(out)
    with pytest.raises(ValueError, match="out must be"):
        plan.to_image(depth, out=np.empty((480, 720), np.float64))


def test_the_training_loss_ignores_the_rectification_border():
    """The decision documented in dna_depth_core.data.camera.preparation: auto-masking gives
    the black corners no photometric loss and their depth no gradient, so the loss needs
    no mask of its own."""
    calibration = _wide_angle_calibration()
    plan = plan_training_frames((480, 640), (96, 128), calibration)
    triplet = np.stack([plan.apply(cv2.GaussianBlur(_rgb(480, 640, seed), (0, 0), 6)) for seed in range(3)])
    frames = torch.from_numpy(triplet).permute(0, 3, 1, 2).float().div(255)[None]
    disparity = torch.full((1, 1, 96, 128), 0.3, requires_grad=True)
    moves = []
    for shift in (-0.05, 0.05):
        move = torch.eye(4)[None].clone()
        move[0, 0, 3] = shift
        moves.append(move)
    intrinsics = torch.from_numpy(plan.network_intrinsics)[None]
    output = self_supervised_loss([disparity], frames, moves, intrinsics, SelfSupervisedLossConfig())
    output.photometric.backward()
    # Away from the two-pixel rim on the border's edge: SSIM's 3x3 windows straddle it there,
    # and a rim pixel the auto-mask keeps sees its neighbours' warped colours.
    border = cv2.erode((~plan.network_mask).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert border.sum() > 100
    assert not output.automask[0, 0].numpy()[border].any()
    gradient = disparity.grad[0, 0].abs().numpy()
    assert (gradient[border] == 0).all() and gradient[plan.network_mask].max() > 0


def test_resize_policy_keeps_nearly_matching_images_whole_and_crops_the_others():
    kitti = plan_for_checkpoint(FramePreparation(), (192, 640), (375, 1242))
    assert kitti.crop_box == (0, 0, 1242, 375) and kitti.notice is None
    square = plan_for_checkpoint(FramePreparation(), (192, 640), (600, 600))
    assert square.crop_box == (0, 210, 600, 180) and "600x180 pixels" in square.notice


def test_one_notice_says_what_is_done_about_aspect_and_focal_length():
    preparation = FramePreparation(crop="centre", fx=0.58, fy=1.92)
    calibration = CameraCalibration(640, 480, K)
    plan = plan_for_checkpoint(preparation, (192, 640), (480, 640), calibration)
    expected = math.sqrt((500 / 640 / 0.58) * (500 / 192 / 1.92))
    assert plan.depth_factor == pytest.approx(expected)
    assert "central 640x192 pixels (40% of the image" in plan.notice
    assert f"depth is multiplied by {expected:.3g}" in plan.notice
    off = plan_for_checkpoint(preparation, (192, 640), (480, 640), calibration, focal_rescale=False)
    assert off.depth_factor == 1.0 and "NOT rescaled" in off.notice
    # The training camera itself: nothing to say, nothing to rescale.
    matching = FramePreparation(crop="centre", fx=500 / 640, fy=500 / 480, cx=319.5 / 640, cy=239.5 / 480)
    plan = plan_for_checkpoint(matching, (480, 640), (480, 640), calibration)
    assert plan.notice is None and plan.depth_factor == pytest.approx(1.0)
    # Unknown intrinsics: crop only, no factor.
    assert plan_for_checkpoint(matching, (480, 640), (480, 640)).depth_factor == 1.0


def test_the_record_of_a_training_plan_reproduces_its_intrinsics():
    calibration = CameraCalibration(1280, 720, [[900.0, 0, 640.5], [0, 905.0, 359.0], [0, 0, 1]])
    network_size = pick_network_size((720, 1280))
    plan = plan_training_frames((720, 1280), network_size, calibration)
    record = plan.record()
    assert record.crop == "centre" and record.rectified
    np.testing.assert_allclose(record.intrinsics(*network_size), plan.network_intrinsics, rtol=1e-6)


@pytest.mark.parametrize(
    "image_size, expected",
    [((480, 640), (288, 384)), ((720, 1280), (256, 448)), ((1080, 1920), (256, 448)), ((375, 1242), (192, 640)),
     ((192, 640), (192, 640)), ((240, 320), (192, 256)), ((1024, 1280), (256, 320))],
)
def test_network_size_keeps_the_cameras_aspect_within_the_budget(image_size, expected):
    size = pick_network_size(image_size)
    assert size == expected and size[0] % 32 == 0 and size[1] % 32 == 0 and size[0] * size[1] <= 640 * 192


def test_network_size_overrides():
    assert pick_network_size((480, 640), height=192, width=640) == (192, 640)
    assert pick_network_size((480, 640), height=192) == (192, 256)
    assert pick_network_size((720, 1280), width=640) == (352, 640)
    assert pick_network_size((480, 640), pixel_budget=640 * 480) == (480, 640)


def test_rectified_topic_names():
    assert is_rectified_topic("/cam/image_rect") and is_rectified_topic("/cam/image_rect_color/compressed")
    assert not is_rectified_topic("/cam/image_raw") and not is_rectified_topic("/rect/image")


def test_checkpoint_records_the_preparation_and_old_ones_load_with_the_default(tmp_path):
    record = FramePreparation(rectified=True, crop="centre", fx=0.78, fy=1.04, cx=0.5, cy=0.49)
    path = tmp_path / "new.safetensors"
    save_checkpoint(path, create_depth_net("dna_depth_b0"), ModelMetadata(height=288, width=384,
                                                                          preparation=record))
    assert read_metadata(path).preparation == record
    # A checkpoint written before the record existed: the same file without the key.
    with safe_open(str(path), framework="pt") as handle:
        header, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
    fields = json.loads(header[METADATA_KEY])
    del fields["preparation"]
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={**header, METADATA_KEY: json.dumps(fields)})
    old = read_metadata(tmp_path / "old.safetensors")
    assert old.preparation == FramePreparation() and (old.height, old.width) == (288, 384)
    assert (old.preparation.fx, old.preparation.fy, old.preparation.crop) == (0.58, 1.92, "resize")


def test_the_shipped_checkpoint_records_the_synthetic_camera_it_was_trained_with():
    from pathlib import Path

    from dna_depth_core.data.synthetic import scene_config

    shipped = read_metadata(
        Path(__file__).resolve().parents[1] / "dna_depth_core" / "assets" / "dna_depth_synthetic.safetensors"
    )
    data = shipped.provenance["training"]["config"]["data"]
    assert data["dataset"] == "synthetic"
    # The recipe trains every entry of its mix with one camera (config/train_metric_shipped.yaml).
    fields_of_view = {entry["horizontal_fov_deg"] for entry in data["synthetic"]["mix"]}
    assert len(fields_of_view) == 1
    camera = scene_config("street", shipped.height, shipped.width, horizontal_fov_deg=fields_of_view.pop())
    record = shipped.preparation
    assert (record.fx, record.fy, record.cx, record.cy) == pytest.approx(
        (camera.fx_ratio, camera.fy_ratio, camera.cx_ratio, camera.cy_ratio), rel=1e-9)
    assert record.rectified
