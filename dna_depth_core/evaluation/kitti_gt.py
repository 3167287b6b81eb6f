"""KITTI ground-truth files: ``dna-depth export-gt`` writes them, evaluation reads them.

A ground-truth file holds the projected lidar depth (:mod:`dna_depth_core.data.kitti_depth`,
which also defines the depth definitions :data:`~dna_depth_core.data.kitti_depth.PUBLISHED`
and :data:`~dna_depth_core.data.kitti_depth.CAMERA_Z`) of every line of a split, in one
``.npz``. :func:`export_ground_truth` writes ours; :class:`GroundTruthFile` loads ours, the
files of older exports (camera-z maps) and the published ``gt_depths.npz`` as it is.
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
from ..data.kitti_depth import CAMERA_Z, DEPTH_DEFINITION_LABELS, DEPTH_DEFINITIONS, PUBLISHED, kitti_depth_map
from ..errors import UserError
from ..paths import atomic_write

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
