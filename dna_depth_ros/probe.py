"""A client for the depth node: publishes camera images and records every output.

:class:`DepthNodeProbe` is used by the tests, the benchmarks and the demo, and is handy to
smoke-test a deployment from Python. It speaks the node's relative topic names, so give it
the same namespace as the node. :func:`cloud_xyz` reads the node's point clouds.

The stand-ins for a camera driver and ``ros2 bag play`` that feed the node from another
process live in :mod:`dna_depth_ros.stand_ins`; ``python -m dna_depth_ros.probe camera|play``
runs them (see there).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

# main: ``python -m dna_depth_ros.probe camera|play`` runs the stand-ins' command line.
from .stand_ins import main, preset_qos

__all__ = ["DepthNodeProbe", "OUTPUT_TYPES", "Received", "cloud_xyz", "main"]

OUTPUT_TYPES = {
    "depth/image": Image,
    "depth/camera_info": CameraInfo,
    "depth/colored": Image,
    "points": PointCloud2,
    "/diagnostics": DiagnosticArray,
}


@dataclass(frozen=True)
class Received:
    """One received message and the ROS time (nanoseconds) its callback ran."""

    msg: object
    receive_time_ns: int


class DepthNodeProbe(Node):
    """Publishes ``image`` (or ``image/compressed``) and ``camera_info``; records the outputs.

    Args:
        name: node name.
        compressed: publish ``sensor_msgs/CompressedImage`` on ``image/compressed``.
        reliability: reliability of the output subscriptions; must be compatible with the
            node's ``publisher_reliability`` (best_effort accepts both).
        outputs: the output topics to subscribe to (see :data:`OUTPUT_TYPES`).
        publish_inputs: create the ``image`` and ``camera_info`` publishers (``False`` when
            another process feeds the node).
        **node_options: passed to :class:`rclpy.node.Node` (``namespace``, ``context``...).
    """

    def __init__(
        self,
        name: str = "dna_depth_probe",
        compressed: bool = False,
        reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE,
        outputs: tuple[str, ...] = tuple(OUTPUT_TYPES),
        publish_inputs: bool = True,
        **node_options,
    ) -> None:
        super().__init__(name, **node_options)
        self._condition = threading.Condition()
        self.received: dict[str, list[Received]] = defaultdict(list)
        self.image_publisher: Publisher | None = None
        self.camera_info_publisher: Publisher | None = None
        if publish_inputs:
            image_qos = preset_qos("default")
            if compressed:
                self.image_publisher = self.create_publisher(CompressedImage, "image/compressed", image_qos)
            else:
                self.image_publisher = self.create_publisher(Image, "image", image_qos)
            self.camera_info_publisher = self.create_publisher(CameraInfo, "camera_info", image_qos)
        output_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=reliability)
        self.output_subscriptions = {
            topic: self.create_subscription(OUTPUT_TYPES[topic], topic, self._recorder(topic), output_qos)
            for topic in outputs
        }

    def _recorder(self, topic: str) -> Callable[[object], None]:
        def record(msg: object) -> None:
            with self._condition:
                self.received[topic].append(Received(msg, self.get_clock().now().nanoseconds))
                self._condition.notify_all()

        return record

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (while an executor spins this node elsewhere) until ``condition()`` holds;
        ``False`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Woken by every message; the short period also catches graph changes.
                self._condition.wait(min(remaining, 0.02))
            return True

    def wait_for_node(self, timeout: float = 30.0) -> bool:
        """Wait until the node subscribes to our inputs and publishes to our output subscriptions."""
        inputs = [p for p in (self.image_publisher, self.camera_info_publisher) if p is not None]
        return self.wait_until(
            lambda: (
                all(publisher.get_subscription_count() > 0 for publisher in inputs)
                and all(
                    subscription.get_publisher_count() > 0
                    for topic, subscription in self.output_subscriptions.items()
                    if topic != "/diagnostics"
                )
            ),
            timeout,
        )

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._condition:
            self.received.clear()

    def count(self, topic: str) -> int:
        with self._condition:
            return len(self.received[topic])

    def latest(self, topic: str) -> object | None:
        with self._condition:
            messages = self.received[topic]
            return messages[-1].msg if messages else None

    def wait_for_stamp(self, topics: tuple[str, ...], stamp, timeout: float = 30.0) -> dict[str, object] | None:
        """The message with header ``stamp`` on each of ``topics``, or ``None`` on timeout."""

        def find() -> dict[str, object] | None:
            found = {}
            for topic in topics:
                matches = [r.msg for r in self.received[topic] if r.msg.header.stamp == stamp]
                if not matches:
                    return None
                found[topic] = matches[-1]
            return found

        if not self.wait_until(lambda: find() is not None, timeout):
            return None
        with self._condition:
            return find()

    def diagnostics_statuses(self, node_name: str = "dna_depth", received_after_ns: int = 0) -> list[DiagnosticStatus]:
        """Every diagnostics status of the depth node ``node_name`` in this probe's namespace
        received after ``received_after_ns`` (ROS time), oldest first."""
        prefix = f"{self.get_namespace().rstrip('/')}/{node_name}:"
        with self._condition:
            return [
                status
                for received in self.received["/diagnostics"]
                if received.receive_time_ns > received_after_ns
                for status in received.msg.status
                if status.name.startswith(prefix)
            ]

    def diagnostics_values(self, node_name: str = "dna_depth", received_after_ns: int = 0) -> dict[str, str]:
        """Key-value pairs of the latest diagnostics status of the depth node ``node_name`` in
        this probe's namespace (``/diagnostics`` is shared by every node) received after
        ``received_after_ns`` (ROS time), ``{}`` if none."""
        statuses = self.diagnostics_statuses(node_name, received_after_ns)
        return {pair.key: pair.value for pair in statuses[-1].values} if statuses else {}

    def wait_for_diagnostics(
        self, condition: Callable[[dict[str, str]], bool], timeout: float = 30.0, received_after_ns: int = 0
    ) -> dict[str, str]:
        """Wait for a diagnostics message (received after ``received_after_ns``) whose values
        satisfy ``condition``; returns its values (the latest values on timeout, which fail
        the condition)."""
        self.wait_until(lambda: condition(self.diagnostics_values(received_after_ns=received_after_ns)), timeout)
        with self._condition:
            return self.diagnostics_values(received_after_ns=received_after_ns)


def cloud_xyz(msg: PointCloud2) -> np.ndarray:
    """``(H, W, 3)`` float32 x, y, z (metres) of an organised ``PointCloud2``, read through
    its field offsets in the byte order it declares (``is_bigendian``)."""
    offsets = {field.name: field.offset for field in msg.fields}
    code = ">f4" if msg.is_bigendian else "<f4"
    dtype = np.dtype({"names": ["x", "y", "z"], "formats": [code] * 3,
                      "offsets": [offsets["x"], offsets["y"], offsets["z"]], "itemsize": msg.point_step})
    points = np.frombuffer(bytes(msg.data), dtype=dtype, count=msg.height * msg.width).reshape(msg.height, msg.width)
    return np.stack([points["x"], points["y"], points["z"]], axis=-1).astype(np.float32)


if __name__ == "__main__":
    sys.exit(main())
