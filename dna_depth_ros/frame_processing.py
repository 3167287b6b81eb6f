"""The depth node's work on one frame besides the forward pass: image message in, network
input out; network disparity in, output messages out.

Frames are prepared exactly as the checkpoint's training frames were (rectified with the
calibration, centre-cropped to the network's aspect ratio, resized; depth rescaled by the
focal-length ratio to the training camera): the core's :mod:`dna_depth_core.data.camera`,
which bag fine-tuning uses too.

What depends only on the camera (the :class:`~dna_depth_core.data.camera.preparation.FramePlan`
with its rectification maps, the output camera's projection, the point cloud's rays) is
made once per camera info, image size and parameters and reused for every frame. Each
output is built only when asked for (the node asks for those with subscribers), at network
size and, at the camera's resolution, taken onto the camera image by one nearest-neighbour
resize (:meth:`~dna_depth_core.data.camera.preparation.FramePlan.to_image`); message data
are written in place into buffers reused from frame to frame.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from dna_depth_core.data.camera.calibration import CalibrationError, CalibrationMismatchError, CameraCalibration
from dna_depth_core.data.camera.preparation import FramePlan, is_rectified_topic, plan_for_checkpoint
from dna_depth_core.geometry import disp_to_depth
from dna_depth_core.inference import DepthEstimator

from .bad_input import BadInput
from .camera_model import PinholeIntrinsics, depth_camera_info
from .colorize import colour_indices, colour_table, valid_depth_range
from .conversions import ReusedBuffer, bgr8_image_msg, depth_image_msg, image_to_rgb
from .ground_scale import GroundPlaneScaler
from .parameters import NodeSettings, effective_depth_range, effective_depth_scale
from .point_cloud import PointCloudBuilder
from .topics import COLORED_TOPIC, DEPTH_INFO_TOPIC, DEPTH_TOPIC, POINTS_TOPIC


@dataclass(frozen=True)
class PreparedFrame:
    """A camera frame prepared for the network by :meth:`FrameProcessor.prepare`.

    Attributes:
        plan: the camera's preparation plan (crop, intrinsics, depth factor, the way back).
        image_rgb: uint8 ``(h, w, 3)`` RGB camera image, decoded from the message.
        network_rgb: uint8 ``(H, W, 3)`` RGB network input.
        tensor: ``(1, 3, H, W)`` float network input in [0, 1] on the inference device.
    """

    plan: FramePlan
    image_rgb: np.ndarray
    network_rgb: np.ndarray
    tensor: torch.Tensor

    @functools.cached_property  # a full-size remap: only a cloud at the camera's resolution needs it
    def camera_rgb(self) -> np.ndarray:
        """uint8 ``(h, w, 3)`` RGB camera image, rectified when the plan rectifies."""
        return self.plan.rectify(self.image_rgb)


class FrameProcessor:
    """Prepares image messages for the network and turns its disparity into the node's outputs.

    Args:
        estimator: the loaded network (input size, checkpoint metadata, ``to_tensor``).
        image_topic: the subscribed image topic (``image_rect*`` names are not rectified
            again), for messages too.
        camera_info_topic: the camera info topic, for messages.
        report_bad_input: called with each frame's calibration problem.
        warn: ``warn(key, message)``, a throttled warning log.
        notice: logs a plan's one-line notice (once per camera).

    Attributes:
        calibration: the camera's latest valid calibration (``None`` before one arrived);
            the node sets it.
        ground_scaler: the floor-plane scale estimates (``ground_plane_scale.*``).
    """

    def __init__(
        self,
        estimator: DepthEstimator,
        image_topic: str,
        camera_info_topic: str,
        report_bad_input: Callable[[BadInput], None],
        warn: Callable[[str, str], None],
        notice: Callable[[str], None],
    ) -> None:
        self._estimator = estimator
        self._metadata = estimator.metadata
        self._image_topic = image_topic
        self._camera_info_topic = camera_info_topic
        self._report_bad_input = report_bad_input
        self._warn = warn
        self._notice = notice
        self.calibration: CameraCalibration | None = None
        self.ground_scaler = GroundPlaneScaler()
        self._plan: FramePlan | None = None
        self._plan_key: tuple | None = None
        self._plan_problem: BadInput | None = None
        self._cloud_builder: PointCloudBuilder | None = None
        self._cloud_key: tuple | None = None
        self._buffers = {DEPTH_TOPIC: ReusedBuffer(), COLORED_TOPIC: ReusedBuffer()}

    def prepare(self, msg: Image | CompressedImage, settings: NodeSettings) -> PreparedFrame:
        """Decode an image message and prepare it as the checkpoint's training frames were
        (the core's :func:`~dna_depth_core.data.camera.preparation.plan_for_checkpoint`,
        which bag fine-tuning's :func:`~dna_depth_core.data.camera.preparation.plan_training_frames`
        mirrors), with the latest calibration.

        Raises:
            BadInput: the image cannot be decoded.
        """
        rgb = image_to_rgb(msg, settings.max_input_pixels)
        plan = self._frame_plan(rgb.shape[:2], settings)
        network_rgb = plan.apply(rgb)
        return PreparedFrame(plan, rgb, network_rgb, self._estimator.to_tensor(network_rgb))

    def _frame_plan(self, image_size: tuple[int, int], settings: NodeSettings) -> FramePlan:
        """The plan for this camera, made when the calibration, image size or parameters
        change; its notice is logged once. A calibration that does not fit the images is
        reported (every frame) and the frames are prepared without it."""
        calibration = self.calibration
        image_rectified = not settings.undistort or is_rectified_topic(self._image_topic)
        key = (image_size, None if calibration is None else calibration.key, image_rectified, settings.focal_rescale)
        if key != self._plan_key:
            preparation, network_size = self._metadata.preparation, self._estimator.input_size
            problem = None
            try:
                plan = plan_for_checkpoint(preparation, network_size, image_size, calibration, image_rectified,
                                           settings.focal_rescale)
            except CalibrationError as error:
                kind = "camera_info_mismatch" if isinstance(error, CalibrationMismatchError) else "invalid_camera_info"
                problem = BadInput(kind, str(error))
                plan = plan_for_checkpoint(preparation, network_size, image_size, None, image_rectified,
                                           settings.focal_rescale)
            if plan.notice:
                self._notice(f"{self._image_topic}: {plan.notice}")
            self._plan, self._plan_key, self._plan_problem = plan, key, problem
        if self._plan_problem is not None:
            self._report_bad_input(self._plan_problem)
        return self._plan

    def outputs(
        self, prepared: PreparedFrame, disparity: torch.Tensor, header: Header, wanted: set[str], settings: NodeSettings
    ) -> Iterator[tuple[str, object]]:
        """The output messages of ``wanted`` topics for one frame, each as soon as it is built.

        Depth is computed at network size and, at ``output_resolution: input``, each output
        is taken onto the camera image by one nearest-neighbour resize (the colours too, made
        at network size); messages' data are written in place into buffers reused once the
        previous frame's messages are gone (:class:`~dna_depth_ros.conversions.ReusedBuffer`).

        Args:
            prepared: the frame the network saw.
            disparity: its ``(1, 1, H, W)`` network disparity.
            header: the input image's header, which every output carries.
            wanted: output topic names (relative) to build.
            settings: the node's current parameters.

        Yields:
            ``(topic, message)`` pairs.
        """
        at_input = settings.output_resolution == "input"
        plan = prepared.plan
        depth, valid = self._network_depth(disparity, plan, at_input, settings)
        # depth (metres, NaN invalid) and the colours share the output size: the network input
        # (plan.network_projection) or the rectified camera image (at_input, plan.camera_projection).
        projection = plan.camera_projection if at_input else plan.network_projection
        output_size = plan.image_size if at_input else plan.network_size
        output_depth = None
        if DEPTH_TOPIC in wanted or (POINTS_TOPIC in wanted and projection is not None):
            output_depth = self._buffers[DEPTH_TOPIC].take(output_size, np.float32)
            if at_input:
                plan.to_image(depth, out=output_depth)
            else:
                np.copyto(output_depth, depth)
        if DEPTH_TOPIC in wanted:
            yield DEPTH_TOPIC, depth_image_msg(output_depth, header)
        if COLORED_TOPIC in wanted:
            yield COLORED_TOPIC, bgr8_image_msg(self._colorize(depth, valid, plan, at_input, settings), header)
        if not wanted & {DEPTH_INFO_TOPIC, POINTS_TOPIC}:
            return
        if projection is None:
            if self._plan_problem is None:
                self._warn(
                    "no_camera_info",
                    f"no valid camera info on {self._camera_info_topic} yet: depth is computed without "
                    f"undistortion or focal rescale, {DEPTH_INFO_TOPIC} and {POINTS_TOPIC} wait for one "
                    "(or set camera_info_file)",
                )
            return
        if DEPTH_INFO_TOPIC in wanted:
            yield DEPTH_INFO_TOPIC, depth_camera_info(projection, output_size, header)
        if POINTS_TOPIC in wanted:
            colours = prepared.camera_rgb if at_input else prepared.network_rgb
            builder = self._points_builder(plan, at_input, projection, output_size, settings)
            yield POINTS_TOPIC, builder.build(output_depth, header, colours)

    def _points_builder(
        self, plan: FramePlan, at_input: bool, projection: np.ndarray, size: tuple[int, int], settings: NodeSettings
    ) -> PointCloudBuilder:
        """The cloud builder (its rays) of this plan's output camera, made once per plan and settings."""
        key = (plan, at_input, settings.points_stride, settings.points_rgb)  # plans compare by identity
        if key != self._cloud_key or self._cloud_builder is None:
            intrinsics = PinholeIntrinsics.from_projection(projection)
            self._cloud_builder = PointCloudBuilder(size, intrinsics, settings.points_stride, settings.points_rgb)
            self._cloud_key = key
        return self._cloud_builder

    def _network_depth(
        self, disparity: torch.Tensor, plan: FramePlan, at_input: bool, settings: NodeSettings
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Network disparity -> float32 ``(H, W)`` metres at network size, NaN where invalid
        (and, unless ``at_input``, on the rectification border, which ``to_image`` leaves out
        at the camera's size), plus its uint8 validity mask (``None`` when every pixel is
        valid). Depth is scaled by the plan's focal-length factor and, with
        ``ground_plane_scale.enabled``, by the floor's smoothed estimate; so is the
        checkpoint's depth range."""
        metadata = self._metadata
        # On the host in numpy: disp_to_depth is element-wise and, on a busy CPU, torch's
        # intra-op threads cost far more than the arithmetic for one small map.
        disparity = disparity[0, 0].cpu().numpy()
        network_depth = disp_to_depth(disparity, metadata.min_depth, metadata.max_depth)
        factor = plan.depth_factor
        scale = effective_depth_scale(settings, metadata.depth_scale) * factor
        depth = np.multiply(network_depth, scale, dtype=np.float32)
        if settings.ground_plane_scale_enabled:
            pitch = (settings.ground_plane_scale_camera_pitch_deg
                     if settings.ground_plane_scale_floor_tilt == "mount" else None)
            ground = self.ground_scaler.update(
                depth, plan.network_intrinsics, settings.ground_plane_scale_camera_height,
                settings.ground_plane_scale_window, settings.ground_plane_scale_every, mount_pitch_deg=pitch,
            )  # fmt: skip
            if ground is not None:
                depth *= np.float32(ground)
                factor *= ground
        low, high = effective_depth_range(
            settings, metadata.min_depth * factor, metadata.max_depth * factor, metadata.depth_scale
        )
        if not at_input:
            plan.mask_border(depth)
        valid = np.isfinite(depth)
        if settings.invalid_outside_range:
            valid &= (depth >= low) & (depth <= high)
        else:
            np.clip(depth, low, high, out=depth)
        depth[~valid] = np.nan
        if valid.all():
            return depth, None
        return depth, valid.view(np.uint8)

    def _colorize(
        self, depth: np.ndarray, valid: np.ndarray | None, plan: FramePlan, at_input: bool, settings: NodeSettings
    ) -> np.ndarray:
        """uint8 BGR ``depth/colored`` of the network-size ``depth`` at the output size, black
        where invalid. Colouring commutes with the nearest-neighbour ``to_image``, so the
        colours are computed at network size and taken onto the camera image; the auto range
        is that of the depth shown there (``plan.shown_mask``)."""
        if settings.colored_auto_range:
            shown = plan.shown_mask if at_input else None
            if shown is not None:
                shown = shown.view(np.uint8) if valid is None else valid & shown
            near, far = valid_depth_range(depth, shown if shown is not None else valid)
        else:
            near, far = settings.colored_min_depth, settings.colored_max_depth
        indices = colour_indices(depth, near, far, valid)
        output_size = plan.image_size if at_input else plan.network_size
        coloured = self._buffers[COLORED_TOPIC].take(output_size + (3,), np.uint8)
        table = colour_table(settings.colored_colormap)
        if not at_input:
            return cv2.applyColorMap(indices, table, dst=coloured)
        return plan.to_image(cv2.applyColorMap(indices, table), out=coloured)
