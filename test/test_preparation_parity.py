"""Parity: the network input the node builds from an Image + CameraInfo equals what bag
fine-tuning builds from the same frame recorded in a bag.

For a 640x480 plumb_bob camera, a 1280x720 and a 1920x1080 one (raw, distorted images with
an image_proc-style P): the frame and its calibration are written into a real bag with
rosbags, fine-tuning's data path (training size picked from the camera, decoded-frame
cache, triplet dataset) builds its training frame, and a checkpoint recording that
preparation is loaded by the real node, which gets the same frame as ``sensor_msgs``
messages over DDS; the tensor the node hands the network must be bit-identical.
"""

import contextlib
import itertools

import cv2
import numpy as np
import pytest
import torch
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.data.camera.encodings import rgb8_to_encoding
from dna_depth_core.data.rosbag.dataset import BagDataConfig, BagTripletDataset, load_bag_frames, with_training_size
from dna_depth_core.data.rosbag.reader import RecordedBag, select_camera_topics
from dna_depth_core.data.rosbag.sample_bag import CameraBagWriter
from dna_depth_core.networks import create_depth_net
from dna_depth_ros.node import DepthNode
from dna_depth_ros.probe import DepthNodeProbe

pytestmark = pytest.mark.ros

STAMP = 1_700_000_000.25
TIMEOUT = 60.0
_namespaces = itertools.count()

CAMERAS = {
    # name: (height, width, focal length px, distortion model, D, encoding, row padding bytes)
    "640x480": (480, 640, 525.0, "plumb_bob", [-0.28, 0.07, 0.0005, -0.0003, 0.0], "rgb8", 0),
    "1280x720": (720, 1280, 910.0, "plumb_bob", [-0.11, 0.03, -0.0004, 0.0002, -0.004], "bgr8", 64),
    # A raw machine-vision camera's Bayer mosaic and a USB camera's YUYV, as their drivers publish them.
    "1920x1080": (1080, 1920, 1380.0, "rational_polynomial",
                  [-0.2, 0.05, 0.0003, -0.0002, 0.0, 0.1, 0.01, 0.002], "bayer_rggb8", 0),
    "1280x960": (960, 1280, 1050.0, "plumb_bob", [-0.2, 0.04, 0.0002, 0.0001, 0.0], "yuv422_yuy2", 32),
}


def _scene(height, width):
    """A deterministic uint8 RGB frame with structure at every scale (gradients, waves, noise)."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    waves = 128 + 100 * np.sin(columns / 9 + rows / 13)
    rgb = np.stack([columns / (width - 1) * 255, rows / (height - 1) * 255, waves], axis=2)
    noise = np.random.default_rng(height).integers(0, 40, (height, width, 3))
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def _camera(name):
    height, width, focal, model, distortion, encoding, padding = CAMERAS[name]
    camera_matrix = np.array([[focal, 0.0, width / 2 - 0.3], [0.0, focal * 1.002, height / 2 + 1.7], [0.0, 0.0, 1.0]])
    # P as camera_calibration computes it (alpha 0): the rectified image's own camera, not K.
    projection, _ = cv2.getOptimalNewCameraMatrix(camera_matrix, np.array(distortion), (width, height), 0.0)
    rgb = _scene(height, width)
    return rgb, camera_matrix, projection, model, np.array(distortion), encoding, padding


def _bag_training_frame(tmp_path, name):
    """Record the frame in a bag and build the fine-tuning sample from it; returns the target
    frame tensor and the dataset (whose preparation a fine-tuned checkpoint records)."""
    rgb, camera_matrix, projection, model, distortion, encoding, padding = _camera(name)
    height, width = rgb.shape[:2]
    bag_path = tmp_path / f"bag_{name}"
    with CameraBagWriter(bag_path, "mcap") as writer:
        writer.write_camera_info("/camera/camera_info", STAMP, height, width, camera_matrix, model, distortion,
                                 projection)
        writer.write_image("/camera/image_raw", STAMP, rgb8_to_encoding(rgb, encoding), encoding, row_padding=padding)
    config = with_training_size([bag_path], BagDataConfig(cache_dir=str(tmp_path / "cache"), val_fraction=0.0))
    bag = RecordedBag(bag_path)
    sequence = load_bag_frames(bag, select_camera_topics(bag), config)
    dataset = BagTripletDataset([sequence], [[0, 0, 0, 0]])
    return dataset[0]["frames"][1], dataset, (config.height, config.width)


def _messages(name, probe):
    """The same frame and calibration as a camera driver publishes them (rclpy messages)."""
    rgb, camera_matrix, projection, model, distortion, encoding, padding = _camera(name)
    height, width = rgb.shape[:2]
    rows = rgb8_to_encoding(rgb, encoding).reshape(height, -1)
    rows = np.hstack([rows, np.zeros((height, padding), np.uint8)])
    image = Image(height=height, width=width, encoding=encoding, step=rows.shape[1], data=rows.tobytes())
    info = CameraInfo(height=height, width=width, distortion_model=model, d=distortion.tolist(),
                      k=camera_matrix.reshape(-1).tolist(), r=np.eye(3).reshape(-1).tolist(),
                      p=np.hstack([projection, np.zeros((3, 1))]).reshape(-1).tolist())
    stamp = probe.get_clock().now().to_msg()
    for message in (image, info):
        message.header.stamp = stamp
        message.header.frame_id = "camera_optical_frame"
    return image, info


@contextlib.contextmanager
def _node(ros, checkpoint):
    context, executor = ros
    namespace = f"/parity{next(_namespaces)}"
    overrides = {"checkpoint": str(checkpoint), "device": "cpu", "backend": "eager", "warmup_iterations": 0,
                 "skip_without_subscribers": False}
    node = DepthNode(namespace=namespace, context=context,
                     parameter_overrides=[Parameter(key, value=value) for key, value in overrides.items()])
    probe = DepthNodeProbe(namespace=namespace, context=context, outputs=("depth/image",))
    executor.add_node(node)
    executor.add_node(probe)
    try:
        assert probe.wait_for_node(TIMEOUT), "depth node and probe did not discover each other"
        yield node, probe
    finally:
        executor.remove_node(probe)
        executor.remove_node(node)
        probe.destroy_node()
        node.destroy_node()


@pytest.mark.parametrize("name", list(CAMERAS))
def test_node_network_input_equals_the_fine_tuning_frame(ros, tmp_path, name):
    expected, dataset, network_size = _bag_training_frame(tmp_path, name)
    assert network_size == {"640x480": (288, 384), "1280x720": (256, 448), "1920x1080": (256, 448),
                            "1280x960": (288, 384)}[name]
    checkpoint = tmp_path / "finetuned.safetensors"
    metadata = ModelMetadata(height=network_size[0], width=network_size[1], preparation=dataset.preparation)
    save_checkpoint(checkpoint, create_depth_net("dna_depth_b0"), metadata)

    with _node(ros, checkpoint) as (node, probe):
        captured = []
        forward = node._estimator.predict_disparity

        def recording(batch):
            captured.append(batch.detach().clone())
            return forward(batch)

        node._estimator.predict_disparity = recording
        image, info = _messages(name, probe)
        probe.camera_info_publisher.publish(info)
        assert probe.wait_until(lambda: node._frames.calibration is not None, TIMEOUT), "camera info did not arrive"
        probe.image_publisher.publish(image)
        assert probe.wait_for_stamp(("depth/image",), image.header.stamp, TIMEOUT) is not None, "no depth came back"
        (batch,) = captured
        assert batch.shape == (1, 3, *network_size)
        assert torch.equal(batch[0].float(), expected), f"max difference {(batch[0] - expected).abs().max():.4g}"
        # The node's own preparation of the message gives the same (no DDS in between).
        prepared = node.prepare(image)
        assert torch.equal(prepared.tensor[0], expected)
        assert prepared.plan.depth_factor == pytest.approx(1.0)  # the checkpoint's own camera: no rescale
        assert prepared.plan.rectify_maps is not None and prepared.plan.notice is None
