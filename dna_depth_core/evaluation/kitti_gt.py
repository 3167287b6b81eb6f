"""KITTI ground-truth depth: velodyne scans projected into the colour cameras.

This is the ground truth of the Eigen-split benchmark: each lidar point is moved into the
camera-0 frame (``calib_velo_to_cam.txt``: ``R``, ``T``), rectified (``R_rect_00``) and
projected with the rectified projection matrix of the chosen colour camera
(``P_rect_02`` for left, ``P_rect_03`` for right, from ``calib_cam_to_cam.txt``). Its
depth is the rectified camera's z in metres. Where several points land on one pixel the
nearest is kept.

Pixel rounding follows the KITTI development kit, whose projected coordinates are
1-based (MATLAB convention): the column is ``round(u) - 1`` and the row ``round(v) - 1``.
Published Eigen-split numbers are computed on maps made this way, so ours are too.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..checkpoint import atomic_write
from ..data.kitti import KittiSplitEntry
from ..errors import UserError

GT_ENTRIES_KEY = "entries"
"""Key of the split lines (``folder frame side``) stored in a ground-truth ``.npz`` file."""

GT_DEPTH_KEY_FORMAT = "depth_{:05d}"
"""Key of the i-th ground-truth depth map (split order) in a ground-truth ``.npz`` file."""


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


def project_points_to_depth(points: np.ndarray, projection: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Sparse depth map from lidar points (pure function).

    Args:
        points: ``(N, 3)`` or ``(N, 4)`` velodyne points in metres (a 4th column, the
            reflectance, is ignored).
        projection: ``(3, 4)`` velodyne-to-pixel matrix from :func:`velodyne_to_image_projection`.
        image_size: ``(height, width)`` of the map in pixels.

    Returns:
        float32 ``(height, width)`` depth in metres (rectified camera z), 0 where no point
        falls. Points at or behind the camera plane are dropped; points landing on one
        pixel keep the smallest depth.
    """
    if points.ndim != 2 or points.shape[1] not in (3, 4):
        raise ValueError(f"points must be (N, 3) or (N, 4), got shape {points.shape}")
    if projection.shape != (3, 4):
        raise ValueError(f"projection must be (3, 4), got shape {projection.shape}")
    height, width = image_size
    homogeneous = np.concatenate([points[:, :3].astype(np.float64), np.ones((len(points), 1))], axis=1)
    projected = homogeneous @ projection.T
    depth = projected[:, 2]
    in_front = depth > 0
    projected, depth = projected[in_front], depth[in_front]
    columns = np.round(projected[:, 0] / depth).astype(np.int64) - 1
    rows = np.round(projected[:, 1] / depth).astype(np.int64) - 1
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    depth_map = np.full(height * width, np.inf)
    np.minimum.at(depth_map, rows[inside] * width + columns[inside], depth[inside])
    depth_map[np.isinf(depth_map)] = 0.0
    return depth_map.reshape(height, width).astype(np.float32)


def kitti_depth_map(data_root: str | Path, entry: KittiSplitEntry) -> np.ndarray:
    """Ground-truth depth of one split entry at the original (rectified) image size.

    Returns:
        float32 ``(H, W)`` metres, 0 where the lidar has no return (see the module docstring).

    Raises:
        UserError: calibration or velodyne file missing or malformed.
    """
    data_root = Path(data_root)
    projection, image_size = velodyne_to_image_projection(data_root / entry.date_folder, entry.camera)
    scan = data_root / entry.folder / "velodyne_points" / "data" / f"{entry.frame:010d}.bin"
    return project_points_to_depth(read_velodyne_points(scan), projection, image_size)


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


def export_ground_truth(
    data_root: str | Path, entries: Sequence[KittiSplitEntry], output_path: str | Path, progress: bool = True
) -> None:
    """Write the ground-truth depth of every split entry to one ``.npz`` file (atomically).

    File layout (readable with ``np.load`` without pickle, one map loaded at a time):
    ``"entries"``: unicode ``(N,)`` array of the split lines ``folder frame side`` (frame
    zero-padded to 10 digits) in split order; ``"depth_00000"`` ... ``"depth_{N-1:05d}"``:
    float32 ``(H, W)`` metres, 0 = no measurement, at each image's original size. Maps are
    compressed and streamed to disk one by one, so memory stays at one map.

    Raises:
        UserError: a calibration or velodyne file is missing or malformed.
    """
    data_root = Path(data_root)

    def write(temporary: Path) -> None:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            _write_npy(archive, GT_ENTRIES_KEY, np.array([str(entry) for entry in entries]))
            for index, entry in enumerate(
                tqdm(entries, desc="projecting velodyne scans", unit="scan", disable=not progress)
            ):
                _write_npy(archive, GT_DEPTH_KEY_FORMAT.format(index), kitti_depth_map(data_root, entry))

    atomic_write(output_path, write)


def _write_npy(archive: zipfile.ZipFile, key: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    archive.writestr(f"{key}.npy", buffer.getvalue())


class GroundTruthFile:
    """Read access to a ground-truth ``.npz`` written by :func:`export_ground_truth`.

    Args:
        path: the ``.npz`` file.
        entries: the split it must match; a file exported for another split is refused.

    Raises:
        UserError: the file is missing (the message says to run ``dna-depth export-gt``),
            is not such a file, or was exported for a different split.
    """

    def __init__(self, path: str | Path, entries: Iterable[KittiSplitEntry]) -> None:
        self.path = Path(path)
        expected = [str(entry) for entry in entries]
        hint = "; create it with 'dna-depth export-gt --data-root ROOT --split-file SPLIT -o FILE'"
        if not self.path.is_file():
            raise UserError(f"ground-truth depth file {str(self.path)!r} does not exist{hint}")
        try:
            self._archive = np.load(self.path, allow_pickle=False)
            stored = [str(line) for line in self._archive[GT_ENTRIES_KEY]]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise UserError(
                f"{str(self.path)!r} is not a ground-truth file written by dna-depth export-gt ({error}){hint}"
            ) from None
        if stored != expected:
            first = next(
                (i for i, (a, b) in enumerate(zip(stored, expected, strict=False)) if a != b),
                min(len(stored), len(expected)),
            )
            raise UserError(
                f"ground-truth file {str(self.path)!r} was exported for a different split ({len(stored)} entries vs "
                f"{len(expected)} in the split file; first difference at line {first + 1}){hint}"
            )
        self.num_entries = len(stored)

    def __len__(self) -> int:
        return self.num_entries

    def __getitem__(self, index: int) -> np.ndarray:
        """float32 ``(H, W)`` ground-truth depth in metres of split line ``index`` (0-based)."""
        if not 0 <= index < self.num_entries:
            raise IndexError(f"ground-truth index {index} out of range for {self.num_entries} entries")
        return self._archive[GT_DEPTH_KEY_FORMAT.format(index)]

    def close(self) -> None:
        """Close the underlying file."""
        self._archive.close()
