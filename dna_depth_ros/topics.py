"""The depth node's topics: names (relative, so namespaces and remapping work) and what
``depth_node --help`` says of them (``test_ros_startup`` checks them against a running node)."""

from __future__ import annotations

from .command_line import TopicDoc

NODE_NAME = "dna_depth"
"""The node's default name (its logger's too)."""

DEPTH_TOPIC = "depth/image"
DEPTH_INFO_TOPIC = "depth/camera_info"
COLORED_TOPIC = "depth/colored"
POINTS_TOPIC = "points"
OUTPUT_TOPICS = (DEPTH_TOPIC, DEPTH_INFO_TOPIC, COLORED_TOPIC, POINTS_TOPIC)

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
