"""Issue 17, folders: one bad entry fails one entry (in --dry-run too), dry-run totals count only what would run,
and every backend gives the same bytes (the thread count per file is pinned and recorded)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from flowprior import io
from flowprior.batch import WorkItem, plan_batch
from flowprior.batch.memory import memory_planner
from flowprior.batch.ray_backend import _planned, _ray_restore
from flowprior.recipe import from_dict
from flowprior.restoration import RestoreRecipe, load_model
from tests.cli_helpers import run, save_tiny_prior
from tests.conftest import natural_crop

FAST = ["-d", "noise", "--set", "noise.sigma=5", "--steps", "4", "--quiet"]


@pytest.fixture
def model(tmp_path):
    return save_tiny_prior(tmp_path)


def folder_with_bad_entries(root: Path) -> Path:
    root.mkdir()
    io.write_image(root / "good.png", natural_crop(40, 40))
    os.symlink("loop.png", root / "loop.png")  # a symlink loop
    os.symlink("missing.png", root / "dangling.png")
    (root / "garbage.png").write_bytes(b"not an image at all")
    return root


def test_a_symlink_loop_and_a_dangling_link_fail_alone(tmp_path, model, capsys):
    root = folder_with_bad_entries(tmp_path / "in")
    code, stdout, stderr = run(capsys, "restore", root, "-o", tmp_path / "out", "--model", model, *FAST)
    assert code == 1 and "restored 1, skipped 0 (already done), failed 3" in stdout and "Traceback" not in stderr
    assert "loop.png" in stderr and "dangling.png" in stderr and (tmp_path / "out" / "good.png.json").is_file()


def test_bad_entries_fail_alone_in_a_dry_run_and_the_totals_count_what_would_run(tmp_path, model, capsys):
    root = folder_with_bad_entries(tmp_path / "in")
    io.write_image(root / "second.png", natural_crop(40, 40, top=60))
    code, stdout, stderr = run(capsys, "restore", root, "-o", tmp_path / "out", "--model", model, *FAST[:-1],
                               "--dry-run", "--progress", "json")
    assert code == 0 and "Traceback" not in stderr and not (tmp_path / "out").exists()
    rows = [json.loads(line) for line in stdout.splitlines()]
    *files, total = rows
    actions = {row["input"]: row["action"] for row in files}
    assert actions == {"dangling.png": "error", "garbage.png": "fail", "good.png": "restore", "loop.png": "error",
                       "second.png": "restore"}
    running = [row for row in files if row["action"] == "restore"]
    assert total["to_restore"] == 2
    assert total["total_seconds"] == pytest.approx(sum(row["seconds"] for row in running), abs=0.11)
    assert total["peak_bytes"] == max(row["peak_bytes"] for row in running)


def test_an_unlistable_folder_fails_as_one_entry(tmp_path):
    root = tmp_path / "in"
    (root / "locked").mkdir(parents=True)
    io.write_image(root / "ok.png", natural_crop(30, 30))
    os.chmod(root / "locked", 0)
    try:
        if os.access(root / "locked", os.R_OK):
            pytest.skip("running as a user that can read any folder (root)")
        items = plan_batch(root, tmp_path / "out", recursive=True)
    finally:
        os.chmod(root / "locked", 0o755)
    assert [(i.relative.as_posix(), i.action) for i in items] == [("ok.png", "restore"), ("locked", "error")]


# ------------------------------------------------------------------------------------- 9. the same bytes


def test_threads_are_pinned_per_file_so_a_ray_worker_gives_the_local_bytes(tmp_path, model, capsys):
    """A Ray worker starts with 1 CPU (OMP_NUM_THREADS=1); the task body pins the batch's thread count and keeps the
    driver's tile plan, so the file is bit-identical to the local run. Run here without Ray: what the driver hands a
    task (:func:`_planned`), then the body of the Ray task, in a 1-thread process state."""
    root = tmp_path / "in"
    root.mkdir()
    io.write_image(root / "scan.png", natural_crop(48, 56))
    code, _, stderr = run(capsys, "restore", root, "-o", tmp_path / "local", "--model", model, *FAST,
                          "--threads", "2")
    assert code == 0, stderr
    local = json.loads((tmp_path / "local" / "scan.png.json").read_text())
    assert local["runtime"]["threads"] == 2
    recipe = from_dict(RestoreRecipe, local["recipe"])
    recipe.tiling.max_tiles = None  # as the driver resolves it, before any plan
    item = WorkItem(root / "scan.png", Path("scan.png"), tmp_path / "ray" / "scan.png", "restore")
    kwargs = {"chroma": None, "strength": None, "quality": None, "compare": False, "accept_truncated": False,
              "threads": 2}
    planner = memory_planner()
    task_recipe, task_kwargs = _planned(item, recipe, load_model(str(model)), planner, kwargs)
    assert task_kwargs["keep_tiling"] and task_recipe.tiling.max_tiles == local["recipe"]["tiling"]["max_tiles"]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # what a 1-CPU Ray worker starts with
    try:
        outcome = _ray_restore(item, task_recipe, task_kwargs, planner.budget, None)
    finally:
        torch.set_num_threads(previous)
    assert outcome["status"] == "restored", outcome
    ray_sidecar = json.loads((tmp_path / "ray" / "scan.png.json").read_text())
    assert ray_sidecar["runtime"]["threads"] == 2 and ray_sidecar["recipe"] == local["recipe"]
    assert (tmp_path / "ray" / "scan.png").read_bytes() == (tmp_path / "local" / "scan.png").read_bytes()


def test_a_batch_records_one_thread_count_for_every_file(tmp_path, model, capsys):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(2):
        io.write_image(root / f"s{i}.png", natural_crop(36, 36, top=20 * i))
    code, _, stderr = run(capsys, "restore", root, "-o", tmp_path / "out", "--model", model, *FAST)
    assert code == 0, stderr
    threads = {json.loads(p.read_text())["runtime"]["threads"] for p in (tmp_path / "out").glob("*.png.json")}
    assert threads == {torch.get_num_threads()}
