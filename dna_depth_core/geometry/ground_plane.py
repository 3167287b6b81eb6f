"""Ground-plane scale: how many metres one depth unit is, from a known camera height.

A ground robot's or a car's camera sits a fixed, known height above the floor or road.
A depth map in any unit (a self-supervised network's, or metres that may have drifted),
back-projected, shows that floor as a plane; its distance from the camera, in the depth's
unit, against the known height in metres, is the metres per depth unit:
``scale = camera_height / distance``.

The plane is found in the lower part of the image (where the floor is) by RANSAC over
point triples, with two priors that keep walls, kerbs and table tops out: the plane's
normal is within ``max_tilt_deg`` of the camera's down axis (+y), and the camera is above
it. The winner is refined by least squares (SVD) on its inliers, twice. Residuals are
measured relative to the plane's distance, so nothing depends on the depth's unit.

When the floor's direction in the camera frame is known (``floor_normal``: a robot's
camera mount, from ``/tf_static``), the fit still finds which points are the floor, but
their distance is measured along the known normal. That matters for a network's depth: a
depth map whose near floor reads a little too far and whose far floor a little too near
is still nearly a plane, but tilted, and a tilted plane passes farther from the camera.

Conventions as in :mod:`dna_depth_core.geometry.camera`: camera frame x right, y down,
z forward; depth is the z coordinate; intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``
in pixels of the depth map's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .camera import pixel_rays

DOWN = (0.0, 1.0, 0.0)
"""The camera frame's down axis: a level camera's floor normal (pointing at the floor)."""


class NoGroundPlaneError(ValueError):
    """No floor or road plane could be found in the depth map (too few valid points, or
    no candidate plane within the tilt limit below the camera with enough inliers)."""


@dataclass(frozen=True)
class GroundPlaneFit:
    """A fitted floor/road plane and the scale it implies.

    The plane is ``{p : normal . p = distance}`` in camera coordinates.

    Attributes:
        scale: metres per depth unit, ``camera_height / distance`` (multiply the depth
            map by it to put the camera ``camera_height`` above the plane).
        normal: float64 ``(3,)`` unit normal in the camera frame, pointing from the
            camera towards the plane (close to ``(0, 1, 0)`` for a level camera).
        distance: camera-to-plane distance in the depth map's unit (> 0).
        inlier_fraction: share of the candidate points (valid pixels of the lower image
            part) within the inlier threshold of the plane, in [0, 1].
        num_points: candidate points the plane was fitted among.
        tilt_deg: angle between ``normal`` and the camera's down axis, degrees (the
            camera's pitch/roll relative to the floor).
        inliers: bool ``(H, W)`` the pixels on the plane (False outside the lower part).
    """

    scale: float
    normal: np.ndarray
    distance: float
    inlier_fraction: float
    num_points: int
    tilt_deg: float
    inliers: torch.Tensor


def _as_depth(depth: torch.Tensor | np.ndarray) -> torch.Tensor:
    depth = torch.as_tensor(depth)
    if depth.ndim == 3 and depth.shape[0] == 1:
        depth = depth[0]
    if depth.ndim != 2:
        raise ValueError(f"depth must have shape (H, W) or (1, H, W), got {tuple(depth.shape)}")
    return depth.detach().to(torch.float64)


def _plane_through(triples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Planes through ``(K, 3, 3)`` point triples: ``(K, 3)`` unit normals oriented down
    (+y) and ``(K,)`` signed distances (> 0: the camera is above the plane). Degenerate
    (collinear) triples get a zero normal and distance."""
    normal = torch.linalg.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
    length = normal.norm(dim=1, keepdim=True)
    normal = torch.where(length > 0, normal / length.clamp(min=1e-30), torch.zeros_like(normal))
    normal = normal * torch.where(normal[:, 1:2] < 0, -1.0, 1.0)
    return normal, (normal * triples[:, 0]).sum(dim=1)


def _refine(points: torch.Tensor, inliers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares plane (total least squares, SVD) of ``points[inliers]``, oriented down."""
    chosen = points[inliers]
    centroid = chosen.mean(dim=0)
    normal = torch.linalg.svd(chosen - centroid, full_matrices=False).Vh[-1]
    if normal[1] < 0:
        normal = -normal
    return normal, normal @ centroid


def fit_ground_plane(
    points: torch.Tensor,
    max_tilt_deg: float = 25.0,
    inlier_threshold: float = 0.04,
    iterations: int = 256,
    min_inlier_fraction: float = 0.15,
    generator: torch.Generator | None = None,
    floor_normal: torch.Tensor | np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Robust plane below the camera among 3D points (RANSAC, then least squares twice).

    Args:
        points: ``(N, 3)`` candidate points in the camera frame, any length unit.
        max_tilt_deg: largest angle between the plane's normal and the down axis, degrees.
        inlier_threshold: a point is on the plane when its distance from it is below this
            fraction of the camera-to-plane distance (0.04: 2 cm for a camera 0.5 m up).
        iterations: RANSAC hypotheses (point triples), evaluated at once.
        min_inlier_fraction: fewest inliers, as a share of ``points``, for a plane.
        generator: random source of the triples (default: a fixed seed, so the same
            points give the same plane).
        floor_normal: ``(3,)`` the floor's normal in the camera frame, pointing from the
            camera to the floor, when known (normalised here): the fitted plane's inliers
            pick out the floor, the distance is their median along this normal (refined
            twice on the points within 4 ``inlier_threshold`` of it), and the returned
            normal is this one.

    Returns:
        ``(normal (3,), distance (), inliers (N,) bool)``: the plane ``normal . p =
        distance`` (normal pointing down, distance > 0, in the points' unit).

    Raises:
        ValueError: bad shapes or arguments, a ``floor_normal`` of zero length or pointing up.
        NoGroundPlaneError: fewer than 3 points, or no plane meets the priors.
    """
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    if not 0 < inlier_threshold < 1 or not 0 < max_tilt_deg < 90 or iterations < 1:
        raise ValueError("need 0 < inlier_threshold < 1, 0 < max_tilt_deg < 90 and iterations >= 1, got "
                         f"{inlier_threshold}, {max_tilt_deg}, {iterations}")
    count = points.shape[0]
    if count < 3:
        raise NoGroundPlaneError(f"{count} valid points below the horizon; a plane needs at least 3")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    known = _unit_down_normal(floor_normal, points.dtype) if floor_normal is not None else None
    triples = points[torch.randint(count, (iterations, 3), generator=generator)]
    normals, distances = _plane_through(triples)
    min_cos = math.cos(math.radians(max_tilt_deg))
    plausible = (distances > 0) & (normals[:, 1] >= min_cos)
    if not bool(plausible.any()):
        raise NoGroundPlaneError(f"no plane within {max_tilt_deg:g} degrees of level lies below the camera")
    normals, distances = normals[plausible], distances[plausible]
    residuals = (points @ normals.T - distances).abs()  # (N, K)
    votes = (residuals < inlier_threshold * distances).sum(dim=0)
    best = int(votes.argmax())
    normal, distance = normals[best], distances[best]
    inliers = (points @ normal - distance).abs() < inlier_threshold * distance
    for _ in range(2):
        if int(inliers.sum()) < 3:
            break
        normal, distance = _refine(points, inliers)
        inliers = (points @ normal - distance).abs() < inlier_threshold * distance.abs()
    fraction = float(inliers.float().mean())
    if distance <= 0 or normal[1] < min_cos or fraction < min_inlier_fraction:
        raise NoGroundPlaneError(
            f"the best floor plane holds {fraction:.0%} of the points below the horizon "
            f"(at least {min_inlier_fraction:.0%} needed, tilt at most {max_tilt_deg:g} degrees)")
    if known is not None:
        # A network's floor seen along the true normal is not flat to 4 %: a wider band and
        # the median keep most of it, as the tilted plane's inliers alone would not.
        along = points @ known
        distance = along[inliers].median()
        for _ in range(2):
            inliers = (along - distance).abs() < 4 * inlier_threshold * distance
            distance = along[inliers].median()
        return known, distance, inliers
    return normal, distance, inliers


def floor_normal_of_pitch(pitch_deg: float) -> np.ndarray:
    """The floor's unit normal in the optical frame of a camera pitched ``pitch_deg`` degrees
    down (no roll) over a level floor: ``(0, cos(pitch), sin(pitch))``, float64 ``(3,)``."""
    pitch = math.radians(pitch_deg)
    return np.array([0.0, math.cos(pitch), math.sin(pitch)])


def _unit_down_normal(normal, dtype: torch.dtype) -> torch.Tensor:
    normal = torch.as_tensor(np.asarray(normal, dtype=np.float64)).to(dtype)
    if normal.shape != (3,) or not bool(torch.isfinite(normal).all()) or float(normal.norm()) == 0:
        raise ValueError(f"floor_normal must be a finite non-zero (3,) vector, got {normal.tolist()}")
    normal = normal / normal.norm()
    if float(normal[1]) <= 0:
        raise ValueError(f"floor_normal {normal.tolist()} points up in the camera frame (y down); the floor "
                         "must be below the camera")
    return normal


def ground_plane_scale(
    depth: torch.Tensor | np.ndarray,
    intrinsics: torch.Tensor | np.ndarray,
    camera_height: float,
    lower_fraction: float = 0.5,
    max_points: int = 4096,
    max_tilt_deg: float = 25.0,
    inlier_threshold: float = 0.04,
    iterations: int = 256,
    min_inlier_fraction: float = 0.15,
    seed: int = 0,
    floor_normal: torch.Tensor | np.ndarray | None = None,
) -> GroundPlaneFit:
    """Metres per depth unit that put the camera ``camera_height`` above the floor/road.

    Back-projects the lowest ``lower_fraction`` of the image rows, fits the plane below the
    camera there (:func:`fit_ground_plane`) and divides ``camera_height`` by its distance.

    Args:
        depth: ``(H, W)`` (or ``(1, H, W)``) z-depth in any unit (metres, or a network's
            depth units); pixels that are 0, negative or not finite are ignored.
        intrinsics: ``(3, 3)`` in pixels of this ``H x W`` depth map.
        camera_height: the optical centre's height above the floor or road, metres (> 0).
        lower_fraction: share of the image, from the bottom row up, searched for the
            plane (0.5: the lower half, below the horizon of a level camera).
        max_points: candidate points kept (evenly strided) to bound the cost.
        max_tilt_deg, inlier_threshold, iterations, min_inlier_fraction: as in
            :func:`fit_ground_plane`.
        seed: seed of the RANSAC triples (the result is deterministic).
        floor_normal: ``(3,)`` the floor's normal in this camera's frame when known (the
            camera mount), see :func:`fit_ground_plane`; ``None``: fitted.

    Returns:
        The :class:`GroundPlaneFit`; ``scale`` in metres per depth unit (1 when ``depth``
        is already in metres and right).

    Raises:
        ValueError: bad shapes or arguments.
        NoGroundPlaneError: no floor plane in the lower image (see
            :func:`fit_ground_plane`).
    """
    if not camera_height > 0:
        raise ValueError(f"camera_height must be > 0 metres, got {camera_height}")
    if not 0 < lower_fraction <= 1:
        raise ValueError(f"lower_fraction must be in (0, 1], got {lower_fraction}")
    depth = _as_depth(depth)
    intrinsics = torch.as_tensor(intrinsics, dtype=torch.float64)
    if intrinsics.shape != (3, 3):
        raise ValueError(f"intrinsics must have shape (3, 3), got {tuple(intrinsics.shape)}")
    height, width = depth.shape
    first_row = min(int(round(height * (1 - lower_fraction))), height - 1)
    rays = pixel_rays(intrinsics[None], height, width)[0, :, first_row:]  # (3, h, W)
    lower = depth[first_row:]
    valid = torch.isfinite(lower) & (lower > 0)
    points = (rays * lower).permute(1, 2, 0)[valid]  # (N, 3)
    positions = valid.nonzero()
    if points.shape[0] > max_points:
        keep = torch.linspace(0, points.shape[0] - 1, max_points).round().long()
        points, positions = points[keep], positions[keep]
    normal, distance, on_plane = fit_ground_plane(
        points, max_tilt_deg, inlier_threshold, iterations, min_inlier_fraction,
        torch.Generator().manual_seed(seed), floor_normal)
    inliers = torch.zeros(height, width, dtype=torch.bool)
    chosen = positions[on_plane]
    inliers[chosen[:, 0] + first_row, chosen[:, 1]] = True
    tilt = math.degrees(math.acos(min(1.0, float(normal[1]))))
    return GroundPlaneFit(
        scale=camera_height / float(distance), normal=normal.numpy(), distance=float(distance),
        inlier_fraction=float(on_plane.float().mean()), num_points=int(points.shape[0]), tilt_deg=tilt,
        inliers=inliers,
    )


def plane_distance(
    depth: torch.Tensor, rays: torch.Tensor, normal: torch.Tensor, inliers: torch.Tensor
) -> torch.Tensor:
    """Camera-to-plane distance of a depth map's plane pixels, differentiable in ``depth``.

    With the plane's normal and its pixels fixed (from :func:`ground_plane_scale` on a
    detached copy), the distance is the mean of ``normal . (depth * ray)`` over them: the
    training signal that pulls the depth towards a known camera height.

    Args:
        depth: ``(B, 1, H, W)`` depth, any unit.
        rays: ``(B, 3, H, W)`` :func:`~dna_depth_core.geometry.camera.pixel_rays`.
        normal: ``(B, 3)`` unit normals in the camera frame.
        inliers: bool ``(B, H, W)`` plane pixels; each image needs at least one.

    Returns:
        ``(B,)`` distances in ``depth``'s unit.
    """
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must have shape (B, 1, H, W), got {tuple(depth.shape)}")
    along_normal = (rays * normal.to(rays.dtype)[:, :, None, None]).sum(dim=1)  # (B, H, W)
    weights = inliers.to(depth.dtype)
    return (depth[:, 0] * along_normal * weights).flatten(1).sum(1) / weights.flatten(1).sum(1).clamp(min=1)
