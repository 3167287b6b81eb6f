"""Stand-ins for a camera driver and for ``ros2 bag play``, run as another process.

``python -m dna_depth_ros.probe camera`` (or ``python -m dna_depth_ros.stand_ins camera``) is
a plain camera driver (rclpy, a QoS preset, synthetic frames of any size at a fixed rate),
and ``... play`` replays a recorded bag with its recorded stamps and timing, optionally with
``/clock``. They exist to run as *another process*: Fast DDS hands messages between
participants of one process over its intra-process path, which never loses a fragment, so
only a second process exercises the transport a real camera uses (measured: a best-effort
subscription got 30 of 30 640x480 frames in one process, 0 of 30 from another).
:class:`PublisherProcess` runs either from Python and waits for the depth node first.
:class:`Pacer` paces any replay by its stamps (the demo's too).

    python -m dna_depth_ros.probe camera --size 1280x720 --rate 10 --frames 30 --qos sensor_data
    python -m dna_depth_ros.probe play recorded_bag --clock -m /camera/image_raw:=/image
"""

from __future__ import annotations

import argparse
import importlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSPresetProfiles, QoSProfile
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image

from dna_depth_core.errors import UserError

QOS_PRESETS = ("default", "sensor_data")
"""QoS presets a stand-in publisher can use: ``default`` (reliable, keep-last 10: what
rclpy and rclcpp publishers get unless told otherwise) or ``sensor_data`` (best effort,
keep-last 5: what many camera drivers use)."""

CLOCK_PERIOD_S = 0.01
"""Seconds between ``/clock`` messages while a stand-in waits for its next frame."""

READY_LINE = "ready"

REPLAYED_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo")
"""Message types ``play`` replays; other topics of the bag are left out."""


def preset_qos(name: str) -> QoSProfile:
    """The rclpy preset profile named ``name`` (one of :data:`QOS_PRESETS`)."""
    return QoSPresetProfiles.get_from_short_key(name)


def camera_pattern(height: int, width: int) -> np.ndarray:
    """A deterministic ``(height, width, 3)`` uint8 RGB image with structure at every scale."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    red = columns / max(width - 1, 1) * 255
    green = rows / max(height - 1, 1) * 255
    blue = 128 + 100 * np.sin(columns / 9 + rows / 13)
    return np.stack([red, green, blue], axis=2).clip(0, 255).astype(np.uint8)


class Pacer:
    """Sleeps until each frame's time (scaled by ``speed``), publishing ``/clock`` meanwhile."""

    def __init__(self, clock: Publisher | None, speed: float = 1.0) -> None:
        self._clock = clock
        self._speed = speed
        self._start: float | None = None
        self._first_ns = 0

    def wait_until(self, stamp_ns: int) -> None:
        """Return at the wall time of ``stamp_ns`` (the first stamp is now); the clock shows
        every step and finally ``stamp_ns`` itself."""
        if self._start is None:
            self._start, self._first_ns = time.monotonic(), stamp_ns
        due = self._start + (stamp_ns - self._first_ns) * 1e-9 / self._speed
        while (remaining := due - time.monotonic()) > 0:
            if self._clock is not None:
                elapsed = (time.monotonic() - self._start) * self._speed
                self._publish_clock(self._first_ns + int(elapsed * 1e9))
            time.sleep(min(remaining, CLOCK_PERIOD_S))
        if self._clock is not None:
            self._publish_clock(stamp_ns)

    def _publish_clock(self, stamp_ns: int) -> None:
        self._clock.publish(Clock(clock=Time(nanoseconds=stamp_ns).to_msg()))


def _wait_for_subscribers(publishers: Sequence[Publisher], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(publisher.get_subscription_count() for publisher in publishers):
        if time.monotonic() > deadline:
            missing = [publisher.topic_name for publisher in publishers if not publisher.get_subscription_count()]
            raise SystemExit(f"no subscriber to {', '.join(missing)} within {timeout:.0f} s; is the node running?")
        time.sleep(0.02)


def _ready(wait: bool) -> None:
    """With ``wait``: say so on stdout and block until a line arrives on stdin."""
    if wait:
        print(READY_LINE, flush=True)
        sys.stdin.readline()


def _finish(publishers: Sequence[Publisher]) -> None:
    """Give reliable subscribers the time to have lost fragments resent before we leave."""
    for publisher in publishers:
        publisher.wait_for_all_acked(Duration(seconds=5))


def publish_camera(
    node: Node,
    size: tuple[int, int],
    rate: float,
    frames: int,
    qos: QoSProfile,
    stamp_start: float | None = None,
    clock: bool = False,
    wait: bool = False,
) -> int:
    """Publish ``frames`` rgb8 images of ``size`` ``(width, height)`` pixels on ``image`` and
    matching ``camera_info`` at ``rate`` Hz, both with ``qos``, like a camera driver.

    Stamps are the node clock's now, or start at ``stamp_start`` (seconds since the epoch)
    and advance by 1/``rate`` per frame, as in a recording; ``clock`` also publishes
    ``/clock`` in those stamps' time. Returns the number of images published.
    """
    width, height = size
    image_publisher = node.create_publisher(Image, "image", qos)
    info_publisher = node.create_publisher(CameraInfo, "camera_info", qos)
    clock_publisher = node.create_publisher(Clock, "/clock", 10) if clock else None
    image = Image(height=height, width=width, encoding="rgb8", step=width * 3)
    image.data = camera_pattern(height, width).tobytes()
    image.header.frame_id = "camera_optical_frame"
    focal = 0.8 * width
    info = CameraInfo(height=height, width=width, distortion_model="plumb_bob", d=[0.0] * 5)
    info.k = [focal, 0.0, width / 2, 0.0, focal, height / 2, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [focal, 0.0, width / 2, 0.0, 0.0, focal, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.header.frame_id = image.header.frame_id
    _wait_for_subscribers([image_publisher], timeout=60.0)
    _ready(wait)
    first_ns = node.get_clock().now().nanoseconds if stamp_start is None else int(stamp_start * 1e9)
    pacer = Pacer(clock_publisher)
    for index in range(frames):
        stamp_ns = first_ns + int(round(index * 1e9 / rate))
        pacer.wait_until(stamp_ns)
        if stamp_start is None:
            stamp_ns = node.get_clock().now().nanoseconds
        image.header.stamp = info.header.stamp = Time(nanoseconds=stamp_ns).to_msg()
        info_publisher.publish(info)
        image_publisher.publish(image)
    _finish([image_publisher, info_publisher])
    return frames


def _message_class(msgtype: str) -> type:
    """The rclpy class of a bag's ``package/msg/Name`` type (ImportError when not installed)."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def play_bag(
    node: Node,
    bag: Path,
    remap: dict[str, str],
    qos: QoSProfile,
    speed: float = 1.0,
    clock: bool = False,
    wait: bool = False,
) -> int:
    """Replay the image and camera-info topics of ``bag`` as recorded: the stored CDR bytes
    (stamps untouched) at the recorded times scaled by ``speed``, on their topic names
    after ``remap`` (bag topic -> topic), all with ``qos``; ``clock`` publishes ``/clock``
    in the recording's time like ``ros2 bag play --clock``. Returns the messages published.
    """
    # rosbags directly, not dna_depth_core's RecordedBag: that imports torch, which takes
    # seconds, and a player needs none of its salvaging of damaged bags.
    from rosbags.rosbag2 import Reader, ReaderError

    try:
        reader = Reader(bag)
        reader.open()
    except (ReaderError, OSError) as error:
        raise UserError(f"cannot read bag {str(bag)!r} (a rosbag2 folder): {error}") from None
    try:
        connections = [c for c in reader.connections if c.msgtype in REPLAYED_TYPES]
        if not connections:
            raise UserError(f"bag {str(bag)!r} has no {', '.join(REPLAYED_TYPES)} topic to replay")
        publishers = {
            c.topic: node.create_publisher(_message_class(c.msgtype), remap.get(c.topic, c.topic), qos)
            for c in connections
        }
        clock_publisher = node.create_publisher(Clock, "/clock", 10) if clock else None
        _wait_for_subscribers(
            [publishers[c.topic] for c in connections if c.msgtype != "sensor_msgs/msg/CameraInfo"], timeout=60.0
        )
        _ready(wait)
        pacer = Pacer(clock_publisher, speed)
        published = 0
        for connection, log_time, data in reader.messages(connections):
            pacer.wait_until(log_time)
            publishers[connection.topic].publish(bytes(data))
            published += 1
    finally:
        reader.close()
    _finish(list(publishers.values()))
    return published


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(value) for value in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 640x480, got {text!r}") from None
    return width, height


def _remap(text: str) -> tuple[str, str]:
    source, separator, target = text.partition(":=")
    if not separator or not source or not target:
        raise argparse.ArgumentTypeError(f"expected FROM:=TO like /camera/image_raw:=/image, got {text!r}")
    return source, target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dna_depth_ros.probe",
        description="Stand-ins for a camera driver and for 'ros2 bag play', to feed the depth node from another "
        "process (see the module docstring). Prints 'published N' at the end.",
    )
    parser.add_argument("--namespace", default="/", help="namespace of the relative topic names (default /)")
    parser.add_argument(
        "--qos", choices=QOS_PRESETS, default="default",
        help="QoS preset of every publisher: default = reliable keep-last 10, sensor_data = best effort keep-last 5",
    )
    parser.add_argument("--clock", action="store_true", help="also publish /clock in the stamps' time")
    parser.add_argument(
        "--wait", action="store_true",
        help=f"once subscribed, print '{READY_LINE}' and start publishing after a line on stdin",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    camera = commands.add_parser("camera", help="publish synthetic rgb8 frames on image and camera_info")
    camera.add_argument("--size", type=_size, default=(640, 480), help="WIDTHxHEIGHT in pixels (default 640x480)")
    camera.add_argument("--rate", type=float, default=10.0, help="frames per second (default 10)")
    camera.add_argument("--frames", type=int, default=30, help="number of frames (default 30)")
    camera.add_argument(
        "--stamp-start", type=float, help="stamp of the first frame, seconds since the epoch (default: now, live)"
    )
    play = commands.add_parser("play", help="replay a bag's image and camera-info topics with their recorded stamps")
    play.add_argument("bag", type=Path, help="rosbag2 folder or .db3/.mcap file")
    play.add_argument("-m", "--remap", type=_remap, action="append", default=[], help="FROM:=TO topic remapping")
    play.add_argument("--speed", type=float, default=1.0, help="playback speed factor (default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m dna_depth_ros.probe``; returns the exit code."""
    import rclpy

    args = _parser().parse_args(argv)
    rclpy.init()
    node = rclpy.create_node(f"dna_depth_probe_{args.command}_{os.getpid()}", namespace=args.namespace)
    try:
        qos = preset_qos(args.qos)
        if args.command == "camera":
            published = publish_camera(
                node, args.size, args.rate, args.frames, qos, args.stamp_start, args.clock, args.wait
            )
        else:
            published = play_bag(node, args.bag, dict(args.remap), qos, args.speed, args.clock, args.wait)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"published {published}", flush=True)
    return 0


class PublisherProcess:
    """``python -m dna_depth_ros.probe ARGS`` as a child process that starts publishing on
    :meth:`start`, once it has a subscriber; use as a context manager (killed on exit).

    Args:
        args: the command line after the program, e.g. ``["--qos", "sensor_data",
            "camera", "--size", "640x480"]`` (``--wait`` is added).
        timeout: seconds to wait for it to be subscribed, and to finish.
    """

    def __init__(self, args: Sequence[str], timeout: float = 60.0) -> None:
        self._args = ["--wait", *args]
        self._timeout = timeout
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> PublisherProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "dna_depth_ros.stand_ins", *self._args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()

    def _read_output(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _next_line(self) -> str:
        try:
            line = self._lines.get(timeout=self._timeout)
        except queue.Empty:
            raise TimeoutError(f"{' '.join(self._args)}: no output within {self._timeout:.0f} s") from None
        if line is None:
            raise RuntimeError(f"{' '.join(self._args)} exited with code {self._process.wait()}")
        return line

    def wait_until_subscribed(self) -> None:
        """Block until the process has a subscriber on each of its image topics."""
        while self._next_line() != READY_LINE:
            pass

    def start(self) -> None:
        """Start publishing (after :meth:`wait_until_subscribed`)."""
        self._process.stdin.write("\n")
        self._process.stdin.flush()

    def finish(self) -> int:
        """Wait for the process to end; the number of messages it published."""
        while not (line := self._next_line()).startswith("published "):
            pass
        self._process.wait(timeout=self._timeout)
        return int(line.split()[1])


if __name__ == "__main__":
    sys.exit(main())
