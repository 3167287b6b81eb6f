"""Ground-truth depth recorded in a bag, on the frames the network trained on.

Some bags carry depth next to the camera: a depth camera registered to the colour camera
(a RealSense's ``aligned_depth_to_color``), or the exact depth of a simulator such as the
sample bag's ``/camera/depth_gt``. :func:`ground_truth_depths` finds such a topic
(:func:`find_depth_topic`) and maps its maps onto training samples' target frames with the
camera's :class:`~dna_depth_core.data.camera.preparation.FramePlan`, nearest neighbour
(depth is never interpolated across edges), so they line up pixel for pixel with the
network's view. The fine-tune report shows them beside the predictions.

Geometry: a depth map has the camera image's size and is either in the raw camera's
geometry (topic name ending in ``raw``, e.g. ``image_raw``, ``depth_gt_raw``: rectified
like the camera images) or in the rectified pinhole geometry (any other name, e.g.
``image_rect``, ``depth_gt``: only cropped and resized).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from dna_depth_core.data.camera.preparation import FramePlan, is_rectified_topic, plan_training_frames

from .dataset import BagDataConfig, BagTripletDataset, camera_image_size, read_camera_calibration
from .reader import IMAGE_TYPE, RawMessage, RecordedBag, header_stamp_ns

DEPTH_ENCODINGS = {"32FC1": (np.dtype(np.float32), 1.0), "16UC1": (np.dtype(np.uint16), 1e-3)}
"""Depth image encodings (REP 118): 32FC1 in metres, 16UC1 in millimetres; the factor to metres."""


@dataclass
class GroundTruth:
    """Ground truth of some samples.

    Attributes:
        depths: per sample asked for, float32 ``(H, W)`` metres at the network size (NaN
            where unknown), or ``None`` (no depth topic, or no depth message at that frame).
        topics: the depth topic used in each bag (``None`` for a bag without one).
    """

    depths: list[np.ndarray | None]
    topics: dict[str, str | None]


def _in_raw_geometry(topic: str) -> bool:
    return topic.rstrip("/").rsplit("/", 1)[-1].endswith("raw")


def find_depth_topic(bag: RecordedBag, image_topic: str) -> str | None:
    """The bag's depth image topic: an ``Image`` topic named ``*depth*`` whose first message
    is 32FC1 or 16UC1, a rectified one before one in the raw geometry; ``None`` without one."""
    candidates = sorted((topic for topic, msgtype in bag.topics.items()
                         if msgtype == IMAGE_TYPE and "depth" in topic.lower() and topic != image_topic),
                        key=lambda topic: (_in_raw_geometry(topic), topic))
    for topic in candidates:
        first = next(iter(bag.messages([topic])), None)
        if first is not None and first.deserialize().encoding in DEPTH_ENCODINGS:
            return topic
    return None


def decode_depth(message: RawMessage) -> np.ndarray:
    """float32 ``(h, w)`` metres of a 32FC1/16UC1 ``Image``, NaN where unknown (NaN, 0, inf)."""
    image = message.deserialize()
    dtype, to_metres = DEPTH_ENCODINGS[image.encoding]
    dtype = dtype.newbyteorder(">" if image.is_bigendian else "<")
    rows = np.frombuffer(bytes(image.data), dtype=np.uint8).reshape(image.height, image.step)
    depth = rows[:, : image.width * dtype.itemsize].copy().view(dtype).reshape(image.height, image.width)
    metres = depth.astype(np.float32) * np.float32(to_metres)
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def to_network_frame(depth: np.ndarray, plan: FramePlan, raw_geometry: bool) -> np.ndarray:
    """A camera-size depth map -> the network's view, ``(H, W)``, nearest neighbour."""
    if raw_geometry:
        depth = plan.rectify(depth, interpolation=cv2.INTER_NEAREST)
    x0, y0, width, height = plan.crop_box
    network_height, network_width = plan.network_size
    region = np.ascontiguousarray(depth[y0 : y0 + height, x0 : x0 + width])
    return cv2.resize(region, (network_width, network_height), interpolation=cv2.INTER_NEAREST)


def ground_truth_depths(dataset: BagTripletDataset, indices: list[int], config: BagDataConfig) -> GroundTruth:
    """The recorded depth at the target frame of each sample ``indices`` of ``dataset``
    (matched by header stamp within half a frame period), mapped onto the network's view.

    Args:
        dataset: the samples.
        indices: which samples.
        config: the frame options the dataset was built with (calibration, undistortion).
    """
    wanted: dict[int, list[tuple[int, float]]] = defaultdict(list)  # sequence -> (slot, stamp in s)
    for slot, index in enumerate(indices):
        sequence, _, target, _ = (int(value) for value in dataset.triplets[index])
        wanted[sequence].append((slot, float(dataset.sequences[sequence].stamps[target])))
    depths: list[np.ndarray | None] = [None] * len(indices)
    topics: dict[str, str | None] = {}
    for sequence_index, slots in wanted.items():
        sequence = dataset.sequences[sequence_index]
        bag = RecordedBag(sequence.bag_path)
        topic = topics[sequence.bag_path] = find_depth_topic(bag, sequence.topics.image)
        if topic is None:
            continue
        rectified = not config.undistort or is_rectified_topic(sequence.topics.image)
        image_size = camera_image_size(bag, sequence.topics.image)
        plan = plan_training_frames(image_size, (config.height, config.width),
                                    read_camera_calibration(bag, sequence.topics, config), rectified)
        tolerance_ns = 0.5 * sequence.frame_period * 1e9
        for message in bag.messages([topic]):
            stamp_ns = header_stamp_ns(message.data)
            matches = [slot for slot, stamp in slots if abs(stamp_ns - stamp * 1e9) <= tolerance_ns]
            if not matches:
                continue
            depth = decode_depth(message)
            if depth.shape != image_size:
                warnings.warn(f"{topic} is {depth.shape[1]}x{depth.shape[0]}, not the camera's "
                              f"{image_size[1]}x{image_size[0]}: not registered to it, left out of the report",
                              stacklevel=2)
                topics[sequence.bag_path] = None
                break
            for slot in matches:
                depths[slot] = to_network_frame(depth, plan, _in_raw_geometry(topic))
    return GroundTruth(depths=depths, topics=topics)
