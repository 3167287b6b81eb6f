"""The node's per-frame work (:class:`dna_depth_ros.frame_processing.FrameProcessor`) without
DDS: outputs at the camera's resolution built at network size and taken onto the camera image
agree with the outputs computed there, and reused message buffers never change a message
someone still holds."""

import numpy as np
import pytest
import torch
from sensor_msgs.msg import CameraInfo, Image

from dna_depth_core.checkpoint import ModelMetadata
from dna_depth_core.data.camera.preparation import FramePreparation
from dna_depth_core.inference import DepthEstimator
from dna_depth_core.networks import create_depth_net
from dna_depth_ros.camera_model import calibration_from_message
from dna_depth_ros.colorize import colorize_depth
from dna_depth_ros.frame_processing import FrameProcessor
from dna_depth_ros.parameters import PARAMETERS, settings_from_values
from dna_depth_ros.topics import COLORED_TOPIC, DEPTH_TOPIC, OUTPUT_TOPICS, POINTS_TOPIC

IMAGE_SIZE = (120, 200)  # wider than the network (64x96): a centre crop, upscaled by 1.875
NETWORK_SIZE = (64, 96)


@pytest.fixture(scope="module")
def processor():
    metadata = ModelMetadata(height=NETWORK_SIZE[0], width=NETWORK_SIZE[1],
                             preparation=FramePreparation(crop="centre", fx=0.6, fy=0.9))
    estimator = DepthEstimator(create_depth_net("dna_depth_b0"), metadata, device="cpu", backend="eager")
    frames = FrameProcessor(estimator, "/camera/image_raw", "/camera/camera_info", lambda bad: None,
                            lambda key, message: None, lambda message: None)
    height, width = IMAGE_SIZE
    # A wide-angle lens whose P keeps the whole raw view: the rectified image has a border
    # without source pixels, which must be NaN (and black) at the camera's resolution.
    info = CameraInfo(height=height, width=width, distortion_model="plumb_bob", d=[-0.35, 0.12, 0.001, -0.002, 0.0],
                      k=[110.0, 0, 99.5, 0, 110.0, 59.5, 0, 0, 1], r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1],
                      p=[75.0, 0, 99.5, 0, 0, 75.0, 59.5, 0, 0, 0, 1, 0])
    frames.calibration = calibration_from_message(info, "/camera/camera_info")
    return frames


def _image():
    rgb = np.random.default_rng(3).integers(0, 256, (*IMAGE_SIZE, 3), dtype=np.uint8)
    return Image(height=IMAGE_SIZE[0], width=IMAGE_SIZE[1], encoding="rgb8", step=IMAGE_SIZE[1] * 3,
                 data=rgb.tobytes())


def _settings(**overrides):
    values = {spec.name: spec.default for spec in PARAMETERS} | {"output_resolution": "input"}
    return settings_from_values(values | overrides)


def _disparity(seed):
    return torch.rand(1, 1, *NETWORK_SIZE, generator=torch.Generator().manual_seed(seed)) * 0.3


def _outputs(processor, seed, settings):
    image = _image()
    prepared = processor.prepare(image, settings)
    return dict(processor.outputs(prepared, _disparity(seed), image.header, set(OUTPUT_TOPICS), settings))


def _depth(messages):
    return np.frombuffer(messages[DEPTH_TOPIC].data, np.float32).reshape(IMAGE_SIZE)


def _colours(messages):
    return np.frombuffer(messages[COLORED_TOPIC].data, np.uint8).reshape(*IMAGE_SIZE, 3)


@pytest.mark.parametrize("auto_range", [True, False])
def test_colours_at_input_resolution_are_the_colour_map_of_the_published_depth(processor, auto_range):
    settings = _settings(**{"colored.auto_range": auto_range, "invalid_outside_range": True, "max_depth": 20.0})
    messages = _outputs(processor, 0, settings)
    depth = _depth(messages)
    valid = np.isfinite(depth)
    assert 0.05 < (~valid).mean() < 0.9  # crop, rectification border and depths beyond 20 m
    near, far = (depth[valid].min(), depth[valid].max()) if auto_range else (0.5, 50.0)
    expected = colorize_depth(depth, near, far, "turbo", valid.view(np.uint8))
    np.testing.assert_array_equal(_colours(messages), expected)
    cloud = np.frombuffer(messages[POINTS_TOPIC].data, np.float32).reshape(*IMAGE_SIZE, 4)
    np.testing.assert_array_equal(cloud[..., 2], depth)


def test_messages_kept_across_frames_keep_their_data_and_dropped_ones_lend_their_buffers(processor):
    settings = _settings()
    kept = _outputs(processor, 1, settings)
    kept_bytes = {topic: bytes(message.data) for topic, message in kept.items() if hasattr(message, "data")}
    second = _outputs(processor, 2, settings)
    assert not np.array_equal(_depth(second), _depth(kept), equal_nan=True)
    for topic, data in kept_bytes.items():
        assert bytes(kept[topic].data) == data, f"{topic} changed under its holder"
    addresses = {topic: second[topic].data.buffer_info()[0] for topic in kept_bytes}
    del second
    third = _outputs(processor, 3, settings)
    assert {topic: third[topic].data.buffer_info()[0] for topic in kept_bytes} == addresses
