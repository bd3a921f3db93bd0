"""Material textures for synthetic rooms: procedural patterns and real photographs.

Every texture is a tileable (T, T, 3) float32 RGB image in [0, 1] with a physical tile
size in metres. Photographs are the sample images scikit-image ships (no download).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TEXTURE_SIZE = 256
# scikit-image sample images bundled with the package (loaded without network access).
PHOTO_NAMES = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "moon",
    "page",
    "rocket",
    "text",
    "hubble_deep_field",
    "retina",
)


@dataclass
class Material:
    """texture: (T, T, 3) float32 albedo in [0, 1]; tile_size: metres per texture tile."""

    texture: np.ndarray
    tile_size: float
    name: str


def periodic_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) tileable value noise in [0, 1]: a random ``cells`` x ``cells`` lattice,
    bilinearly interpolated with wrap-around."""
    lattice = rng.random((cells, cells))
    coord = np.arange(size) * cells / size
    i0 = np.floor(coord).astype(int)
    t = coord - i0
    t = t * t * (3 - 2 * t)  # smoothstep
    i1 = (i0 + 1) % cells
    rows = lattice[i0] * (1 - t)[:, None] + lattice[i1] * t[:, None]
    return rows[:, i0] * (1 - t)[None, :] + rows[:, i1] * t[None, :]


def fbm(rng: np.random.Generator, size: int, base_cells: int = 4, octaves: int = 5) -> np.ndarray:
    """(size, size) tileable fractal noise in [0, 1]."""
    total = np.zeros((size, size))
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        cells = min(base_cells * 2**o, size)
        total += amp * periodic_noise(rng, size, cells)
        norm += amp
        amp *= 0.55
    return total / norm


def _colorize(gray: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    return (c0 + (c1 - c0) * gray[..., None]).astype(np.float32)


def _random_palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(0.15, 0.9, 3)
    other = np.clip(base * rng.uniform(0.3, 0.8) + rng.uniform(-0.15, 0.15, 3), 0, 1)
    return other, base


def plaster(rng: np.random.Generator) -> Material:
    c0, c1 = _random_palette(rng)
    n = fbm(rng, TEXTURE_SIZE, 4, 6)
    return Material(_colorize(0.55 + 0.45 * n, c0, c1), float(rng.uniform(0.8, 2.0)), "plaster")


def wood(rng: np.random.Generator) -> Material:
    c0, c1 = _random_palette(rng)
    x = np.arange(TEXTURE_SIZE) / TEXTURE_SIZE
    warp = fbm(rng, TEXTURE_SIZE, 4, 4)
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * (int(rng.integers(6, 16)) * x[None, :] + 3 * warp))
    grain = fbm(rng, TEXTURE_SIZE, 32, 3)
    return Material(
        _colorize(0.6 * rings + 0.4 * grain, c0, c1), float(rng.uniform(0.5, 1.2)), "wood"
    )


def tiles(rng: np.random.Generator) -> Material:
    c0, c1 = _random_palette(rng)
    n = int(rng.choice([2, 4, 8]))
    cell = TEXTURE_SIZE // n
    idx = np.arange(TEXTURE_SIZE)
    grout = ((idx % cell) < 3)[:, None] | ((idx % cell) < 3)[None, :]
    checker = ((idx // cell)[:, None] + (idx // cell)[None, :]) % 2
    shade = 0.55 + 0.3 * checker + 0.15 * fbm(rng, TEXTURE_SIZE, 8, 4)
    shade[grout] = 0.15
    return Material(_colorize(shade, c0, c1), float(rng.uniform(0.6, 1.6)), "tiles")


def speckle(rng: np.random.Generator) -> Material:
    c0, c1 = _random_palette(rng)
    n = 0.5 * fbm(rng, TEXTURE_SIZE, 16, 4) + 0.5 * rng.random((TEXTURE_SIZE, TEXTURE_SIZE))
    return Material(_colorize(n, c0, c1), float(rng.uniform(0.3, 0.8)), "speckle")


def bricks(rng: np.random.Generator) -> Material:
    c0, c1 = _random_palette(rng)
    rows = 8
    h = TEXTURE_SIZE // rows
    y = np.arange(TEXTURE_SIZE)[:, None]
    x = np.arange(TEXTURE_SIZE)[None, :]
    shifted = (x + (y // h % 2) * (h)) % TEXTURE_SIZE
    mortar = (y % h < 3) | (shifted % (2 * h) < 3)
    brick_id = (y // h) * 97 + shifted // (2 * h)
    tone = rng.random(rows * 97 + 8)[brick_id]
    shade = 0.6 + 0.25 * tone + 0.15 * fbm(rng, TEXTURE_SIZE, 16, 3)
    shade = np.where(mortar, 0.2, shade)
    return Material(_colorize(shade, c0, c1), float(rng.uniform(0.8, 1.6)), "bricks")


def photo(rng: np.random.Generator) -> Material:
    """A scikit-image sample photograph, resized to the texture size and mildly tinted."""
    import skimage.data
    from skimage.transform import resize

    name = str(rng.choice(PHOTO_NAMES))
    img = np.asarray(getattr(skimage.data, name)(), dtype=np.float64)
    if img.max() > 1.0:
        img = img / 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1) * rng.uniform(0.6, 1.0, 3)
    img = resize(img[..., :3], (TEXTURE_SIZE, TEXTURE_SIZE), order=1, anti_aliasing=True)
    return Material(
        np.clip(img, 0, 1).astype(np.float32), float(rng.uniform(0.5, 1.5)), f"photo:{name}"
    )


GENERATORS: dict[str, Callable[[np.random.Generator], Material]] = {
    "plaster": plaster,
    "wood": wood,
    "tiles": tiles,
    "speckle": speckle,
    "bricks": bricks,
    "photo": photo,
}


def random_material(
    rng: np.random.Generator, kinds: tuple[str, ...] = tuple(GENERATORS)
) -> Material:
    return GENERATORS[str(rng.choice(kinds))](rng)


class TextureSet:
    """The textures of a list of materials, stacked once for fast sampling."""

    def __init__(self, materials: list[Material]) -> None:
        # (M*T*T, 4) uint8 RGB plus padding: 4-byte texels keep the random gathers cheap.
        flat = np.stack([m.texture for m in materials]).reshape(-1, 3)
        self._flat = np.zeros((len(flat), 4), np.uint8)
        self._flat[:, :3] = np.clip(np.rint(flat * 255), 0, 255)
        self._flat = self._flat.view(np.uint32).reshape(-1)
        self._tile = np.array([m.tile_size for m in materials], dtype=np.float32)

    def sample(
        self, material_ids: np.ndarray, points: np.ndarray, normals: np.ndarray
    ) -> np.ndarray:
        """Albedo (N, 3) float32 at surface points by planar projection along the normal's
        dominant axis, bilinear with wrap-around.

        material_ids: (N,) int; points: (N, 3) world metres; normals: (N, 3).
        """
        T = TEXTURE_SIZE
        axis = np.argmax(np.abs(normals), axis=1)
        # The two in-plane axes for each dominant axis: x -> (y, z), y -> (x, z), z -> (x, y).
        plane_axes = np.array([[1, 2], [0, 2], [0, 1]])[axis]
        uv = np.take_along_axis(points.astype(np.float32), plane_axes, axis=1)
        uv *= (T / self._tile[material_ids])[:, None]
        u0 = np.floor(uv)
        f = uv - u0
        u0 = u0.astype(np.int64) % T
        u1 = (u0 + 1) % T
        # Texture rows follow -v (image rows go down) so photos appear upright on walls.
        base = material_ids.astype(np.int64) * (T * T)
        row0 = base + (T - 1 - u0[:, 1]) * T
        row1 = base + (T - 1 - u1[:, 1]) * T
        fu, fv = f[:, :1], f[:, 1:]

        def texel(index: np.ndarray) -> np.ndarray:
            return self._flat[index].view(np.uint8).reshape(-1, 4)[:, :3].astype(np.float32)

        top = texel(row0 + u0[:, 0]) * (1 - fu) + texel(row0 + u1[:, 0]) * fu
        bot = texel(row1 + u0[:, 0]) * (1 - fu) + texel(row1 + u1[:, 0]) * fu
        return (top * (1 - fv) + bot * fv) * np.float32(1 / 255)
