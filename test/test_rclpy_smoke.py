"""rclpy works in this environment: a sensor_msgs/Image round trip over real DDS on loopback."""

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is installed by `make test`; see README")
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


def test_image_round_trip_over_dds():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("smoke_test", context=context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        received = []
        node.create_subscription(Image, "smoke_image", received.append, qos)
        publisher = node.create_publisher(Image, "smoke_image", qos)

        pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
        message = Image(height=4, width=6, encoding="rgb8", step=18, data=pixels.tobytes())
        message.header.frame_id = "camera_optical_frame"

        deadline = time.monotonic() + 10.0
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert publisher.get_subscription_count() == 1, "publisher never matched the subscription"
        publisher.publish(message)
        while not received and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)

        assert len(received) == 1
        got = received[0]
        assert (got.height, got.width, got.encoding, got.header.frame_id) == (4, 6, "rgb8", "camera_optical_frame")
        np.testing.assert_array_equal(np.frombuffer(bytes(got.data), np.uint8).reshape(4, 6, 3), pixels)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
