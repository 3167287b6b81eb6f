"""Synthetic sequences with exact depth, poses and intrinsics, in four scene styles.

Scenes are made of a ground plane (and, indoors, a ceiling plane), axis-aligned boxes
(buildings, parked cars, kerbs, lamp posts, trees, crates, pillars, furniture) and, outdoors,
a sky at infinity. Frames are rendered by vectorised numpy ray casting, so depth is exact.
Textures are procedural and evaluated in surface coordinates, so they stick to surfaces as
the camera moves, and box-filtered over the pixel footprint, so they do not flicker.

Styles (:data:`STYLES`): ``"street"`` (8 m/s down a street, KITTI's camera) and
``"corridor"`` (2 m/s along an indoor aisle), both pinhole cameras configured by
:class:`SyntheticSceneConfig`; ``"robot"`` (:data:`ROBOT_STYLE`), a ground robot's
camera driving through furnished rooms and seeing through a distorting lens, configured by
:class:`RobotSceneConfig`; and ``"warehouse"`` (:data:`WAREHOUSE_STYLE`), the same robot
down a warehouse aisle between tall racks (:class:`WarehouseSceneConfig`), which no
training recipe uses: a held-out style. :func:`scene_config` builds any config from the
options every style shares; :func:`generate_sequence` renders any of them.

Modules, one concern each:

- :mod:`.config`: the pinhole styles' config and :class:`SyntheticSequence`;
- :mod:`.textures`: noise, patterns and the materials of boxes;
- :mod:`.scene`: the scene record and the builder the styles fill;
- :mod:`.street`, :mod:`.corridor`: the pinhole styles' scenes;
- :mod:`.room_layout`, :mod:`.rooms`: the robot style's floor plans, route and furniture;
- :mod:`.trajectory`: the pinhole styles' camera motion;
- :mod:`.renderer`: the ray caster with sun shadows;
- :mod:`.lens`: the plumb_bob lens that turns pinhole renders into raw distorted frames;
- :mod:`.robot`: the robot style's config, motion and sequences;
- :mod:`.warehouse`: the warehouse style's aisle, racks and config;
- :mod:`.dataset`: :func:`generate_sequence` and :class:`SyntheticTripletDataset`;
- :mod:`.styles`: every style by name (:data:`STYLES`, :func:`scene_config`,
  :func:`camera_frames`).

World frame: x right, y down, z forward along the street; the ground is the plane y = 0,
so heights above ground are ``-y``. Camera frame: x right, y down, z along the optical axis.
"""

from .config import PINHOLE_STYLES, SyntheticSceneConfig, SyntheticSequence
from .dataset import SyntheticTripletDataset, generate_sequence
from .lens import PlumbBobLens, pinhole_matrix
from .robot import DEFAULT_DISTORTION, ROBOT_STYLE, RobotSceneConfig, RobotSequence, generate_robot_sequence
from .room_layout import route_samples
from .rooms import FloorPlan, build_floor_plan
from .styles import GROUND_ROBOT_STYLES, STYLES, camera_frames, scene_config
from .warehouse import WAREHOUSE_STYLE, WarehouseSceneConfig, build_warehouse

__all__ = [
    "DEFAULT_DISTORTION",
    "GROUND_ROBOT_STYLES",
    "PINHOLE_STYLES",
    "ROBOT_STYLE",
    "STYLES",
    "WAREHOUSE_STYLE",
    "FloorPlan",
    "PlumbBobLens",
    "RobotSceneConfig",
    "RobotSequence",
    "SyntheticSceneConfig",
    "SyntheticSequence",
    "SyntheticTripletDataset",
    "WarehouseSceneConfig",
    "build_floor_plan",
    "build_warehouse",
    "camera_frames",
    "generate_robot_sequence",
    "generate_sequence",
    "pinhole_matrix",
    "route_samples",
    "scene_config",
]
