"""The scale-out path: ``train.py trainer=ddp`` as Lightning DDP on CPU (gloo, two
processes) over the demo recipe, killed and resumed; and ``prepare.py -m`` over two
shards with Hydra's submitit launcher (its local executor: one process per shard)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas.preparation.prepare import PrepareSettings, prepare_scene
from atlas.readers.prepared import is_prepared
from atlas.readers.scannet import ScanNetFolder
from atlas.synthetic.generate import SceneConfig, generate_dataset, write_scene
from atlas.training.resumable import ResumableSampler
from tests.test_model import checkpoint_step

ROOT = Path(__file__).resolve().parents[1]
NO_COMPILE = {**os.environ, "ATLAS_COMPILE": "0"}  # no compile warm-up per process
SIZES = (0.08, 0.16, 0.32)
SEED = 7
ITEMS = 4  # 1 scene x items_per_scene: items in one pass of the order
MAX_STEPS = 6

# train.py with SceneItems.__getitem__ recording each training item key it builds in
# items_rank<R>.jsonl. Lightning's DDP launcher starts rank 1 by running sys.argv[0]
# again, so this file (not train.py) must be the script: train.py's code is executed
# under its own file name, so Hydra finds configs/ next to it.
RECORDER = """\
import json, os, sys
from pathlib import Path

import torch.distributed as dist

ROOT = Path({root!r})
sys.path.insert(0, str(ROOT))
from atlas.training.data import SceneItems

_getitem = SceneItems.__getitem__


def recorded(self, key):
    if self.train:
        rank = dist.get_rank() if dist.is_initialized() else -1
        with open(Path(os.environ["ITEM_LOG"]) / f"items_rank{{rank}}.jsonl", "a") as f:
            f.write(json.dumps(list(key)) + "\\n")
    return _getitem(self, key)


SceneItems.__getitem__ = recorded
script = ROOT / "train.py"
exec(compile(script.read_text(), str(script), "exec"), {{"__name__": "__main__"}})
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """One tiny synthetic room (12 frames of 80x60) prepared at 8/16/32 cm, no prior."""
    root = tmp_path_factory.mktemp("ddp")
    scene = write_scene(
        root / "raw" / "scans" / "scene0000_00",
        SceneConfig(seed=5, n_frames=12, width=80, height=60),
    )
    settings = PrepareSettings(voxel_sizes=SIZES, max_depth=4.0)
    prepare_scene(ScanNetFolder(scene), root / "prepared", settings, "scannet", "none")
    return root


def ddp_command(recorder: Path, prepared: Path, out: Path, *overrides: str) -> list[str]:
    """The demo recipe, tiny, on two CPU processes (gloo: Lightning's CPU backend).
    SyncBatchNorm (on in trainer=ddp) needs GPUs, so it is off here."""
    return [
        sys.executable,
        str(recorder),
        "experiment=demo",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        "trainer.sync_batchnorm=false",
        f"trainer.max_steps={MAX_STEPS}",
        f"trainer.val_check_interval={MAX_STEPS}",  # one validation, at the end
        "trainer.log_every_n_steps=1",
        "checkpoint_last.every_n_train_steps=2",
        f"seed={SEED}",
        f"out_dir={out}",
        f"data.raw.root={prepared / 'raw'}",
        f"data.prepared_root={prepared / 'prepared'}",
        "datamodule.train_split=null",
        "datamodule.val_split=null",
        f"datamodule.items_per_scene={ITEMS}",
        "datamodule.num_workers=0",
        "model.model.backbone.width=8",
        "model.model.net.channels=[8,16,32]",
        "model.model.net.prior=none",
        "datamodule.item.image_size=[80,60]",
        "datamodule.item.crop_voxels=[32,32,24]",
        "datamodule.item.n_frames=4",
        "datamodule.item.val_frames=6",
        *overrides,
    ]


def read_items(folder: Path) -> dict[int, list[tuple[int, int]]]:
    """The item keys each rank built, in order (complete lines only)."""
    items = {}
    for path in sorted(folder.glob("items_rank*.jsonl")):
        rank = int(re.fullmatch(r"items_rank(-?\d+)\.jsonl", path.name)[1])
        lines = path.read_text().split("\n")[:-1]  # a killed writer may leave a partial line
        items[rank] = [tuple(json.loads(line)) for line in lines]
    return items


def global_order(length: int) -> list[tuple[int, int]]:
    """The run's one item order as a single process would draw it."""
    sampler = ResumableSampler(ITEMS, SEED)
    return [sampler.key(q) for q in range(length)]


@pytest.fixture(scope="module")
def ddp_runs(prepared, tmp_path_factory) -> dict:
    """A two-process DDP run killed (the whole process group, SIGKILL) once it has a
    checkpoint, then resumed with ``ckpt_path=last`` to the end."""
    root = tmp_path_factory.mktemp("ddp_runs")
    recorder = root / "train_recording.py"
    recorder.write_text(RECORDER.format(root=str(ROOT)))
    out = root / "out"
    last = out / "checkpoints" / "last.ckpt"
    killed_log, resumed_log = root / "killed_items", root / "resumed_items"
    killed_log.mkdir()
    resumed_log.mkdir()

    with open(root / "killed.log", "w") as log:
        proc = subprocess.Popen(
            ddp_command(recorder, prepared, out),
            cwd=ROOT,
            env={**NO_COMPILE, "ITEM_LOG": str(killed_log)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # rank 1 is rank 0's child: kill both at once
        )
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline:
            if last.is_file() and (checkpoint_step(last) or 0) >= 2:
                break
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_output = (root / "killed.log").read_text()
    killed_at = checkpoint_step(last)

    with subprocess.Popen(
        ddp_command(recorder, prepared, out, "ckpt_path=last"),
        cwd=ROOT,
        env={**NO_COMPILE, "ITEM_LOG": str(resumed_log)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as group:
        try:
            stdout, stderr = group.communicate(timeout=300)
        except subprocess.TimeoutExpired:  # rank 1 too, or it waits in a collective
            os.killpg(group.pid, signal.SIGKILL)
            stdout, stderr = group.communicate()
    resumed = subprocess.CompletedProcess(group.args, group.returncode, stdout, stderr)
    return {
        "out": out,
        "killed_output": killed_output,
        "killed_returncode": proc.returncode,
        "killed_at": killed_at,
        "killed_items": read_items(killed_log),
        "resumed": resumed,
        "resumed_items": read_items(resumed_log),
    }


@pytest.mark.slow
def test_ddp_ranks_draw_disjoint_shares_of_one_item_order(ddp_runs):
    """Two gloo processes; rank r of 2 builds the items at positions 2p + r of the run's
    one order, so the ranks never build the same item and each pass of the order is
    split between them, every item once."""
    output = ddp_runs["killed_output"]
    assert "distributed_backend=gloo" in output, output[-3000:]
    assert "MEMBER: 2/2" in output, output[-3000:]
    items = ddp_runs["killed_items"]
    assert sorted(items) == [0, 1], sorted(items)  # both ranks built items, in a group
    n = min(len(items[0]), len(items[1]))
    assert n >= 2, items  # a pass of the order (4 items) at least
    assert not set(items[0]) & set(items[1]), items
    first_pass = [key[0] for rank in (0, 1) for key in items[rank][: ITEMS // 2]]
    assert sorted(first_pass) == list(range(ITEMS)), items
    order = global_order(2 * max(len(v) for v in items.values()))
    for rank, keys in items.items():
        assert keys == order[rank::2][: len(keys)], (rank, keys)


@pytest.mark.slow
def test_ddp_killed_run_resumes_at_its_step_with_the_next_items(ddp_runs):
    """Killed after its step-2 (or 4) checkpoint, the DDP run resumes at that step:
    each rank's items continue its share of the order from there (the same items the
    killed run had drawn past the checkpoint), not from the start; it ends at
    ``max_steps``, validates on both ranks and logs only the steps it ran."""
    killed_at = ddp_runs["killed_at"]
    assert ddp_runs["killed_returncode"] == -signal.SIGKILL, ddp_runs["killed_output"][-3000:]
    assert killed_at in (2, 4), killed_at  # killed mid-run, with a checkpoint
    resumed = ddp_runs["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "MEMBER: 2/2" in resumed.stderr + resumed.stdout
    out = ddp_runs["out"]
    assert checkpoint_step(out / "checkpoints" / "last.ckpt") == MAX_STEPS
    assert (out / "checkpoints" / "best.ckpt").is_file()  # validated: val/fscore synced
    killed, items = ddp_runs["killed_items"], ddp_runs["resumed_items"]
    assert sorted(items) == [0, 1], sorted(items)
    order = global_order(2 * (MAX_STEPS + 2))
    for rank, keys in items.items():
        assert len(keys) >= MAX_STEPS - killed_at, (rank, keys)
        assert keys[0] != killed[rank][0], (rank, keys)  # not restarted
        share = order[rank::2]
        assert keys == share[killed_at : killed_at + len(keys)], (rank, killed_at, keys)
        drawn_past = killed[rank][killed_at:]  # built before the kill, never trained on
        assert keys[: len(drawn_past)] == drawn_past, (rank, killed_at, killed[rank], keys)
    with open(out / "logs" / "metrics.csv") as f:
        steps = sorted({int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")})
    assert steps == list(range(killed_at, MAX_STEPS)), steps


@pytest.mark.slow
def test_prepare_multirun_shards_with_submitit_local(tmp_path):
    """``prepare.py -m hydra/launcher=submitit_local shard=0,1 num_shards=2``: two
    submitit jobs (processes) prepare 2 and 1 of 3 scenes into one folder: every scene
    once, none twice."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e .[dev]")
    raw = tmp_path / "raw"
    generate_dataset(raw, 3, SceneConfig(seed=20, n_frames=8, width=80, height=60), False)
    names = sorted(p.name for p in (raw / "scans").iterdir())
    out, sweep = tmp_path / "prepared", tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "prepare.py"),
            "-m",
            "hydra/launcher=submitit_local",
            "shard=0,1",
            "num_shards=2",
            "data=synthetic",
            f"data.raw.root={raw}",
            f"out_dir={out}",
            "voxel_sizes=[0.16,0.32,0.64]",  # coarse: quick
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        env=NO_COMPILE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == names  # no partial folders left
    assert all(is_prepared(out / name) for name in names)
    # Each job's stdout (submitit's log of it) has prepare.py's summary.
    logs = sorted((sweep / ".submitit").glob("*/*_log.out"))
    summaries = [
        re.findall(r"^prepared (\d+), already done (\d+), failed (\d+)$", p.read_text(), re.M)
        for p in logs
    ]
    assert len(logs) == 2 and all(len(s) == 1 for s in summaries), [p.read_text() for p in logs]
    counts = sorted(tuple(int(x) for x in s[0]) for s in summaries)
    # Shards of 2 and 1 scenes, each prepared by one job only: disjoint, covering all 3.
    assert counts == [(1, 0, 0), (2, 0, 0)], counts
    assert sorted(p.name for p in sweep.iterdir() if not p.name.startswith(".")) == [
        "multirun.yaml",
        "shard0",
        "shard1",
    ]
