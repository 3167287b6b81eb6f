"""KITTI depth from the lidar: velodyne scans projected into the colour cameras.

Each lidar point is moved into the camera-0 frame (``calib_velo_to_cam.txt``: ``R``,
``T``), rectified (``R_rect_00``) and projected with the rectified projection matrix of
the entry's colour camera (``P_rect_02`` for left, ``P_rect_03`` for right, from
``calib_cam_to_cam.txt``). The projected coordinates are 1-based (the KITTI development
kit's MATLAB convention), so a point's pixel is column ``round(u) - 1``, row
``round(v) - 1`` (``np.round``: halves go to the even integer), and it counts only inside
the image. What a pixel stores depends on the depth definition:

- ``"published"`` (:data:`PUBLISHED`, the default): the ground truth every published
  Eigen-split table is computed on, the ``gt_depths.npz`` of the Monodepth2 export
  (``export_gt_depth.py`` calling ``kitti_utils.generate_depth_map`` with velodyne depth).
  The stored depth is the point's forward coordinate in the **velodyne** frame, ``x_velo``
  in metres (on KITTI about 0.27 m more than the camera's z). Points with ``x_velo >= 0``
  are kept and all of them are projected, including the few in front of the lidar but at
  or behind the camera plane (camera z <= 0): dividing by a negative z mirrors them through
  the principal point, and those landing inside the image keep their ``x_velo`` there, as
  in the reference; at z = 0 the division gives no finite pixel and the point is dropped.
  Where points share a pixel the smallest depth wins, by the reference's own duplicate
  rule (see :func:`_reference_pixel_depths`), so maps are identical to the published file.
  One deliberate difference: the reference export always projects into camera 2, whatever
  the split line's side; here a right-camera (``r``) line uses camera 3, the camera its
  image comes from. The Eigen test split lists left images only, so its maps are the same.
- ``"camera-z"`` (:data:`CAMERA_Z`): the depth along the chosen camera's optical axis
  (the third projected coordinate), keeping points with z > 0 and the nearest point per
  pixel. Physically the camera's depth, but **not comparable with published tables**:
  every valid pixel differs from the published map by about 0.27 m, an AbsRel of about
  0.01 after median scaling, the size of the gaps between methods in those tables.

Training (:class:`~dna_depth_core.data.kitti.KittiRawDataset` with ``with_depth_gt``) and
evaluation (the ground-truth files of :mod:`dna_depth_core.evaluation.kitti_gt`) both take
their depth maps from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UserError

if TYPE_CHECKING:  # kitti.py imports this module for its depth targets
    from .kitti import KittiSplitEntry

PUBLISHED = "published"
"""Depth definition of the published Eigen-split ground truth: the lidar's forward distance ``x_velo``."""

CAMERA_Z = "camera-z"
"""Depth definition along the camera's optical axis; not comparable with published tables."""

DEPTH_DEFINITIONS = (PUBLISHED, CAMERA_Z)
"""The depth definitions :func:`project_points_to_depth` can write (see the module docstring)."""

DEPTH_DEFINITION_LABELS = {PUBLISHED: "published (x_velo)", CAMERA_Z: "camera-z"}
"""How reports name each depth definition."""


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read a KITTI calibration text file (``key: v1 v2 ...`` lines) into float64 arrays.

    Entries whose values are not numbers (``calib_time: 09-Jan-2012 13:57:47``) are skipped.

    Raises:
        UserError: the file is missing or unreadable.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise UserError(f"cannot read KITTI calibration file {str(path)!r}: {error.strerror}") from None
    calibration = {}
    for line in text.splitlines():
        key, separator, values = line.partition(":")
        if not separator:
            continue
        try:
            calibration[key.strip()] = np.array([float(value) for value in values.split()], dtype=np.float64)
        except ValueError:
            continue
    return calibration


def _calib_entry(calibration: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in calibration or calibration[key].size != size:
        found = "missing" if key not in calibration else f"has {calibration[key].size} values"
        raise UserError(f"KITTI calibration file {str(path)!r}: entry {key!r} {found}, expected {size} numbers")
    return calibration[key]


def velodyne_to_image_projection(calib_folder: str | Path, camera: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Projection from velodyne coordinates to a rectified colour camera's pixels.

    Args:
        calib_folder: the recording-day folder holding ``calib_cam_to_cam.txt`` and
            ``calib_velo_to_cam.txt``.
        camera: KITTI camera index, 2 (left colour) or 3 (right colour).

    Returns:
        ``(projection, (height, width))``: float64 ``(3, 4)`` matrix ``P_rect_0X @ R_rect_00 @ [R|T]``
        mapping homogeneous velodyne points (metres) to ``(u * z, v * z, z)`` with ``z``
        the rectified camera depth in metres and ``u, v`` in the devkit's 1-based pixel
        coordinates; and the rectified image size ``S_rect_0X`` in pixels.

    Raises:
        UserError: a calibration file or entry is missing.
    """
    folder = Path(calib_folder)
    cam_path, velo_path = folder / "calib_cam_to_cam.txt", folder / "calib_velo_to_cam.txt"
    cam_to_cam, velo_to_cam = read_calib_file(cam_path), read_calib_file(velo_path)
    velo_to_cam0 = np.eye(4)
    velo_to_cam0[:3, :3] = _calib_entry(velo_to_cam, "R", 9, velo_path).reshape(3, 3)
    velo_to_cam0[:3, 3] = _calib_entry(velo_to_cam, "T", 3, velo_path)
    rectification = np.eye(4)
    rectification[:3, :3] = _calib_entry(cam_to_cam, "R_rect_00", 9, cam_path).reshape(3, 3)
    projection = _calib_entry(cam_to_cam, f"P_rect_{camera:02d}", 12, cam_path).reshape(3, 4)
    width, height = _calib_entry(cam_to_cam, f"S_rect_{camera:02d}", 2, cam_path)
    return projection @ rectification @ velo_to_cam0, (int(round(height)), int(round(width)))


def read_velodyne_points(path: str | Path) -> np.ndarray:
    """Read a KITTI velodyne scan: float32 ``(N, 4)`` rows ``x, y, z`` (metres, lidar frame) and reflectance.

    Raises:
        UserError: the file is missing or its size is not a whole number of points.
    """
    path = Path(path)
    try:
        points = np.fromfile(path, dtype=np.float32)
    except OSError as error:
        raise UserError(
            f"cannot read velodyne scan {str(path)!r}: {error.strerror}; is velodyne_points unpacked?"
        ) from None
    if points.size % 4:
        raise UserError(
            f"velodyne scan {str(path)!r} holds {points.size} floats, not a multiple of 4; is the file truncated?"
        )
    return points.reshape(-1, 4)


def project_points_to_depth(
    points: np.ndarray, projection: np.ndarray, image_size: tuple[int, int], definition: str = PUBLISHED
) -> np.ndarray:
    """Sparse depth map from lidar points (pure function).

    Args:
        points: ``(N, 3)`` or ``(N, 4)`` velodyne points in metres, in scan order (a 4th
            column, the reflectance, is ignored).
        projection: ``(3, 4)`` velodyne-to-pixel matrix from :func:`velodyne_to_image_projection`.
        image_size: ``(height, width)`` of the map in pixels.
        definition: :data:`PUBLISHED` (``x_velo``, points with ``x_velo >= 0``) or
            :data:`CAMERA_Z` (camera z, points with z > 0); see the module docstring.

    Returns:
        float32 ``(height, width)`` depth in metres, 0 where no point falls; where points
        share a pixel the smallest depth wins.
    """
    if points.ndim != 2 or points.shape[1] not in (3, 4):
        raise ValueError(f"points must be (N, 3) or (N, 4), got shape {points.shape}")
    if projection.shape != (3, 4):
        raise ValueError(f"projection must be (3, 4), got shape {projection.shape}")
    if definition not in DEPTH_DEFINITIONS:
        raise ValueError(f"definition must be one of {DEPTH_DEFINITIONS}, got {definition!r}")
    height, width = image_size
    if definition == PUBLISHED:
        # Dropped before projecting, and projected with the same operand order, as in the
        # reference: the same float64 products, hence the same pixels.
        points = points[points[:, 0] >= 0]
    homogeneous = np.concatenate([points[:, :3].astype(np.float64), np.ones((len(points), 1))], axis=1)
    projected = (projection @ homogeneous.T).T
    if definition == PUBLISHED:
        depth = points[:, 0].astype(np.float32)
    else:
        projected = projected[projected[:, 2] > 0]
        depth = projected[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):  # z = 0 gives inf or nan: outside the image below
        columns = np.round(projected[:, 0] / projected[:, 2]) - 1
        rows = np.round(projected[:, 1] / projected[:, 2]) - 1
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    rows, columns, depth = rows[inside].astype(np.int64), columns[inside].astype(np.int64), depth[inside]
    if definition == PUBLISHED:
        return _reference_pixel_depths(rows, columns, depth, image_size)
    depth_map = np.full(height * width, np.inf)
    np.minimum.at(depth_map, rows * width + columns, depth)
    depth_map[np.isinf(depth_map)] = 0.0
    return depth_map.reshape(height, width).astype(np.float32)


def _reference_pixel_depths(
    rows: np.ndarray, columns: np.ndarray, depth: np.ndarray, image_size: tuple[int, int]
) -> np.ndarray:
    """Depth map from projected points, by the published export's duplicate rule.

    The reference writes each point's depth into its pixel (a later point overwriting an
    earlier one), then, for each group of points sharing the linear index
    ``row * (W - 1) + column - 1``, writes the group's smallest depth into the pixel of the
    group's first point. That index names one pixel everywhere but at the image's left and
    right edges: the last column of row r and the first column of row r + 1 share it, so
    when both are hit the one whose point came first in the scan gets the smaller depth of
    the two pixels and the other keeps its own last point's depth. Both columns lie outside
    the Garg crop, so evaluation is unaffected; reproducing it keeps the maps equal to the
    published file.

    Args:
        rows, columns: int64 ``(M,)`` pixel of each point inside the image, in scan order.
        depth: float32 ``(M,)`` metres.
        image_size: ``(height, width)`` in pixels.

    Returns:
        float32 ``(height, width)`` metres, 0 where no point falls.
    """
    height, width = image_size
    scan_order = np.arange(len(depth))
    pixels = rows * width + columns
    last_point = np.full(height * width, -1)
    np.maximum.at(last_point, pixels, scan_order)
    depth_map = np.zeros(height * width, np.float32)
    hit = last_point >= 0
    depth_map[hit] = depth[last_point[hit]]
    groups, group_of_point = np.unique(rows * (width - 1) + columns - 1, return_inverse=True)
    group_depth = np.full(len(groups), np.inf, np.float32)
    np.minimum.at(group_depth, group_of_point, depth)
    first_point = np.full(len(groups), len(depth))
    np.minimum.at(first_point, group_of_point, scan_order)
    depth_map[pixels[first_point]] = group_depth
    return depth_map.reshape(height, width)


def kitti_depth_map(data_root: str | Path, entry: KittiSplitEntry, definition: str = PUBLISHED) -> np.ndarray:
    """Ground-truth depth of one split entry at the original (rectified) image size.

    Args:
        definition: :data:`PUBLISHED` or :data:`CAMERA_Z` (see the module docstring).

    Returns:
        float32 ``(H, W)`` metres, 0 where the lidar has no return.

    Raises:
        UserError: calibration or velodyne file missing or malformed.
    """
    data_root = Path(data_root)
    projection, image_size = velodyne_to_image_projection(data_root / entry.date_folder, entry.camera)
    scan = data_root / entry.folder / "velodyne_points" / "data" / f"{entry.frame:010d}.bin"
    return project_points_to_depth(read_velodyne_points(scan), projection, image_size, definition)


def downsample_sparse_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a sparse depth map keeping the nearest measurement per output pixel.

    Interpolating would blend measured and missing pixels; instead each measured input
    pixel goes to the output pixel that contains its centre, and the smallest depth wins.

    Args:
        depth: float32 ``(H, W)`` metres, 0 = no measurement.
        size: output ``(height, width)`` in pixels.

    Returns:
        float32 ``(height, width)`` metres, 0 = no measurement.
    """
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    height, width = size
    rows, columns = np.nonzero(depth > 0)
    out_rows = ((rows + 0.5) * height / depth.shape[0]).astype(np.int64)
    out_columns = ((columns + 0.5) * width / depth.shape[1]).astype(np.int64)
    output = np.full(height * width, np.inf)
    np.minimum.at(output, out_rows * width + out_columns, depth[rows, columns].astype(np.float64))
    output[np.isinf(output)] = 0.0
    return output.reshape(height, width).astype(np.float32)
