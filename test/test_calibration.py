"""The translation multiplier that makes a pose network agree with a depth network."""

import cv2
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from dna_depth_core.data.synthetic import SyntheticSceneConfig, generate_sequence
from dna_depth_core.losses import SelfSupervisedLossConfig
from dna_depth_core.networks import PoseNet
from dna_depth_core.training.calibration import consistent_translation_scale, pixel_scale_check

LOSS = SelfSupervisedLossConfig(min_depth=0.1, max_depth=100.0)
SKY_DEPTH = 90.0
"""Metres given to sky pixels (0 in the ground truth), within the loss's depth range."""


class _TrueDepth(nn.Module):
    """Returns the ground-truth depth of the one target frame as the network's disparities."""

    def __init__(self, depth_metres: np.ndarray) -> None:
        super().__init__()
        depth = torch.from_numpy(np.where(depth_metres > 0, depth_metres, SKY_DEPTH)).float()[None, None]
        # Inverse of disp_to_depth: the sigmoid output that gives this depth.
        low, high = 1 / LOSS.max_depth, 1 / LOSS.min_depth
        self.register_buffer("disparity", (1 / depth - low) / (high - low))

    def forward(self, image, multiscale=False):
        assert not multiscale, "the calibration needs the full-resolution disparity only"
        return self.disparity


class _TrueMotion(nn.Module):
    """Predicts the true camera motion of the two pairs of one triplet, translations times ``factor``."""

    def __init__(self, poses: np.ndarray, factor: float) -> None:
        super().__init__()
        vectors = []
        for earlier, later in ((0, 1), (1, 2)):
            motion = np.linalg.inv(poses[later]) @ poses[earlier]  # earlier camera -> later camera
            rotation, _ = cv2.Rodrigues(motion[:3, :3])
            vectors.append(np.concatenate([rotation[:, 0], factor * motion[:3, 3]]))
        self.register_buffer("motion", torch.tensor(np.array(vectors), dtype=torch.float32))

    def forward(self, earlier, later):
        return self.motion[:, :3], self.motion[:, 3:]

    def scale_translation_(self, factor: float) -> None:
        self.motion[:, 3:] *= factor


@pytest.fixture(scope="module")
def street_triplet():
    sequence = generate_sequence(SyntheticSceneConfig(style="street", height=96, width=320, frames_per_sequence=3),
                                 seed=3)
    frames = torch.from_numpy(sequence.images).permute(0, 3, 1, 2).float().div(255)
    sample = {"frames": frames, "intrinsics": torch.from_numpy(sequence.intrinsics)}
    return sequence, DataLoader([sample], batch_size=1)


@pytest.mark.parametrize("factor", [0.25, 3.0])
def test_the_multiplier_undoes_a_wrongly_scaled_translation(street_triplet, factor):
    """True depth and true motion with its translation times ``factor``: the answer is 1 / factor."""
    sequence, loader = street_triplet
    scale = consistent_translation_scale(_TrueDepth(sequence.depths[1]), _TrueMotion(sequence.poses, factor),
                                         loader, LOSS, torch.device("cpu"))
    assert scale == pytest.approx(1 / factor, rel=0.05)


def test_scale_translation_multiplies_translations_and_keeps_rotations():
    torch.manual_seed(0)
    pose_net = PoseNet("resnet18").eval()
    earlier, later = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    rotation, translation = pose_net(earlier, later)
    pose_net.scale_translation_(2.5)
    scaled_rotation, scaled_translation = pose_net(earlier, later)
    assert torch.equal(scaled_rotation, rotation)
    assert torch.allclose(scaled_translation, 2.5 * translation, rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="> 0"):
        pose_net.scale_translation_(0.0)


class _ScaledTrueDepth(nn.Module):
    """The ground-truth depth of each frame of a sequence, in units of ``metres_per_unit``,
    as disparities (looked up by the frame's content, so batches of any order work)."""

    def __init__(self, sequence, metres_per_unit: float) -> None:
        super().__init__()
        self.frames = torch.from_numpy(sequence.images).permute(0, 3, 1, 2).float().div(255)
        units = np.where(sequence.depths > 0, sequence.depths, SKY_DEPTH) / metres_per_unit
        low, high = 1 / LOSS.max_depth, 1 / LOSS.min_depth
        self.disparities = torch.from_numpy((1 / units - low) / (high - low)).float()[:, None]

    def forward(self, images, multiscale=False):
        found = [int((self.frames - image).abs().flatten(1).sum(1).argmin()) for image in images]
        return self.disparities[found]


def test_ground_plane_unit_and_loss_on_a_robot_sequence():
    """A model whose depth is the truth in 0.25 m units: the floor 0.5 m below the camera
    gives 0.25 m per unit; the training term is zero in that unit and |log 2| in half of it."""
    from dna_depth_core.data.synthetic import scene_config
    from dna_depth_core.training.calibration import ground_plane_unit
    from dna_depth_core.training.finetune_scale import GroundPlaneLoss

    config = scene_config("robot", 96, 128, frames_per_sequence=4)
    sequence = generate_sequence(config, seed=5)
    frames = torch.from_numpy(sequence.images).permute(0, 3, 1, 2).float().div(255)
    samples = [{"frames": frames[[i - 1, i, i + 1]], "intrinsics": torch.from_numpy(sequence.intrinsics)}
               for i in (1, 2)]
    network = _ScaledTrueDepth(sequence, 0.25)
    measured = ground_plane_unit(network, samples, config.camera_height, (LOSS.min_depth, LOSS.max_depth),
                                 torch.device("cpu"))
    assert measured.metres_per_unit == pytest.approx(0.25, rel=0.05) and measured.frames == 2
    disparity = network(frames[1:3]).requires_grad_(True)
    intrinsics = torch.from_numpy(sequence.intrinsics)[None].repeat(2, 1, 1)
    for unit, expected in ((0.25, 0.0), (0.125, np.log(2))):
        loss, record = GroundPlaneLoss(config.camera_height, unit, (LOSS.min_depth, LOSS.max_depth), weight=1.0)(
            disparity, intrinsics)
        assert record["ground_plane"] == pytest.approx(expected, abs=0.05)
    loss.backward()  # the term reaches the disparity of the floor pixels
    assert disparity.grad.abs().sum() > 0

    # With the mount's floor direction (here with some roll), a sample mirrored by augmentation
    # is the same geometry with the normal's x mirrored: the same loss.
    normal = np.array([0.05, np.cos(np.radians(5)), np.sin(np.radians(5))])
    term = GroundPlaneLoss(config.camera_height, 0.125, (LOSS.min_depth, LOSS.max_depth), weight=1.0,
                           floor_normal=normal)
    mirrored_intrinsics = intrinsics.clone()
    mirrored_intrinsics[:, 0, 2] = disparity.shape[-1] - 1 - intrinsics[:, 0, 2]
    _, upright = term(disparity.detach(), intrinsics, torch.tensor([False, False]))
    _, mirrored = term(disparity.detach().flip(-1), mirrored_intrinsics, torch.tensor([True, True]))
    _, unmirrored = term(disparity.detach().flip(-1), mirrored_intrinsics, torch.tensor([False, False]))
    assert mirrored["ground_plane"] == pytest.approx(upright["ground_plane"], rel=1e-3, abs=1e-4)
    assert unmirrored["ground_plane"] != pytest.approx(upright["ground_plane"], rel=1e-3, abs=1e-4)


class _Wall(nn.Module):
    """Every pixel 4 units away: a flat wall facing the camera, no floor below it."""

    def forward(self, images, multiscale=False):
        low, high = 1 / LOSS.max_depth, 1 / LOSS.min_depth
        return torch.full((images.shape[0], 1, *images.shape[2:]), (1 / 4 - low) / (high - low))


@pytest.mark.parametrize("start_unit, source, metres", [(0.3, "camera height", 0.3), (None, "none", None)])
def test_a_floor_lost_in_training_keeps_the_run(start_unit, source, metres):
    """The fine-tuned depth shows no floor: the end of a --camera-height fine-tune keeps the
    unit the training held the floor at, or labels the result relative, with one warning
    (never an error after the training)."""
    from types import SimpleNamespace

    from dna_depth_core.data.synthetic import scene_config
    from dna_depth_core.training.finetune_scale import CAMERA_HEIGHT, measure_scale

    sequence = generate_sequence(scene_config("robot", 64, 96, frames_per_sequence=3), seed=5)
    frames = torch.from_numpy(sequence.images).permute(0, 3, 1, 2).float().div(255)
    samples = [{"frames": frames, "intrinsics": torch.from_numpy(sequence.intrinsics)}]
    settings = SimpleNamespace(scale_source=CAMERA_HEIGHT, camera_height=0.5, depth_unit=start_unit,
                               pixel_scale_ratio=None, train=SimpleNamespace(loss=LOSS))
    with pytest.warns(UserWarning, match="no floor plane .* could not be measured at the end"):
        outcome = measure_scale(settings, SimpleNamespace(train=samples, val=None, floor_normal=None),
                                SimpleNamespace(depth_net=_Wall()), None, progress=False)
    assert (outcome.source, outcome.metres_per_unit) == (source, metres)
    assert outcome.checks["ground_plane_metres_per_unit"] is None


class _PixelScaleNetwork(torch.nn.Module):
    """Depth that reads nearer the more pixels the image spans: 10 m x 224 / width (disparity in 0.1..100)."""

    def forward(self, images: torch.Tensor, multiscale: bool = False) -> torch.Tensor:
        depth = 10.0 * 224 / images.shape[-1]
        disparity = (1 / depth - 1 / 100) / (1 / 0.1 - 1 / 100)
        return torch.full((images.shape[0], 1, *images.shape[-2:]), disparity)


def test_pixel_scale_check_compares_the_depth_at_the_models_own_focal_length_in_pixels():
    def frames(height: int, width: int) -> list[dict[str, torch.Tensor]]:
        intrinsics = torch.tensor([[0.5 * width, 0, width / 2], [0, 0.5 * width, height / 2], [0, 0, 1.0]])
        return [{"frames": torch.rand(3, 3, height, width), "intrinsics": intrinsics} for _ in range(5)]

    network, cpu = _PixelScaleNetwork(), torch.device("cpu")
    larger = pixel_scale_check(network, frames(256, 448), 112.0, (0.1, 100.0), cpu)
    assert larger.reference_size == (128, 224) and larger.training_size == (256, 448)
    assert larger.ratio == pytest.approx(2.0, rel=1e-4) and larger.spread == pytest.approx(0, abs=1e-4)
    assert (larger.focal_px, larger.model_focal_px, larger.frames) == (224.0, 112.0, 5)
    smaller = pixel_scale_check(network, frames(96, 128), 112.0, (0.1, 100.0), cpu)
    assert smaller.reference_size == (160, 224) and smaller.ratio == pytest.approx(128 / 224, rel=1e-4)
    assert pixel_scale_check(network, frames(160, 224), 112.0, (0.1, 100.0), cpu) is None


class _OdometryDataset(list):
    """Samples with ``source_distance`` (metres: the dataset's unit is 1 m)."""

    depth_unit = 1.0


@pytest.mark.parametrize("static", [False, True])
def test_the_end_of_run_odometry_unit_keeps_the_trained_unit_when_the_fit_is_degenerate(street_triplet, static):
    """With odometry supervising the translations from the first step, the end-of-run fit of
    translations to depth is taken unless it found no minimum: frames without parallax (the
    camera stood still while the odometry said it moved) make it run to the smallest
    multiplier, and the unit the training held is kept, with one warning."""
    from types import SimpleNamespace

    from dna_depth_core.training.finetune_scale import ODOMETRY, measure_scale

    sequence, loader = street_triplet
    batch = next(iter(loader))
    frames = batch["frames"][0]
    if static:
        frames = frames[1:2].repeat(3, 1, 1, 1)
    motion = _TrueMotion(sequence.poses, 1.0)
    distances = motion.motion[:, 3:].norm(dim=-1)  # the odometry: the true travel
    samples = _OdometryDataset([{"frames": frames, "intrinsics": batch["intrinsics"][0], "source_distance": distances}])
    settings = SimpleNamespace(scale_source=ODOMETRY, camera_height=None, depth_unit=1.0, pixel_scale_ratio=None,
                               train=SimpleNamespace(loss=LOSS, speed_weight=0.05))
    model = SimpleNamespace(depth_net=_TrueDepth(sequence.depths[1]), pose_net=motion)
    if static:
        expected = (r"ran to the edge of the searched multipliers \(x 0.0625\), so it measured nothing: the "
                    r"result keeps .* \(1 m per unit\), not the fit's 16")
        with pytest.warns(UserWarning, match=expected):
            outcome = measure_scale(settings, SimpleNamespace(train=samples, val=None), model, None, progress=False)
        assert outcome.metres_per_unit == 1.0 and outcome.checks["translation_fit"] == pytest.approx(1 / 16)
        assert torch.allclose(motion.motion[:, 3:].norm(dim=-1), distances)  # the pose network as trained
        assert "at the edge of its search and was not used" in outcome.calibration
    else:
        outcome = measure_scale(settings, SimpleNamespace(train=samples, val=None), model, None, progress=False)
        assert outcome.checks["translation_fit"] == pytest.approx(1.0, rel=0.1)
        assert outcome.metres_per_unit == pytest.approx(1.0, rel=0.1)
