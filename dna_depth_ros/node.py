"""The depth node itself (:class:`DepthNode`): parameters, topics, the hand-over to the
inference thread, diagnostics. What it does with a frame is :mod:`dna_depth_ros.frame_processing`;
the entry point and the topics are described in :mod:`dna_depth_ros.depth_node`.

The subscription callback only validates and hands the message to one inference thread
through a one-frame slot, so a new frame replaces one still waiting (counted as dropped)
and latency never grows with load.

QoS (:mod:`dna_depth_ros.transport`): reliable inputs, so a default-QoS camera's large
frames arrive; every topic takes the standard ``qos_overrides.<topic>.*`` parameters; what
the middleware reports (incompatible QoS, silent publishers, lost frames) is in diagnostics.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.subscription import MessageInfo
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from dna_depth_core.data.camera.calibration import CameraCalibration
from dna_depth_core.errors import UserError

from .bad_input import BadInput
from .camera_model import calibration_from_message
from .conversions import check_image
from .diagnostics import FrameTiming, NodeStatistics, ThrottledLog, diagnostic_status
from .frame_processing import FrameProcessor, PreparedFrame
from .frame_slot import LatestFrameSlot
from .model_loading import load_estimator
from .parameters import (
    PARAMETERS,
    NodeSettings,
    effective_depth_range,
    parameter_descriptor,
    settings_from_values,
    with_overrides,
)
from .topics import NODE_NAME, COLORED_TOPIC, DEPTH_INFO_TOPIC, DEPTH_TOPIC, OUTPUT_TOPICS, POINTS_TOPIC
from .transport import DIAGNOSTICS_QOS, OUTPUT_QOS, TransportMonitor, describe_qos

LOG_PERIOD_S = 5.0
"""Each kind of bad input or warning is logged at most once per this many seconds."""


@dataclass(frozen=True)
class _PendingFrame:
    """An input message waiting for the inference thread, with its steady-clock receipt
    time and its age at receipt (seconds, see FrameTiming)."""

    msg: Image | CompressedImage
    received: float
    input_age: float | None


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
        self._camera_info_key: tuple | None = None

        self._transport = TransportMonitor(self, self.get_logger().warning, self._statistics.count)
        self._output_publishers = {
            DEPTH_TOPIC: self._transport.advertise(Image, DEPTH_TOPIC, OUTPUT_QOS),
            DEPTH_INFO_TOPIC: self._transport.advertise(CameraInfo, DEPTH_INFO_TOPIC, OUTPUT_QOS),
            COLORED_TOPIC: self._transport.advertise(Image, COLORED_TOPIC, OUTPUT_QOS),
            POINTS_TOPIC: self._transport.advertise(PointCloud2, POINTS_TOPIC, OUTPUT_QOS),
        }
        self._diagnostics_publisher = self._transport.advertise(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        # Camera info first: the executor serves ready subscriptions in creation order, so a
        # frame that arrives together with its camera info is prepared with it.
        self._camera_info_subscription = self._transport.subscribe(CameraInfo, "camera_info", self._on_camera_info)
        if self._settings.image_transport == "compressed":
            self._image_subscription = self._transport.subscribe_images(
                CompressedImage, "image/compressed", self._on_image
            )
        else:
            self._image_subscription = self._transport.subscribe_images(Image, "image", self._on_image)
        self._frames = FrameProcessor(
            self._estimator, self._image_subscription.topic_name, self._camera_info_subscription.topic_name,
            self._report_bad_input, self._log_warning, self.get_logger().warning,
        )  # fmt: skip
        self._frames.calibration = self._file_calibration

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
        # Cameras send the same info with every frame: parse and check it only when it changes.
        key = _camera_info_key(msg)
        if key == self._camera_info_key:
            return
        try:
            self._frames.calibration = calibration_from_message(msg, self._camera_info_subscription.topic_name)
        except BadInput as bad:
            self._report_bad_input(bad)
            return
        self._camera_info_key = key

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
            "depth_units": self._depth_units_note(),
        }
        if self._settings.ground_plane_scale_enabled:
            notes.update(self._frames.ground_scaler.notes())
        problems = self._transport.problems(self._settings.input_timeout, current.wall_time)
        status = diagnostic_status(
            current, self._previous_statistics, f"{self.get_fully_qualified_name()}: depth", NODE_NAME, notes,
            problems,
        )
        self._previous_statistics = current
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics_publisher.publish(DiagnosticArray(header=header, status=[status]))

    def _depth_units_note(self) -> str:
        if self._settings.ground_plane_scale_enabled:
            return f"metres (ground plane, camera {self._settings.ground_plane_scale_camera_height:g} m up)"
        return "metres" if self._metadata.metric or self._settings.depth_scale else "relative (unscaled)"

    def _calibration_note(self) -> str:
        if self._file_calibration is not None:
            return f"file {self._settings.camera_info_file}"
        return "received" if self._frames.calibration is not None else "none yet"

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
        started, started_cpu = time.perf_counter(), time.thread_time()
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
        forward_cpu = time.thread_time()
        disparity, forward = self._forward(prepared.tensor)
        forward_cpu = time.thread_time() - forward_cpu
        for topic, message in self._frames.outputs(prepared, disparity, header, wanted, settings):
            self._output_publishers[topic].publish(message)

        processing = time.perf_counter() - started
        finished = time.monotonic()
        self._statistics.add_frame(
            FrameTiming(processing, forward, finished - frame.received, frame.input_age, finished,
                        time.thread_time() - started_cpu - forward_cpu)
        )

    def prepare(self, msg: Image | CompressedImage) -> PreparedFrame:
        """Decode an image message and prepare it for the network with the latest calibration
        and parameters (see :meth:`FrameProcessor.prepare`).

        Raises:
            BadInput: the image cannot be decoded.
        """
        return self._frames.prepare(msg, self._settings)

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


def _camera_info_key(msg: CameraInfo) -> tuple:
    """Every field of a camera info but its header, hashable."""
    roi = msg.roi
    return (
        msg.height, msg.width, msg.distortion_model, tuple(msg.d), tuple(msg.k), tuple(msg.r), tuple(msg.p),
        msg.binning_x, msg.binning_y, roi.x_offset, roi.y_offset, roi.height, roi.width, roi.do_rectify,
    )
