"""What the benchmark scripts share: thread settings, timing, peak memory, runs in a
fresh process, and the result files.

- **Threads**: :func:`set_threads` (environment for libraries loaded later and for child
  processes, and torch's own thread count).
- **Timing**: :func:`timed` (a context manager: wall, CPU and system seconds of a block,
  GPU work waited for) and :func:`best_of` (the best of ``repeat`` calls).
- **Memory**: :func:`rss_gb` (this process's peak or current resident set, GB) and
  :func:`cuda_peak_gb` (the CUDA allocator's peak, GB).
- **Fresh processes**, so that a measured run's peak memory and start-up are its own:
  :func:`run_python` runs ``python args...`` and reads back the JSON its child printed
  with :func:`emit_result`; :func:`call_fresh` calls a function in a spawned interpreter
  and returns its (pickled) result.
- **Results**: :func:`write_json` (a JSON file, written atomically) and
  :func:`replace_block` (the Markdown between two markers of a page, such as
  :func:`block_markers`' ``<!-- name:start -->`` / ``<!-- name:end -->`` in
  docs/benchmarks.md).

Only the standard library is imported here; torch is imported by the functions that
need it, so that :func:`set_threads` can run before it is loaded.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
"""The project root: the working folder of every child process."""
SHARED_DATA = ROOT.parent / "shared" / "data"
"""Real data shared between checkouts (read only): 7scenes-dev, scannet-dev."""
SEVEN_SCENES = SHARED_DATA / "7scenes-dev"
"""The 500 real 7-Scenes dev frames (frame-XXXXXX.{color.jpg,depth.png,pose.txt})."""
BENCH_DATA = ROOT / "data" / "bench"
"""Scenes, meshes and ground truths the benchmarks make once and cache."""
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
"""The page whose marked blocks the benchmarks rewrite."""
GB = 1024**3
"""Bytes in a GB (GiB), the unit of every memory figure printed."""
RESULT = "RESULT "
"""Prefix of the stdout line that carries a child's JSON result."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TBB_NUM_THREADS")


# --------------------------------------------------------------------------- threads


def set_threads(n: int) -> int:
    """Use ``n`` CPU threads (0: every core). ``n > 0`` sets OMP_NUM_THREADS,
    MKL_NUM_THREADS and TBB_NUM_THREADS, which libraries read when they are loaded: call
    this before importing Open3D, and before starting child processes (they inherit it).
    Then sets torch's intra-op threads (importing torch) and returns their number."""
    if n:
        for var in THREAD_VARIABLES:
            os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n or os.cpu_count() or 1)
    return torch.get_num_threads()


# ---------------------------------------------------------------------------- timing


def sync(device: str | None) -> None:
    """Wait for the GPU work queued on ``device`` (a no-op unless it names CUDA), so that
    a wall time covers it."""
    if device is not None and device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


@dataclass
class Times:
    """Seconds a piece of work took: ``wall`` (elapsed), ``cpu`` (user + system time of
    this process, all threads: steadier than wall when another job shares the cores)
    and ``sys`` (the system part of ``cpu``, mostly page faults on fresh memory)."""

    wall: float = float("nan")
    cpu: float = float("nan")
    sys: float = float("nan")


@contextlib.contextmanager
def timed(device: str | None = None) -> Iterator[Times]:
    """Time the ``with`` block: yields a :class:`Times` that is filled in (seconds) when
    the block ends. GPU work on ``device`` is waited for at both ends."""
    times = Times()
    sync(device)
    usage, cpu, wall = (
        resource.getrusage(resource.RUSAGE_SELF),
        time.process_time(),
        time.perf_counter(),
    )
    yield times
    sync(device)
    times.wall = time.perf_counter() - wall
    times.cpu = time.process_time() - cpu
    times.sys = resource.getrusage(resource.RUSAGE_SELF).ru_stime - usage.ru_stime


def best_of(fn: Callable[[], T], repeat: int, device: str | None = None) -> tuple[Times, T]:
    """Call ``fn`` ``repeat`` times (at least once); returns the best times (the
    shortest wall seconds; the smallest CPU seconds with the system seconds of that
    same call) and the last call's result. The previous result is dropped before each
    call, so two are never held at once."""
    best = Times(float("inf"), float("inf"), float("inf"))
    out: Any = None
    for _ in range(max(repeat, 1)):
        out = None
        with timed(device) as t:
            out = fn()
        best.wall = min(best.wall, t.wall)
        if t.cpu < best.cpu:
            best.cpu, best.sys = t.cpu, t.sys
    return best, out


# ---------------------------------------------------------------------------- memory


def rss_gb(peak: bool = True) -> float:
    """This process's resident set size, GB: its peak so far (VmHWM) or its current one
    (VmRSS), from /proc/self/status. Not ru_maxrss: Linux carries that over exec from
    the process that forked this one, so in a subprocess of a parent holding torch it
    reads the parent's size until the child outgrows it. ru_maxrss off Linux (peak only)."""
    key = "VmHWM:" if peak else "VmRSS:"
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024 / GB  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # macOS: bytes, elsewhere kilobytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / GB


def cuda_peak_gb(device: str) -> float | None:
    """The CUDA allocator's peak since the start or its last reset, GB
    (``torch.cuda.max_memory_allocated``); None when ``device`` is not CUDA."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.max_memory_allocated() / GB


# ------------------------------------------------------------------- fresh processes


@dataclass
class ChildRun:
    """A finished child process: its exit status (None: stopped at the timeout), its
    output, and its wall seconds from start to exit."""

    returncode: int | None
    stdout: str
    stderr: str
    wall: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def result(self) -> Any:
        """The JSON of the child's last ``RESULT`` line (see :func:`emit_result`), or
        None when it printed none."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith(RESULT):
                return json.loads(line[len(RESULT) :])
        return None

    def last_line(self) -> str:
        """The last line of stderr (of stdout when stderr is empty), or ``exit N``: what
        to show when the child failed."""
        lines = (self.stderr or self.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit {self.returncode}"


def run_python(
    args: Sequence[str],
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> ChildRun:
    """``python args...`` with this interpreter, in a fresh process in the project root,
    its output captured; ``env`` adds to this process's environment, ``preexec_fn`` runs
    in the child before it starts (e.g. a resource limit). A child still running after
    ``timeout`` seconds is killed (``returncode`` None)."""
    cmd = [sys.executable, *map(str, args)]
    full_env = os.environ | env if env else None
    t = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=preexec_fn,
        )
    except subprocess.TimeoutExpired as err:
        out, errs = (
            s.decode() if isinstance(s, bytes) else s or "" for s in (err.stdout, err.stderr)
        )
        return ChildRun(None, out, errs, time.perf_counter() - t)
    return ChildRun(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t)


def emit_result(value: Any) -> None:
    """Print ``value`` as the JSON result line that :attr:`ChildRun.result` reads back
    (numpy scalars and other numbers written as floats)."""
    print(RESULT + json.dumps(value, default=float), flush=True)


def call_fresh(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a fresh (spawned) Python interpreter; its return value comes back
    pickled, an exception it raises is raised here, and a child that dies raises
    ``BrokenProcessPool``. ``fn`` must be importable by name (a module-level function)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


# --------------------------------------------------------------------------- results


def write_json(path: Path, data: Any, indent: int = 2) -> None:
    """Write ``data`` to ``path`` as JSON with a final newline, atomically (a reader
    never sees half a file)."""
    from atlas.io_utils import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent) + "\n")


def block_markers(name: str) -> tuple[str, str]:
    """The start and end markers of the block ``name`` in docs/benchmarks.md."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_block(path: Path, block: str, start: str, end: str) -> None:
    """Replace the text between the markers ``start`` and ``end`` of ``path`` with
    ``block`` (on lines of its own between them); the rest of the file is unchanged
    and the file is written atomically. ``ValueError`` naming the file when it lacks
    either marker (the end is looked for after the start)."""
    from atlas.io_utils import atomic_path

    text = path.read_text()
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    if j < 0:
        raise ValueError(f"{path}: no '{start}' ... '{end}' block to replace")
    head, body = text[: i + len(start)], block.rstrip("\n")
    with atomic_path(path) as tmp:
        tmp.write_text(f"{head}\n{body}\n{text[j:]}")


# ----------------------------------------------------------------------------- peers


class Open3DFusion:
    """Open3D's TSDF fusion (``VoxelBlockGrid``, CPU, blocks of 8^3 voxels, truncation 3
    voxels), the peer our fusion is timed against in fusion_bench and prepare_bench.
    The frames are converted to Open3D tensors here, once, so :meth:`integrate` times
    only the fusion. ``depths``: (H, W) maps in units of 1 / ``depth_scale`` metres;
    ``K``: (3, 3) intrinsics; ``poses``: (4, 4) camera-to-world; ``max_depth``: metres."""

    def __init__(self, depths, K, poses, depth_scale: float, max_depth: float) -> None:
        import numpy as np
        import open3d as o3d
        import open3d.core as o3c

        self.intrinsic = o3c.Tensor(K, o3c.float64)
        self.images = [o3d.t.geometry.Image(o3c.Tensor(d)) for d in depths]
        self.extrinsics = [o3c.Tensor(np.linalg.inv(T), o3c.float64) for T in poses]
        self.depth_scale, self.max_depth = depth_scale, max_depth

    @staticmethod
    def grid(voxel_size: float, block_count: int):
        """An empty grid of ``voxel_size`` metres with room for ``block_count`` blocks."""
        import open3d as o3d
        import open3d.core as o3c

        return o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight"),
            attr_dtypes=(o3c.float32, o3c.float32),
            attr_channels=((1), (1)),
            voxel_size=voxel_size,
            block_resolution=8,
            block_count=block_count,
            device=o3c.Device("CPU:0"),
        )

    def integrate(self, grids: Sequence) -> None:
        """Every frame into every grid of ``grids``, frame by frame."""
        for image, extrinsic in zip(self.images, self.extrinsics, strict=True):
            for g in grids:
                args = (image, self.intrinsic, extrinsic, self.depth_scale, self.max_depth, 3.0)
                g.integrate(g.compute_unique_block_coordinates(*args), *args)


def refresh_readme_table() -> None:
    """Regenerate the README's methods table from the reports in docs/ (``docs/tables.py``,
    run after a benchmark rewrote its report, so the README never goes stale)."""
    subprocess.run([sys.executable, str(ROOT / "docs" / "tables.py")], cwd=ROOT, check=True)
