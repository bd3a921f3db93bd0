"""bench/: the shared harness (timing, peak memory, fresh processes, result files) and
every benchmark script, importable without running anything and smoke-tested on tiny
inputs (a plane seen by a few 64x48 cameras, a 1 m grid of points, 16^3 volumes)."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from atlas.readers.frames import Frame, SceneReader
from bench import harness

SCRIPTS = (
    "eval_bench",
    "fusion_bench",
    "infer_bench",
    "model_bench",
    "prepare_bench",
    "real_data",
    "real_rooms",
    "stereo_bench",
    "suite_bench",
)
K_PLANE = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])  # 64x48 pixels
PLANE_Z = 1.5  # metres: the wall every stub camera faces


def plane_poses(n: int) -> np.ndarray:
    """(n, 4, 4) cameras at the origin shifted 5 cm apart in x, all looking along +z."""
    poses = np.repeat(np.eye(4)[None], n, axis=0)
    poses[:, 0, 3] = 0.05 * np.arange(n)
    return poses


class PlaneReader(SceneReader):
    """``n`` 64x48 frames of a wall at z = 1.5 m, frame i's colour filled with i."""

    def __init__(self, n: int = 3) -> None:
        self.name, self.frame_ids = "plane", list(range(n))
        self.K_color = self.K_depth = K_PLANE
        self.color_size = self.depth_size = (64, 48)
        self._poses = plane_poses(n)

    @property
    def poses(self) -> np.ndarray:
        return self._poses

    def read_frame(self, index: int, depth: bool = True) -> Frame:
        color = np.full((48, 64, 3), index, np.uint8)
        d = np.full((48, 64), PLANE_Z, np.float32) if depth else None
        return Frame(color, d, self._poses[index], K_PLANE, K_PLANE, index, f"plane/{index}")


@pytest.fixture
def eager_kernels(monkeypatch):
    """``ATLAS_COMPILE=0`` for the kernels first used in the test (no torch.compile, which
    takes minutes on two cores); they are dropped from the cache afterwards, so later
    tests compile theirs as usual."""
    import atlas.compile

    monkeypatch.setenv("ATLAS_COMPILE", "0")
    before = set(atlas.compile._COMPILED)
    yield
    for name in set(atlas.compile._COMPILED) - before:
        del atlas.compile._COMPILED[name]


def script(name: str):
    return importlib.import_module(f"bench.{name}")


# --------------------------------------------------------------------------- scripts


@pytest.mark.parametrize("name", SCRIPTS)
def test_importing_a_benchmark_runs_nothing(name, monkeypatch, capsys):
    # an option no script knows: parsing it at import time would exit
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--no-such-option"])
    monkeypatch.delitem(sys.modules, f"bench.{name}", raising=False)
    module = script(name)
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
    assert module.main.__code__.co_varnames[0] == "argv"
    with pytest.raises(SystemExit) as exit_info:  # main parses argv when it is called
        module.main(["--no-such-option"])
    assert exit_info.value.code == 2


# --------------------------------------------------------------------------- harness


def test_timed_measures_a_sleep():
    with harness.timed() as t:
        time.sleep(0.2)
    assert 0.2 <= t.wall <= 0.5
    assert 0 <= t.cpu < 0.1  # sleeping costs no CPU
    assert 0 <= t.sys <= t.cpu + 1e-3


def test_best_of_keeps_the_best_time_and_the_last_result():
    sleeps = iter([0.3, 0.1, 0.2])
    calls = []

    def fn():
        calls.append(1)
        time.sleep(next(sleeps))
        return len(calls)

    times, out = harness.best_of(fn, 3)
    assert out == 3
    assert 0.1 <= times.wall < 0.18
    assert harness.best_of(lambda: "once", 0)[1] == "once"  # repeat < 1: one call


def test_run_python_reads_back_the_result_line():
    code = (
        "import os; from bench.harness import emit_result; print('noise'); "
        "emit_result({'x': [1, 2.5], 'env': os.environ['BENCH_TEST']}); print('after')"
    )
    run = harness.run_python(["-c", code], timeout=60, env={"BENCH_TEST": "seven"})
    assert run.returncode == 0 and not run.timed_out
    assert run.result == {"x": [1, 2.5], "env": "seven"}
    assert run.stdout.splitlines()[0] == "noise"
    assert 0 < run.wall < 30


def test_run_python_failure_and_timeout():
    run = harness.run_python(["-c", "import sys; print('out'); sys.exit('boom')"])
    assert (run.returncode, run.result, run.last_line()) == (1, None, "boom")
    t = time.perf_counter()
    run = harness.run_python(["-c", "import time; time.sleep(20)"], timeout=0.5)
    assert run.timed_out and run.returncode is None and run.result is None
    assert 0.5 <= run.wall <= 5 and time.perf_counter() - t <= 5
    assert harness.ChildRun(3, "", "", 0.0).last_line() == "exit 3"


def test_result_line_is_the_last_marked_one():
    out = 'RESULT 1\nchatter\nRESULT {"k": 2}\ntrailing\n'
    assert harness.ChildRun(0, out, "warning\nlast words\n", 0.1).result == {"k": 2}
    assert harness.ChildRun(0, out, "warning\nlast words\n", 0.1).last_line() == "last words"


def test_peak_and_current_resident_memory_of_a_fresh_process():
    code = (
        "from bench.harness import emit_result, rss_gb\n"
        "before = rss_gb()\n"
        "block = b'x' * (256 << 20)\n"  # 0.25 GB, every page written
        "peak = rss_gb()\n"
        "del block\n"
        "emit_result([before, peak, rss_gb(peak=False), rss_gb()])\n"
    )
    before, peak, now, peak_after = harness.run_python(["-c", code], timeout=60).result
    assert before < 0.2  # a fresh interpreter: not the parent's size
    assert 0.24 <= peak - before <= 0.30
    assert now <= peak - 0.2  # freed: the current size drops, the peak stays
    assert peak_after == pytest.approx(peak, abs=0.01)
    assert harness.cuda_peak_gb("cpu") is None


def test_call_fresh_runs_in_another_process_and_raises_its_errors():
    assert harness.call_fresh(os.getpid) != os.getpid()
    with pytest.raises(ValueError, match="invalid literal"):
        harness.call_fresh(int, "seven")


def test_set_threads(monkeypatch):
    import torch

    for var in harness.THREAD_VARIABLES:
        monkeypatch.setenv(var, "9")
    threads = torch.get_num_threads()
    try:
        assert harness.set_threads(1) == 1 == torch.get_num_threads()
        assert {os.environ[v] for v in harness.THREAD_VARIABLES} == {"1"}
        assert harness.set_threads(0) == (os.cpu_count() or 1)
        assert {os.environ[v] for v in harness.THREAD_VARIABLES} == {"1"}  # 0: untouched
    finally:
        torch.set_num_threads(threads)


def test_replace_block_rewrites_only_between_its_markers(tmp_path):
    start, end = harness.block_markers("demo")
    assert (start, end) == ("<!-- demo:start -->", "<!-- demo:end -->")
    page = tmp_path / "page.md"
    page.write_text(f"{end} stray\nintro\n{start}\nold\nrows\n{end}\noutro\n")
    harness.replace_block(page, "| a |\n| 1 |\n", start, end)
    expected = f"{end} stray\nintro\n{start}\n| a |\n| 1 |\n{end}\noutro\n"
    assert page.read_text() == expected
    harness.replace_block(page, "| a |\n| 1 |", start, end)  # same block: same page
    assert page.read_text() == expected
    page.write_text(f"intro\n{start}\nno end\n")
    with pytest.raises(ValueError, match="page.md"):
        harness.replace_block(page, "x", start, end)
    assert page.read_text() == f"intro\n{start}\nno end\n"


def test_write_json(tmp_path):
    data = {"rows": [{"f": 0.5, "n": 3}], "machine": "x"}
    harness.write_json(tmp_path / "out.json", data, indent=1)
    assert (tmp_path / "out.json").read_text() == json.dumps(data, indent=1) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left


# ------------------------------------------------------------------- eval_bench


def grid_mesh(x_max: float, shift=(0.0, 0.0, 0.0)):
    """A flat mesh on z = 0: x in [0, x_max], y in [0, 0.5] m, 1 cm vertex spacing."""
    from atlas.geometry import Mesh

    nx, ny = round(x_max * 100) + 1, 51
    x, y = np.meshgrid(np.linspace(0, x_max, nx), np.linspace(0, 0.5, ny), indexing="ij")
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], 1) + shift
    i = (np.arange(nx - 1)[:, None] * ny + np.arange(ny - 1)).ravel()
    faces = np.concatenate(
        [np.stack([i, i + ny, i + 1], 1), np.stack([i + 1, i + ny, i + ny + 1], 1)]
    )
    return Mesh(vertices, faces)


def test_eval_bench_original_agrees_with_ours_and_runs_as_a_child(tmp_path):
    from atlas.evaluation.mesh_metrics import mesh_metrics
    from atlas.geometry import read_ply, write_ply

    bench = script("eval_bench")
    pred, gt = tmp_path / "pred.ply", tmp_path / "gt.ply"
    write_ply(grid_mesh(0.5, shift=(0.0, 0.0, 0.01)), pred)  # half the ground truth, 1 cm up
    write_ply(grid_mesh(1.0), gt)
    original = bench.eval_mesh(pred, gt)
    ours = mesh_metrics(read_ply(pred), read_ply(gt))
    assert bench.check_agree("tiny", ours, original) <= bench.TOLERANCE
    # all the prediction lies on the ground truth; a bit over half of it is covered
    assert ours["prec"] == 1.0 and 0.5 < ours["recal"] < 0.6
    assert original["prec"] == ours["recal"]  # the original's names are swapped
    assert ours["acc"] == pytest.approx(0.01, abs=1e-3)  # 1 cm up (centroids of 2 cm cells)
    seconds, run = bench.timed_process(["bench/eval_bench.py", "--original", str(pred), str(gt)], 1)
    assert run.result == pytest.approx(original, abs=1e-12)
    assert 0 < seconds < 60


# ----------------------------------------------------------------- fusion_bench


def test_fusion_bench_ours_and_open3d_fuse_the_same_wall(eager_kernels):
    from atlas.evaluation.mesh_metrics import point_metrics

    bench = script("fusion_bench")
    poses = list(plane_poses(4))
    depths = [np.full((48, 64), round(1000 * PLANE_Z), np.uint16) for _ in poses]  # mm
    ours_fps, ours, warm_s = bench.run_ours(depths, K_PLANE, poses, 0.04, 3.0, 1, "cpu", "0")
    o3d_fps, theirs = bench.run_open3d(depths, K_PLANE, poses, 0.04, 3.0, 1)
    assert ours_fps > 0 and o3d_fps > 0 and warm_s > 0
    for vertices in (ours, theirs):
        assert len(vertices) > 100
        assert np.abs(vertices[:, 2] - PLANE_Z).max() < 0.04  # within a voxel of the wall
    assert point_metrics(ours, theirs, threshold=0.02)["chamfer"] < 0.03


# ---------------------------------------------------------------- prepare_bench


def test_prepare_bench_loops_the_frames_and_times_both_fusions(eager_kernels):
    bench = script("prepare_bench")
    reader = bench.looped(PlaneReader(3), 7)
    assert (reader.name, len(reader)) == ("plane-x7", 7)
    assert reader.read_frame(5).color[0, 0, 0] == 2  # frame 5 is the base's frame 5 % 3
    assert np.array_equal(reader.poses[3:6], plane_poses(3))
    ours, open3d = bench.fusion_part(reader, 7)
    assert 0 < ours < 60 and 0 < open3d < 60


# ------------------------------------------------------------------ infer_bench


def test_infer_bench_settings_and_peak_ratios():
    bench = script("infer_bench")
    quick = bench.Settings.from_args(bench.parse(["--quick", "--threads", "1"]))
    assert (quick.max_depth, quick.chunk, quick.margin) == (1.0, 32 * 32 * 16, 4)
    assert (quick.mem_z, quick.mem_frames, quick.repeat, quick.layout, quick.threads) == (
        16, 4, 1, 2, 1
    )  # fmt: skip
    assert (quick.room.n_frames, quick.room.width, quick.room.height) == (30, 160, 120)
    assert bench.room_dir(quick).name == "infer_room_30_160x120"
    full = bench.Settings.from_args(bench.parse(["--chunk-margin", "0"]))
    assert (full.margin, full.repeat, full.layout, full.room.n_frames) == (0, 3, 3, 300)
    assert bench.room_dir(full) == harness.BENCH_DATA / "infer_room"
    a = {"peak_rss_gb": 2.0, "rss_before_gb": 1.0, "cuda_peak_gb": None}
    b = {"peak_rss_gb": 3.0, "rss_before_gb": 1.0, "cuda_peak_gb": None}
    assert bench.peak_ratios(a, b) == {"rss": 1.5, "rss_above_base": 2.0, "cuda": None}
    assert bench.peak_ratios(a, {"error": "x"}) == {}


def test_infer_bench_tiled_reader_shifts_the_copies():
    bench = script("infer_bench")
    base = PlaneReader(3)
    tiled = bench.TiledReader(base, [0, 2], 2, offset=(1.0, 2.0))
    assert len(tiled) == 8 and tiled.name == "plane_2x2"
    frame = tiled.read_frame(5)  # copy 2 = (i 1, j 0), its second frame: base frame 2
    assert frame.frame_id == 5 and frame.color[0, 0, 0] == 2
    assert np.allclose(frame.pose[:3, 3], base.poses[2][:3, 3] + [1.0, 0.0, 0.0])
    assert np.allclose(tiled.poses[7][:3, 3], base.poses[2][:3, 3] + [1.0, 2.0, 0.0])


def test_infer_bench_measures_a_case_in_a_fresh_process(monkeypatch):
    from atlas.model.checkpoint import BUNDLED, load_model

    monkeypatch.setenv("ATLAS_COMPILE", "0")  # the child inherits it: no torch.compile
    bench = script("infer_bench")
    opts = bench.Settings.from_args(bench.parse(["--quick", "--timeout", "120"]))
    spec = {"case": "net3d_memory", "model": str(BUNDLED), "device": "cpu",
            "shape": [16, 16, 8], "chunk_voxels": 4096, "chunk_margin": 4}  # fmt: skip
    r = bench.run_case(spec, opts)
    assert "error" not in r, r
    c_in = load_model(BUNDLED)[0].net.stem[0][0].in_channels
    assert r["tiles"] == 1
    assert r["input_gb"] == pytest.approx(c_in * 16 * 16 * 8 * 4 / harness.GB)
    assert 0 < r["seconds"] < r["wall_s"] < 120
    assert 0 < r["rss_before_gb"] <= r["peak_rss_gb"] < 4
    assert r["cuda_peak_gb"] is None
    bad = bench.run_case({**spec, "case": "no_such_case"}, opts)
    assert bad == {"error": "KeyError: 'no_such_case'"}


# ------------------------------------------------------------------ model_bench


def test_model_bench_backprojections_agree_on_a_tiny_volume(eager_kernels):
    import torch

    from atlas.model.atlas_net import feature_projection

    bench = script("model_bench")
    shape, voxel, image, fmap, views = (16, 16, 8), 0.04, (80, 60), (20, 15), 2
    P = bench.ring_projections(views, np.zeros(3), np.array(shape) * voxel, image)
    projection = feature_projection(torch.tensor(P, dtype=torch.float32), image, fmap)[None]
    features = torch.randn(
        1, views, 4, fmap[1], fmap[0], generator=torch.Generator().manual_seed(0)
    )
    origin = torch.full((1, 3), voxel / 2)
    inputs = (shape, voxel, origin, projection, features)
    times, (m_orig, c_orig) = harness.best_of(lambda: bench.original_backproject(*inputs), 1)
    m, c = bench.ours_backproject(*inputs, chunk=1)
    assert times.wall > 0 and m.shape == m_orig.shape == (1, 4, *shape)
    same = (c == c_orig).squeeze(1)
    assert same.float().mean() > 0.99 and c_orig.max() == views and c_orig.sum() > 0
    assert (m - m_orig).abs().permute(1, 0, 2, 3, 4)[:, same].max() < 1e-5


def test_model_bench_training_child_reports_its_failure():
    bench = script("model_bench")
    args = bench.parse(["--timeout", "120", "--threads", "1"])
    spec = {"config": "no_such_config", "batch": 1, "crop": [16, 16, 16], "frames": 2,
            "image": [64, 48], "warmup": 0, "steps": 1}  # fmt: skip
    r = bench.run_child(spec, args)
    assert r["gpu"] is False and "no_such_config" in r["error"]
    assert len(r["error"]) <= 120


# --------------------------------------------------------------- real_data, stereo


def test_real_data_table_and_alignment_warnings():
    bench = script("real_data")
    metrics = {"acc": 0.034, "comp": float("inf"), "prec": 0.25, "recal": 0.75, "fscore": 0.375}
    methods = {
        bench.MODEL: {"frames": 10, "seconds": 1.25, "cpu_seconds": 2.0,
                      "metrics": {p: dict(metrics, fscore=0.01) for p in bench.PROTOCOL_NAMES}},
        bench.FUSION: {"frames": 20, "seconds": 3.0,
                       "metrics": {p: metrics for p in bench.PROTOCOL_NAMES}},
        bench.STEREO: {"frames": 5, "seconds": 4.0, "cpu_seconds": 8.0,
                       "metrics": {p: metrics for p in bench.PROTOCOL_NAMES}},
    }  # fmt: skip
    lines = bench.table(methods).splitlines()
    assert (
        lines[2]
        == "| model | 10 | 1.2 | 2.0 | "
        + " | ".join(["3.4 | inf | 0.250 | 0.750 | **0.010**"] * 3)
        + " |"
    )
    assert lines[3].startswith("| depth fusion (upper bound) | 20 | 3.0 | - | 3.4 | inf |")
    warnings = bench.check_alignment(methods)
    assert warnings == [
        "the depth-fusion baseline scores only F 0.375: check the data",
        "model scores F < 0.02: is it in the ground truth's frame?",
    ]


def test_stereo_bench_regenerates_the_published_block(tmp_path):
    bench = script("stereo_bench")
    assert (bench.START, bench.END) == harness.block_markers("stereo_bench")
    page = tmp_path / "benchmarks.md"
    page.write_text(bench.DOC.read_text())
    rows = json.loads(bench.JSON_OUT.read_text())["rows"]
    bench.replace_block(page, bench.markdown_table(rows))
    # the published table is what the script writes from the published numbers
    assert page.read_text() == bench.DOC.read_text()


def test_real_rooms_table_puts_each_model_against_stereo(tmp_path):
    bench = script("real_rooms")
    row = {"frames": 10, "seconds": 12.0, "prec": 0.5, "recal": 0.7, "acc": 0.061, "comp": 0.03}
    old = [
        {**row, "set": "7scenes", "method": "stereo", "fscore": 0.3},
        {**row, "set": "scannet", "method": "model: a", "fscore": 0.5},
        {**row, "set": "scannet", "method": "stereo", "fscore": 0.56},
    ]
    new = [{**row, "set": "scannet", "method": "model: a", "fscore": 0.6}]
    rows = bench.merged(old, new)
    assert [(r["set"], r["method"], r["fscore"]) for r in rows] == [
        ("scannet", "stereo", 0.56),
        ("scannet", "model: a", 0.6),
        ("7scenes", "stereo", 0.3),
    ]
    lines = bench.markdown_table(rows).splitlines()
    assert lines[3] == (
        "| scannet | 10 | model: a | **0.600** | 0.500 | 0.700 | 6.1 | 3.0 | 12 | +0.040 |"
    )
    assert lines[2].endswith("| 12 |  |")
    # the published block is what the script writes from the published numbers
    published = json.loads(bench.JSON_OUT.read_text())["rows"]
    page = tmp_path / "card.md"
    page.write_text(f"{bench.START}\n{bench.END}\n")
    harness.replace_block(page, bench.markdown_table(published), bench.START, bench.END)
    text = bench.CARD.read_text()
    assert (
        page.read_text()
        == text[text.index(bench.START) : text.index(bench.END) + len(bench.END)] + "\n"
    )


def test_bench_rule_of_the_makefile_runs_the_bench_scripts():
    root = Path(__file__).resolve().parents[1]
    rule = (root / "Makefile").read_text().split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert "bench/*_bench.py" in rule
    scripts = sorted(p.stem for p in (root / "bench").glob("*_bench.py"))
    assert scripts == [s for s in SCRIPTS if s.endswith("_bench")]


def test_suite_bench_reads_pytest_counts_and_writes_its_row():
    bench = importlib.import_module("bench.suite_bench")
    output = "....\ncases run: x\n861 passed, 3 skipped, 15 warnings in 241.20s (0:04:01)\n"
    assert bench.parse_counts(output) == (861, 3)
    assert bench.parse_counts("12 passed in 3.5s") == (12, 0)
    with pytest.raises(ValueError, match="no pytest summary"):
        bench.parse_counts("make: *** [test] Error 1")
    row = {"setup_s": 95.2, "test_s": 241.2, "passed": 861, "skipped": 3}
    text = bench.markdown({**row, "machine": "2 CPU cores", "commit": "abc1234", "date": "d"})
    assert "| `make test` after it (861 passed, 3 skipped) | 241 |" in text
