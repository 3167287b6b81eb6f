"""How many of a burst of camera-sized messages Fast DDS delivers, stock and with the node's profile.

A publisher process sends ``--bursts`` bursts at ``--rate`` Hz of one message per topic
(sizes ``--sizes``, in bytes: by default the depth node's outputs for a 224x160 network,
depth, coloured depth, camera info, cloud), reliable keep-last 1 like the node's outputs;
a subscriber process (reliable keep-last 100, as RViz or a costmap would) counts what
arrives per topic. Rows: both processes on stock Fast DDS, stock over UDP only, the
publisher on ``dna_depth_ros/fastdds_large_images.xml`` (what the depth node runs), and
the profile on the subscriber only. Each row uses its own ``ROS_DOMAIN_ID``::

    python benchmarks/dds_burst.py
    python benchmarks/dds_burst.py --sizes 3686400,2764800,500,14745600 --bursts 100   # 1280x720 outputs
"""

from __future__ import annotations

import argparse
import array
import os
import random
import subprocess
import sys
import time

ROWS = (
    ("stock", {}, {}),
    ("stock, UDPv4 only", {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}, {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}),
    ("publisher on the profile", "profile", {}),
    ("subscriber on the profile", {}, "profile"),
)


def qos(depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def publish(sizes: list[int], bursts: int, rate: float) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("burst_publisher")
    publishers = [node.create_publisher(Image, f"burst_{index}", qos(1)) for index in range(len(sizes))]
    payloads = [array.array("B", bytes(size)) for size in sizes]
    while min(publisher.get_subscription_count() for publisher in publishers) == 0:
        time.sleep(0.1)
    time.sleep(1.0)  # the subscriber's side of discovery
    for _ in range(bursts):
        stamp = node.get_clock().now().to_msg()
        for publisher, payload in zip(publishers, payloads):
            message = Image(check_fields=True)
            message.header.stamp, message.height, message.width, message.step = stamp, 1, len(payload), len(payload)
            message.encoding, message.data = "mono8", payload
            publisher.publish(message)
        time.sleep(1.0 / rate)
    time.sleep(4.0)  # a heartbeat's repairs
    rclpy.shutdown()


def subscribe(topics: int, seconds: float) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("burst_subscriber")
    received = [0] * topics

    def counter(index: int):
        def count(_message) -> None:
            received[index] += 1

        return count

    subscriptions = [node.create_subscription(Image, f"burst_{index}", counter(index), qos(100))  # noqa: F841
                     for index in range(topics)]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(",".join(str(count) for count in received), flush=True)
    rclpy.shutdown()


def environment(settings, domain: int) -> dict[str, str]:
    from dna_depth_ros.transport import LARGE_IMAGES_PROFILE

    extra = {"FASTDDS_DEFAULT_PROFILES_FILE": str(LARGE_IMAGES_PROFILE)} if settings == "profile" else settings
    base = {name: value for name, value in os.environ.items() if not name.startswith("FASTDDS_")}
    return {**base, **extra, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="143360,107520,500,573440", help="message sizes in bytes, one per topic")
    parser.add_argument("--bursts", type=int, default=200, help="bursts per row (default %(default)s)")
    parser.add_argument("--rate", type=float, default=20.0, help="bursts per second (default %(default)s)")
    parser.add_argument("--role", choices=("publish", "subscribe"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    seconds = args.bursts / args.rate + 12.0
    if args.role == "publish":
        publish(sizes, args.bursts, args.rate)
        return 0
    if args.role == "subscribe":
        subscribe(len(sizes), seconds)
        return 0
    print(f"{args.bursts} bursts at {args.rate:g} Hz of {', '.join(f'{size / 1024:.1f} KB' for size in sizes)}")
    print("| Fast DDS | received per topic |\n|---|---|")
    for label, publisher_settings, subscriber_settings in ROWS:
        domain = random.randint(100, 200)
        script = [sys.executable, __file__, "--sizes", args.sizes, "--bursts", str(args.bursts),
                  "--rate", str(args.rate)]
        subscriber = subprocess.Popen([*script, "--role", "subscribe"], stdout=subprocess.PIPE, text=True,
                                      env=environment(subscriber_settings, domain))
        time.sleep(2.0)
        subprocess.run([*script, "--role", "publish"], env=environment(publisher_settings, domain), check=True,
                       timeout=seconds + 30)
        counts, _ = subscriber.communicate(timeout=seconds + 30)
        print(f"| {label} | {counts.strip().replace(',', ', ')} of {args.bursts} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
