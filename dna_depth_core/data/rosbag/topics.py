"""Choosing a bag's topics: the camera's image and camera-info topics, or checking the ones given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dna_depth_core.data.camera.encodings import ENCODINGS
from dna_depth_core.errors import UserError

from .images import _is_camera_encoding, image_encoding
from .messages import CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE, IMAGE_TYPE

if TYPE_CHECKING:  # the reader imports this module to offer its functions
    from .reader import RecordedBag


def require_topic(bag: RecordedBag, topic: str, msgtypes: tuple[str, ...], option: str) -> None:
    """Raise a UserError unless ``topic`` is in ``bag`` with one of ``msgtypes``; the
    message names ``option`` and the topics that would fit."""
    if bag.topics.get(topic) in msgtypes:
        return
    candidates = bag.topics_of_type(*msgtypes)
    found = f"is a {bag.topics[topic]}" if topic in bag.topics else "is not in the bag"
    raise UserError(
        f"topic {topic} {found} ({str(bag.path)!r}); {option} must name a "
        f"{' or '.join(msgtypes)} topic: " + (", ".join(candidates) if candidates else "the bag has none")
    )


@dataclass(frozen=True)
class CameraTopics:
    """The topics of the camera to fine-tune on.

    Attributes:
        image: an Image or CompressedImage topic of colour or grey camera frames.
        camera_info: the CameraInfo topic with that camera's calibration; ``None`` when the
            calibration comes from a file instead.
    """

    image: str
    camera_info: str | None


def _namespace(topic: str) -> str:
    """``/camera/image_raw`` -> ``/camera``."""
    return topic.rsplit("/", 1)[0]


def _camera_image_candidates(bag: RecordedBag) -> tuple[list[str], dict[str, str]]:
    """Image topics that carry camera frames, and the rejected ones with the reason."""
    candidates, rejected, subsampled = [], {}, set()
    for topic in bag.topics_of_type(IMAGE_TYPE, COMPRESSED_IMAGE_TYPE):
        first = next(iter(bag.messages([topic])), None)
        if first is None:
            rejected[topic] = "no messages"
            continue
        encoding = image_encoding(first)
        if not _is_camera_encoding(first.msgtype, encoding):
            rejected[topic] = f"encoding {encoding}"
            continue
        candidates.append(topic)
        if first.msgtype == IMAGE_TYPE and ENCODINGS[encoding].subsampled:
            subsampled.add(topic)
    # One camera stream each: image_transport publishes "<base>/compressed" beside "<base>"
    # (read losslessly from the raw topic), and a driver's Bayer or YUV image_raw comes with
    # image_proc's full-colour image_color / image_rect_color beside it (read those).
    full_colour_namespaces = {_namespace(topic) for topic in candidates if topic not in subsampled}
    streams = [
        topic
        for topic in candidates
        if not (topic.endswith("/compressed") and topic[: -len("/compressed")] in candidates)
        and not (topic in subsampled and _namespace(topic) in full_colour_namespaces)
    ]
    return streams, rejected


def select_camera_topics(
    bag: RecordedBag,
    image_topic: str | None = None,
    camera_info_topic: str | None = None,
    need_camera_info: bool = True,
) -> CameraTopics:
    """Pick the image and camera-info topics, or check the given ones.

    Automatic choice: image topics are Image/CompressedImage topics whose first message is
    a camera image (not depth); ``<base>/compressed`` is dropped when ``<base>`` is also
    there, and a Bayer or YUV topic when a full-colour one shares its namespace
    (``image_raw`` beside image_proc's ``image_color``). The camera info is the image's
    sibling ``<namespace>/camera_info`` (image_transport's convention) or the only
    CameraInfo topic. With
    ``need_camera_info`` false (the calibration comes from a file) no camera info topic is
    chosen.

    Raises:
        UserError: a given topic is missing or of the wrong type; no candidate; several
            candidates (the message lists them and names ``--image-topic`` /
            ``--camera-info-topic``).
    """
    if image_topic is not None:
        require_topic(bag, image_topic, (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE), "--image-topic")
    else:
        candidates, rejected = _camera_image_candidates(bag)
        if len(candidates) != 1:
            skipped = "; skipped: " + ", ".join(f"{t} ({why})" for t, why in rejected.items()) if rejected else ""
            if candidates:
                problem = f"has several camera image topics: {', '.join(candidates)}"
            else:
                problem = "has no camera image topic (sensor_msgs/Image or CompressedImage)"
            raise UserError(f"bag {str(bag.path)!r} {problem}{skipped}; choose one with --image-topic")
        image_topic = candidates[0]
    if not need_camera_info:
        return CameraTopics(image_topic, None)
    if camera_info_topic is not None:
        require_topic(bag, camera_info_topic, (CAMERA_INFO_TYPE,), "--camera-info-topic")
        return CameraTopics(image_topic, camera_info_topic)
    infos = bag.topics_of_type(CAMERA_INFO_TYPE)
    base = image_topic.removesuffix("/compressed") if bag.topics[image_topic] == COMPRESSED_IMAGE_TYPE else image_topic
    sibling = base.rsplit("/", 1)[0] + "/camera_info"
    if sibling in infos:
        return CameraTopics(image_topic, sibling)
    if len(infos) == 1:
        return CameraTopics(image_topic, infos[0])
    if not infos:
        raise UserError(
            f"bag {str(bag.path)!r} has no sensor_msgs/CameraInfo topic, so the camera's intrinsics are unknown; "
            "give the camera's calibration file with --camera-info FILE, or record the camera_info topic with "
            "the images"
        )
    raise UserError(
        f"bag {str(bag.path)!r} has several camera info topics ({', '.join(infos)}) and none is "
        f"{sibling}; choose one with --camera-info-topic"
    )
