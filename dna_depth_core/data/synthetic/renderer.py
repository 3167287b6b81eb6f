"""The ray caster: exact depth and shaded colour of a :class:`~.scene._Scene` for one camera.

Every pixel's ray is tested against the ground plane (and, indoors, the ceiling) and
against the boxes whose projection covers it, so depth is exact. Lighting is a directional
sun with cast shadows (:func:`_shadowed`) plus a sky ambient that depends on the surface
orientation. Nothing is view-dependent, so a surface point has the same colour in every
frame, which is what the photometric loss of self-supervised training assumes.

Camera frame: x right, y down, z along the optical axis. Pixel (row v, column u) sits at
pixel coordinates (u, v) (integer centres), the convention of the training code's warping
with ``align_corners=True``.
"""

from __future__ import annotations

import numpy as np

from .scene import _Scene
from .textures import _MATERIALS, _fbm, _mix, _Surface

# Near clipping distance (metres along the optical axis) for box culling.
_NEAR = 0.05

_CORNERS = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], np.float32)
_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1], np.int64)


def _screen_rects(
    box_min: np.ndarray,
    box_max: np.ndarray,
    world_to_camera: np.ndarray,
    intrinsics: np.ndarray,
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rectangles that contain each box's projection, and each box's nearest depth.

    Boxes are clipped to the near plane (the clipped solid's vertices are the corners in
    front plus the edge crossings), so boxes the camera stands beside are handled too.

    Returns:
        int64 (B, 4) ``row0, row1, col0, col1`` (half-open, empty when off-screen) and
        float32 (B,) the smallest optical-axis depth of any point of the box in view.
    """
    corners = box_min[:, None, :] + (box_max - box_min)[:, None, :] * _CORNERS  # (B, 8, 3)
    cam = corners @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    a, b = cam[:, _EDGES[:, 0]], cam[:, _EDGES[:, 1]]  # (B, 12, 3)
    crossing = (a[..., 2] - _NEAR) * (b[..., 2] - _NEAR) < 0
    fraction = np.where(crossing, (_NEAR - a[..., 2]) / np.where(crossing, b[..., 2] - a[..., 2], 1.0), 0.0)
    clipped = a + (b - a) * fraction[..., None]
    points = np.concatenate([cam, clipped], 1)  # (B, 20, 3)
    valid = np.concatenate([cam[..., 2] >= _NEAR, crossing], 1)
    z = np.maximum(points[..., 2], _NEAR)
    u = intrinsics[0, 0] * points[..., 0] / z + intrinsics[0, 2]
    v = intrinsics[1, 1] * points[..., 1] / z + intrinsics[1, 2]
    big = 1e9
    col0 = np.where(valid, u, big).min(1)
    col1 = np.where(valid, u, -big).max(1)
    row0 = np.where(valid, v, big).min(1)
    row1 = np.where(valid, v, -big).max(1)
    rects = np.stack(
        [
            np.clip(np.floor(row0), 0, height),
            np.clip(np.floor(row1) + 2, 0, height),
            np.clip(np.floor(col0), 0, width),
            np.clip(np.floor(col1) + 2, 0, width),
        ],
        1,
    ).astype(np.int64)
    nearest = np.where(valid, z, np.inf).min(1)
    return rects, nearest.astype(np.float32)


def _slab(
    origin: tuple, inverse_direction: tuple, box_min: np.ndarray, box_max: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray-box slab test for broadcastable per-axis origins and inverse directions.

    Returns the entry distance, the exit distance and the axis (0, 1, 2) of the entry face.
    """
    entry = exit_ = axis = None
    for k in range(3):
        t0 = (box_min[k] - origin[k]) * inverse_direction[k]
        t1 = (box_max[k] - origin[k]) * inverse_direction[k]
        low, high = np.minimum(t0, t1), np.maximum(t0, t1)
        if entry is None:
            entry, exit_, axis = low, high, np.zeros(low.shape, np.int8)
        else:
            axis = np.where(low > entry, np.int8(k), axis)
            entry, exit_ = np.maximum(entry, low), np.minimum(exit_, high)
    return entry, exit_, axis


_SKY, _FLOOR, _CEILING = -1, -2, -3


def _scatter(target: np.ndarray, columns: np.ndarray, values: np.ndarray) -> None:
    """``target[:, columns] = values`` for channel-first arrays, one row at a time
    (numpy's 2-D fancy assignment is many times slower)."""
    for row in range(target.shape[0]):
        target[row, columns] = values[row]


def _render(
    scene: _Scene, camera_to_world: np.ndarray, intrinsics: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast one frame: uint8 (H, W, 3) RGB and float32 (H, W) depth (0 = sky)."""
    fx, fy, cx, cy = (float(v) for v in (intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]))
    rotation = camera_to_world[:3, :3].astype(np.float32)
    origin = camera_to_world[:3, 3].astype(np.float32)
    # Camera rays with unit optical-axis component: the ray parameter is the depth.
    cols = (np.arange(width, dtype=np.float32) - cx) / fx
    rows = (np.arange(height, dtype=np.float32) - cy) / fy
    ray_cam = np.stack(np.broadcast_arrays(cols[None, :], rows[:, None], np.float32(1.0)), 0)
    ray = np.einsum("ij,jhw->ihw", rotation, ray_cam).astype(np.float32)  # (3, H, W) world
    inverse = 1.0 / np.where(np.abs(ray) < 1e-9, np.float32(1e-9), ray)

    # Planes first; ``face`` is the axis of the surface normal (1 for floor and ceiling).
    depth = np.full((height, width), np.inf, np.float32)
    hit = np.full((height, width), _SKY, np.int32)
    face = np.ones((height, width), np.int8)
    down = ray[1] > 1e-6
    np.copyto(depth, -origin[1] * inverse[1], where=down)
    np.copyto(hit, _FLOOR, where=down)
    if scene.ceiling_height is not None:
        up = ray[1] < -1e-6
        np.copyto(depth, (-scene.ceiling_height - origin[1]) * inverse[1], where=up)
        np.copyto(hit, _CEILING, where=up)

    world_to_camera = np.linalg.inv(camera_to_world)
    rects, nearest = _screen_rects(scene.box_min, scene.box_max, world_to_camera, intrinsics, height, width)
    for index in np.argsort(nearest):
        r0, r1, c0, c1 = rects[index]
        if r0 >= r1 or c0 >= c1:
            continue
        window = np.s_[r0:r1, c0:c1]
        depth_window = depth[window]
        if nearest[index] >= depth_window.max():
            continue  # hidden behind everything already drawn there
        entry, exit_, axis = _slab(
            origin,
            (inverse[0][window], inverse[1][window], inverse[2][window]),
            scene.box_min[index],
            scene.box_max[index],
        )
        closer = (entry <= exit_) & (entry > 0) & (entry < depth_window)
        np.copyto(depth_window, entry, where=closer)
        np.copyto(hit[window], np.int32(index), where=closer)
        np.copyto(face[window], axis, where=closer)

    seen = hit != _SKY
    depth = np.where(seen, depth, np.float32(0.0))
    # Visible surface points as compact (n,) arrays, shaded channel-first.
    visible = np.flatnonzero(seen)
    ray_v = np.take(ray.reshape(3, -1), visible, axis=1)
    depth_v, hit_v = depth.reshape(-1)[visible], hit.reshape(-1)[visible]
    face_v = face.reshape(-1)[visible]
    points = origin[:, None] + ray_v * depth_v
    # Axis-aligned normals: the ray's component along the normal axis gives the normal's
    # sign (it faces the camera), the slant and the sun's incidence.
    ray_along_normal = np.choose(face_v, ray_v)
    facing = -np.sign(ray_along_normal)
    ray_length = np.sqrt(np.sum(np.take(ray_cam.reshape(3, -1), visible, axis=1) ** 2, axis=0))
    distance = depth_v * ray_length
    cosine = np.abs(ray_along_normal) / ray_length
    # Metres per pixel on the surface: distance over focal length, stretched by the slant
    # (partly: full stretch would also blur grazing surfaces along their unstretched axis).
    footprint = distance / np.float32((fx + fy) / 2) / np.sqrt(np.maximum(cosine, 0.02))
    lambert = np.maximum(facing * scene.sun_direction[face_v], 0.0)
    lit = np.flatnonzero(lambert)
    # Shadow rays start a little in front of the surface so it does not shade itself.
    shadow_points = origin[:, None] + np.take(ray_v, lit, axis=1) * np.maximum(depth_v[lit] - 2e-3, 0.0)
    lambert[lit[_shadowed(scene, shadow_points)]] = 0.0

    albedo = np.empty((3, len(visible)), np.float32)
    emission = np.zeros((3, len(visible)), np.float32)
    for kind in (_FLOOR, _CEILING):
        rows = np.flatnonzero(hit_v == kind)
        if len(rows) == 0:
            continue
        if kind == _FLOOR:
            _scatter(albedo, rows, scene.floor(points[0, rows], points[2, rows], footprint[rows]))
        else:
            surface_albedo, glow = scene.ceiling(points[0, rows], points[2, rows], footprint[rows])
            _scatter(albedo, rows, surface_albedo)
            _scatter(emission, rows, glow)
    rows = np.flatnonzero(hit_v >= 0)
    if len(rows):
        _scatter(
            albedo, rows, _box_albedo(scene, np.take(points, rows, axis=1), hit_v[rows], face_v[rows], footprint[rows])
        )

    # Sky light on every surface, strongest on up-facing ones, weakest on down-facing ones.
    upness = np.where(face_v == 1, -facing, 0.0)
    ambient = 0.6 + np.where(upness > 0, np.float32(0.4), np.float32(0.6 - scene.ambient_down)) * upness
    # Contact darkening near the ground, a cheap stand-in for ambient occlusion.
    occlusion = np.where(hit_v == _FLOOR, 1.0, 0.75 + 0.25 * np.clip(-points[1] / 0.6, 0.0, 1.0))
    light = scene.ambient_colour[:, None] * (ambient * occlusion) + scene.sun_colour[:, None] * lambert
    haze = np.exp(-distance / scene.haze_distance)
    colour = (albedo * light + emission) * haze + scene.haze_colour[:, None] * (1.0 - haze)

    image = np.empty((3, height * width), np.float32)
    _scatter(image, visible, colour)
    sky = np.flatnonzero(~seen)
    if len(sky):
        _scatter(image, sky, _sky(scene, np.take(ray.reshape(3, -1), sky, axis=1)))
    image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(image.reshape(3, height, width).transpose(1, 2, 0)), depth


def _sky(scene: _Scene, rays: np.ndarray) -> np.ndarray:
    """(3, n) sky colour for (3, n) world rays: horizon-to-zenith gradient and clouds.

    Depends on direction only (the sky is at infinity), so it moves only with rotation.
    """
    unit = rays / np.sqrt(np.sum(rays**2, axis=0))
    elevation = np.clip(-unit[1], 0.0, 1.0)
    colour = scene.sky_horizon[:, None] + (scene.sky_zenith - scene.sky_horizon)[:, None] * np.sqrt(elevation)
    # Clouds live on a plane at infinity: their coordinates are the ray's slopes.
    lift = np.maximum(-unit[1], 0.03)
    footprint = 1.0 / (400.0 * lift)
    cover = _fbm(unit[0] / lift, unit[2] / lift, np.uint32(scene.seed * 13 + 5), footprint, 0.6, 5)
    clouds = np.clip((cover + 0.1) * 2.5, 0.0, 1.0) * np.clip(elevation * 8.0, 0.0, 1.0)
    return _mix(colour.astype(np.float32), np.float32([0.96, 0.96, 0.97]), (clouds * 0.85).astype(np.float32))


def _box_albedo(
    scene: _Scene, points: np.ndarray, box: np.ndarray, face: np.ndarray, footprint: np.ndarray
) -> np.ndarray:
    """(3, n) albedo of n points (``points`` (3, n) world) on faces of boxes ``box`` (n,)
    whose normals lie along axes ``face`` (n,)."""
    albedo = np.empty((3, len(box)), np.float32)
    material = scene.box_material[box]
    # Per-box bounds channel-first, so per-point look-ups are fast row takes.
    bounds = np.ascontiguousarray(np.concatenate([scene.box_min, scene.box_max - scene.box_min], 1).T)
    for kind in np.flatnonzero(np.bincount(material)):
        rows = np.flatnonzero(material == kind)
        group, group_face = box[rows], face[rows]
        px, py, pz = np.take(points, rows, axis=1)
        lo_x, lo_y, lo_z, size_x, size_y, size_z = np.take(bounds, group, axis=1)
        top = group_face == 1
        across = (group_face == 2) | top  # faces looking along z, and top faces, run along x
        surface = _Surface(
            u=np.where(across, px - lo_x, pz - lo_z),
            v=np.where(top, pz - lo_z, lo_y + size_y - py),
            footprint=footprint[rows],
            extent=np.stack([np.where(across, size_x, size_z), np.where(top, size_z, size_y)]),
            colour=np.take(scene.box_colour, group, axis=1),
            seed=scene.box_seed[group],
            params=np.take(scene.box_params, group, axis=1),
            top=top,
        )
        _scatter(albedo, rows, _MATERIALS[int(kind)](surface))
    return albedo


def _shadowed(scene: _Scene, points: np.ndarray) -> np.ndarray:
    """Indices of the (3, n) world ``points`` from which a box blocks the sun.

    A box can only shade points in the volume it sweeps along the sun's rays down to the
    ground, so each box is tested only against the points inside that volume's bounds;
    points are sorted along the street so that test is a slice.
    """
    sun = scene.sun_direction
    inverse = tuple(np.float32(1.0 / (s if abs(s) > 1e-9 else 1e-9)) for s in sun)
    sweep = (-scene.box_min[:, 1] / max(-float(sun[1]), 1e-3))[:, None] * sun
    swept_min = np.minimum(scene.box_min, scene.box_min - sweep)
    swept_max = np.maximum(scene.box_max, scene.box_max - sweep)

    # Quarter-metre bins of z as 16-bit keys: numpy sorts those with a linear radix sort.
    def bin_of(z: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(z * 4.0), -32000, 32000).astype(np.int16)

    keys = bin_of(points[2])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    px, py, pz = np.take(points, order, axis=1)
    starts = np.searchsorted(keys, bin_of(swept_min[:, 2]), side="left")
    ends = np.searchsorted(keys, bin_of(swept_max[:, 2]), side="right")
    blocked = np.zeros(len(order), bool)
    for index in np.flatnonzero(ends > starts):
        lo, hi = swept_min[index], swept_max[index]
        span = slice(starts[index], ends[index])
        x, y, z = px[span], py[span], pz[span]
        candidates = np.flatnonzero(
            (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
        )
        if len(candidates) == 0:
            continue
        candidates += starts[index]
        entry, exit_, _ = _slab(
            (px[candidates], py[candidates], pz[candidates]), inverse, scene.box_min[index], scene.box_max[index]
        )
        blocked[candidates[(entry <= exit_) & (exit_ > 0)]] = True
    return order[blocked]
