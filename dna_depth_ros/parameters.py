"""The node's ROS parameters: one table of names, defaults, descriptions and ranges.

``config/dna_depth.yaml`` holds the same defaults (a test keeps the two in step). Read-only
parameters are fixed at start (``--ros-args -p`` or ``--params-file``); the others can be
changed while the node runs (``ros2 param set``) and are validated as a whole first.
Topic QoS is not in this table: rclpy declares the standard read-only
``qos_overrides.<topic>.<publisher|subscription>.<policy>`` parameters for every topic
(see :mod:`dna_depth_ros.transport`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from .colorize import COLORMAPS

ParameterValue = bool | int | float | str


@dataclass(frozen=True)
class ParameterSpec:
    """One declared parameter.

    Attributes:
        name: ROS name; dots nest it in YAML (``points.stride`` -> ``points: {stride: ...}``).
        default: default value; its Python type is the parameter's type.
        description: what it does, with units.
        read_only: fixed after start.
        value_range: inclusive ``(low, high)`` for numbers.
        choices: allowed values for strings.
    """

    name: str
    default: ParameterValue
    description: str
    read_only: bool = False
    value_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    @property
    def field_name(self) -> str:
        """Attribute of :class:`NodeSettings` holding the value."""
        return self.name.replace(".", "_")


SHIPPED_CHECKPOINT = ""
"""``checkpoint`` value that selects the checkpoint shipped with ``dna_depth_core``."""

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")

PRECISION_CHOICES = ("auto", "fp32", "bf16", "int8", "fp16")
"""The ``precision`` values: :data:`dna_depth_core.inference.precision.PRECISION_CHOICES`,
written out because importing that module imports torch, and ``depth_node --help`` reads
this table without loading a network (``test_ros_parameters`` keeps the two equal)."""

PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "checkpoint",
        SHIPPED_CHECKPOINT,
        "Path of the DNA-Depth .safetensors checkpoint; empty for the checkpoint shipped with the package.",
        read_only=True,
    ),
    ParameterSpec(
        "device", "auto", "Inference device: auto (CUDA when available), cpu, cuda or cuda:N.", read_only=True
    ),
    ParameterSpec(
        "precision",
        "auto",
        "Inference precision: auto (the fastest configuration that met the accuracy budget in the checkpoint's "
        "precision record, else fp32), fp32, bf16 (CPUs with AVX512-BF16 or AMX), int8 (calibrated checkpoints), "
        "fp16 (CUDA).",
        read_only=True,
        choices=PRECISION_CHOICES,
    ),
    ParameterSpec(
        "half", False, "Older spelling of precision fp16: used when precision is auto (CUDA only).", read_only=True
    ),
    ParameterSpec(
        "backend", "auto", "Inference backend of DepthEstimator; auto picks the fastest available.", read_only=True
    ),
    ParameterSpec(
        "warmup_iterations",
        2,
        "Forward passes on a blank image at start so the first frame is not slow.",
        read_only=True,
        value_range=(0, 100),
    ),
    ParameterSpec(
        "image_transport",
        "raw",
        "raw: subscribe to 'image' (sensor_msgs/Image); compressed: to 'image/compressed' (jpeg/png).",
        read_only=True,
        choices=("raw", "compressed"),
    ),
    ParameterSpec(
        "camera_info_file",
        "",
        "Camera calibration YAML (as camera_calibration writes it) used instead of the camera_info topic; "
        "empty: use the topic.",
        read_only=True,
    ),
    ParameterSpec(
        "diagnostics_period",
        1.0,
        "Seconds between messages on /diagnostics.",
        read_only=True,
        value_range=(0.05, 60.0),
    ),
    ParameterSpec(
        "input_timeout",
        3.0,
        "Seconds without an image, while image publishers are matched, before diagnostics warn.",
        value_range=(0.1, 3600.0),
    ),
    ParameterSpec(
        "skip_without_subscribers",
        True,
        "Skip inference while no output topic has a subscriber; false processes and publishes every frame.",
    ),
    ParameterSpec(
        "max_input_pixels",
        3840 * 2160,
        "Largest accepted input image (width x height); larger frames are rejected as bad input.",
        value_range=(1, 1 << 28),
    ),
    ParameterSpec(
        "undistort",
        True,
        "Rectify images with the calibration as fine-tuning does, unless the image topic is named image_rect* "
        "(already rectified by image_proc); false: the images are already rectified (finetune-bag --no-undistort).",
    ),
    ParameterSpec(
        "focal_rescale",
        True,
        "Multiply depth by the ratio of the camera's focal length at the network input to the checkpoint's "
        "training camera's (monocular depth scales with it); false publishes the network's depth as it is.",
    ),
    ParameterSpec(
        "output_resolution",
        "network",
        "Size of depth/image, depth/colored and points: network (the part of the camera image the model saw, at "
        "its input size) or input (the whole rectified camera image, NaN where the model saw nothing).",
        choices=("network", "input"),
    ),
    ParameterSpec(
        "depth_scale",
        0.0,
        "Metres per network depth unit; 0 uses the checkpoint's scale (1 for relative, unscaled models).",
        value_range=(0.0, 1e6),
    ),
    ParameterSpec(
        "min_depth",
        0.0,
        "Smallest published depth, metres; 0 uses the checkpoint's (min_depth x scale).",
        value_range=(0.0, 1e6),
    ),
    ParameterSpec(
        "max_depth",
        0.0,
        "Largest published depth, metres; 0 uses the checkpoint's (max_depth x scale).",
        value_range=(0.0, 1e6),
    ),
    ParameterSpec(
        "invalid_outside_range",
        False,
        "false: clip depth to [min_depth, max_depth]; true: publish NaN (invalid) outside that range.",
    ),
    ParameterSpec("colored.colormap", "turbo", "Colour map of depth/colored.", choices=tuple(sorted(COLORMAPS))),
    ParameterSpec(
        "colored.auto_range",
        True,
        "true: map each frame's nearest..farthest valid depth onto the colour map; false: use colored.min/max_depth.",
    ),
    ParameterSpec(
        "colored.min_depth",
        0.5,
        "Depth given the colour map's near-end colour when auto_range is false, metres.",
        value_range=(0.0, 1e6),
    ),
    ParameterSpec(
        "colored.max_depth",
        50.0,
        "Depth given the colour map's far-end colour when auto_range is false, metres.",
        value_range=(0.0, 1e6),
    ),
    ParameterSpec(
        "points.stride",
        1,
        "Keep every stride-th row and column of the depth image in the point cloud.",
        value_range=(1, 64),
    ),
    ParameterSpec("points.rgb", True, "Add the image colour to each point (packed rgb field)."),
    ParameterSpec(
        "ground_plane_scale.enabled",
        False,
        "Measure metres per depth unit from the floor or road (on every ground_plane_scale.every-th frame; the "
        "camera stands ground_plane_scale.camera_height above it) and scale depth, points and the depth range by "
        "the smoothed estimate; needs camera info. For relative-depth checkpoints, or metric ones on another robot.",
    ),
    ParameterSpec(
        "ground_plane_scale.camera_height",
        0.5,
        "Height of the camera's optical centre above the floor or road, metres.",
        value_range=(0.01, 100.0),
    ),
    ParameterSpec(
        "ground_plane_scale.floor_tilt",
        "fit",
        "How the floor's direction is known: 'fit' finds its tilt in each frame; 'mount' takes it from the "
        "camera's mount (pitched ground_plane_scale.camera_pitch_deg down, no roll, over a level floor), more "
        "accurate when the network's floor reads as a tilted plane.",
        choices=("fit", "mount"),
    ),
    ParameterSpec(
        "ground_plane_scale.camera_pitch_deg",
        0.0,
        "With floor_tilt 'mount': the angle the camera's optical axis points below the horizontal, degrees.",
        value_range=(-89.0, 89.0),
    ),
    ParameterSpec(
        "ground_plane_scale.window",
        15,
        "The applied scale is the median of the estimates of the last this many fits with a floor in view.",
        value_range=(1, 1000),
    ),
    ParameterSpec(
        "ground_plane_scale.every",
        5,
        "Fit the floor on every this-many-th frame (every frame until the first fit): a fit costs about 30 ms "
        "at 384x288 and the applied median of the last window fits changes slowly; 1 fits every frame.",
        value_range=(1, 1000),
    ),
)
"""Every parameter of the depth node, in documentation order."""


@dataclass(frozen=True)
class NodeSettings:
    """A consistent snapshot of all parameter values (see :data:`PARAMETERS` for meanings)."""

    checkpoint: str
    device: str
    precision: str
    half: bool
    backend: str
    warmup_iterations: int
    image_transport: str
    diagnostics_period: float
    input_timeout: float
    skip_without_subscribers: bool
    max_input_pixels: int
    camera_info_file: str
    undistort: bool
    focal_rescale: bool
    output_resolution: str
    depth_scale: float
    min_depth: float
    max_depth: float
    invalid_outside_range: bool
    colored_colormap: str
    colored_auto_range: bool
    colored_min_depth: float
    colored_max_depth: float
    points_stride: int
    points_rgb: bool
    ground_plane_scale_enabled: bool
    ground_plane_scale_camera_height: float
    ground_plane_scale_floor_tilt: str
    ground_plane_scale_camera_pitch_deg: float
    ground_plane_scale_window: int
    ground_plane_scale_every: int


def settings_from_values(values: dict[str, ParameterValue]) -> NodeSettings:
    """Check parameter values (by ROS name) and gather them into :class:`NodeSettings`.

    Checks each value's choices and range, the device name, and that the fixed colour
    range is non-empty. Depth ranges that depend on the checkpoint are checked by
    :func:`effective_depth_range`.

    Raises:
        ValueError: with a message naming the parameter and what is allowed.
    """
    for spec in PARAMETERS:
        value = values[spec.name]
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f"{spec.name} must be one of {list(spec.choices)}, got {value!r}")
        if spec.value_range is not None and not spec.value_range[0] <= value <= spec.value_range[1]:
            raise ValueError(f"{spec.name} must be in [{spec.value_range[0]}, {spec.value_range[1]}], got {value}")
    if not DEVICE_PATTERN.fullmatch(values["device"]):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {values['device']!r}")
    settings = NodeSettings(**{spec.field_name: values[spec.name] for spec in PARAMETERS})
    if not settings.colored_auto_range and not settings.colored_min_depth < settings.colored_max_depth:
        raise ValueError(
            f"colored.min_depth ({settings.colored_min_depth}) must be smaller than colored.max_depth "
            f"({settings.colored_max_depth})"
        )
    return settings


def effective_depth_scale(settings: NodeSettings, checkpoint_scale: float) -> float:
    """Metres per network depth unit: the parameter when set, else the checkpoint's."""
    return settings.depth_scale or checkpoint_scale


def effective_depth_range(
    settings: NodeSettings, checkpoint_min: float, checkpoint_max: float, checkpoint_scale: float
) -> tuple[float, float]:
    """``(min, max)`` published depth in metres; zeros in the parameters mean the checkpoint's.

    Args:
        checkpoint_min, checkpoint_max: the checkpoint's range, network depth units.
        checkpoint_scale: the checkpoint's metres per network depth unit.

    Raises:
        ValueError: when the resulting range is empty.
    """
    scale = effective_depth_scale(settings, checkpoint_scale)
    low = settings.min_depth or checkpoint_min * scale
    high = settings.max_depth or checkpoint_max * scale
    if not low < high:
        raise ValueError(
            f"min_depth ({low} m) must be smaller than max_depth ({high} m); 0 stands for the checkpoint's "
            f"range [{checkpoint_min * scale}, {checkpoint_max * scale}] m"
        )
    return low, high


def with_overrides(settings: NodeSettings, values: dict[str, ParameterValue]) -> dict[str, ParameterValue]:
    """All values of ``settings`` by ROS name, with ``values`` (by ROS name) replacing some."""
    current = dataclasses.asdict(settings)
    merged = {spec.name: current[spec.field_name] for spec in PARAMETERS}
    merged.update(values)
    return merged


def parameter_descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """The ROS descriptor of ``spec``: description, read-only flag, range and choices."""
    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices is not None:
        descriptor.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.value_range is not None:
        low, high = spec.value_range
        if isinstance(spec.default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)
            ]
    return descriptor
