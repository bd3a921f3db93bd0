"""Preview pictures of meshes: ray-cast, shaded, seen from above at an angle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from atlas.geometry.mesh import Mesh
from atlas.geometry.raycast import MeshRaycaster
from atlas.io_utils import atomic_path


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """(4, 4) camera-to-world pose (OpenCV axes) at ``eye`` looking at ``target``."""
    up = np.array([0.0, 0.0, 1.0]) if up is None else up
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:
        right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
    pose[:3, 3] = eye
    return pose


def preview_camera(
    bounds_min: np.ndarray,
    bounds_max: np.ndarray,
    width: int,
    height: int,
    azimuth_deg: float = -60.0,
    elevation_deg: float = 50.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics (3, 3) and pose (4, 4) framing a world box from above at an angle (Z up)."""
    centre = (bounds_min + bounds_max) / 2
    radius = max(np.linalg.norm(bounds_max - bounds_min) / 2, 1e-3)
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    direction = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    fov = np.deg2rad(45.0)
    distance = radius / np.sin(fov / 2)
    f = 0.5 * min(width, height) / np.tan(fov / 2)
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
    return K, look_at(centre + distance * direction, centre)


def render_mesh(mesh: Mesh, K: np.ndarray, pose: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 picture of a mesh: faces turned away from the camera are culled
    (so a room is seen into, like a doll's house), Lambertian shading from the camera,
    vertex colours when the mesh has them, grey otherwise, white background."""
    image = np.full((height, width, 3), 255, np.uint8)
    if mesh.is_empty:
        return image
    centres = mesh.vertices[mesh.faces].mean(axis=1)
    facing = np.sum(mesh.face_normals() * (pose[:3, 3] - centres), axis=1) > 0
    if not facing.any():
        return image
    kept = Mesh(mesh.vertices, mesh.faces[facing], mesh.colors)
    hit = MeshRaycaster(kept).render(K, pose, width, height)
    ok = hit.hit
    view = hit.points[ok] - pose[:3, 3]
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    light = 0.25 + 0.75 * np.abs(np.sum(hit.normals[ok] * view, axis=1))
    if kept.colors is not None:
        tri = kept.faces[hit.triangle_ids[ok]]
        w12 = hit.barycentric[ok]
        w = np.concatenate([1 - w12.sum(1, keepdims=True), w12], axis=1)
        albedo = np.einsum("nk,nkc->nc", w, kept.colors[tri].astype(np.float32)) / 255
    else:
        albedo = np.full((ok.sum(), 3), 0.75)
    image[ok] = np.clip(albedo * light[:, None] * 255, 0, 255).astype(np.uint8)
    return image


def save_preview(
    panels: list[tuple[str, Mesh]], path: str | Path, width: int = 640, height: int = 480
) -> Path:
    """Render meshes side by side from one shared camera, titled, into a PNG (atomic)."""
    non_empty = [m.vertices for _, m in panels if not m.is_empty]
    points = np.concatenate(non_empty) if non_empty else np.zeros((1, 3))
    K, pose = preview_camera(points.min(0), points.max(0), width, height)
    images = []
    for title, mesh in panels:
        img = Image.fromarray(render_mesh(mesh, K, pose, width, height))
        ImageDraw.Draw(img).text((10, 10), title, fill=(0, 0, 0))
        images.append(np.asarray(img))
    with atomic_path(path) as tmp:
        Image.fromarray(np.concatenate(images, axis=1)).save(tmp)
    return Path(path)
