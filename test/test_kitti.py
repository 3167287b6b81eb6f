"""KITTI raw: split files, the dataset on a tiny fake KITTI tree, velodyne ground truth and export-gt."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.cli import main
from dna_depth_core.data.kitti import KittiRawDataset, KittiSplitEntry, read_split_file
from dna_depth_core.data.kitti_depth import (
    CAMERA_Z,
    PUBLISHED,
    downsample_sparse_depth,
    kitti_depth_map,
    project_points_to_depth,
    read_calib_file,
    velodyne_to_image_projection,
)
from dna_depth_core.errors import UserError
from dna_depth_core.evaluation import KittiEigenTestSet
from dna_depth_core.evaluation.kitti_gt import GroundTruthFile
from dna_depth_core.networks import create_depth_net
from dna_depth_core.training.config import load_train_config

DATE = "2011_09_26"
DRIVE = f"{DATE}/{DATE}_drive_0001_sync"
IMAGE_HEIGHT, IMAGE_WIDTH = 20, 50

# Calibration with numbers chosen so projections are easy by hand:
# velo -> cam0: x_c = -y_v + 1, y_c = -z_v + 0.5, z_c = x_v - 1;
# R_rect_00 swaps x and y: x_r = y_c, y_r = x_c, z_r = z_c;
# P_rect_02 = [[10, 0, 20, 20], [0, 10, 8, 0], [0, 0, 1, 1]]  (P_rect_03 has -20 for the 20 at [0, 3]).
IDENTITY = [1, 0, 0, 0, 1, 0, 0, 0, 1]
CAM_TO_CAM = {
    "corner_dist": [9.95e-02],
    "S_00": [1392, 512],
    "K_00": [984.2439, 0, 690, 0, 980.8141, 233.1966, 0, 0, 1],
    "D_00": [-0.3728755, 0.2037299, 2.219027e-03, 1.383707e-03, -7.233722e-02],
    "R_00": IDENTITY,
    "T_00": [2.573699e-16, -1.059758e-16, 1.614870e-16],
    "S_rect_00": [IMAGE_WIDTH, IMAGE_HEIGHT],
    "R_rect_00": [0, 1, 0, 1, 0, 0, 0, 0, 1],
    "P_rect_00": [10, 0, 20, 0, 0, 10, 8, 0, 0, 0, 1, 0],
    "S_rect_02": [IMAGE_WIDTH, IMAGE_HEIGHT],
    "R_rect_02": IDENTITY,
    "P_rect_02": [10, 0, 20, 20, 0, 10, 8, 0, 0, 0, 1, 1],
    "S_rect_03": [IMAGE_WIDTH, IMAGE_HEIGHT],
    "R_rect_03": IDENTITY,
    "P_rect_03": [10, 0, 20, -20, 0, 10, 8, 0, 0, 0, 1, 1],
}
VELO_TO_CAM = {"R": [0, -1, 0, 0, 0, -1, 1, 0, 0], "T": [1, 0.5, -1], "delta_f": [0, 0], "delta_c": [0, 0]}


def calib_text(entries: dict[str, list[float]]) -> str:
    """A calibration file in KITTI's text layout: a ``calib_time`` line, then ``key: %e %e ...`` lines."""
    lines = ["calib_time: 09-Jan-2012 13:57:47"]
    lines += [f"{key}: " + " ".join(f"{value:e}" for value in values) for key, values in entries.items()]
    return "\n".join(lines) + "\n"


# Velodyne points (x, y, z, reflectance) and where they land, by hand with the calibration above:
# A (9, -4, 2.5):   cam0 (5, -2, 8), rect (-2, 5, 8), depth 8 + 1 = 9,
#                   left: u = (-20 + 160 + 20) / 9 = 17.78 -> col 18 - 1 = 17, v = (50 + 64) / 9 = 12.67 -> row 12;
#                   right: u = (-20 + 160 - 20) / 9 = 13.33 -> col 12.
# B (9.2, -4, 2.5): rect (-2, 5, 8.2), depth 9.2, u = 164 / 9.2 = 17.83 -> col 17, v = 115.6 / 9.2 = 12.57 -> row 12:
#                   same left pixel as A, farther, so A's 9 is kept.
# C (10, -4, 2.5):  rect (-2, 5, 9), depth 10, u = 180 / 10 = 18 -> col 17, v = 122 / 10 = 12.2 -> row 11;
#                   right: u = 140 / 10 = 14 -> col 13.
# D (-5, 0, 0):     z_c = -6, behind the camera: dropped.
# E (9, -40, 2.5):  rect (-2, 41, 8), v = (410 + 64) / 9 = 52.7: below the 20-row image, dropped.
VELODYNE_POINTS = np.array(
    [[9.2, -4, 2.5, 0.3], [9, -4, 2.5, 0.9], [10, -4, 2.5, 0.1], [-5, 0, 0, 0.5], [9, -40, 2.5, 0.2]], dtype=np.float32
)
EXPECTED_LEFT = {(12, 17): 9.0, (11, 17): 10.0}
EXPECTED_RIGHT = {(12, 12): 9.0, (11, 13): 10.0}


def frame_value(camera: int, frame: int) -> int:
    """Grey level of the fake image of ``frame`` on ``camera``, so tests can tell frames apart."""
    return 20 * frame + (5 if camera == 3 else 0)


@pytest.fixture
def kitti_root(tmp_path: Path) -> Path:
    """A tiny KITTI raw tree: frames 0..3, left camera png, right camera jpg, calibration and one scan per frame."""
    root = tmp_path / "kitti"
    (root / DATE).mkdir(parents=True)
    (root / DATE / "calib_cam_to_cam.txt").write_text(calib_text(CAM_TO_CAM))
    (root / DATE / "calib_velo_to_cam.txt").write_text(calib_text(VELO_TO_CAM))
    for camera, extension in ((2, "png"), (3, "jpg")):
        folder = root / DRIVE / f"image_{camera:02d}" / "data"
        folder.mkdir(parents=True)
        for frame in range(4):
            image = np.full((IMAGE_HEIGHT, IMAGE_WIDTH, 3), frame_value(camera, frame), np.uint8)
            image[..., 2] = 200  # blue channel: checks the BGR -> RGB conversion
            cv2.imwrite(str(folder / f"{frame:010d}.{extension}"), image[..., ::-1])
    velodyne = root / DRIVE / "velodyne_points" / "data"
    velodyne.mkdir(parents=True)
    for frame in range(4):
        VELODYNE_POINTS.tofile(velodyne / f"{frame:010d}.bin")
    return root


def write_split(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_split_file_parses_lines_and_reports_malformed_ones(tmp_path):
    split = write_split(tmp_path / "split.txt", [f"{DRIVE} 42 l", "", f"{DRIVE}/ 0000000007 r"])
    assert read_split_file(split) == [KittiSplitEntry(DRIVE, 42, "l"), KittiSplitEntry(DRIVE, 7, "r")]
    assert str(KittiSplitEntry(DRIVE, 7, "r")) == f"{DRIVE} 0000000007 r"
    with pytest.raises(UserError, match="line 3: side 'x'"):
        read_split_file(write_split(tmp_path / "bad_side.txt", [f"{DRIVE} 1 l", f"{DRIVE} 2 l", f"{DRIVE} 3 x"]))
    with pytest.raises(UserError, match="line 1: expected 3 fields, got 2"):
        read_split_file(write_split(tmp_path / "short.txt", [f"{DRIVE} 1"]))
    with pytest.raises(UserError, match="line 1: frame 'abc'"):
        read_split_file(write_split(tmp_path / "frame.txt", [f"{DRIVE} abc l"]))
    with pytest.raises(UserError, match="cannot read split file"):
        read_split_file(tmp_path / "missing.txt")


def test_dataset_returns_resized_triplets_and_recipe_intrinsics(kitti_root, tmp_path):
    split = write_split(tmp_path / "train.txt", [f"{DRIVE} 1 l", f"{DRIVE} 2 r"])
    dataset = KittiRawDataset(kitti_root, split, height=16, width=32)
    assert len(dataset) == 2
    left = dataset[0]
    assert left["frames"].shape == (3, 3, 16, 32) and left["frames"].dtype.is_floating_point
    expected_red = [frame_value(2, frame) / 255 for frame in (0, 1, 2)]
    assert left["frames"][:, 0].mean(dim=(1, 2)).tolist() == pytest.approx(expected_red, abs=1e-6)
    assert left["frames"][:, 2].mean().item() == pytest.approx(200 / 255, abs=1e-6)
    expected_intrinsics = [[0.58 * 32, 0, 16], [0, 1.92 * 16, 8], [0, 0, 1]]
    np.testing.assert_allclose(left["intrinsics"].numpy(), expected_intrinsics, rtol=1e-6)
    assert "depth_gt" not in left
    right = dataset[1]  # jpg images found by extension auto-detection
    expected_right = [frame_value(3, frame) / 255 for frame in (1, 2, 3)]
    assert right["frames"][:, 0].mean(dim=(1, 2)).tolist() == pytest.approx(expected_right, abs=3 / 255)


def test_dataset_depth_gt_is_projected_scan_at_output_size(kitti_root, tmp_path):
    split = write_split(tmp_path / "val.txt", [f"{DRIVE} 1 l"])
    sample = KittiRawDataset(kitti_root, split, height=10, width=25, frame_offsets=(0,), with_depth_gt=True)[0]
    assert sample["frames"].shape == (1, 3, 10, 25)
    depth = sample["depth_gt"]
    assert depth.shape == (1, 10, 25)
    # Pixel centres scale by 0.5: (12, 17) -> (6.25, 8.75) -> (6, 8); (11, 17) -> (5.75, 8.75) -> (5, 8).
    found = {tuple(int(i) for i in pixel): float(depth[0][tuple(pixel)]) for pixel in np.argwhere(depth[0].numpy() > 0)}
    assert found == pytest.approx({(6, 8): 9.0, (5, 8): 10.0})


def test_dataset_reports_missing_files_with_their_path(kitti_root, tmp_path):
    (kitti_root / DRIVE / "image_02" / "data" / "0000000002.png").unlink()
    split = write_split(tmp_path / "train.txt", [f"{DRIVE} 2 l"])
    with pytest.raises(UserError, match=r"image_02/data/0000000002\.(jpg|png)"):
        KittiRawDataset(kitti_root, split)
    later = KittiRawDataset(kitti_root, write_split(tmp_path / "later.txt", [f"{DRIVE} 1 r", f"{DRIVE} 1 l"]))
    with pytest.raises(UserError, match=r"0000000002\.png"):
        later[1]
    with pytest.raises(UserError, match="before the start of the drive"):
        KittiRawDataset(kitti_root, write_split(tmp_path / "first.txt", [f"{DRIVE} 0 l"]))
    with pytest.raises(UserError, match="not a folder"):
        KittiRawDataset(tmp_path / "nowhere", split)
    with pytest.raises(UserError, match=r"0000000000\.jpg"):
        KittiRawDataset(kitti_root, write_split(tmp_path / "png.txt", [f"{DRIVE} 1 l"]), image_ext="jpg")


def test_read_calib_file_skips_non_numeric_entries(kitti_root):
    calibration = read_calib_file(kitti_root / DATE / "calib_velo_to_cam.txt")
    assert set(calibration) == {"R", "T", "delta_f", "delta_c"}
    assert calibration["T"].tolist() == [1.0, 0.5, -1.0]


@pytest.mark.parametrize("side, expected", [("l", EXPECTED_LEFT), ("r", EXPECTED_RIGHT)])
def test_velodyne_projection_matches_hand_computed_pixels(kitti_root, side, expected):
    depth = kitti_depth_map(kitti_root, KittiSplitEntry(DRIVE, 3, side))
    assert depth.shape == (IMAGE_HEIGHT, IMAGE_WIDTH) and depth.dtype == np.float32
    found = {tuple(int(i) for i in pixel): float(depth[tuple(pixel)]) for pixel in np.argwhere(depth > 0)}
    assert found == pytest.approx(expected)


def test_velodyne_projection_reports_missing_files(kitti_root):
    with pytest.raises(UserError, match="velodyne scan .*drive_0002_sync/velodyne_points/data/0000000000.bin"):
        kitti_depth_map(kitti_root, KittiSplitEntry(DRIVE.replace("0001", "0002"), 0, "l"))
    (kitti_root / DATE / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\n")
    with pytest.raises(UserError, match="entry 'T' missing"):
        kitti_depth_map(kitti_root, KittiSplitEntry(DRIVE, 3, "l"))


def test_downsample_sparse_depth_keeps_nearest_measurement():
    depth = np.zeros((4, 6), np.float32)
    depth[0, 0], depth[1, 1], depth[3, 5] = 5.0, 3.0, 7.0
    assert downsample_sparse_depth(depth, (2, 3)).tolist() == [[3.0, 0.0, 0.0], [0.0, 0.0, 7.0]]


def test_export_gt_cli_writes_maps_that_evaluation_reads(kitti_root, tmp_path, capsys):
    split = write_split(tmp_path / "test_files.txt", [f"{DRIVE} 0000000001 l", f"{DRIVE} 3 r"])
    output = tmp_path / "gt" / "gt_depths.npz"
    assert main(["export-gt", "--data-root", str(kitti_root), "--split-file", str(split), "-o", str(output)]) == 0
    assert "wrote 2 ground-truth depth maps (published (x_velo))" in capsys.readouterr().out
    with np.load(output, allow_pickle=False) as archive:
        assert archive["entries"].tolist() == [f"{DRIVE} 0000000001 l", f"{DRIVE} 0000000003 r"]
        assert str(archive["depth_definition"]) == PUBLISHED
        assert archive["depth_00001"][12, 12] == pytest.approx(9.0)
    ground_truth = GroundTruthFile(output, read_split_file(split))
    assert len(ground_truth) == 2 and ground_truth[0][12, 17] == pytest.approx(9.0)
    assert ground_truth.depth_definition == PUBLISHED and ground_truth.definition_source == "recorded in the file"
    ground_truth.close()
    camera_z = tmp_path / "gt" / "camera_z.npz"
    argv = ["export-gt", "--data-root", str(kitti_root), "--split-file", str(split), "-o", str(camera_z)]
    assert main([*argv, "--depth-definition", "camera-z"]) == 0
    assert "not comparable with published KITTI tables" in capsys.readouterr().out
    assert GroundTruthFile(camera_z, read_split_file(split)).definition_label == "camera-z"
    with pytest.raises(UserError, match="different split"):
        GroundTruthFile(output, [KittiSplitEntry(DRIVE, 1, "l")])
    with pytest.raises(UserError, match="export-gt"):
        GroundTruthFile(tmp_path / "none.npz", [])


def test_export_gt_cli_reports_missing_scan_in_one_line(kitti_root, tmp_path, capsys):
    (kitti_root / DRIVE / "velodyne_points" / "data" / "0000000002.bin").unlink()
    split = write_split(tmp_path / "test_files.txt", [f"{DRIVE} 2 l"])
    output = tmp_path / "gt_depths.npz"
    assert main(["export-gt", "--data-root", str(kitti_root), "--split-file", str(split), "-o", str(output)]) == 2
    error = capsys.readouterr().err
    assert "velodyne_points/data/0000000002.bin" in error and "Traceback" not in error
    assert not output.exists()


def test_evaluate_cli_on_fake_kitti_uses_exported_ground_truth(kitti_root, tmp_path, capsys, seeded):
    split = write_split(tmp_path / "test_files.txt", [f"{DRIVE} 1 l", f"{DRIVE} 3 r"])
    gt_path = tmp_path / "gt_depths.npz"
    assert main(["export-gt", "--data-root", str(kitti_root), "--split-file", str(split), "-o", str(gt_path)]) == 0
    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint, create_depth_net("dna_depth_b0"), ModelMetadata(height=32, width=64))
    output = tmp_path / "report"
    argv = [
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--data",
        "kitti",
        "--data-root",
        str(kitti_root),
        "--split-file",
        str(split),
        "--gt-depths",
        str(gt_path),
        "--device",
        "cpu",
        "--output-dir",
        str(output),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "images evaluated: 2" in out and "not comparable" not in out
    summary = json.loads((output / "metrics.json").read_text())
    assert summary["protocol"] == {"min_depth": 0.001, "max_depth": 80.0, "garg_crop": True, "median_scaling": True}
    assert summary["context"]["gt_depths"] == str(gt_path) and (output / "examples.png").is_file()
    assert summary["context"]["gt_definition"] == "published (x_velo)"
    assert summary["context"]["gt_definition_source"] == "recorded in the file"
    # Each image has two lidar pixels (9 m and 10 m), so the median-scaled errors stay small whatever the network says.
    assert summary["metrics"]["d3"] == 1.0 and summary["metrics"]["abs_rel"] < 0.15
    # The same maps in the published export's layout load as they are and score the same.
    ground_truth = GroundTruthFile(gt_path, read_split_file(split))
    published_path = published_npz(tmp_path / "published_gt_depths.npz", [ground_truth[0], ground_truth[1]])
    ground_truth.close()
    argv[argv.index(str(gt_path))] = str(published_path)
    argv[argv.index(str(output))] = str(tmp_path / "report_published")
    assert main(argv) == 0
    published_summary = json.loads((tmp_path / "report_published" / "metrics.json").read_text())
    assert published_summary["metrics"] == summary["metrics"]
    assert published_summary["context"]["gt_definition"] == "published (x_velo)"
    assert published_summary["context"]["gt_definition_source"].startswith("assumed: published gt_depths.npz layout")


# A second hand-built calibration for the published protocol, with numbers exact in binary so
# that no rounding near a half depends on float noise:
# velo -> cam0: R = [[0, -1, 0], [0, 0, -1], [1, 0, 0]], T = (0.25, -0.5, -0.5):
#     x_c = -y_v + 0.25, y_c = -z_v - 0.5, z_c = x_v - 0.5   (the lidar is 0.5 m behind the camera);
# R_rect_00 = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]: x_r = -y_c = z_v + 0.5, y_r = x_c = 0.25 - y_v, z_r = z_c;
# P_rect_02 = [[100, 0, 50, 10], [0, 100, 20, 0], [0, 0, 1, 0]]:
#     u = (100 x_r + 50 z_r + 10) / z_r, v = (100 y_r + 20 z_r) / z_r; pixel (row, col) = (round(v) - 1, round(u) - 1);
# image 100 x 40 pixels.
HAND_DATE = "2011_09_28"
HAND_DRIVE = f"{HAND_DATE}/{HAND_DATE}_drive_0002_sync"
HAND_HEIGHT, HAND_WIDTH = 40, 100
HAND_CAM_TO_CAM = {
    "S_rect_02": [HAND_WIDTH, HAND_HEIGHT],
    "R_rect_00": [0, -1, 0, 1, 0, 0, 0, 0, 1],
    "P_rect_02": [100, 0, 50, 10, 0, 100, 20, 0, 0, 0, 1, 0],
}
HAND_VELO_TO_CAM = {"R": [0, -1, 0, 0, 0, -1, 1, 0, 0], "T": [0.25, -0.5, -0.5]}
# Scan order matters (two points share a pixel). Published depth = x_v; camera-z depth = z_r = x_v - 0.5.
HAND_POINTS = np.array(
    [
        # A: rect (0, 0, 10), u = 510 / 10 = 51, v = 200 / 10 = 20 -> (19, 50); published 10.5, camera-z 10.
        [10.5, 0.25, -0.5, 0],
        # B: rect (0.5, 0.5, 5), u = (50 + 250 + 10) / 5 = 62, v = (50 + 100) / 5 = 30 -> (29, 61); 5.5 / 5.
        [5.5, -0.25, 0.0, 0],
        # C: in front of the lidar (x_v = 0.25 >= 0) but behind the camera: rect (-0.0625, -0.015625, -0.25),
        #    u = (-6.25 - 12.5 + 10) / -0.25 = 35, v = (-1.5625 - 5) / -0.25 = 26.25 -> (25, 34).
        #    Published keeps it there with 0.25 (the reference projects every x_v >= 0 point, dividing by the
        #    negative z); camera-z drops it (z <= 0).
        [0.25, 0.265625, -0.5625, 0],
        # D: x_v = -1 < 0, dropped by both, although it would project inside: rect (0, 0, -1.5), u = -65 / -1.5 = 43.3.
        [-1.0, 0.25, -0.5, 0],
        # G: on the camera plane, rect (0, 0, 0): u = 10 / 0, v = 0 / 0, no pixel: dropped by both.
        [0.5, 0.25, -0.5, 0],
        # E: rect (0, 0, 20), u = 1010 / 20 = 50.5 -> np.round to even 50 -> col 49, v = 20 -> (19, 49); 20.5 / 20.
        [20.5, 0.25, -0.5, 0],
        # F: rect (0, 0, 40), u = 2010 / 40 = 50.25 -> col 49, row 19: E's pixel, farther and later in the scan;
        #    the nearer E must win (40.5 would mean "last point wins"; rounding 50.5 up would move E onto A).
        [40.5, 0.25, -0.5, 0],
        # H: rect (6, 0, 10), u = (600 + 500 + 10) / 10 = 111 -> col 110, right of the image: dropped.
        [10.5, 0.25, 5.5, 0],
        # I: rect (-5, 0, 10), u = (-500 + 500 + 10) / 10 = 1 -> col 0 (first column, kept), row 19; 10.5 / 10.
        [10.5, 0.25, -5.5, 0],
    ],
    dtype=np.float32,
)
HAND_PUBLISHED = {(19, 50): 10.5, (29, 61): 5.5, (25, 34): 0.25, (19, 49): 20.5, (19, 0): 10.5}
HAND_CAMERA_Z = {(19, 50): 10.0, (29, 61): 5.0, (19, 49): 20.0, (19, 0): 10.0}
# J: rect (1.90625, -0.03125, 4), u = (190.625 + 200 + 10) / 4 = 100.15625 -> col 99 (last column),
#    v = (-3.125 + 80) / 4 = 19.21875 -> row 18; published 4.5, camera-z 4.
SEAM_POINT = np.array([[4.5, 0.28125, 1.40625, 0]], dtype=np.float32)


@pytest.fixture
def hand_calibration(tmp_path: Path) -> Path:
    """A KITTI tree holding only HAND_DATE's calibration files and one scan (frame 0) of HAND_POINTS."""
    root = tmp_path / "kitti_hand"
    (root / HAND_DATE).mkdir(parents=True)
    (root / HAND_DATE / "calib_cam_to_cam.txt").write_text(calib_text(HAND_CAM_TO_CAM))
    (root / HAND_DATE / "calib_velo_to_cam.txt").write_text(calib_text(HAND_VELO_TO_CAM))
    velodyne = root / HAND_DRIVE / "velodyne_points" / "data"
    velodyne.mkdir(parents=True)
    HAND_POINTS.tofile(velodyne / "0000000000.bin")
    return root


def nonzero_pixels(depth: np.ndarray) -> dict[tuple[int, int], float]:
    return {(int(row), int(col)): float(depth[row, col]) for row, col in np.argwhere(depth != 0)}


def test_published_ground_truth_matches_hand_computed_depths_and_pixels(hand_calibration):
    entry = KittiSplitEntry(HAND_DRIVE, 0, "l")
    published = kitti_depth_map(hand_calibration, entry)
    assert published.shape == (HAND_HEIGHT, HAND_WIDTH) and published.dtype == np.float32
    assert nonzero_pixels(published) == HAND_PUBLISHED  # exact: every number above is exact in binary
    assert nonzero_pixels(kitti_depth_map(hand_calibration, entry, CAMERA_Z)) == HAND_CAMERA_Z


@pytest.mark.parametrize("seam_first", [False, True], ids=["left-edge-point-first", "right-edge-point-first"])
def test_published_duplicate_rule_pairs_the_right_edge_with_the_next_rows_left_edge(hand_calibration, seam_first):
    # The reference finds duplicates by the index row * (W - 1) + col - 1, which J (18, 99) and I (19, 0) share:
    # 18 * 99 + 99 - 1 = 1880 = 19 * 99 + 0 - 1. The pixel of the pair's first point in the scan gets the smaller
    # depth of the two, the other keeps its own. Camera-z maps keep each pixel's own nearest point.
    projection, size = velodyne_to_image_projection(hand_calibration / HAND_DATE, 2)
    seam = np.concatenate([SEAM_POINT, HAND_POINTS[-1:]] if seam_first else [HAND_POINTS[-1:], SEAM_POINT])
    expected = {(18, 99): 4.5, (19, 0): 10.5} if seam_first else {(18, 99): 4.5, (19, 0): 4.5}
    assert nonzero_pixels(project_points_to_depth(seam, projection, size)) == expected
    assert nonzero_pixels(project_points_to_depth(seam, projection, size, CAMERA_Z)) == {(18, 99): 4.0, (19, 0): 10.0}


def published_npz(path: Path, maps: list[np.ndarray]) -> Path:
    """A ground-truth file in the reference export's layout: np.savez_compressed(path, data=np.array(maps)).

    With maps of different sizes the numpy the reference ran on made ``np.array(maps)`` a 1-D
    object array of the maps (today's numpy refuses ragged input, so it is built explicitly)."""
    if len({depth.shape for depth in maps}) == 1:
        data = np.array(maps)
    else:
        data = np.empty(len(maps), dtype=object)
        for index, depth in enumerate(maps):
            data[index] = depth
    np.savez_compressed(path, data=data)
    return path


class WritesFileWhenUnpickled:
    """A pickle payload: loading it with plain pickle would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_published_gt_file_layout_loads_with_its_definition_and_nothing_but_arrays_unpickles(tmp_path):
    rng = np.random.default_rng(0)
    maps = [rng.uniform(0, 80, size).astype(np.float32) for size in ((375, 1242), (370, 1224), (375, 1242))]
    entries = [KittiSplitEntry(DRIVE, frame, "l") for frame in range(3)]
    ground_truth = GroundTruthFile(published_npz(tmp_path / "ragged.npz", maps), entries)
    assert len(ground_truth) == 3 and ground_truth.depth_definition == PUBLISHED
    assert ground_truth.definition_label == "published (x_velo)"
    assert ground_truth.definition_source.startswith("assumed")
    for index, depth in enumerate(maps):
        np.testing.assert_array_equal(ground_truth[index], depth)
        assert ground_truth[index].dtype == np.float32
    same_size = GroundTruthFile(published_npz(tmp_path / "stacked.npz", [maps[0], maps[2]]), entries[:2])
    np.testing.assert_array_equal(same_size[1], maps[2])
    with pytest.raises(UserError, match="holds 3 maps but the split file lists 2 images"):
        GroundTruthFile(tmp_path / "ragged.npz", entries[:2])
    marker = tmp_path / "code_ran"
    hostile = np.empty(2, dtype=object)
    hostile[0], hostile[1] = maps[1], WritesFileWhenUnpickled(marker)
    np.savez_compressed(tmp_path / "hostile.npz", data=hostile)
    with pytest.raises(UserError, match="pickled pathlib.*not only numpy arrays"):
        GroundTruthFile(tmp_path / "hostile.npz", entries[:2])
    assert not marker.exists()
    np.savez_compressed(tmp_path / "other.npz", depth=maps[0])
    with pytest.raises(UserError, match=r"not a ground-truth file.*holds \['depth'\]"):
        GroundTruthFile(tmp_path / "other.npz", entries[:1])


def test_gt_file_from_an_older_export_is_read_as_camera_z(tmp_path):
    path = tmp_path / "old.npz"
    np.savez_compressed(path, entries=np.array([f"{DRIVE} 0000000001 l"]), depth_00000=np.ones((4, 5), np.float32))
    ground_truth = GroundTruthFile(path, [KittiSplitEntry(DRIVE, 1, "l")])
    assert ground_truth.depth_definition == CAMERA_Z and "older dna-depth export-gt" in ground_truth.definition_source


def test_kitti_test_set_refuses_a_map_whose_size_is_not_its_images(kitti_root, tmp_path):
    split = write_split(tmp_path / "test_files.txt", [f"{DRIVE} 1 l"])
    gt_path = published_npz(tmp_path / "gt_depths.npz", [np.zeros((375, 1242), np.float32)])
    with pytest.raises(UserError, match="map 1 .* is 375x1242 but image .* is 20x50; was the file made for another"):
        next(iter(KittiEigenTestSet(kitti_root, split, gt_path)))


def textured_frame(kitti_root: Path) -> np.ndarray:
    """Overwrite frame 1 of the left camera with random texture (png, lossless) and return it as RGB."""
    image = np.random.default_rng(3).integers(0, 256, (IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
    cv2.imwrite(str(kitti_root / DRIVE / "image_02" / "data" / "0000000001.png"), image[..., ::-1])
    return image


def test_dataset_resamples_with_pillow_lanczos_by_default_or_opencv_area(kitti_root, tmp_path):
    image = textured_frame(kitti_root)
    split = write_split(tmp_path / "train.txt", [f"{DRIVE} 1 l"])
    frames = {
        resample: KittiRawDataset(kitti_root, split, height=8, width=20, frame_offsets=(0,), **options)[0]["frames"][0]
        for resample, options in (("default", {}), ("lanczos", {"resample": "lanczos"}), ("area", {"resample": "area"}))
    }
    lanczos = np.asarray(Image.fromarray(image).resize((20, 8), Image.Resampling.LANCZOS))
    area = cv2.resize(image, (20, 8), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(frames["default"].permute(1, 2, 0).numpy(), lanczos / np.float32(255))
    np.testing.assert_array_equal(frames["lanczos"], frames["default"])
    np.testing.assert_array_equal(frames["area"].permute(1, 2, 0).numpy(), area / np.float32(255))
    assert np.abs(lanczos.astype(int) - area).max() > 10  # the two filters differ on texture, so the check can fail
    assert load_train_config().data.kitti.resample == "lanczos"
    with pytest.raises(UserError, match=r"data.kitti.resample must be one of \['lanczos', 'area'\], got 'cubic'"):
        load_train_config(overrides=["data.kitti.resample=cubic"])
