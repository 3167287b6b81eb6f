"""KITTI raw: split files, images and the training/validation dataset of the Monodepth2 recipe.

Layout expected under ``data_root`` (the unpacked KITTI raw archives, as the split files
name them)::

    <data_root>/2011_09_26/calib_cam_to_cam.txt
    <data_root>/2011_09_26/calib_velo_to_cam.txt
    <data_root>/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000042.jpg   (or .png)
    <data_root>/2011_09_26/2011_09_26_drive_0001_sync/image_03/data/...
    <data_root>/2011_09_26/2011_09_26_drive_0001_sync/velodyne_points/data/0000000042.bin

KITTI itself is not shipped: point ``data_root`` at your copy and ``split_file`` at the
split you train or test on (e.g. the Eigen-Zhou ``train_files.txt`` or the Eigen
``test_files.txt``), one ``folder frame side`` line per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import UserError
from .camera.preparation import FramePreparation
from .kitti_depth import downsample_sparse_depth, kitti_depth_map

SIDE_TO_CAMERA = {"l": 2, "r": 3}
"""Split-file side letter -> KITTI camera index (left colour camera 02, right colour camera 03)."""

IMAGE_EXTENSIONS = ("jpg", "png")
"""Image file extensions looked for when ``image_ext="auto"``, in that order."""

KITTI_NORMALISED_INTRINSICS = (0.58, 1.92, 0.5, 0.5)
"""``(fx / W, fy / H, cx / W, cy / H)``: the one intrinsics matrix the recipe uses for every KITTI sequence."""

RESAMPLING_METHODS = ("lanczos", "area")
"""How :class:`KittiRawDataset` resizes images: ``"lanczos"``, Pillow's Lanczos filter, the
one the reference loader (Monodepth2, which the paper's model was trained with) applies,
so the paper's recipe is reproduced exactly; ``"area"``, OpenCV's area averaging, faster,
which differs from Lanczos by up to about 0.04 (intensities in [0, 1]) per pixel at 640x192."""


def resize_image(image: np.ndarray, height: int, width: int, resample: str) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB resized to ``(height, width, 3)`` with one of :data:`RESAMPLING_METHODS`."""
    if resample == "lanczos":
        return np.array(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))
    if resample == "area":
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    raise ValueError(f"resample must be one of {RESAMPLING_METHODS}, got {resample!r}")


@dataclass(frozen=True)
class KittiSplitEntry:
    """One line of a split file.

    Attributes:
        folder: drive folder relative to the data root, e.g. ``2011_09_26/2011_09_26_drive_0001_sync``.
        frame: frame index within the drive (file ``<frame:010d>.<ext>``).
        side: ``"l"`` (camera 02) or ``"r"`` (camera 03).
    """

    folder: str
    frame: int
    side: str

    @property
    def camera(self) -> int:
        """KITTI camera index: 2 for the left colour camera, 3 for the right."""
        return SIDE_TO_CAMERA[self.side]

    @property
    def date_folder(self) -> str:
        """The recording-day folder holding the calibration files, e.g. ``2011_09_26``."""
        return self.folder.split("/")[0]

    def __str__(self) -> str:
        return f"{self.folder} {self.frame:010d} {self.side}"


def read_split_file(path: str | Path) -> list[KittiSplitEntry]:
    """Parse a ``folder frame side`` split file (blank lines are skipped).

    Raises:
        UserError: the file cannot be read, is empty, or a line is malformed (the message
            names the line number and what was expected).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise UserError(f"cannot read split file {str(path)!r}: {error.strerror}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        problem = None
        if len(fields) != 3:
            problem = f"expected 3 fields, got {len(fields)}"
        elif not fields[1].isdigit():
            problem = f"frame {fields[1]!r} is not a non-negative integer"
        elif fields[2] not in SIDE_TO_CAMERA:
            problem = f"side {fields[2]!r} is not 'l' or 'r'"
        if problem:
            raise UserError(
                f"split file {str(path)!r}, line {number}: {problem} in {line.strip()!r}; each line must be "
                "'folder frame side', e.g. '2011_09_26/2011_09_26_drive_0001_sync 42 l'"
            )
        entries.append(KittiSplitEntry(fields[0].strip("/"), int(fields[1]), fields[2]))
    if not entries:
        raise UserError(f"split file {str(path)!r} lists no samples")
    return entries


def kitti_intrinsics(height: int, width: int) -> np.ndarray:
    """The recipe's KITTI pinhole matrix for images resized to ``height x width`` pixels.

    Returns:
        float32 ``(3, 3)`` ``[[0.58 W, 0, 0.5 W], [0, 1.92 H, 0.5 H], [0, 0, 1]]`` in pixels.
    """
    fx, fy, cx, cy = KITTI_NORMALISED_INTRINSICS
    return np.array([[fx * width, 0, cx * width], [0, fy * height, cy * height], [0, 0, 1]], dtype=np.float32)


def kitti_image_path(data_root: str | Path, entry: KittiSplitEntry, offset: int = 0, image_ext: str = "auto") -> Path:
    """Path of the image ``offset`` frames from ``entry`` on the entry's camera.

    Args:
        image_ext: ``"jpg"``, ``"png"`` or ``"auto"`` (whichever exists, jpg first).

    Raises:
        UserError: the image does not exist (the message names the path looked for).
    """
    if image_ext != "auto" and image_ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"image_ext must be 'auto' or one of {IMAGE_EXTENSIONS}, got {image_ext!r}")
    frame = entry.frame + offset
    if frame < 0:
        raise UserError(
            f"split entry '{entry}' needs frame {frame}, before the start of the drive; "
            "training split files list only frames whose neighbours exist"
        )
    stem = Path(data_root) / entry.folder / f"image_{entry.camera:02d}" / "data" / f"{frame:010d}"
    candidates = [stem.with_suffix(f".{ext}") for ext in (IMAGE_EXTENSIONS if image_ext == "auto" else (image_ext,))]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = " or ".join(repr(str(candidate)) for candidate in candidates)
    raise UserError(
        f"KITTI image not found: {looked} (frame {frame} of split entry '{entry}'); check the data root, "
        "the split file, and that the drive is unpacked"
        + (" (set the image extension to 'auto' if your copy has the other format)" if image_ext != "auto" else "")
    )


def read_rgb_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 ``(H, W, 3)`` RGB.

    Raises:
        UserError: the file cannot be decoded.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot decode image {str(path)!r}; is the file complete and a jpg/png?")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_kitti_image(
    data_root: str | Path, entry: KittiSplitEntry, offset: int = 0, image_ext: str = "auto"
) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB image ``offset`` frames from ``entry``, at its original size."""
    return read_rgb_image(kitti_image_path(data_root, entry, offset, image_ext))


class KittiRawDataset(Dataset):
    """KITTI raw frames for self-supervised training or validation, one sample per split line.

    Samples follow the convention of :mod:`dna_depth_core.data`:

    - ``"frames"``: float32 ``(len(frame_offsets), 3, height, width)`` RGB in [0, 1], one
      image per offset in ``frame_offsets`` order (``(-1, 0, 1)`` gives t-1, t, t+1).
      Images are resized with ``resample``.
    - ``"intrinsics"``: float32 ``(3, 3)`` pixels, :func:`kitti_intrinsics` at the output size.
    - ``"depth_gt"`` (``with_depth_gt``): float32 ``(1, height, width)`` metres, 0 where
      unknown: the projected velodyne scan of the target frame, by the published definition
      (:func:`~dna_depth_core.data.kitti_depth.kitti_depth_map`), reduced to the output
      size keeping the nearest return per pixel.

    Args:
        data_root: KITTI raw root folder (see the module docstring for the layout).
        split_file: ``folder frame side`` split file.
        height: output height in pixels.
        width: output width in pixels.
        image_ext: ``"jpg"``, ``"png"`` or ``"auto"``.
        frame_offsets: strictly increasing frame offsets relative to the target, containing 0.
        with_depth_gt: also return projected lidar depth (needs the calibration files and
            ``velodyne_points``).
        resample: one of :data:`RESAMPLING_METHODS`; the default, ``"lanczos"``, is the
            filter the paper's numbers were trained with.

    Raises:
        UserError: the data root, split file or the first sample's files are missing
            (checked up front so a wrong path fails at once); later samples' missing files
            are reported when they are loaded.
    """

    def __init__(
        self,
        data_root: str | Path,
        split_file: str | Path,
        height: int = 192,
        width: int = 640,
        image_ext: str = "auto",
        frame_offsets: Sequence[int] = (-1, 0, 1),
        with_depth_gt: bool = False,
        resample: str = "lanczos",
    ) -> None:
        frame_offsets = tuple(int(offset) for offset in frame_offsets)
        if 0 not in frame_offsets or list(frame_offsets) != sorted(set(frame_offsets)):
            raise ValueError(f"frame_offsets must be strictly increasing and contain 0, got {frame_offsets}")
        if height <= 0 or width <= 0:
            raise ValueError(f"height and width must be positive, got {height}x{width}")
        if image_ext != "auto" and image_ext not in IMAGE_EXTENSIONS:
            raise ValueError(f"image_ext must be 'auto' or one of {IMAGE_EXTENSIONS}, got {image_ext!r}")
        if resample not in RESAMPLING_METHODS:
            raise ValueError(f"resample must be one of {RESAMPLING_METHODS}, got {resample!r}")
        self.data_root = Path(data_root)
        if not self.data_root.is_dir():
            raise UserError(
                f"KITTI data root {str(self.data_root)!r} is not a folder; pass the folder holding 2011_09_26 etc."
            )
        self.entries = read_split_file(split_file)
        self.height = height
        self.width = width
        self.image_ext = image_ext
        self.frame_offsets = frame_offsets
        self.with_depth_gt = with_depth_gt
        self.resample = resample
        self.intrinsics = torch.from_numpy(kitti_intrinsics(height, width))
        fx, fy, cx, cy = KITTI_NORMALISED_INTRINSICS
        # The recipe resizes whole frames (within 1% of 640x192's aspect ratio) and uses one camera for all.
        self.preparation = FramePreparation(rectified=True, crop="resize", fx=fx, fy=fy, cx=cx, cy=cy)
        """How the frames are made, for checkpoints trained on them (``ModelMetadata.preparation``)."""
        for offset in frame_offsets:
            kitti_image_path(self.data_root, self.entries[0], offset, image_ext)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        entry = self.entries[index]
        frames = []
        for offset in self.frame_offsets:
            image = read_kitti_image(self.data_root, entry, offset, self.image_ext)
            image = resize_image(image, self.height, self.width, self.resample)
            frames.append(torch.from_numpy(image).permute(2, 0, 1))
        sample = {
            "frames": torch.stack(frames).float().div_(255.0),
            "intrinsics": self.intrinsics.clone(),
        }
        if self.with_depth_gt:
            depth = downsample_sparse_depth(kitti_depth_map(self.data_root, entry), (self.height, self.width))
            sample["depth_gt"] = torch.from_numpy(depth)[None]
        return sample
