"""The DNA-Depth ROS 2 node: camera image in; depth, coloured depth and point cloud out.

Topics (relative, so namespaces and remapping work):

- in: ``image`` (``sensor_msgs/Image``) or, with ``image_transport: compressed``,
  ``image/compressed``; ``camera_info`` (cached, the latest valid one is used);
- out: ``depth/image`` (32FC1 metres, NaN invalid, REP 117/118), ``depth/camera_info``,
  ``depth/colored`` (bgr8), ``points`` (organised ``PointCloud2``), ``/diagnostics``.

Frames are prepared exactly as the checkpoint's training frames were (rectified with the
camera info or ``camera_info_file``, centre-cropped to the network's aspect ratio, resized;
depth rescaled by the focal-length ratio to the training camera): the core's
:mod:`dna_depth_core.data.camera`, which bag fine-tuning uses too.

Every output carries the input image's header. The subscription callback only validates
and hands the message to one inference thread through a one-frame slot, so a new frame
replaces one still waiting (counted as dropped) and latency never grows with load.

QoS (:mod:`dna_depth_ros.transport`): reliable inputs, so a default-QoS camera's large
frames arrive; every topic takes the standard ``qos_overrides.<topic>.*`` parameters; what
the middleware reports (incompatible QoS, silent publishers, lost frames) is in diagnostics.

Run: ``ros2 run dna_depth_ros depth_node --ros-args --params-file config/dna_depth.yaml``
or ``python -m dna_depth_ros.depth_node --ros-args -p checkpoint:=model.safetensors``.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.subscription import MessageInfo
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from dna_depth_core.data.camera.calibration import CalibrationError, CalibrationMismatchError, CameraCalibration
from dna_depth_core.data.camera.preparation import FramePlan, is_rectified_topic, plan_for_checkpoint
from dna_depth_core.errors import UserError
from dna_depth_core.geometry import disp_to_depth

from .bad_input import BadInput
from .camera_model import PinholeIntrinsics, calibration_from_message, depth_camera_info
from .colorize import colorize_depth, valid_depth_range
from .command_line import TopicDoc, init_ros, node_help, wants_help
from .conversions import bgr8_image_msg, check_image, depth_image_msg, image_to_rgb
from .diagnostics import FrameTiming, NodeStatistics, ThrottledLog, diagnostic_status
from .frame_slot import LatestFrameSlot
from .model_loading import load_estimator
from .parameters import (
    PARAMETERS,
    NodeSettings,
    effective_depth_range,
    effective_depth_scale,
    parameter_descriptor,
    settings_from_values,
    with_overrides,
)
from .point_cloud import PointCloudBuilder
from .transport import DIAGNOSTICS_QOS, OUTPUT_QOS, TransportMonitor, describe_qos

NODE_NAME = "dna_depth"
DEPTH_TOPIC = "depth/image"
DEPTH_INFO_TOPIC = "depth/camera_info"
COLORED_TOPIC = "depth/colored"
POINTS_TOPIC = "points"
OUTPUT_TOPICS = (DEPTH_TOPIC, DEPTH_INFO_TOPIC, COLORED_TOPIC, POINTS_TOPIC)
LOG_PERIOD_S = 5.0
"""Each kind of bad input or warning is logged at most once per this many seconds."""


@dataclass(frozen=True)
class _PendingFrame:
    """An input message waiting for the inference thread, with its steady-clock receipt
    time and its age at receipt (seconds, see FrameTiming)."""

    msg: Image | CompressedImage
    received: float
    input_age: float | None


@dataclass(frozen=True)
class PreparedFrame:
    """A camera frame prepared for the network by :meth:`DepthNode.prepare`.

    Attributes:
        plan: the camera's preparation plan (crop, intrinsics, depth factor, the way back).
        camera_rgb: uint8 ``(h, w, 3)`` RGB camera image, rectified when the plan rectifies.
        network_rgb: uint8 ``(H, W, 3)`` RGB network input.
        tensor: ``(1, 3, H, W)`` float network input in [0, 1] on the inference device.
    """

    plan: FramePlan
    camera_rgb: np.ndarray
    network_rgb: np.ndarray
    tensor: torch.Tensor


class DepthNode(Node):
    """Monocular depth from a DNA-Depth checkpoint as a ROS 2 node (see the module docstring).

    Args:
        **node_options: passed to :class:`rclpy.node.Node` (``namespace``, ``context``,
            ``cli_args``, ``parameter_overrides``...).

    Raises:
        UserError: invalid parameters, or a checkpoint that is missing or cannot be loaded.
    """

    def __init__(self, **node_options) -> None:
        super().__init__(NODE_NAME, **node_options)
        # First, so destroy_node works however far the set-up below gets.
        self._slot: LatestFrameSlot[_PendingFrame] = LatestFrameSlot()
        self._worker: threading.Thread | None = None
        self._statistics = NodeStatistics()
        self._log_bad_input = ThrottledLog(self.get_logger().error, LOG_PERIOD_S)
        self._log_warning = ThrottledLog(self.get_logger().warning, LOG_PERIOD_S)
        self._settings = self._declare_parameters()
        self._estimator, checkpoint_path = load_estimator(self._settings)
        self._metadata = self._estimator.metadata
        try:
            effective_depth_range(self._settings, *self._checkpoint_range())
        except ValueError as error:
            raise UserError(f"invalid parameters: {error}") from None
        self._describe_model(checkpoint_path)
        self._warm_up(self._settings.warmup_iterations)

        self._file_calibration = self._load_calibration_file()
        self._calibration: CameraCalibration | None = self._file_calibration
        self._plan: FramePlan | None = None
        self._plan_key: tuple | None = None
        self._plan_problem: BadInput | None = None
        self._cloud_builder: PointCloudBuilder | None = None

        self._transport = TransportMonitor(self, self.get_logger().warning, self._statistics.count)
        self._output_publishers = {
            DEPTH_TOPIC: self._transport.advertise(Image, DEPTH_TOPIC, OUTPUT_QOS),
            DEPTH_INFO_TOPIC: self._transport.advertise(CameraInfo, DEPTH_INFO_TOPIC, OUTPUT_QOS),
            COLORED_TOPIC: self._transport.advertise(Image, COLORED_TOPIC, OUTPUT_QOS),
            POINTS_TOPIC: self._transport.advertise(PointCloud2, POINTS_TOPIC, OUTPUT_QOS),
        }
        self._diagnostics_publisher = self._transport.advertise(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        if self._settings.image_transport == "compressed":
            self._image_subscription = self._transport.subscribe_images(
                CompressedImage, "image/compressed", self._on_image
            )
        else:
            self._image_subscription = self._transport.subscribe_images(Image, "image", self._on_image)
        self._camera_info_subscription = self._transport.subscribe(CameraInfo, "camera_info", self._on_camera_info)

        self.add_on_set_parameters_callback(self._validate_parameter_change)
        self.add_post_set_parameters_callback(self._apply_parameter_change)
        self._previous_statistics = self._statistics.snapshot()
        # On the steady clock: with use_sim_time the node clock stops when the bag pauses or
        # before /clock arrives, and diagnostics must go on saying so.
        self._diagnostics_timer = self.create_timer(
            self._settings.diagnostics_period, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )
        self._worker = threading.Thread(target=self._run_worker, name="dna_depth_inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: {self._image_subscription.topic_name} + {self._camera_info_subscription.topic_name} -> "
            f"{', '.join(publisher.topic_name for publisher in self._output_publishers.values())}"
        )

    # ------------------------------------------------------------------ set-up

    def _declare_parameters(self) -> NodeSettings:
        values = {}
        for spec in PARAMETERS:
            try:
                parameter = self.declare_parameter(spec.name, spec.default, parameter_descriptor(spec))
            except InvalidParameterTypeException:
                kind = {bool: "boolean", int: "integer", float: "double", str: "string"}[type(spec.default)]
                raise UserError(
                    f"parameter {spec.name} must be a {kind} like its default {spec.default!r}"
                    + (" (write floats with a decimal point: 1.0, not 1)" if kind == "double" else "")
                ) from None
            except InvalidParameterValueException as error:
                raise UserError(f"invalid value for parameter {spec.name}: {error}") from None
            values[spec.name] = parameter.value
        try:
            return settings_from_values(values)
        except ValueError as error:
            raise UserError(f"invalid parameters: {error}") from None

    def _checkpoint_range(self) -> tuple[float, float, float]:
        return self._metadata.min_depth, self._metadata.max_depth, self._metadata.depth_scale

    def _describe_model(self, checkpoint_path: Path) -> None:
        metadata, estimator, settings = self._metadata, self._estimator, self._settings
        height, width = estimator.input_size
        self.get_logger().info(
            f"checkpoint {checkpoint_path}: {metadata.network.encoder}, input {width}x{height}, "
            f"device {estimator.device}, backend {estimator.backend}, precision {estimator.precision} "
            f"({estimator.configuration_reason})"
        )
        preparation = metadata.preparation
        self.get_logger().info(
            f"trained on {'rectified' if preparation.rectified else 'raw'} frames ({preparation.crop} to "
            f"{width}x{height}, camera fx/W {preparation.fx:.3f}, fy/H {preparation.fy:.3f}); frames are prepared "
            f"the same way (undistort {settings.undistort}, focal_rescale {settings.focal_rescale})"
        )
        if settings.half and estimator.device.type != "cuda":
            self.get_logger().warning("half:=true only applies on CUDA; running in float32 on the CPU")
        if settings.depth_scale == 0 and not metadata.metric:
            self.get_logger().warning(
                "this checkpoint predicts relative depth (not metric): depth/image and points are only "
                "correct up to an unknown scale; set depth_scale (metres per unit) if you know it"
            )

    def _warm_up(self, iterations: int) -> None:
        if iterations == 0:
            return
        height, width = self._estimator.input_size
        blank = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(iterations):
            _, forward = self._forward(self._estimator.to_tensor(blank))
        self.get_logger().info(f"warm-up: {iterations} forward pass(es), the last took {forward * 1000:.1f} ms")

    # ------------------------------------------------------------------ parameters

    def _validate_parameter_change(self, parameters: list[Parameter]) -> SetParametersResult:
        values = with_overrides(self._settings, {parameter.name: parameter.value for parameter in parameters})
        try:
            effective_depth_range(settings_from_values(values), *self._checkpoint_range())
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _apply_parameter_change(self, parameters: list[Parameter]) -> None:
        values = with_overrides(self._settings, {parameter.name: parameter.value for parameter in parameters})
        self._settings = settings_from_values(values)
        changes = ", ".join(f"{parameter.name}={parameter.value!r}" for parameter in parameters)
        self.get_logger().info(f"parameters changed: {changes}")

    # ------------------------------------------------------------------ callbacks

    def _load_calibration_file(self) -> CameraCalibration | None:
        """The ``camera_info_file`` calibration (``None`` when unset); a bad file stops the start."""
        path = self._settings.camera_info_file
        if not path:
            return None
        calibration = CameraCalibration.from_yaml(Path(path).expanduser())
        self.get_logger().info(f"calibration from {path} ({calibration.width}x{calibration.height}); "
                               "camera_info messages are ignored")
        return calibration

    def _on_camera_info(self, msg: CameraInfo) -> None:
        if self._file_calibration is not None:
            return  # camera_info_file replaces the topic (said at start)
        try:
            self._calibration = calibration_from_message(msg, self._camera_info_subscription.topic_name)
        except BadInput as bad:
            self._report_bad_input(bad)

    def _on_image(self, msg: Image | CompressedImage, info: MessageInfo) -> None:
        received = time.monotonic()
        self._statistics.add_receipt(received)
        self._transport.on_frame(info, received)
        if isinstance(msg, Image):
            try:
                check_image(msg, self._settings.max_input_pixels)
            except BadInput as bad:
                self._report_bad_input(bad)
                return
        if self._slot.put(_PendingFrame(msg, received, self._input_age(msg.header))):
            self._statistics.count("dropped")

    def _input_age(self, header: Header) -> float | None:
        """Seconds from the header stamp to now on the node clock (sim time with
        use_sim_time); ``None`` for an unstamped message or before /clock set the clock."""
        stamp_ns = Time.from_msg(header.stamp).nanoseconds
        now_ns = self.get_clock().now().nanoseconds
        return (now_ns - stamp_ns) * 1e-9 if stamp_ns and now_ns else None

    def _report_bad_input(self, bad: BadInput) -> None:
        self._statistics.count(f"bad_input.{bad.kind}")
        self._log_bad_input(bad.kind, f"bad input ({bad.kind}): {bad}")

    def _publish_diagnostics(self) -> None:
        current = self._statistics.snapshot()
        notes = {
            "device": str(self._estimator.device),
            "input_topic": self._image_subscription.topic_name,
            "input_qos": describe_qos(self._image_subscription.qos_profile),
            "image_publishers": str(self._transport.image_publisher_count()),
            "camera_info": self._calibration_note(),
            "clock": self._clock_note(),
            "depth_units": "metres" if self._metadata.metric or self._settings.depth_scale else "relative (unscaled)",
        }
        problems = self._transport.problems(self._settings.input_timeout, current.wall_time)
        status = diagnostic_status(
            current, self._previous_statistics, f"{self.get_fully_qualified_name()}: depth", "dna_depth", notes, problems
        )
        self._previous_statistics = current
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics_publisher.publish(DiagnosticArray(header=header, status=[status]))

    def _calibration_note(self) -> str:
        if self._file_calibration is not None:
            return f"file {self._settings.camera_info_file}"
        return "received" if self._calibration is not None else "none yet"

    def _clock_note(self) -> str:
        clock = self.get_clock()
        if not clock.ros_time_is_active:
            return "system time"
        return "sim time (/clock)" if clock.now().nanoseconds else "sim time, no /clock received yet"

    # ------------------------------------------------------------------ inference thread

    def output_subscriber_counts(self) -> dict[str, int]:
        """Matched subscriptions per output topic (relative names as keys)."""
        return {topic: publisher.get_subscription_count() for topic, publisher in self._output_publishers.items()}

    def _run_worker(self) -> None:
        while (frame := self._slot.take()) is not None:
            try:
                self._process(frame)
            except BadInput as bad:
                self._report_bad_input(bad)
            except Exception:  # noqa: BLE001 - one failing frame must never stop the node
                self._statistics.count("processing_errors")
                self._log_bad_input("processing_error", f"processing a frame failed:\n{traceback.format_exc()}")

    def _forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Network disparity ``(1, 1, h, w)`` and the seconds the forward pass took."""
        started = time.perf_counter()
        disparity = self._estimator.predict_disparity(batch)
        if disparity.device.type == "cuda":  # CUDA runs asynchronously: wait to time it
            torch.cuda.synchronize(disparity.device)
        return disparity, time.perf_counter() - started

    def _process(self, frame: _PendingFrame) -> None:
        started = time.perf_counter()
        settings = self._settings
        header = frame.msg.header
        if settings.skip_without_subscribers:
            wanted = {topic for topic, count in self.output_subscriber_counts().items() if count > 0}
            if not wanted:
                self._statistics.count("skipped_no_subscribers")
                return
        else:
            wanted = set(OUTPUT_TOPICS)

        prepared = self.prepare(frame.msg)
        disparity, forward = self._forward(prepared.tensor)
        at_input = settings.output_resolution == "input"
        output_rgb = prepared.camera_rgb if at_input else prepared.network_rgb
        depth, valid = self._depth(disparity, prepared.plan, at_input, settings)
        if DEPTH_TOPIC in wanted:
            self._output_publishers[DEPTH_TOPIC].publish(depth_image_msg(depth, header))
        if COLORED_TOPIC in wanted:
            self._output_publishers[COLORED_TOPIC].publish(
                bgr8_image_msg(self._colorize(depth, valid, settings), header)
            )
        if wanted & {DEPTH_INFO_TOPIC, POINTS_TOPIC}:
            self._publish_geometry(depth, output_rgb, prepared.plan, at_input, header, wanted, settings)

        processing = time.perf_counter() - started
        finished = time.monotonic()
        self._statistics.add_frame(
            FrameTiming(processing, forward, finished - frame.received, frame.input_age, finished)
        )

    def prepare(self, msg: Image | CompressedImage) -> PreparedFrame:
        """Decode an image message and prepare it as the checkpoint's training frames were
        (the core's :func:`~dna_depth_core.data.camera.preparation.plan_for_checkpoint`,
        which bag fine-tuning's :func:`~dna_depth_core.data.camera.preparation.plan_training_frames`
        mirrors), with the latest calibration.

        Raises:
            BadInput: the image cannot be decoded.
        """
        rgb = image_to_rgb(msg, self._settings.max_input_pixels)
        plan = self._frame_plan(rgb.shape[:2])
        camera_rgb = plan.rectify(rgb)
        network_rgb = plan.crop_and_resize(camera_rgb)
        return PreparedFrame(plan, camera_rgb, network_rgb, self._estimator.to_tensor(network_rgb))

    def _frame_plan(self, image_size: tuple[int, int]) -> FramePlan:
        """The plan for this camera, made when the calibration, image size or parameters
        change; its notice is logged once. A calibration that does not fit the images is
        reported (every frame) and the frames are prepared without it."""
        settings, calibration = self._settings, self._calibration
        image_rectified = not settings.undistort or is_rectified_topic(self._image_subscription.topic_name)
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
                self.get_logger().warning(f"{self._image_subscription.topic_name}: {plan.notice}")
            self._plan, self._plan_key, self._plan_problem = plan, key, problem
        if self._plan_problem is not None:
            self._report_bad_input(self._plan_problem)
        return self._plan

    def _depth(
        self, disparity: torch.Tensor, plan: FramePlan, at_input: bool, settings: NodeSettings
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Network disparity -> float32 metres, NaN where invalid, at network size or (``at_input``)
        on the camera image (NaN outside the network's view), plus a uint8 validity mask
        (``None`` when every pixel is valid). Depth is scaled by the plan's focal-length
        factor, and so is the checkpoint's depth range."""
        metadata = self._metadata
        # On the host in numpy: disp_to_depth is element-wise and, on a busy CPU, torch's
        # intra-op threads cost far more than the arithmetic for one small map.
        disparity = disparity[0, 0].cpu().numpy()
        network_depth = disp_to_depth(disparity, metadata.min_depth, metadata.max_depth)
        factor = plan.depth_factor
        scale = effective_depth_scale(settings, metadata.depth_scale) * factor
        depth = np.multiply(network_depth, scale, dtype=np.float32)
        low, high = effective_depth_range(
            settings, metadata.min_depth * factor, metadata.max_depth * factor, metadata.depth_scale
        )
        valid = np.isfinite(depth)
        if settings.invalid_outside_range:
            valid &= (depth >= low) & (depth <= high)
        else:
            np.clip(depth, low, high, out=depth)
        depth[~valid] = np.nan
        if at_input:
            depth = plan.to_image(depth)
            valid = np.isfinite(depth)
        if valid.all():
            return depth, None
        return depth, valid.view(np.uint8)

    def _colorize(self, depth: np.ndarray, valid: np.ndarray | None, settings: NodeSettings) -> np.ndarray:
        if settings.colored_auto_range:
            near, far = valid_depth_range(depth, valid)
        else:
            near, far = settings.colored_min_depth, settings.colored_max_depth
        return colorize_depth(depth, near, far, settings.colored_colormap, valid)

    def _publish_geometry(
        self,
        depth: np.ndarray,
        output_rgb: np.ndarray,
        plan: FramePlan,
        at_input: bool,
        header: Header,
        wanted: set[str],
        settings: NodeSettings,
    ) -> None:
        """Publish ``depth/camera_info`` and ``points``, which need the camera intrinsics.

        ``depth`` (metres, NaN invalid) and ``output_rgb`` share the output size: the network
        input (``plan.network_projection``) or the rectified camera image (``at_input``,
        ``plan.camera_projection``), which the camera info describes."""
        projection = plan.camera_projection if at_input else plan.network_projection
        if projection is None:
            if self._plan_problem is None:
                self._log_warning(
                    "no_camera_info",
                    f"no valid camera info on {self._camera_info_subscription.topic_name} yet: depth is computed "
                    f"without undistortion or focal rescale, {DEPTH_INFO_TOPIC} and {POINTS_TOPIC} wait for one "
                    "(or set camera_info_file)",
                )
            return
        output_size = depth.shape
        if DEPTH_INFO_TOPIC in wanted:
            self._output_publishers[DEPTH_INFO_TOPIC].publish(depth_camera_info(projection, output_size, header))
        if POINTS_TOPIC in wanted:
            intrinsics = PinholeIntrinsics.from_projection(projection)
            builder = self._cloud_builder
            if builder is None or not builder.matches(
                output_size, intrinsics, settings.points_stride, settings.points_rgb
            ):
                builder = PointCloudBuilder(output_size, intrinsics, settings.points_stride, settings.points_rgb)
                self._cloud_builder = builder
            self._output_publishers[POINTS_TOPIC].publish(builder.build(depth, header, output_rgb))

    # ------------------------------------------------------------------ shutdown

    def destroy_node(self) -> None:
        """Stop the diagnostics timer and the inference thread (finishing the frame in
        progress), then the node, so no callback publishes through a destroyed publisher."""
        if hasattr(self, "_diagnostics_timer"):
            self.destroy_timer(self._diagnostics_timer)
        self._slot.close()
        if self._worker is not None:
            self._worker.join()
        super().destroy_node()


SUBSCRIBED_TOPICS = (
    TopicDoc("image", "sensor_msgs/Image", "camera image (image_transport: raw)"),
    TopicDoc("image/compressed", "sensor_msgs/CompressedImage", "jpeg/png camera image (image_transport: compressed)"),
    TopicDoc("camera_info", "sensor_msgs/CameraInfo", "intrinsics of that camera (for depth/camera_info and points)"),
)
PUBLISHED_TOPICS = (
    TopicDoc(DEPTH_TOPIC, "sensor_msgs/Image", "32FC1 depth in metres, NaN where invalid (REP 117/118)"),
    TopicDoc(DEPTH_INFO_TOPIC, "sensor_msgs/CameraInfo", "pinhole camera of the depth image (rectified)"),
    TopicDoc(COLORED_TOPIC, "sensor_msgs/Image", "bgr8 colour-mapped depth, for viewing"),
    TopicDoc(POINTS_TOPIC, "sensor_msgs/PointCloud2", "organised point cloud in the camera frame, metres"),
    TopicDoc("/diagnostics", "diagnostic_msgs/DiagnosticArray", "frame rate, latency, dropped and bad frames"),
)
"""The node's topics as ``depth_node --help`` lists them (``test_ros_startup`` checks them
against a running node)."""


def main(args: list[str] | None = None) -> int:
    """Entry point of ``depth_node`` / ``ros2 run dna_depth_ros depth_node``; returns the exit code.

    ``args`` is the whole command line, program name first (``sys.argv`` when ``None``).
    ``--help`` prints the topics and parameters without starting ROS. ROS argument mistakes
    and start-up problems (missing checkpoint, invalid parameters) are logged as one error
    line and give exit code 1; Ctrl-C or SIGTERM, during start-up too, gives 0.
    """
    argv = sys.argv if args is None else args
    if wants_help(argv):
        print(node_help(SUBSCRIBED_TOPICS, PUBLISHED_TOPICS), end="")
        return 0
    try:
        init_ros(argv)
    except UserError as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(error))
        return 1
    try:
        node = DepthNode()
    except UserError as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(error))
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:
        rclpy.try_shutdown()
        return 0
    except Exception:
        if rclpy.ok():
            raise
        # SIGINT/SIGTERM (launch stopping it) shut ROS down while the node was being created.
        return 0
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
