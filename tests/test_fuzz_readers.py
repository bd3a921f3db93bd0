"""Fuzzed readers (issue 23): seeded random byte flips and truncations of small sample
files, each opened through the reader users use (``open_scene`` then every frame, or
``read_ply``). The outcome must be success or one of the project's clear errors: a
``ValueError`` / ``OSError`` (``FileNotFoundError``...) of the project's own, whose
message names the damaged file. Anything else (IndexError, KeyError, zlib.error,
struct.error, UnicodeDecodeError, PIL's or json's own errors, MemoryError...) fails.

One test per mutated file; pytest's count is the case count (``TARGETS`` x
``MUTATIONS`` x ``CASES``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlas.geometry.mesh import Mesh, read_ply, write_ply
from atlas.readers.detect import open_scene
from atlas.readers.sens import SensHeader, write_sens
from atlas.synthetic.generate import SceneConfig, generate_dataset
from tests.conftest import seven_scenes_layout

SEED = 23
SCENE = "scene0000_00"
W, H = 64, 48
CASES = 16  # per target and mutation
MUTATIONS = ("flip", "truncate")


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    """Pristine sample captures, one folder per layout, made once: ``scannet`` (the
    synthetic writer's 4-frame scene), ``sens``, ``transforms``, ``colmap``, ``ply``."""
    root = tmp_path_factory.mktemp("fuzz_samples")
    generate_dataset(
        root / "raw", 1, SceneConfig(seed=23, n_frames=4, width=W, height=H), progress=False
    )
    scene = root / "raw" / "scans" / SCENE
    shutil.copytree(scene, root / "scannet", ignore=shutil.ignore_patterns("*.ply"))

    K = np.loadtxt(scene / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    poses = [np.loadtxt(scene / "pose" / f"{i}.txt") for i in range(4)]
    jpegs = [(scene / "color" / f"{i}.jpg").read_bytes() for i in range(4)]
    depths = [
        np.asarray(Image.open(scene / "depth" / f"{i}.png")).astype(np.uint16) for i in range(4)
    ]

    (root / "sens").mkdir()
    frames = list(zip(poses, jpegs, depths, strict=True))
    write_sens(root / "sens" / f"{SCENE}.sens", SensHeader(K, K, (W, H), (W, H)), frames, 4)

    ns = root / "transforms"
    (ns / "images").mkdir(parents=True)
    (ns / "depth").mkdir()
    entries = []
    for i in range(4):
        shutil.copy(scene / "color" / f"{i}.jpg", ns / "images" / f"{i}.jpg")
        shutil.copy(scene / "depth" / f"{i}.png", ns / "depth" / f"{i}.png")
        gl = poses[i] @ np.diag([1.0, -1, -1, 1])
        entries.append(
            {
                "file_path": f"images/{i}.jpg",
                "depth_file_path": f"depth/{i}.png",
                "transform_matrix": np.round(gl, 6).tolist(),
            }
        )
    meta = {"fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2] + 0.5, "cy": K[1, 2] + 0.5}
    meta |= {"w": W, "h": H, "frames": entries}
    (ns / "transforms.json").write_text(json.dumps(meta, indent=1))

    colmap = root / "colmap"
    (colmap / "images").mkdir(parents=True)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5
    (colmap / "cameras.txt").write_text(
        f"# Camera list\n1 PINHOLE {W} {H} {fx:.4f} {fy:.4f} {cx:.4f} {cy:.4f}\n"
    )
    lines = ["# Image list with two lines of data per image:"]
    for i in range(4):
        shutil.copy(scene / "color" / f"{i}.jpg", colmap / "images" / f"frame{i}.jpg")
        R, c = poses[i][:3, :3], poses[i][:3, 3]
        q = _rotation_to_quaternion(R.T)
        t = -R.T @ c
        fields = " ".join(f"{v:.6f}" for v in (*q, *t))
        lines += [f"{i + 1} {fields} 1 frame{i}.jpg", "10.5 20.5 -1 30.0 11.0 -1"]
    (colmap / "images.txt").write_text("\n".join(lines) + "\n")

    ply = root / "ply"
    ply.mkdir()
    rng = np.random.default_rng(SEED)
    vertices = rng.normal(size=(12, 3))
    faces = rng.integers(0, 12, size=(10, 3))
    colors = rng.integers(0, 256, size=(12, 3))
    write_ply(Mesh(vertices, faces, colors), ply / "binary.ply")
    write_ply(Mesh(vertices, faces), ply / "plain.ply")
    header = ["ply", "format ascii 1.0", "element vertex 12"]
    header += [f"property float {a}" for a in "xyz"] + ["element face 10"]
    header += ["property list uchar int vertex_indices", "end_header"]
    body = [" ".join(f"{v:.4f}" for v in row) for row in vertices]
    body += ["3 " + " ".join(str(i) for i in row) for row in faces]
    (ply / "ascii.ply").write_text("\n".join(header + body) + "\n")
    return root


def _rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of a rotation matrix (Shepperd's method, enough for test poses)."""
    w = np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    return np.array([w, x, y, z])


def read_scene(path: Path) -> None:
    """What a user's run does with a scene: open it, its poses, every frame's images."""
    reader = open_scene(path)
    assert reader.poses.shape == (len(reader), 4, 4)
    for frame in reader.iter_frames(range(len(reader))):
        assert frame.color.ndim == 3


def read_mesh(path: Path) -> None:
    mesh = read_ply(path)
    assert mesh.vertices.shape[1] == 3


# name -> (layout folder in ``samples``, file to damage within it, what opens it: the
# layout folder or the damaged file)
TARGETS: dict[str, tuple[str, str, Callable[[Path], None], bool]] = {
    "depth_png": ("scannet", "depth/1.png", read_scene, False),
    "first_depth_png": ("scannet", "depth/0.png", read_scene, False),
    "color_jpeg": ("scannet", "color/2.jpg", read_scene, False),
    "first_color_jpeg": ("scannet", "color/0.jpg", read_scene, False),
    "pose_txt": ("scannet", "pose/1.txt", read_scene, False),
    "intrinsic_txt": ("scannet", "intrinsic/intrinsic_color.txt", read_scene, False),
    "sens": ("sens", f"{SCENE}.sens", read_scene, True),
    "transforms_json": ("transforms", "transforms.json", read_scene, False),
    "colmap_cameras_txt": ("colmap", "cameras.txt", read_scene, False),
    "colmap_images_txt": ("colmap", "images.txt", read_scene, False),
    "binary_ply": ("ply", "binary.ply", read_mesh, True),
    "binary_ply_no_colour": ("ply", "plain.ply", read_mesh, True),
    "ascii_ply": ("ply", "ascii.ply", read_mesh, True),
}


def mutate(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """``data`` with 1 to 8 bytes set to random values (half the time within the first
    64 bytes, where headers are), or cut at a random length (never the whole file)."""
    if kind == "truncate":
        return data[: int(rng.integers(0, len(data)))]
    out = bytearray(data)
    span = min(len(data), 64) if rng.random() < 0.5 else len(data)
    for at in rng.integers(0, span, size=int(rng.integers(1, 9))):
        out[at] = int(rng.integers(0, 256))
    return bytes(out)


CLEAR_ERRORS = (ValueError, OSError, FileNotFoundError)


def check_outcome(run: Callable[[], None], named: str) -> None:
    """``run`` succeeds, or raises one of the project's clear errors naming ``named``."""
    try:
        run()
    except Exception as err:  # any other type is what this test finds
        if type(err) not in CLEAR_ERRORS or named not in str(err):
            raise AssertionError(
                f"{type(err).__module__}.{type(err).__qualname__}: {err}  "
                f"(expected success or a ValueError/OSError naming {named})"
            ) from err


CASE_IDS = [
    (target, kind, case) for target in TARGETS for kind in MUTATIONS for case in range(CASES)
]


@pytest.mark.filterwarnings("ignore:loadtxt. input contained no data")
@pytest.mark.parametrize(
    ("target", "kind", "case"), CASE_IDS, ids=[f"{t}-{k}-{c:02d}" for t, k, c in CASE_IDS]
)
def test_damaged_file_reads_or_fails_naming_it(samples, tmp_path, target, kind, case):
    layout, rel, read, open_file = TARGETS[target]
    folder = shutil.copytree(samples / layout, tmp_path / layout)
    path = folder / rel
    seed = [SEED, list(TARGETS).index(target), MUTATIONS.index(kind), case]
    path.write_bytes(mutate(path.read_bytes(), kind, np.random.default_rng(seed)))
    check_outcome(lambda: read(path if open_file else folder), rel)


@pytest.mark.parametrize("target", list(TARGETS))
def test_pristine_samples_read(samples, target):
    """The undamaged samples read whole: a damaged one that still reads is the reader's
    success, not a broken sample."""
    layout, rel, read, open_file = TARGETS[target]
    read(samples / layout / rel if open_file else samples / layout)


def test_case_count():
    """Over a few hundred damaged files, as issue 23 asks."""
    assert len(CASE_IDS) >= 300


# ------------------------------------------------------------------ regressions
# What fuzzing found, each once on purpose.


def seven_scenes_copy(samples: Path, dest: Path) -> Path:
    return seven_scenes_layout(samples / "scannet", dest)


def sample_copy(samples: Path, dest: Path) -> Path:
    shutil.copytree(samples / "scannet" / "color", dest / "color")
    shutil.copytree(samples / "scannet" / "pose", dest / "pose")
    shutil.copy(samples / "scannet" / "intrinsic" / "intrinsic_color.txt", dest / "intrinsics.txt")
    return dest


# layout -> (make a copy of the sample scene in it, its first colour image)
FIRST_COLOUR = {
    "scannet": (lambda s, d: shutil.copytree(s / "scannet", d), "color/0.jpg"),
    "7scenes": (seven_scenes_copy, "frame-000000.color.jpg"),
    "sample": (sample_copy, "color/0.jpg"),
}


@pytest.mark.parametrize("layout", list(FIRST_COLOUR))
@pytest.mark.parametrize("damage", ["garbage", "header_only"])
def test_unreadable_first_color_image_is_named(samples, tmp_path, layout, damage):
    """The scene's colour size comes from its first image's header: a damaged one was
    PIL's UnidentifiedImageError or a bare ``OSError: Truncated File Read``."""
    make, rel = FIRST_COLOUR[layout]
    folder = make(samples, tmp_path / "scene")
    path = folder / rel
    data = path.read_bytes()
    path.write_bytes(b"\x00not a jpeg" if damage == "garbage" else data[:20])
    with pytest.raises(ValueError, match=f"{rel}: unreadable colour image") as err:
        open_scene(folder)
    assert type(err.value) is ValueError


@pytest.mark.parametrize("layout", ["scannet", "7scenes"])
def test_a_first_image_of_another_size_is_named_beside_the_one_read(samples, tmp_path, layout):
    """A first image whose header gives the scene another size: the error on a good frame
    names the first image too (it once named only the good frame)."""
    make, rel = FIRST_COLOUR[layout]
    folder = make(samples, tmp_path / "scene")
    Image.new("RGB", (W, H + 8)).save(folder / rel, format="JPEG")
    reader = open_scene(folder)
    with pytest.raises(ValueError, match=rf"the scene's are {W}x{H + 8} \(the size of .*") as err:
        reader.read_frame(1)
    assert str(err.value).endswith(f"{rel})")


def sens_bytes(samples: Path) -> bytes:
    return (samples / "sens" / f"{SCENE}.sens").read_bytes()


def test_sens_with_a_huge_length_fails_without_allocating_it(samples, tmp_path):
    """A flipped byte in a uint64 length (here the sensor name's) was a MemoryError or
    OverflowError: the length is checked against what the file holds."""
    data = bytearray(sens_bytes(samples))
    data[4:12] = (2**62).to_bytes(8, "little")
    path = tmp_path / "huge.sens"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"huge\.sens: file ends inside the header"):
        open_scene(path)


def test_sens_frame_length_past_the_end_is_named(samples, tmp_path):
    """A frame's byte count past the end of the file (a guard beside the one above: the
    poses pass that opening makes already names it)."""
    data = bytearray(sens_bytes(samples))
    first_jpeg = (samples / "scannet" / "color" / "0.jpg").read_bytes()
    at = data.find(first_jpeg) - 16  # frame 0's colour byte count
    data[at : at + 8] = (2**40).to_bytes(8, "little")
    path = tmp_path / "long.sens"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"long\.sens: file ends inside frame 0"):
        read_scene(path)


def test_sens_frame_with_a_broken_jpeg_is_named(samples, tmp_path):
    """The colour JPEGs inside a .sens were decoded unguarded (PIL's own error)."""
    data = sens_bytes(samples)
    jpeg = (samples / "scannet" / "color" / "2.jpg").read_bytes()
    at = data.find(jpeg)
    assert at > 0  # the frame's JPEG is stored as is
    path = tmp_path / "broken.sens"
    path.write_bytes(data[:at] + b"\x00" * 16 + data[at + 16 :])
    reader = open_scene(path)
    assert len(list(reader.iter_frames([0, 1], depth=False))) == 2
    with pytest.raises(ValueError, match=r"broken\.sens frame 2: unreadable colour image"):
        list(reader.iter_frames([0, 1, 2, 3]))
