"""The DNA-Depth ROS 2 node: camera image in; depth, coloured depth and point cloud out.

Topics (relative, so namespaces and remapping work):

- in: ``image`` (``sensor_msgs/Image``) or, with ``image_transport: compressed``,
  ``image/compressed``; ``camera_info`` (cached, the latest valid one is used);
- out: ``depth/image`` (32FC1 metres, NaN invalid, REP 117/118), ``depth/camera_info``,
  ``depth/colored`` (bgr8), ``points`` (organised ``PointCloud2``), ``/diagnostics``.

Every output carries the input image's header. The subscription callback only validates
and hands the message to one inference thread through a one-frame slot, so a new frame
replaces one still waiting (counted as dropped) and latency never grows with load.

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

import cv2
import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from dna_depth_core.errors import UserError
from dna_depth_core.geometry import disp_to_depth

from .bad_input import BadInput
from .camera_model import CameraModel, scale_camera_info
from .colorize import colorize_depth, valid_depth_range
from .command_line import TopicDoc, init_ros, node_help, wants_help
from .conversions import EncodingLayout, bgr8_image_msg, check_image, compressed_to_rgb, depth_image_msg, image_to_rgb
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
    """An input message waiting for the inference thread (``layout`` set for raw images)."""

    msg: Image | CompressedImage
    layout: EncodingLayout | None


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

        self._camera: CameraModel | None = None
        self._cloud_builder: PointCloudBuilder | None = None

        output_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1,
            durability=DurabilityPolicy.VOLATILE,
            reliability=ReliabilityPolicy.RELIABLE
            if self._settings.publisher_reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        self._output_publishers = {
            DEPTH_TOPIC: self.create_publisher(Image, DEPTH_TOPIC, output_qos),
            DEPTH_INFO_TOPIC: self.create_publisher(CameraInfo, DEPTH_INFO_TOPIC, output_qos),
            COLORED_TOPIC: self.create_publisher(Image, COLORED_TOPIC, output_qos),
            POINTS_TOPIC: self.create_publisher(PointCloud2, POINTS_TOPIC, output_qos),
        }
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if self._settings.image_transport == "compressed":
            self._image_subscription = self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, qos_profile_sensor_data
            )
        else:
            self._image_subscription = self.create_subscription(Image, "image", self._on_image, qos_profile_sensor_data)
        self._camera_info_subscription = self.create_subscription(
            CameraInfo, "camera_info", self._on_camera_info, qos_profile_sensor_data
        )

        self.add_on_set_parameters_callback(self._validate_parameter_change)
        self.add_post_set_parameters_callback(self._apply_parameter_change)
        self._previous_statistics = self._statistics.snapshot()
        self._diagnostics_timer = self.create_timer(self._settings.diagnostics_period, self._publish_diagnostics)
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
            f"device {estimator.device}, backend {estimator.backend}"
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
            _, forward = self._forward(self._estimator.preprocess(blank))
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

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._camera = CameraModel.from_info(msg)
        except BadInput as bad:
            self._report_bad_input(bad)

    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._statistics.count("received")
        layout = None
        if isinstance(msg, Image):
            try:
                layout = check_image(msg, self._settings.max_input_pixels)
            except BadInput as bad:
                self._report_bad_input(bad)
                return
        if self._slot.put(_PendingFrame(msg, layout)):
            self._statistics.count("dropped")

    def _report_bad_input(self, bad: BadInput) -> None:
        self._statistics.count(f"bad_input.{bad.kind}")
        self._log_bad_input(bad.kind, f"bad input ({bad.kind}): {bad}")

    def _publish_diagnostics(self) -> None:
        current = self._statistics.snapshot()
        notes = {
            "device": str(self._estimator.device),
            "input_topic": self._image_subscription.topic_name,
            "camera_info": "received" if self._camera is not None else "none yet",
            "depth_units": "metres" if self._metadata.metric or self._settings.depth_scale else "relative (unscaled)",
        }
        status = diagnostic_status(
            current, self._previous_statistics, f"{self.get_fully_qualified_name()}: depth", "dna_depth", notes
        )
        self._previous_statistics = current
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics_publisher.publish(DiagnosticArray(header=header, status=[status]))

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
        stamp_ns = Time.from_msg(header.stamp).nanoseconds
        input_age = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-9 if stamp_ns else None
        if settings.skip_without_subscribers:
            wanted = {topic for topic, count in self.output_subscriber_counts().items() if count > 0}
            if not wanted:
                self._statistics.count("skipped_no_subscribers")
                return
        else:
            wanted = set(OUTPUT_TOPICS)

        if frame.layout is not None:
            rgb = image_to_rgb(frame.msg, frame.layout)
        else:
            rgb = compressed_to_rgb(frame.msg, settings.max_input_pixels)
        network_size = self._estimator.input_size
        network_rgb = rgb
        if rgb.shape[:2] != network_size:
            network_rgb = cv2.resize(rgb, network_size[::-1], interpolation=cv2.INTER_AREA)
        disparity, forward = self._forward(self._estimator.preprocess(network_rgb))

        output_rgb = rgb if settings.output_resolution == "input" else network_rgb
        depth, valid = self._depth(disparity, output_rgb.shape[:2], settings)
        if DEPTH_TOPIC in wanted:
            self._output_publishers[DEPTH_TOPIC].publish(depth_image_msg(depth, header))
        if COLORED_TOPIC in wanted:
            self._output_publishers[COLORED_TOPIC].publish(
                bgr8_image_msg(self._colorize(depth, valid, settings), header)
            )
        if wanted & {DEPTH_INFO_TOPIC, POINTS_TOPIC}:
            self._publish_geometry(depth, output_rgb, rgb.shape[:2], header, wanted, settings)

        finished = time.perf_counter()
        latency = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-9 if stamp_ns else None
        self._statistics.add_frame(FrameTiming(finished - started, forward, latency, input_age))

    def _depth(
        self, disparity: torch.Tensor, output_size: tuple[int, int], settings: NodeSettings
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Network disparity -> float32 ``(H, W)`` metres at ``output_size``, NaN where invalid,
        plus a uint8 validity mask (``None`` when every pixel is valid)."""
        metadata = self._metadata
        # On the host in numpy: disp_to_depth is element-wise and, on a busy CPU, torch's
        # intra-op threads cost far more than the arithmetic for one small map.
        disparity = disparity[0, 0].cpu().numpy()
        network_depth = disp_to_depth(disparity, metadata.min_depth, metadata.max_depth)
        depth = np.multiply(network_depth, effective_depth_scale(settings, metadata.depth_scale), dtype=np.float32)
        if depth.shape != output_size:
            depth = cv2.resize(depth, output_size[::-1], interpolation=cv2.INTER_NEAREST)
        low, high = effective_depth_range(settings, *self._checkpoint_range())
        valid = np.isfinite(depth)
        if settings.invalid_outside_range:
            valid &= (depth >= low) & (depth <= high)
        else:
            np.clip(depth, low, high, out=depth)
        if valid.all():
            return depth, None
        depth[~valid] = np.nan
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
        input_size: tuple[int, int],
        header: Header,
        wanted: set[str],
        settings: NodeSettings,
    ) -> None:
        """Publish ``depth/camera_info`` and ``points``, which need the camera intrinsics.

        ``depth`` (metres, NaN invalid) and ``output_rgb`` share the output size; ``input_size``
        is the ``(height, width)`` of the camera image the camera info must describe."""
        camera = self._camera
        if camera is None:
            self._log_warning(
                "no_camera_info",
                f"no valid camera info on {self._camera_info_subscription.topic_name} yet: "
                f"{DEPTH_INFO_TOPIC} and {POINTS_TOPIC} wait for one",
            )
            return
        if camera.image_size is not None and camera.image_size != input_size:
            self._report_bad_input(
                BadInput(
                    "camera_info_mismatch",
                    f"camera info describes {camera.image_size[1]}x{camera.image_size[0]} images but the image is "
                    f"{input_size[1]}x{input_size[0]}; is camera_info from the same camera and resolution?",
                )
            )
            return
        output_size = depth.shape
        info = scale_camera_info(camera.info, output_size[1] / input_size[1], output_size[0] / input_size[0])
        info.header = header
        if DEPTH_INFO_TOPIC in wanted:
            self._output_publishers[DEPTH_INFO_TOPIC].publish(info)
        if POINTS_TOPIC in wanted:
            intrinsics = CameraModel.from_info(info).intrinsics
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
    TopicDoc(DEPTH_INFO_TOPIC, "sensor_msgs/CameraInfo", "camera info scaled to the depth image"),
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
