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

Every output carries the input image's header. A new frame replaces one still waiting
for the inference thread (counted as dropped), so latency never grows with load; outputs
nobody subscribes to are not built (:mod:`dna_depth_ros.frame_processing`).

QoS (:mod:`dna_depth_ros.transport`): reliable inputs, so a default-QoS camera's large
frames arrive; every topic takes the standard ``qos_overrides.<topic>.*`` parameters; what
the middleware reports (incompatible QoS, silent publishers, lost frames) is in diagnostics.

Run: ``ros2 run dna_depth_ros depth_node --ros-args --params-file config/dna_depth.yaml``
or ``python -m dna_depth_ros.depth_node --ros-args -p checkpoint:=model.safetensors``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from dna_depth_core.errors import UserError

from .command_line import init_ros, node_help, wants_help
from .topics import NODE_NAME, PUBLISHED_TOPICS, SUBSCRIBED_TOPICS
from .transport import use_large_image_profile


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
    transport_notice = use_large_image_profile(os.environ, Path.cwd())
    try:
        init_ros(argv)
    except UserError as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(error))
        return 1
    if transport_notice:
        rclpy.logging.get_logger(NODE_NAME).info(transport_notice)
    # Only now: the node imports torch and the network code, seconds that --help should not wait.
    from .node import DepthNode

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
