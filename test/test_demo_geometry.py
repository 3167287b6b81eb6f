"""The demo compares the node's depth with the ground truth as the evaluation does: on the camera
image through the checkpoint's preparation contract (its centre crop to the network's aspect
ratio, NaN outside), over the pixels the network saw, not stretched over the whole image."""

import cv2
import numpy as np
import torch

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.data.camera.preparation import FramePreparation
from dna_depth_core.inference import DepthEstimator
from dna_depth_core.networks import create_depth_net
from dna_depth_ros.demo import depth_errors, depth_on_camera_image

from test_inference import make_trained_like

CAMERA = (96, 320)
"""The sample bag's 10:3 camera image (height, width), at half size."""


def test_a_square_model_is_compared_inside_its_view_as_the_evaluation_does(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "square.safetensors"
    save_checkpoint(path, make_trained_like(create_depth_net("dna_depth_b0")), ModelMetadata(height=64, width=64))
    estimator = DepthEstimator.from_checkpoint(path, device="cpu", backend="eager")
    image = np.random.default_rng(0).integers(0, 256, (*CAMERA, 3), dtype=np.uint8)
    published = estimator.estimate(image, resolution="network")  # what the node publishes by default

    on_image = depth_on_camera_image(published, CAMERA, estimator.metadata.preparation)
    np.testing.assert_array_equal(on_image, estimator.estimate(image, resolution="input"))  # the evaluation's
    view = np.zeros(CAMERA, dtype=bool)
    view[:, 112:208] = True  # the central 96x96 pixels
    assert np.isfinite(on_image[view]).all() and np.isnan(on_image[~view]).all()

    # Ground truth 1.25x the prediction inside the view, anything outside it: AbsRel 0.2 exactly.
    truth = np.where(view, on_image * 1.25, 3.0).astype(np.float32)
    truth[0, 150] = np.nan  # unknown ground truth is left out too
    assert abs(depth_errors([(truth, on_image)], median_scaling=False)["abs_rel"] - 0.2) < 1e-6
    stretched = cv2.resize(published, CAMERA[::-1], interpolation=cv2.INTER_NEAREST)  # the old comparison
    assert abs(depth_errors([(truth, stretched)], median_scaling=False)["abs_rel"] - 0.2) > 0.05


def test_a_model_of_the_camera_aspect_is_compared_as_before():
    """The shipped 320x96 model on the sample bag's 640x192 camera: the view is the whole image and
    the mapping the nearest-neighbour resize the demo always did, so its figures stay the same."""
    published = np.random.default_rng(1).uniform(1, 80, (96, 320)).astype(np.float32)
    on_image = depth_on_camera_image(published, (192, 640), FramePreparation())
    np.testing.assert_array_equal(on_image, cv2.resize(published, (640, 192), interpolation=cv2.INTER_NEAREST))
    assert depth_on_camera_image(on_image, (192, 640), FramePreparation()) is on_image  # camera-size output
