"""Triangle meshes: a small container, PLY read/write (with vertex colours)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atlas.io_utils import atomic_path


@dataclass
class Mesh:
    """vertices: (V, 3) float32 world metres; faces: (F, 3) int64 vertex indices;
    colors: optional (V, 3) uint8 RGB."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float32).reshape(-1, 3)
        self.faces = np.asarray(self.faces, dtype=np.int64).reshape(-1, 3)
        if self.colors is not None:
            self.colors = np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)
            if len(self.colors) != len(self.vertices):
                raise ValueError(f"{len(self.colors)} colours for {len(self.vertices)} vertices")
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            raise ValueError("face indices out of range")

    @property
    def is_empty(self) -> bool:
        return len(self.faces) == 0

    def face_normals(self) -> np.ndarray:
        """(F, 3) unit normals, right-handed winding (v1 - v0) x (v2 - v0)."""
        tri = self.vertices[self.faces].astype(np.float64)
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    def face_areas(self) -> np.ndarray:
        """(F,) triangle areas in square metres."""
        tri = self.vertices[self.faces].astype(np.float64)
        return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)

    def translated(self, offset: np.ndarray) -> Mesh:
        return Mesh(
            self.vertices + np.asarray(offset, dtype=np.float32),
            self.faces.copy(),
            None if self.colors is None else self.colors.copy(),
        )

    @staticmethod
    def concatenate(meshes: list[Mesh]) -> Mesh:
        """One mesh holding all the given meshes (colours kept only if all have them)."""
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        colors = None
        if meshes and all(m.colors is not None for m in meshes):
            colors = np.concatenate([m.colors for m in meshes])
        return Mesh(
            np.concatenate([m.vertices for m in meshes]),
            np.concatenate([m.faces + o for m, o in zip(meshes, offsets, strict=True)]),
            colors,
        )


def write_ply(mesh: Mesh, path: str | Path) -> None:
    """Write a binary little-endian PLY atomically (vertex x,y,z float; red,green,blue uchar
    when the mesh has colours; faces as uchar-counted int lists)."""
    props = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.colors is not None:
        props += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vert = np.empty(len(mesh.vertices), dtype=props)
    vert["x"], vert["y"], vert["z"] = mesh.vertices.T
    if mesh.colors is not None:
        vert["red"], vert["green"], vert["blue"] = mesh.colors.T
    face = np.empty(len(mesh.faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face["n"] = 3
    face["idx"] = mesh.faces
    type_names = {"<f4": "float", "u1": "uchar"}
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment atlas",
        f"element vertex {len(vert)}",
    ]
    header += [f"property {type_names[t]} {n}" for n, t in props]
    header += [f"element face {len(face)}", "property list uchar int vertex_indices", "end_header"]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(vert.tobytes())
        f.write(face.tobytes())


# Bytes of the PLY scalar types, and their NumPy codes (without byte order).
_PLY_TYPE_SIZES = {
    **dict.fromkeys(("char", "uchar", "int8", "uint8"), 1),
    **dict.fromkeys(("short", "ushort", "int16", "uint16"), 2),
    **dict.fromkeys(("int", "uint", "int32", "uint32", "float", "float32"), 4),
    **dict.fromkeys(("double", "float64"), 8),
}
_PLY_NUMPY_TYPES = {
    **dict.fromkeys(("char", "int8"), "i1"),
    **dict.fromkeys(("uchar", "uint8"), "u1"),
    **dict.fromkeys(("short", "int16"), "i2"),
    **dict.fromkeys(("ushort", "uint16"), "u2"),
    **dict.fromkeys(("int", "int32"), "i4"),
    **dict.fromkeys(("uint", "uint32"), "u4"),
    **dict.fromkeys(("float", "float32"), "f4"),
    **dict.fromkeys(("double", "float64"), "f8"),
}
_PLY_HEADER_LIMIT = 65536  # bytes searched for end_header
_FACE_LISTS = ("vertex_indices", "vertex_index")  # the face element's index list


@dataclass
class PlyHeader:
    """What a PLY header promises: binary: binary (else ASCII) data; size: bytes of the
    header; elements: element name -> count (``vertex``, ``face`` ...); min_data_bytes:
    the least number of data bytes those elements take in a binary file (faces counted
    as triangles), or None when a property type is unknown; big_endian: the binary
    byte order; layout: each element's (name, count, properties) in file order, a
    property being the words of its header line after ``property``."""

    binary: bool
    size: int
    elements: dict[str, int]
    min_data_bytes: int | None
    big_endian: bool = False
    layout: list[tuple[str, int, list[list[str]]]] = field(default_factory=list)


def _ply_property_bytes(words: list[str], element: str) -> int:
    """Least bytes of one ``property`` line's value (a list: its count, and for faces
    three items). ``KeyError`` for an unknown type."""
    if words[1] == "list":
        items = 3 if element == "face" else 0
        return _PLY_TYPE_SIZES[words[2]] + items * _PLY_TYPE_SIZES[words[3]]
    return _PLY_TYPE_SIZES[words[1]]


def read_ply_header(path: str | Path) -> PlyHeader:
    """The header of a PLY file; ``ValueError`` naming the file when it is not one."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(_PLY_HEADER_LIMIT)
    end = head.find(b"end_header")
    newline = head.find(b"\n", end)
    if head[:3] != b"ply" or head[3:4] not in (b"\n", b"\r"):
        raise ValueError(f"{path}: not a PLY file (it does not start with 'ply')")
    if end < 0 or newline < 0:
        raise ValueError(f"{path}: truncated PLY file (its header has no end_header line)")
    binary, big_endian, elements, min_bytes, element = False, False, {}, 0, ""
    layout: list[tuple[str, int, list[list[str]]]] = []
    try:
        for words in (line.split() for line in head[:end].decode("ascii").splitlines()):
            if words[:1] == ["format"]:
                binary = words[1] != "ascii"
                big_endian = words[1] == "binary_big_endian"
            elif words[:1] == ["element"]:
                element, elements[words[1]] = words[1], int(words[2])
                layout.append((words[1], int(words[2]), []))
            elif words[:1] == ["property"]:
                if layout:
                    layout[-1][2].append(words[1:])
                if min_bytes is not None:
                    try:
                        min_bytes += elements[element] * _ply_property_bytes(words, element)
                    except KeyError:
                        min_bytes = None  # an unknown type: no size check
    except (UnicodeDecodeError, IndexError, ValueError):
        raise ValueError(f"{path}: not a readable PLY file (malformed header)") from None
    return PlyHeader(binary, newline + 1, elements, min_bytes, big_endian, layout)


def _check_ply_length(path: Path, header: PlyHeader) -> None:
    """``ValueError`` naming the file when it holds less data than its header promises
    (a truncated file): bytes for binary files, lines for ASCII ones."""
    if header.binary:
        have, need = path.stat().st_size - header.size, header.min_data_bytes
        unit = "bytes"
    else:
        with open(path, "rb") as f:
            f.seek(header.size)
            have, need = sum(1 for line in f if line.strip()), sum(header.elements.values())
        unit = "lines"
    if need is not None and have < need:
        counts = ", ".join(f"{n} {name}" for name, n in header.elements.items())
        raise ValueError(
            f"{path}: truncated PLY file ({have} {unit} of data, its header's {counts} "
            f"need at least {need})"
        )


def _element_dtype(name: str, properties: list[list[str]], order: str) -> np.dtype | None:
    """The fixed-size record of one binary PLY element, or None when it has none (a
    list other than a face's index list, which is read as triangles)."""
    fields = []
    for words in properties:
        if words[0] == "list":
            if name != "face" or words[-1] not in _FACE_LISTS:
                return None
            count, item = _PLY_NUMPY_TYPES.get(words[1]), _PLY_NUMPY_TYPES.get(words[2])
            if count is None or item is None:
                return None
            fields += [("n_indices", order + count), ("indices", order + item, (3,))]
        elif words[0] in _PLY_NUMPY_TYPES and len(words) == 2:
            fields.append((words[1], order + _PLY_NUMPY_TYPES[words[0]]))
        else:
            return None
    try:
        return np.dtype(fields)
    except (TypeError, ValueError):  # e.g. a property name used twice
        return None


def _read_binary_ply(path: Path, header: PlyHeader) -> Mesh | None:
    """A binary triangle-mesh PLY read with NumPy (what :func:`write_ply` and most tools
    write), or None when the file needs Open3D's general reader: ASCII, polygons other
    than triangles, per-face lists of other elements, colours not stored as uchar.
    Vertices come out as Open3D reads them (all of them, x y z; red green blue)."""
    if not header.binary:
        return None
    order = ">" if header.big_endian else "<"
    records: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        f.seek(header.size)
        for name, count, properties in header.layout:
            if "vertex" in records and ("face" in records or "face" not in header.elements):
                break  # the rest of the file is not needed
            dtype = _element_dtype(name, properties, order)
            if dtype is None:
                return None
            data = f.read(count * dtype.itemsize)
            if len(data) < count * dtype.itemsize:
                raise ValueError(
                    f"{path}: truncated PLY file (its {count} {name} elements end early)"
                )
            records[name] = np.frombuffer(data, dtype, count)
    vertex = records.get("vertex")
    if vertex is None or not {"x", "y", "z"} <= set(vertex.dtype.names):
        return None
    vertices = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    faces = np.zeros((0, 3), np.int64)
    if "face" in records:
        face = records["face"]
        if "indices" not in face.dtype.names or np.any(face["n_indices"] != 3):
            return None  # polygons: Open3D triangulates them
        faces = face["indices"].astype(np.int64)
    colors = None
    if {"red", "green", "blue"} <= set(vertex.dtype.names):
        if any(vertex.dtype[c] != np.uint8 for c in ("red", "green", "blue")):
            return None
        colors = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1)
    return Mesh(vertices, faces, colors)


def _read_ply_open3d(path: Path, header: PlyHeader) -> Mesh:
    """Any PLY Open3D reads, checked against its header."""
    import open3d as o3d

    o3d_mesh = o3d.io.read_triangle_mesh(str(path))
    vertices = np.asarray(o3d_mesh.vertices)
    triangles = np.asarray(o3d_mesh.triangles)
    if len(vertices) == 0:
        raise ValueError(f"{path}: not a readable mesh (no vertices)")
    n_vertices, n_faces = header.elements.get("vertex", 0), header.elements.get("face", 0)
    if len(vertices) != n_vertices or len(triangles) < n_faces:
        raise ValueError(
            f"{path}: corrupt PLY file (read {len(vertices)} of {n_vertices} vertices, "
            f"{len(triangles)} triangles for {n_faces} faces)"
        )
    colors = None
    if o3d_mesh.has_vertex_colors():
        colors = np.clip(np.rint(np.asarray(o3d_mesh.vertex_colors) * 255), 0, 255)
    return Mesh(vertices, triangles, colors)


def read_ply(path: str | Path) -> Mesh:
    """Read a triangle mesh (any PLY Open3D reads: ascii or binary, with or without colour).

    Binary triangle meshes are read with NumPy (no Open3D import, which alone takes about
    a second), anything else with Open3D; both give the same mesh. Raises
    ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing, not a PLY
    file, shorter than its header says (truncated), holds no vertices or has face indices
    out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: mesh file not found")
    header = read_ply_header(path)
    _check_ply_length(path, header)
    try:
        mesh = _read_binary_ply(path, header)
        if mesh is None:
            return _read_ply_open3d(path, header)
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: corrupt PLY file ({err})") from None
    if len(mesh.vertices) == 0:
        raise ValueError(f"{path}: not a readable mesh (no vertices)")
    return mesh
