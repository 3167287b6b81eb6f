"""Frame selection, the decoded-frame cache and the triplet dataset over recorded bags."""

import os

import cv2
import numpy as np
import pytest
import yaml

from dna_depth_core.config import ConfigError, save_config
from dna_depth_core.errors import UserError
from dna_depth_core.data.rosbag import frame_cache
from dna_depth_core.data.rosbag.dataset import BagDataConfig, build_bag_datasets
from dna_depth_core.data.rosbag.sample_bag import CameraBagWriter
from dna_depth_core.training.finetune import SETTINGS_FILE, FinetuneSettings, load_settings

HEIGHT, WIDTH = 64, 96
K = np.array([[60.0, 0.0, 47.5], [0.0, 60.0, 31.5], [0.0, 0.0, 1.0]])
START = 1_700_000_000.0
SHIFT = 3
"""Pixels the view pans per moving frame."""


def _panorama() -> np.ndarray:
    noise = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH + 400, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.5) * 2.0 - 128.0, 0, 255).astype(np.uint8)


def _write_drive(path, offsets, stamps, storage="sqlite3", odometry=(), jitter_static=True):
    """A camera panning over a panorama: frame i shows columns offsets[i]... at stamps[i]."""
    panorama = _panorama()
    noise = np.random.default_rng(1)
    with CameraBagWriter(path, storage) as writer:
        previous = None
        for offset, stamp in zip(offsets, stamps):
            frame = panorama[:, offset : offset + WIDTH]
            if jitter_static and offset == previous:  # sensor noise on a standing camera
                frame = np.clip(frame.astype(int) + noise.integers(-1, 2, frame.shape), 0, 255).astype(np.uint8)
            writer.write_image("/camera/image_raw", stamp, frame, "rgb8")
            writer.write_camera_info("/camera/camera_info", stamp, HEIGHT, WIDTH, K)
            previous = offset
        for stamp, position, speed in odometry:
            writer.write_odometry("/odom", stamp, [position, 0.0, 0.0], [0, 0, 0, 1], [speed, 0, 0], [0, 0, 0])
    return path


def _config(tmp_path, **overrides) -> BagDataConfig:
    settings = {"height": HEIGHT, "width": WIDTH, "cache_dir": str(tmp_path / "cache"), "val_fraction": 0.3}
    return BagDataConfig(**{**settings, **overrides})


def _stamps_of(datasets, split):
    dataset = getattr(datasets, split)
    sequence = dataset.sequences[0]
    return [sequence.stamps[row[1:]] for row in dataset.triplets]


def test_static_frames_and_gaps_never_enter_triplets(tmp_path):
    indices = [i for i in range(40) if i not in (31, 32, 33)]  # three dropped messages: a gap
    offsets = [SHIFT * min(i, 14) + SHIFT * max(i - 24, 0) for i in indices]  # standing still for frames 15-24
    stamps = [START + 0.1 * i for i in indices]
    bag = _write_drive(tmp_path / "bag", offsets, stamps)
    datasets = build_bag_datasets([bag], _config(tmp_path, val_fraction=0.2))
    (summary,) = datasets.summaries
    assert summary.frames == len(indices)
    assert summary.static_frames == 10
    assert summary.segments == 2
    static_times = {round(START + 0.1 * i, 3) for i in range(15, 25)}
    split_time = START + 0.8 * 3.9
    for split in ("train", "val"):
        for triplet_stamps in _stamps_of(datasets, split):
            assert not static_times & {round(t, 3) for t in triplet_stamps}
            # Never across the gap between t=3.0 and t=3.4.
            assert (triplet_stamps < START + 3.05).all() or (triplet_stamps > START + 3.35).all()
            assert (triplet_stamps < split_time).all() if split == "train" else (triplet_stamps >= split_time).all()
    assert len(datasets.train) == summary.train_triplets > 0 and len(datasets.val) == summary.val_triplets > 0


def test_camera_rate_is_subsampled(tmp_path):
    stamps = [START + i / 30 for i in range(45)]
    bag = _write_drive(tmp_path / "bag", [SHIFT * i for i in range(45)], stamps)
    datasets = build_bag_datasets([bag], _config(tmp_path, rate=10.0, val_fraction=0.0))
    sequence = datasets.train.sequences[0]
    assert sequence.frame_period == pytest.approx(0.1)
    np.testing.assert_allclose(np.diff(sequence.stamps), 0.1, atol=0.02)
    assert len(sequence.stamps) == 15
    assert datasets.val is None


def test_odometry_drops_standing_frames_and_gives_distances(tmp_path):
    # 10 Hz camera; the platform drives 5 m/s, stands still from t=1.0 s to 2.0 s, drives on.
    times = np.arange(0, 3.05, 0.05)
    speeds = np.where((times >= 1.0) & (times < 2.0), 0.0, 5.0)
    positions = np.concatenate([[0.0], np.cumsum(0.05 * speeds[:-1])])
    stamps = [START + 0.1 * i for i in range(31)]
    offsets = [SHIFT * i for i in range(31)]  # the images keep moving: only odometry can tell
    odometry = [(START + t, x, v) for t, x, v in zip(times, positions, speeds)]
    bag = _write_drive(tmp_path / "bag", offsets, stamps, odometry=odometry)
    datasets = build_bag_datasets([bag], _config(tmp_path, odom_topic="/odom", val_fraction=0.0))
    assert datasets.summaries[0].static_frames == 10

    def position(time):
        return np.interp(time, times, positions)

    for index in range(len(datasets.train)):
        sample = datasets.train[index]
        previous, target, following = datasets.train.sequences[0].stamps[datasets.train.triplets[index, 1:]] - START
        expected = [abs(position(previous) - position(target)), abs(position(following) - position(target))]
        np.testing.assert_allclose(sample["source_distance"].numpy(), expected, atol=1e-4)
        assert (sample["source_distance"] > 0.4).all()


def test_frame_spacing_widens_the_baseline_over_moving_frames_only(tmp_path):
    # 10 Hz, 1 m/s with a standstill from t=1.0 s to 1.5 s and a gap (two lost frames) at 2.5 s.
    indices = [i for i in range(40) if i not in (25, 26)]
    times = np.arange(0, 4.05, 0.05)
    speeds = np.where((times >= 1.0) & (times < 1.5), 0.0, 1.0)
    positions = np.concatenate([[0.0], np.cumsum(0.05 * speeds[:-1])])
    odometry = [(START + t, x, v) for t, x, v in zip(times, positions, speeds)]
    bag = _write_drive(tmp_path / "bag", [SHIFT * i for i in indices], [START + 0.1 * i for i in indices],
                       odometry=odometry)
    by_spacing = {k: build_bag_datasets([bag], _config(tmp_path, odom_topic="/odom", val_fraction=0.0,
                                                         frame_spacing=k)) for k in (1, 3, None)}
    neighbours, spaced = by_spacing[1].train, by_spacing[3].train
    kept = np.unique(neighbours.triplets[:, 1:])
    for row in spaced.triplets[:, 1:]:
        position = np.searchsorted(kept, row)
        assert (kept[position] == row).all()  # only moving frames
        assert list(np.diff(position)) == [3, 3]  # three kept frames from the target on each side
        stamps = spaced.sequences[0].stamps[row] - START
        assert (stamps < 2.45).all() or (stamps > 2.65).all()  # never across the gap (2.4 s to 2.7 s)
    # Each of the two segments has 2 x (3 - 1) fewer targets with sources three frames away.
    assert len(spaced) == len(neighbours) - 8
    assert spaced.median_baseline() == pytest.approx(3 * neighbours.median_baseline(), rel=0.01)
    assert neighbours.median_baseline() == pytest.approx(0.1, rel=0.01)
    # By default, odometry picks the spacing that reaches 0.2 m: two 0.1 m steps.
    assert by_spacing[None].summaries[0].frame_spacing == 2
    assert by_spacing[None].train.median_baseline() == pytest.approx(0.2, rel=0.01)
    without_odometry = build_bag_datasets([bag], _config(tmp_path, val_fraction=0.0))
    assert without_odometry.summaries[0].frame_spacing == 1


def test_runs_saved_before_the_automatic_spacing_resume_on_neighbours(tmp_path):
    path = tmp_path / SETTINGS_FILE
    save_config(FinetuneSettings(bags=["drive"], data=BagDataConfig(odom_topic="/odom")), path)
    assert load_settings(tmp_path).data.frame_spacing is None  # saved now: chosen again, the same, on resume
    saved = yaml.safe_load(path.read_text())
    del saved["data"]["frame_spacing"]
    path.write_text(yaml.safe_dump(saved))
    assert load_settings(tmp_path).data.frame_spacing == 1


@pytest.mark.parametrize("spacing", [0, 1.5, True])
def test_frame_spacing_must_be_a_whole_number_of_frames(spacing, tmp_path):
    with pytest.raises(ConfigError, match="--frame-spacing must be a whole number >= 1"):
        _config(tmp_path, frame_spacing=spacing)


def test_samples_follow_the_data_convention(tmp_path):
    bag = _write_drive(tmp_path / "bag", [SHIFT * i for i in range(12)], [START + 0.1 * i for i in range(12)])
    datasets = build_bag_datasets([bag, bag], _config(tmp_path))
    sample = datasets.train[0]
    assert sample["frames"].shape == (3, 3, HEIGHT, WIDTH) and sample["frames"].dtype.is_floating_point
    assert 0.0 <= float(sample["frames"].min()) and float(sample["frames"].max()) <= 1.0
    np.testing.assert_allclose(sample["intrinsics"].numpy(), K, atol=1e-5)
    assert "source_distance" not in sample
    first, second = datasets.train.triplets[0], datasets.train.triplets[-1]
    assert first[0] == 0 and second[0] == 1  # both bags contribute, each on its own
    expected = _panorama()[:, first[2] * SHIFT : first[2] * SHIFT + WIDTH]
    np.testing.assert_array_equal((sample["frames"][1].permute(1, 2, 0).numpy() * 255).round(), expected)


def test_second_run_uses_the_cache_without_decoding(tmp_path, monkeypatch):
    bag = _write_drive(tmp_path / "bag", [SHIFT * i for i in range(12)], [START + 0.1 * i for i in range(12)], "mcap")
    config = _config(tmp_path)
    first = build_bag_datasets([bag], config)
    assert not first.summaries[0].from_cache
    entry = first.train.sequences[0].frames_path
    written = entry.stat().st_mtime_ns

    def no_decoding(message):
        raise AssertionError("a cached bag was decoded again")

    monkeypatch.setattr(frame_cache, "decode_image", no_decoding)
    second = build_bag_datasets([bag], config)
    assert second.summaries[0].from_cache
    assert second.train.sequences[0].frames_path == entry and entry.stat().st_mtime_ns == written
    np.testing.assert_array_equal(second.train.sequences[0].frames, first.train.sequences[0].frames)
    # Other settings, or a changed bag, are another cache entry.
    with pytest.raises(AssertionError, match="decoded again"):
        build_bag_datasets([bag], _config(tmp_path, rate=5.0))
    (storage_file,) = bag.glob("*.mcap")
    os.utime(storage_file, ns=(written, written + 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        build_bag_datasets([bag], config)


def test_too_few_usable_frames_is_a_user_error(tmp_path):
    short = _write_drive(tmp_path / "short", [0, 3, 6], [START, START + 0.1, START + 0.2])
    with pytest.raises(UserError, match="too few usable frames"):
        build_bag_datasets([short], _config(tmp_path))
    standing = _write_drive(tmp_path / "standing", [0] * 20, [START + 0.1 * i for i in range(20)])
    with pytest.raises(UserError, match="too few usable frames.*19 static"):
        build_bag_datasets([standing], _config(tmp_path, val_fraction=0.0))


def test_undecodable_frames_are_skipped_with_a_warning(tmp_path):
    from dna_depth_core.data.rosbag.reader import COMPRESSED_IMAGE_TYPE, TYPESTORE

    panorama = _panorama()
    message_type = TYPESTORE.types[COMPRESSED_IMAGE_TYPE]
    header = TYPESTORE.types["std_msgs/msg/Header"]
    time = TYPESTORE.types["builtin_interfaces/msg/Time"]
    with CameraBagWriter(tmp_path / "bag", "sqlite3") as writer:
        for index in range(12):
            stamp = START + 0.1 * index
            if index == 5:  # a frame cut short in transmission
                broken = message_type(header=header(stamp=time(sec=int(stamp), nanosec=round(stamp % 1 * 1e9)),
                                                    frame_id="camera"), format="jpeg", data=np.zeros(40, np.uint8))
                writer.write_message("/camera/image_raw/compressed", COMPRESSED_IMAGE_TYPE, broken, stamp)
            else:
                frame = panorama[:, SHIFT * index : SHIFT * index + WIDTH]
                writer.write_compressed_image("/camera/image_raw/compressed", stamp, frame, "png")
            writer.write_camera_info("/camera/camera_info", stamp, HEIGHT, WIDTH, K)
    with pytest.warns(UserWarning, match="skipping an undecodable frame"):
        datasets = build_bag_datasets([tmp_path / "bag"], _config(tmp_path, val_fraction=0.0))
    (summary,) = datasets.summaries
    assert summary.skipped_images == 1 and summary.frames == 11
    # The missing frame leaves a gap: no triplet spans it.
    assert summary.segments == 2 and summary.train_triplets == 3 + 4
