"""Procedural furnished rooms (Z-up world, floor at z = 0) and handheld scan paths."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from atlas.synthetic.primitives import Part, box, cylinder, rectangle
from atlas.synthetic.textures import Material, TextureSet, random_material

WALL_KINDS = ("plaster", "bricks", "photo", "tiles", "speckle")
FLOOR_KINDS = ("wood", "tiles", "photo", "speckle")
OBJECT_KINDS = ("wood", "photo", "speckle", "tiles", "plaster")


@dataclass
class Room:
    """geometry: all surfaces; materials: indexed by ``geometry.material``;
    size: (3,) room extent in metres (x width, y depth, z height), spanning [0, size];
    objects: one (kind, centre x, centre y) tuple per furniture piece."""

    geometry: Part
    materials: list[Material]
    size: np.ndarray
    objects: list[tuple[str, float, float]]

    @cached_property
    def textures(self) -> TextureSet:
        """The materials' textures, stacked for sampling."""
        return TextureSet(self.materials)


@dataclass
class _Footprint:
    center: np.ndarray  # (2,) metres
    radius: float  # bounding circle, metres


def _furniture(
    kind: str, rng: np.random.Generator, material: int, edge: float
) -> tuple[Part, float]:
    """One piece of furniture at the origin (base centred on (0,0,0)); returns the part and
    its bounding-circle radius."""
    if kind == "box":
        size = np.array([rng.uniform(0.4, 1.5), rng.uniform(0.3, 0.8), rng.uniform(0.4, 1.2)])
        part = box(size, material, edge)
    elif kind == "table":
        w, d, h = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0), rng.uniform(0.68, 0.8)
        top = box(
            np.array([w, d, 0.04]), material, edge, np.array([0, 0, h - 0.04]), skip_bottom=False
        )
        leg = 0.05
        legs = [
            box(
                np.array([leg, leg, h - 0.04]),
                material,
                edge,
                np.array([sx * (w / 2 - leg), sy * (d / 2 - leg), 0.0]),
            )
            for sx in (-1, 1)
            for sy in (-1, 1)
        ]
        part = Part.concatenate([top, *legs])
        size = np.array([w, d, h])
    elif kind == "shelf":
        w, d, h = rng.uniform(0.6, 1.5), rng.uniform(0.25, 0.45), rng.uniform(1.1, 2.0)
        t = 0.03
        sides = [
            box(np.array([t, d, h]), material, edge, np.array([sx * (w - t) / 2, 0, 0]))
            for sx in (-1, 1)
        ]
        back = box(np.array([w, t, h]), material, edge, np.array([0, (d - t) / 2, 0]))
        n_boards = int(rng.integers(3, 6))
        boards = [
            box(
                np.array([w - 2 * t, d - t, t]),
                material,
                edge,
                np.array([0, -t / 2, z]),
                skip_bottom=False,
            )
            for z in np.linspace(0.05, h - t, n_boards)
        ]
        part = Part.concatenate([*sides, back, *boards])
        size = np.array([w, d, h])
    elif kind == "cylinder":
        r, h = rng.uniform(0.15, 0.4), rng.uniform(0.3, 1.2)
        return cylinder(r, h, material, edge, np.zeros(3)), r
    elif kind == "chair":
        s, h = rng.uniform(0.4, 0.5), rng.uniform(0.42, 0.48)
        seat = box(np.array([s, s, 0.05]), material, edge, np.array([0, 0, h]), skip_bottom=False)
        back = box(
            np.array([s, 0.05, 0.45]), material, edge, np.array([0, s / 2 - 0.025, h + 0.05])
        )
        legs = [
            box(
                np.array([0.04, 0.04, h]),
                material,
                edge,
                np.array([sx * (s / 2 - 0.02), sy * (s / 2 - 0.02), 0.0]),
            )
            for sx in (-1, 1)
            for sy in (-1, 1)
        ]
        part = Part.concatenate([seat, back, *legs])
        size = np.array([s, s, h + 0.5])
    else:
        raise ValueError(f"unknown furniture kind {kind!r}")
    return part, float(np.hypot(size[0], size[1]) / 2)


FURNITURE_KINDS = ("box", "table", "shelf", "cylinder", "chair")


def scan_path(size: np.ndarray, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(n_frames, 4, 4) camera-to-world poses of a smooth handheld scan.

    The camera walks once around an ellipse about the room centre at 1.2-1.8 m height,
    mostly looking outward at walls and furniture, pitched down 10-35 degrees, swaying
    in yaw, pitch and roll as a hand-held device does.
    """
    t = np.linspace(0.0, 1.0, n_frames, endpoint=False)

    def wobble(amplitude: float, n_terms: int = 3) -> np.ndarray:
        freqs = rng.uniform(1.0, 4.0, n_terms)
        phases = rng.uniform(0, 2 * np.pi, n_terms)
        return amplitude * np.mean(
            [np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, phases, strict=True)], axis=0
        )

    centre = size[:2] / 2
    semi = np.maximum(size[:2] / 2 * rng.uniform(0.2, 0.4), 0.3)
    angle = rng.uniform(0, 2 * np.pi) + np.sign(rng.uniform(-1, 1)) * 2 * np.pi * t
    xy = centre + semi * np.stack([np.cos(angle), np.sin(angle)], -1)
    xy += np.stack([wobble(0.15), wobble(0.15)], -1)
    height = rng.uniform(1.3, 1.7) + wobble(0.1)
    yaw = angle + rng.uniform(-0.3, 0.3) + wobble(0.9)
    pitch = -np.deg2rad(rng.uniform(15, 28)) + wobble(np.deg2rad(10))
    roll = wobble(np.deg2rad(4))

    poses = np.tile(np.eye(4), (n_frames, 1, 1))
    for i in range(n_frames):  # per-frame 3x3 rotation built from three angles
        forward = np.array(
            [np.cos(pitch[i]) * np.cos(yaw[i]), np.cos(pitch[i]) * np.sin(yaw[i]), np.sin(pitch[i])]
        )
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        c, s = np.cos(roll[i]), np.sin(roll[i])
        right, down = c * right + s * down, -s * right + c * down
        poses[i, :3, :3] = np.stack([right, down, forward], axis=1)
        poses[i, :3, 3] = [xy[i, 0], xy[i, 1], height[i]]
    return poses


def generate_room(
    rng: np.random.Generator,
    camera_xy: np.ndarray | None = None,
    size: np.ndarray | None = None,
    n_objects: int | None = None,
    edge: float = 0.03,
) -> Room:
    """A closed room with floor, ceiling, 4 walls and 5-20 furniture pieces.

    camera_xy: (N, 2) camera positions the furniture must keep 0.45 m away from;
    size: room extent (x, y, z) metres (default: 3-8 m wide, 2.4-3 m high);
    edge: maximum triangle edge in metres.
    """
    if size is None:
        size = np.array([rng.uniform(3, 8), rng.uniform(3, 8), rng.uniform(2.4, 3.0)])
    sx, sy, sz = size
    materials = [
        random_material(rng, WALL_KINDS),
        random_material(rng, FLOOR_KINDS),
        random_material(rng, ("plaster", "speckle")),
    ]
    wall, floor, ceiling = 0, 1, 2
    ex, ey, ez = np.array([sx, 0, 0.0]), np.array([0, sy, 0.0]), np.array([0, 0, sz])
    o = np.zeros(3)
    parts = [  # inward-facing normals
        rectangle(o, ex, ey, floor, edge),
        rectangle(o + ez, ey, ex, ceiling, edge),
        rectangle(o, ey, ez, wall, edge),  # x = 0, normal +x
        rectangle(o + ex, ez, ey, wall, edge),  # x = sx, normal -x
        rectangle(o, ez, ex, wall, edge),  # y = 0, normal +y
        rectangle(o + ey, ex, ez, wall, edge),  # y = sy, normal -y
    ]
    if n_objects is None:
        n_objects = int(rng.integers(5, 21))
    placed: list[_Footprint] = []
    objects: list[tuple[str, float, float]] = []
    keep_out = np.zeros((0, 2)) if camera_xy is None else np.asarray(camera_xy)
    for _ in range(n_objects * 20):  # rejection sampling of positions
        if len(objects) == n_objects:
            break
        kind = str(rng.choice(FURNITURE_KINDS))
        material = len(materials)
        part, radius = _furniture(kind, rng, material, edge)
        if rng.random() < 0.6 and kind != "cylinder":  # against a wall, facing the room
            side = int(rng.integers(4))
            depth = part.vertices[:, 1].max()
            along = rng.uniform(radius, (sx if side < 2 else sy) - radius)
            yaw = [0.0, np.pi, -np.pi / 2, np.pi / 2][side]
            # Back (+y of the part) against the wall.
            centre = {
                0: (along, sy - depth - 0.01),
                1: (along, depth + 0.01),
                2: (sx - depth - 0.01, along),
                3: (depth + 0.01, along),
            }[side]
            centre = np.array(centre)
        else:
            yaw = rng.uniform(0, 2 * np.pi)
            centre = rng.uniform([radius, radius], [sx - radius, sy - radius])
        if (
            np.any(centre - radius < -0.3)
            or centre[0] + radius > sx + 0.3
            or centre[1] + radius > sy + 0.3
        ):
            continue
        if any(np.linalg.norm(centre - f.center) < radius + f.radius for f in placed):
            continue
        if len(keep_out) and np.min(np.linalg.norm(keep_out - centre, axis=1)) < radius + 0.45:
            continue
        placed.append(_Footprint(centre, radius))
        objects.append((kind, float(centre[0]), float(centre[1])))
        materials.append(random_material(rng, OBJECT_KINDS))
        parts.append(part.transformed(yaw, np.array([centre[0], centre[1], 0.0])))
    return Room(Part.concatenate(parts), materials, np.asarray(size, float), objects)
