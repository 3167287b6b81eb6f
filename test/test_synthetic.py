"""Synthetic sequences: shapes, determinism, and ground truth that agrees with the images."""

import numpy as np
import pytest
import torch

from dna_depth_core.data.synthetic import (
    PINHOLE_STYLES,
    SyntheticSceneConfig,
    SyntheticSequence,
    SyntheticTripletDataset,
    generate_sequence,
)

# Small frames keep the suite fast; the KITTI aspect ratio and intrinsics recipe are kept.
HEIGHT, WIDTH = 96, 320


def small_config(style: str = "street", frames: int = 4, **overrides) -> SyntheticSceneConfig:
    return SyntheticSceneConfig(style=style, height=HEIGHT, width=WIDTH, frames_per_sequence=frames, **overrides)


@pytest.fixture(scope="module", params=PINHOLE_STYLES)
def rendered(request) -> tuple[SyntheticSceneConfig, SyntheticSequence]:
    config = small_config(request.param)
    return config, generate_sequence(config, seed=3)


@pytest.fixture
def sequence(rendered) -> SyntheticSequence:
    return rendered[1]


def warp_error(sequence: SyntheticSequence, source: int, target: int, target_pose: np.ndarray | None = None):
    """Warp frame ``source`` into frame ``target`` with the ground truth, in numpy.

    Back-projects each source pixel with its depth, moves it into the target camera with
    the poses, projects it and samples the target image there bilinearly. Returns the
    absolute colour difference (in [0, 1], averaged over channels) at the source pixels
    that land inside the target image and are not occluded there, and that mask.
    """
    intrinsics = sequence.intrinsics.astype(np.float64)
    depth = sequence.depths[source].astype(np.float64)
    height, width = depth.shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([cols, rows, np.ones_like(cols)], 0).reshape(3, -1)
    camera_points = np.linalg.inv(intrinsics) @ pixels * depth.reshape(1, -1)
    source_to_world = sequence.poses[source].astype(np.float64)
    world_to_target = np.linalg.inv(sequence.poses[target] if target_pose is None else target_pose).astype(np.float64)
    relative = world_to_target @ source_to_world
    moved = relative[:3, :3] @ camera_points + relative[:3, 3:4]
    z = moved[2]
    safe_z = np.where(z > 1e-3, z, 1.0)
    u = intrinsics[0, 0] * moved[0] / safe_z + intrinsics[0, 2]
    v = intrinsics[1, 1] * moved[1] / safe_z + intrinsics[1, 2]
    inside = (depth.reshape(-1) > 0) & (z > 1e-3) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)

    u0 = np.clip(np.floor(u).astype(int), 0, width - 2)
    v0 = np.clip(np.floor(v).astype(int), 0, height - 2)
    du, dv = (u - u0)[:, None], (v - v0)[:, None]

    def bilinear(image: np.ndarray) -> np.ndarray:
        return (
            image[v0, u0] * (1 - du) * (1 - dv)
            + image[v0, u0 + 1] * du * (1 - dv)
            + image[v0 + 1, u0] * (1 - du) * dv
            + image[v0 + 1, u0 + 1] * du * dv
        )

    sampled = bilinear(sequence.images[target].astype(np.float64) / 255.0)
    # Not occluded: the target's own depth where the point lands agrees with the point's
    # depth (interpolated depth mixes surfaces at occlusion edges, which drops them too).
    landing_depth = bilinear(sequence.depths[target].astype(np.float64)[..., None])[:, 0]
    visible = inside & (np.abs(landing_depth - z) < 0.02 * z + 0.02)
    reference = sequence.images[source].reshape(-1, 3).astype(np.float64) / 255.0
    error = np.abs(sampled - reference).mean(1)
    return error, visible


def test_shapes_dtypes_and_ranges(sequence):
    frames = 4
    assert sequence.images.shape == (frames, HEIGHT, WIDTH, 3) and sequence.images.dtype == np.uint8
    assert sequence.depths.shape == (frames, HEIGHT, WIDTH) and sequence.depths.dtype == np.float32
    assert sequence.intrinsics.shape == (3, 3) and sequence.intrinsics.dtype == np.float32
    assert sequence.poses.shape == (frames, 4, 4) and sequence.poses.dtype == np.float32
    assert sequence.timestamps.shape == (frames,) and sequence.timestamps.dtype == np.float64
    np.testing.assert_allclose(sequence.timestamps, np.arange(frames) / 10.0)
    np.testing.assert_allclose(
        sequence.intrinsics, [[0.58 * WIDTH, 0, WIDTH / 2], [0, 1.92 * HEIGHT, HEIGHT / 2], [0, 0, 1]], rtol=1e-6
    )
    # Rigid camera-to-world transforms.
    rotations = sequence.poses[:, :3, :3].astype(np.float64)
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-5
    )
    np.testing.assert_allclose(sequence.poses[:, 3], np.broadcast_to([0, 0, 0, 1], (frames, 4)))
    known = sequence.depths[sequence.depths > 0]
    assert known.min() > 0.3 and known.max() < 300.0
    assert np.isfinite(sequence.depths).all()
    # Images are textured, not flat colour.
    assert sequence.images.std() > 20


def test_camera_moves_forward_at_the_configured_speed(rendered):
    config, sequence = rendered
    centres = sequence.poses[:, :3, 3].astype(np.float64)
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert np.all(steps > 0.8 * config.speed / config.fps) and np.all(steps < 1.2 * config.speed / config.fps)
    heights = -centres[:, 1]
    np.testing.assert_allclose(heights, config.camera_height, atol=0.05)
    forward = sequence.poses[:, :3, 2]  # optical axis in the world
    assert np.all(forward[:, 2] > 0.98)  # heading stays along the street, with small wobble
    assert np.all(np.diff(centres[:, 2]) > 0)


def test_street_sky_is_unknown_depth_at_the_top_and_ground_is_known_below():
    sequence = generate_sequence(small_config("street", frames=3), seed=5)
    depth = sequence.depths[0]
    assert (depth[: HEIGHT // 8] == 0).any(), "some sky expected in the top rows of a street"
    assert (depth[-HEIGHT // 4 :] > 0).all(), "the bottom quarter sees road, never sky"
    sky_rows = np.nonzero((depth == 0).any(axis=1))[0]
    assert sky_rows.max() < HEIGHT // 2, "sky appears only above the horizon"
    # Sky is brighter and bluer than the road.
    image = sequence.images[0].astype(float)
    sky, road = image[depth == 0].mean(0), image[-HEIGHT // 8 :].reshape(-1, 3).mean(0)
    assert sky[2] > road[2] and sky[2] > sky[0]


def test_corridor_has_no_sky():
    sequence = generate_sequence(small_config("corridor", frames=3), seed=5)
    assert (sequence.depths > 0).all()
    assert sequence.depths.max() < 80.0


def test_ground_truth_is_photometrically_consistent(sequence):
    """Depth, poses and intrinsics agree with the images: warping frame t with them into
    frame t+1 reproduces frame t on almost every visible pixel, and a wrong pose does not."""
    for source, target in ((1, 2), (1, 0), (2, 3)):
        error, visible = warp_error(sequence, source, target)
        assert visible.mean() > 0.6
        assert np.median(error[visible]) < 0.005
        assert (error[visible] < 0.05).mean() > 0.92  # the rest: sharp edges, resampled
    # The check has teeth: with the target camera one step further along, errors grow.
    shifted = sequence.poses[2].copy()
    shifted[:3, 3] += sequence.poses[2, :3, 3] - sequence.poses[1, :3, 3]
    wrong_error, wrong_visible = warp_error(sequence, 1, 2, target_pose=shifted)
    right_error, right_visible = warp_error(sequence, 1, 2)
    assert wrong_error[wrong_visible].mean() > 2.5 * right_error[right_visible].mean()


def test_same_seed_gives_identical_arrays_and_different_seeds_differ():
    config = small_config("street", frames=3)
    first, again, other = generate_sequence(config, 11), generate_sequence(config, 11), generate_sequence(config, 12)
    for name in ("images", "depths", "intrinsics", "poses", "timestamps"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.depths, other.depths)
    assert np.abs(first.images.astype(int) - other.images.astype(int)).mean() > 10


def test_styles_look_different():
    street = generate_sequence(small_config("street", frames=3), 0)
    corridor = generate_sequence(small_config("corridor", frames=3), 0)
    assert np.median(corridor.depths) < 0.6 * np.median(street.depths[street.depths > 0])
    street_step = np.linalg.norm(street.poses[1, :3, 3] - street.poses[0, :3, 3])
    corridor_step = np.linalg.norm(corridor.poses[1, :3, 3] - corridor.poses[0, :3, 3])
    assert corridor_step < 0.5 * street_step
    assert (street.depths == 0).any() and (corridor.depths > 0).all()


def test_dataset_yields_sample_dicts():
    config = small_config("street", frames=4)
    dataset = SyntheticTripletDataset(config, num_sequences=2, seed=7)
    assert len(dataset) == 2 * (4 - 2) and len(dataset.sequences) == 2
    sample = dataset[3]  # sequence 1, target frame 2
    assert set(sample) == {"frames", "intrinsics", "depth_gt", "source_distance", "target_to_source"}
    assert sample["frames"].shape == (3, 3, HEIGHT, WIDTH) and sample["frames"].dtype == torch.float32
    assert sample["frames"].min() >= 0.0 and sample["frames"].max() <= 1.0
    assert sample["intrinsics"].shape == (3, 3) and sample["intrinsics"].dtype == torch.float32
    assert sample["depth_gt"].shape == (1, HEIGHT, WIDTH) and sample["depth_gt"].dtype == torch.float32
    assert sample["source_distance"].shape == (2,) and sample["source_distance"].dtype == torch.float32

    sequence = dataset.sequences[1]
    assert sequence is not None and np.array_equal(sequence.depths, generate_sequence(config, 8).depths)
    for slot, frame in enumerate((1, 2, 3)):
        expected_frame = sequence.images[frame].transpose(2, 0, 1).astype(np.float32) / 255
        np.testing.assert_allclose(sample["frames"][slot].numpy(), expected_frame, atol=1e-6)
    np.testing.assert_array_equal(sample["depth_gt"][0].numpy(), sequence.depths[2])
    expected = [np.linalg.norm(sequence.poses[i, :3, 3] - sequence.poses[2, :3, 3]) for i in (1, 3)]
    np.testing.assert_allclose(sample["source_distance"].numpy(), expected, rtol=1e-5)
    assert 0.5 < float(sample["source_distance"].min()) < 1.2  # about 8 m/s at 10 Hz
    # The true target-to-source motions: rigid, and as far as the cameras are apart.
    motion = sample["target_to_source"].numpy()
    assert motion.shape == (2, 4, 4) and motion.dtype == np.float32
    np.testing.assert_allclose(motion[:, :3, :3] @ motion[:, :3, :3].transpose(0, 2, 1), np.eye(3)[None].repeat(2, 0),
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(motion[:, :3, 3], axis=1), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"style": "desert"}, "valid styles: street, corridor"),
        ({"frames_per_sequence": 2}, "frames_per_sequence"),
        ({"height": 0}, "image size"),
        ({"fps": 0.0}, "fps"),
        ({"speed": -1.0}, "speed"),
        ({"camera_height": 10.0}, "camera_height"),
        ({"fx_ratio": 0.0}, "fx_ratio"),
        ({"cy_ratio": 1.5}, "cy_ratio"),
        ({"yaw_amplitude_deg": 45.0}, "yaw_amplitude_deg"),
    ],
)
def test_invalid_config_is_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        SyntheticSceneConfig(**overrides)


def test_style_defaults_and_invalid_arguments():
    assert SyntheticSceneConfig().speed == 8.0 and SyntheticSceneConfig().camera_height == 1.65
    corridor = SyntheticSceneConfig(style="corridor")
    assert corridor.speed == 2.0 and corridor.camera_height == 1.2
    assert SyntheticSceneConfig(speed=5.0).speed == 5.0
    with pytest.raises(ValueError, match="seed"):
        generate_sequence(small_config(), seed=-1)
    with pytest.raises(ValueError, match="num_sequences"):
        SyntheticTripletDataset(small_config(), num_sequences=0)


def test_config_loads_through_the_project_config_loader():
    from dna_depth_core.config import load_config

    config = load_config(SyntheticSceneConfig, {"style": "corridor"}, ["frames_per_sequence=5"])
    assert config.style == "corridor" and config.speed == 2.0 and config.frames_per_sequence == 5
    assert load_config(SyntheticSceneConfig, None, ["speed=12.5"]).speed == 12.5
