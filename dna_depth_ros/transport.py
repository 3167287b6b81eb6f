"""How the depth node's topics travel: QoS defaults, ROS 2 QoS overrides, and delivery health.

Defaults (each overridable the ROS 2 way, see :func:`overridable`):

- inputs (``image``, ``image/compressed``, ``camera_info``): reliable, keep-last 5, volatile.
  Reliable because on one host stock Fast DDS carries data through a 512 KB shared-memory
  segment: a best-effort sample bigger than that (any 640x480 rgb8 frame or larger) loses
  fragments and is dropped, while a reliable reader has the missing fragments resent. A
  reliable subscription matches every reliable publisher (the ROS default QoS) and never
  slows a keep-last one down; it does not match a best-effort publisher, which needs
  ``qos_overrides.<topic>.subscription.reliability: best_effort``. Depth 5 so frames survive
  while the executor waits for the GIL; the node still processes only the newest
  (:class:`~dna_depth_ros.frame_slot.LatestFrameSlot`).
- outputs: reliable (what RViz subscribes with), keep-last 1, volatile.
- ``/diagnostics``: the ROS default, reliable keep-last 10.

The node process itself runs Fast DDS with :data:`LARGE_IMAGES_PROFILE` (a 64 MB
shared-memory segment, 4 MB socket buffers) unless Fast DDS is configured otherwise
(:func:`use_large_image_profile`): stock Fast DDS loses some of a frame's outputs in the
burst it publishes them in, and reliable subscribers then get them about 3 s late.

:class:`TransportMonitor` creates the node's publishers and subscriptions and turns what
the middleware reports (QoS event callbacks, matched publishers, per-publisher sequence
numbers) into :class:`~dna_depth_ros.diagnostics.Problem` entries, so diagnostics never say
OK while frames cannot arrive or are being lost.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.event_handler import (
    PublisherEventCallbacks,
    QoSMessageLostInfo,
    QoSRequestedIncompatibleQoSInfo,
    QoSSubscriptionMatchedInfo,
    SubscriptionEventCallbacks,
)
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSCompatibility,
    QoSProfile,
    ReliabilityPolicy,
    qos_check_compatible,
    qos_policy_name_from_kind,
)
from rclpy.qos_overriding_options import InvalidQosOverridesError, QoSOverridingOptions
from rclpy.subscription import MessageInfo, Subscription

from dna_depth_core.errors import UserError

from .diagnostics import Problem

Entity = TypeVar("Entity", Subscription, Publisher)

INPUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Default QoS of the image and camera-info subscriptions (see the module docstring)."""

OUTPUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Default QoS of depth/image, depth/camera_info, depth/colored and points."""

LARGE_IMAGES_PROFILE = Path(__file__).with_name("fastdds_large_images.xml")
"""Fast DDS profile for camera-sized messages (the file's comment says why)."""

_FAST_DDS_SETTINGS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "SKIP_DEFAULT_XML_FILE")
"""Environment variables with which a user has configured Fast DDS's XML profiles."""


def use_large_image_profile(environment: MutableMapping[str, str], working_directory: Path) -> str | None:
    """Point Fast DDS at :data:`LARGE_IMAGES_PROFILE` in ``environment`` (``os.environ``,
    before ROS starts) unless the middleware is not Fast DDS or the user configured its
    profiles (the variables of :data:`_FAST_DDS_SETTINGS`, or a ``DEFAULT_FASTDDS_PROFILES.xml``
    in ``working_directory``, which Fast DDS reads first).

    Returns:
        The line to log when the profile was set, else ``None``.
    """
    if environment.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return None
    configured = any(environment.get(name) for name in _FAST_DDS_SETTINGS)
    if configured or (working_directory / "DEFAULT_FASTDDS_PROFILES.xml").exists():
        return None
    environment["FASTDDS_DEFAULT_PROFILES_FILE"] = str(LARGE_IMAGES_PROFILE)
    return (f"Fast DDS: {LARGE_IMAGES_PROFILE.name} (64 MB shared-memory segment, 4 MB socket buffers, so "
            "camera-sized outputs are not lost and resent seconds late); set FASTDDS_DEFAULT_PROFILES_FILE "
            "to use your own")


DIAGNOSTICS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
"""Default QoS of /diagnostics (the ROS default profile)."""


def overridable() -> QoSOverridingOptions:
    """Declare ``qos_overrides.<fully qualified topic>.<publisher|subscription>.<policy>``
    parameters (history, depth, reliability: read-only, set at start from ``--params-file``
    or ``-p``) for one publisher or subscription, as image_pipeline nodes do."""
    return QoSOverridingOptions.with_default_policies(callback=_check_overridden_qos)


def _check_overridden_qos(qos: QoSProfile) -> SetParametersResult:
    if qos.history == HistoryPolicy.KEEP_LAST and qos.depth < 1:
        return SetParametersResult(successful=False, reason=f"depth must be at least 1 with keep_last, got {qos.depth}")
    return SetParametersResult(successful=True)


OVERRIDE_VALUES = "reliability: reliable | best_effort, history: keep_last | keep_all, depth: an integer >= 1"


def describe_qos(qos: QoSProfile) -> str:
    """``reliable, keep_last 5``-style summary of the policies that decide delivery."""
    history = qos.history.name.lower()
    depth = f" {qos.depth}" if qos.history == HistoryPolicy.KEEP_LAST else ""
    return f"{qos.reliability.name.lower()}, {history}{depth}"


def _override_key(topic: str, side: str, policy: str) -> str:
    return f"qos_overrides.{topic}.{side}.{policy.lower()}"


@dataclass(frozen=True)
class _Incompatibility:
    """The latest incompatible-QoS event of one of our endpoints."""

    policy: str
    level: bytes


class TransportMonitor:
    """Creates the node's subscriptions and publishers with QoS overrides and event
    callbacks, and turns what the middleware reports into diagnostics problems.

    Reported: incompatible QoS on either side (kept until the graph no longer holds such an
    endpoint; ERROR on the image input, where it means no frame can arrive, WARN elsewhere),
    image publishers matched for a while without a frame, frames missing from a publisher's
    sequence numbers (``frames_missed``) and DDS's count of samples lost in transport
    (``frames_lost_in_transport``, best-effort subscriptions only).

    Thread-safe: event and image callbacks run on the executor, :meth:`problems` on the
    diagnostics timer.

    Args:
        node: the node that owns the entities and whose graph view is inspected.
        log_warning: called with one line per incompatible-QoS event (topic, policy, the fix).
        count: called with ``(counter, amount)`` to add to a node counter.
    """

    def __init__(self, node: Node, log_warning: Callable[[str], object], count: Callable[[str, int], None]) -> None:
        self._node = node
        self._log_warning = log_warning
        self._count = count
        self._lock = threading.Lock()
        self._entities: dict[tuple[str, str], Subscription | Publisher] = {}
        self._incompatible: dict[tuple[str, str], _Incompatibility] = {}
        self._image: Subscription | None = None
        self._image_matched_since: float | None = None
        self._last_frame: float | None = None
        self._last_sequence: dict[bytes, int] = {}

    # ---------------------------------------------------------------- entities

    def subscribe_images(
        self, msg_type: type, topic: str, callback: Callable[[object, MessageInfo], None]
    ) -> Subscription:
        """The image subscription (``callback(msg, info)``): :data:`INPUT_QOS`, overridable;
        call :meth:`on_frame` from ``callback``."""
        name = self._node.resolve_topic_name(topic)
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda event: self._on_incompatible(name, "subscription", event, DiagnosticStatus.ERROR),
            matched=self._on_image_matched,
            message_lost=self._on_message_lost,
        )
        self._image = self._subscribe(msg_type, topic, name, callback, events)
        return self._image

    def subscribe(self, msg_type: type, topic: str, callback: Callable[[object], None]) -> Subscription:
        """Another input (``camera_info``): :data:`INPUT_QOS`, overridable; incompatible QoS
        is a WARN (depth still flows, depth/camera_info and points wait)."""
        name = self._node.resolve_topic_name(topic)
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda event: self._on_incompatible(name, "subscription", event, DiagnosticStatus.WARN)
        )
        return self._subscribe(msg_type, topic, name, callback, events)

    def _subscribe(
        self, msg_type: type, topic: str, name: str, callback: Callable, events: SubscriptionEventCallbacks
    ) -> Subscription:
        return self._create(
            "subscription",
            name,
            lambda: self._node.create_subscription(
                msg_type,
                topic,
                callback,
                copy.copy(INPUT_QOS),
                event_callbacks=events,
                qos_overriding_options=overridable(),
            ),
        )

    def advertise(self, msg_type: type, topic: str, qos: QoSProfile) -> Publisher:
        """A publisher with default ``qos``, overridable; a subscriber asking for more than it
        offers (e.g. reliable against a best-effort output) gets nothing: a WARN."""
        name = self._node.resolve_topic_name(topic)
        events = PublisherEventCallbacks(
            incompatible_qos=lambda event: self._on_incompatible(name, "publisher", event, DiagnosticStatus.WARN)
        )
        return self._create(
            "publisher",
            name,
            lambda: self._node.create_publisher(
                msg_type, topic, copy.copy(qos), event_callbacks=events, qos_overriding_options=overridable()
            ),
        )

    def _create(self, side: str, topic: str, create: Callable[[], Entity]) -> Entity:
        """``create()`` the publisher or subscription of ``topic`` (fully qualified) and
        keep it; a bad ``qos_overrides`` value becomes one UserError line. ``create`` must
        pass a copy of the default profile: rclpy writes the overrides into it."""
        try:
            entity = create()
        except (RuntimeError, ParameterException, InvalidQosOverridesError) as error:
            raise UserError(
                f"invalid QoS override for the {side} of {topic} (qos_overrides.{topic}.{side}.*): "
                f"{str(error).splitlines()[0]}; allowed: {OVERRIDE_VALUES}"
            ) from None
        with self._lock:
            self._entities[(topic, side)] = entity
        return entity

    # ---------------------------------------------------------------- events

    def _on_incompatible(self, topic: str, side: str, event: QoSRequestedIncompatibleQoSInfo, level: bytes) -> None:
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        with self._lock:
            self._incompatible[(topic, side)] = _Incompatibility(policy, level)
            entity = self._entities.get((topic, side))
        ours = f" ({describe_qos(entity.qos_profile)})" if entity is not None else ""
        other = "publisher" if side == "subscription" else "subscription"
        self._log_warning(
            f"{topic}: a {other} with incompatible QoS ({policy}) cannot connect to this {side}{ours}; "
            f"set {_override_key(topic, side, policy)} to match it (see docs/ros_node.md, QoS)"
        )

    def _on_image_matched(self, event: QoSSubscriptionMatchedInfo) -> None:
        with self._lock:
            if event.current_count == 0:
                self._image_matched_since = None
            elif self._image_matched_since is None:
                self._image_matched_since = time.monotonic()

    def _on_message_lost(self, event: QoSMessageLostInfo) -> None:
        if event.total_count_change > 0:
            self._count("lost_in_transport", event.total_count_change)

    def on_frame(self, info: MessageInfo, received: float) -> None:
        """Note an image message received at monotonic time ``received`` (seconds). Frames
        its publisher sent since its previous one that never reached us (gaps in the
        publication sequence numbers: lost in transport, or replaced in the subscription
        queue while the executor was busy) are counted as ``frames_missed``."""
        sequence = info.get("publication_sequence_number")
        gid = info.get("publisher_gid")
        missed = 0
        with self._lock:
            self._last_frame = received
            if sequence and gid is not None:  # 0 / None: the middleware does not number samples
                key = bytes(gid["data"])
                previous = self._last_sequence.get(key)
                if previous is not None and sequence > previous:
                    missed = sequence - previous - 1
                self._last_sequence[key] = max(sequence, previous or 0)
        if missed:
            self._count("missed", missed)

    # ---------------------------------------------------------------- diagnostics

    def image_publisher_count(self) -> int:
        """Publishers matched with the image subscription (compatible QoS)."""
        return self._image.get_publisher_count() if self._image is not None else 0

    def problems(self, input_timeout: float, now: float) -> list[Problem]:
        """Current problems: incompatible endpoints still in the graph, and image publishers
        matched for ``input_timeout`` seconds without a frame (``now``: monotonic seconds)."""
        with self._lock:
            incompatible = list(self._incompatible.items())
            matched_since, last_frame = self._image_matched_since, self._last_frame
        problems = []
        for (topic, side), record in incompatible:
            entity = self._entities[(topic, side)]
            peers = self._incompatible_peers(topic, side, entity.qos_profile)
            if not peers:  # the endpoint left (or changed): forget the event
                with self._lock:
                    if self._incompatible.get((topic, side)) is record:
                        del self._incompatible[(topic, side)]
                continue
            other = "publisher" if side == "subscription" else "subscription"
            problems.append(
                Problem(
                    record.level,
                    f"{topic}: {len(peers)} {other}(s) ({', '.join(peers)}) with incompatible QoS ({record.policy}) "
                    f"against ours ({describe_qos(entity.qos_profile)}); "
                    f"set {_override_key(topic, side, record.policy)}",
                )
            )
        publishers = self.image_publisher_count()
        if publishers and matched_since is not None:
            silent = now - max(matched_since, last_frame or matched_since)
            if silent >= input_timeout:
                problems.append(
                    Problem(
                        DiagnosticStatus.WARN,
                        f"{self._image.topic_name}: {publishers} publisher(s) matched but no frame for {silent:.1f} s "
                        "(frames over 512 KB sent best effort are lost in transport on one host: see "
                        "docs/ros_node.md, QoS)",
                    )
                )
        return problems

    def _incompatible_peers(self, topic: str, side: str, ours: QoSProfile) -> list[str]:
        """Names of the nodes whose endpoints on ``topic`` cannot match ours."""
        if side == "subscription":
            pairs = [(e, e.qos_profile, ours) for e in self._node.get_publishers_info_by_topic(topic)]
        else:
            pairs = [(e, ours, e.qos_profile) for e in self._node.get_subscriptions_info_by_topic(topic)]
        return [
            f"{endpoint.node_namespace.rstrip('/')}/{endpoint.node_name}"
            for endpoint, offered, requested in pairs
            if qos_check_compatible(offered, requested)[0] == QoSCompatibility.ERROR
        ]
