"""KITTI ground-truth depth: velodyne scans projected into the colour cameras.

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
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.kitti import KittiSplitEntry
from ..errors import UserError
from ..paths import atomic_write

PUBLISHED = "published"
"""Depth definition of the published Eigen-split ground truth: the lidar's forward distance ``x_velo``."""

CAMERA_Z = "camera-z"
"""Depth definition along the camera's optical axis; not comparable with published tables."""

DEPTH_DEFINITIONS = (PUBLISHED, CAMERA_Z)
"""The depth definitions :func:`project_points_to_depth` can write (see the module docstring)."""

DEPTH_DEFINITION_LABELS = {PUBLISHED: "published (x_velo)", CAMERA_Z: "camera-z"}
"""How reports name each depth definition."""

GT_ENTRIES_KEY = "entries"
"""Key of the split lines (``folder frame side``) stored in a ground-truth ``.npz`` file."""

GT_DEPTH_KEY_FORMAT = "depth_{:05d}"
"""Key of the i-th ground-truth depth map (split order) in a ground-truth ``.npz`` file."""

GT_DEFINITION_KEY = "depth_definition"
"""Key of the depth definition (a 0-d string array) in a ground-truth ``.npz`` file.

Files written before it existed hold camera-z maps. A loader reading only ``"data"``
(the published layout) ignores it, as it ignores every other key."""

PUBLISHED_DATA_KEY = "data"
"""Key of the published ``gt_depths.npz``: all maps in one array, an object array of
float32 ``(H, W)`` maps at each image's own size (a plain ``(N, H, W)`` array when all
sizes agree)."""


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


def export_ground_truth(
    data_root: str | Path,
    entries: Sequence[KittiSplitEntry],
    output_path: str | Path,
    definition: str = PUBLISHED,
    progress: bool = True,
) -> None:
    """Write the ground-truth depth of every split entry to one ``.npz`` file (atomically).

    File layout (readable with ``np.load`` without pickle, one map loaded at a time):
    ``"entries"``: unicode ``(N,)`` array of the split lines ``folder frame side`` (frame
    zero-padded to 10 digits) in split order; ``"depth_definition"``: 0-d unicode array,
    ``definition``; ``"depth_00000"`` ... ``"depth_{N-1:05d}"``: float32 ``(H, W)`` metres,
    0 = no measurement, at each image's original size. Maps are compressed and streamed to
    disk one by one, so memory stays at one map.

    Args:
        definition: :data:`PUBLISHED` (the published tables' ground truth) or :data:`CAMERA_Z`.

    Raises:
        UserError: a calibration or velodyne file is missing or malformed.
    """
    if definition not in DEPTH_DEFINITIONS:
        raise ValueError(f"definition must be one of {DEPTH_DEFINITIONS}, got {definition!r}")
    data_root = Path(data_root)

    def write(temporary: Path) -> None:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            _write_npy(archive, GT_ENTRIES_KEY, np.array([str(entry) for entry in entries]))
            _write_npy(archive, GT_DEFINITION_KEY, np.array(definition))
            for index, entry in enumerate(
                tqdm(entries, desc="projecting velodyne scans", unit="scan", disable=not progress)
            ):
                _write_npy(archive, GT_DEPTH_KEY_FORMAT.format(index), kitti_depth_map(data_root, entry, definition))

    atomic_write(output_path, write)


def _write_npy(archive: zipfile.ZipFile, key: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    archive.writestr(f"{key}.npy", buffer.getvalue())


class GroundTruthFile:
    """Read access to a ground-truth ``.npz``: from ``dna-depth export-gt``, or the published one.

    Two layouts load:

    - :func:`export_ground_truth`'s (``"entries"``, ``"depth_definition"``,
      ``"depth_00000"``...): the split lines must match ``entries``; maps load one at a
      time. A file without ``"depth_definition"`` comes from an older ``export-gt``, which
      wrote camera z.
    - the published ``gt_depths.npz`` of the reference export (``"data"`` only, see
      :data:`PUBLISHED_DATA_KEY`), taken as :data:`PUBLISHED`. It records no split, so
      only the number of maps is checked here (the evaluation also checks each map's size
      against its image). Its maps are a pickled object array; it is read with an
      unpickler that builds numpy arrays and nothing else, and loads whole (about 1.3 GB
      for the 697 Eigen test maps).

    Attributes:
        path: the file.
        depth_definition: :data:`PUBLISHED` or :data:`CAMERA_Z`.
        definition_source: where ``depth_definition`` comes from, for reports.

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
        not_ground_truth = (
            f"{str(self.path)!r} is not a ground-truth file written by dna-depth export-gt or the published "
            "export (an .npz holding 'entries' and 'depth_00000'..., or 'data')"
        )
        try:
            self._archive = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise UserError(f"{not_ground_truth} ({error}){hint}") from None
        if not isinstance(self._archive, np.lib.npyio.NpzFile):
            raise UserError(f"{not_ground_truth}{hint}")
        self._published_maps: list[np.ndarray] | None = None
        try:
            if GT_ENTRIES_KEY in self._archive.files:
                stored = [str(line) for line in self._archive[GT_ENTRIES_KEY]]
                self.depth_definition, self.definition_source = self._read_definition()
            elif PUBLISHED_DATA_KEY in self._archive.files:
                self._published_maps = _read_published_maps(self._archive)
                stored = None
                self.depth_definition = PUBLISHED
                self.definition_source = "assumed: published gt_depths.npz layout, which records no definition"
            else:
                raise UserError(f"{not_ground_truth}: it holds {sorted(self._archive.files)}{hint}")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, TypeError) as error:
            raise UserError(f"{not_ground_truth} ({error}){hint}") from None
        if stored is None and len(self._published_maps) != len(expected):
            raise UserError(
                f"published ground-truth file {str(self.path)!r} holds {len(self._published_maps)} maps but the "
                f"split file lists {len(expected)} images; use the split it was exported for{hint}"
            )
        if stored is not None and stored != expected:
            first = next(
                (i for i, (a, b) in enumerate(zip(stored, expected, strict=False)) if a != b),
                min(len(stored), len(expected)),
            )
            raise UserError(
                f"ground-truth file {str(self.path)!r} was exported for a different split ({len(stored)} entries vs "
                f"{len(expected)} in the split file; first difference at line {first + 1}){hint}"
            )
        self.num_entries = len(expected)

    def _read_definition(self) -> tuple[str, str]:
        if GT_DEFINITION_KEY not in self._archive.files:
            return CAMERA_Z, "assumed: written by an older dna-depth export-gt, which stored camera z"
        definition = str(self._archive[GT_DEFINITION_KEY])
        if definition not in DEPTH_DEFINITIONS:
            raise ValueError(f"unknown depth definition {definition!r}, expected one of {DEPTH_DEFINITIONS}")
        return definition, "recorded in the file"

    @property
    def definition_label(self) -> str:
        """The depth definition as reports name it, e.g. ``"published (x_velo)"``."""
        return DEPTH_DEFINITION_LABELS[self.depth_definition]

    def __len__(self) -> int:
        return self.num_entries

    def __getitem__(self, index: int) -> np.ndarray:
        """float32 ``(H, W)`` ground-truth depth in metres of split line ``index`` (0-based)."""
        if not 0 <= index < self.num_entries:
            raise IndexError(f"ground-truth index {index} out of range for {self.num_entries} entries")
        if self._published_maps is not None:
            return self._published_maps[index]
        return self._archive[GT_DEPTH_KEY_FORMAT.format(index)]

    def close(self) -> None:
        """Close the underlying file."""
        self._archive.close()
        self._published_maps = None


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a pickle naming any other callable is refused.

    An ndarray pickles as ``_reconstruct(ndarray, ...)`` plus its state, whose dtype
    pickles as ``numpy.dtype(...)``; numpy 1 names the module ``numpy.core.multiarray``,
    numpy 2 ``numpy._core.multiarray``.
    """

    _reconstruct = np.zeros(0).__reduce__()[0]  # numpy's own, whichever module it lives in
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"it holds a pickled {module}.{name}, not only numpy arrays")
        return self._ALLOWED[(module, name)]


def _read_published_maps(archive: np.lib.npyio.NpzFile) -> list[np.ndarray]:
    """The float32 ``(H, W)`` maps of a published ``gt_depths.npz`` (key :data:`PUBLISHED_DATA_KEY`).

    Raises:
        ValueError: the array is not ``N`` two-dimensional float maps.
    """
    with archive.zip.open(f"{PUBLISHED_DATA_KEY}.npy") as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            _, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version} for 'data'")
        # The published export saves np.array(list of maps): ragged sizes give an object array.
        data = _ArrayOnlyUnpickler(stream, encoding="latin1").load() if dtype.hasobject else None
    if data is None:
        data = archive[PUBLISHED_DATA_KEY]
    if not (isinstance(data, np.ndarray) and ((data.dtype == object and data.ndim == 1) or data.ndim == 3)):
        raise ValueError("'data' must be N depth maps: an object array of (H, W) maps or an (N, H, W) array")
    maps = list(data)
    for index, depth in enumerate(maps):
        if not (isinstance(depth, np.ndarray) and depth.ndim == 2 and depth.dtype.kind == "f"):
            raise ValueError(f"'data' item {index} is not an (H, W) float depth map")
    return [depth.astype(np.float32, copy=False) for depth in maps]
