"""Issue 17, item 5: memory is bounded by default, the default path (learned warm start included) streams, and an
image that cannot fit is refused from its header, before it is decoded."""

from __future__ import annotations

import json
import struct
import time
import zlib

import pytest
import torch

from flowprior.batch.memory import DEFAULT_BUDGET_NOTE, default_budget, memory_planner
from flowprior.cli import main
from flowprior.prior.checkpoint import save_checkpoint
from flowprior.recipe import find_recipe
from flowprior.restoration import build_recipe, restore_tensor
from tests.test_solver import tiny_prior


def _zero_png(path, width: int, height: int) -> None:
    """A valid RGB 8-bit PNG of zeros (a decompression bomb: a few hundred KB for ``width * height`` pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # Rows of zeros in blocks of 500; after a full flush deflate forgets what came before, so every block
    # compresses to the same bytes: compress one, repeat it, and end the zlib stream with the Adler-32 of all rows.
    block, blocks = b"\0" * ((3 * width + 1) * 500), height // 500
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = raw.compress(block) + raw.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(blocks):
        adler = zlib.adler32(block, adler)
    data = b"\x78\xda" + piece * blocks + raw.flush() + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def test_without_max_memory_the_planner_takes_half_the_available_memory():
    planner = memory_planner()
    assert planner.default and not memory_planner(2**30).default
    with open("/proc/meminfo") as handle:
        total = int(next(line for line in handle if line.startswith("MemTotal:")).split()[1]) * 1024
    assert 0 < default_budget() <= total // 2


def test_a_file_restored_without_max_memory_records_the_default_plan(tmp_path, capsys):
    from flowprior import io
    from tests.conftest import natural_crop

    prior = tiny_prior(patch=32, levels=2)
    save_checkpoint(tmp_path / "tiny.pt", prior.config_dict(), prior.state_dict())
    io.write_image(tmp_path / "in.png", natural_crop(40, 40))
    code = main(["restore", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model",
                 str(tmp_path / "tiny.pt"), "-d", "noise", "--steps", "4", "--quiet"])
    assert code == 0, capsys.readouterr().err
    memory = json.loads((tmp_path / "out.png.json").read_text())["memory"]
    assert memory["budget_from"] == DEFAULT_BUDGET_NOTE and memory["estimated_peak"] <= memory["budget"]


def test_a_144_megapixel_bomb_is_refused_from_its_header_with_its_estimate(tmp_path, capsys):
    prior = tiny_prior(patch=32, levels=2)
    save_checkpoint(tmp_path / "tiny.pt", prior.config_dict(), prior.state_dict())
    _zero_png(tmp_path / "bomb.png", 12000, 12000)
    assert (tmp_path / "bomb.png").stat().st_size < 1_000_000
    argv = ["restore", str(tmp_path / "bomb.png"), "-o", str(tmp_path / "out.png"), "--model",
            str(tmp_path / "tiny.pt"), "-d", "noise", "--steps", "4", "--quiet", "--max-memory", "1GiB"]
    started = time.perf_counter()
    assert main(argv) == 2
    seconds = time.perf_counter() - started
    stderr = capsys.readouterr().err
    assert "restoring 12000x12000 needs about" in stderr and "--max-memory is 1.0 GiB" in stderr
    assert seconds < 5.0 and not (tmp_path / "out.png").exists()  # decoding alone would take longer


def _streamed_and_whole(height: int, width: int, max_tiles: int):
    """The fast recipe (IR-Flow warm start + 3 MAP steps) on a random image, streamed, and on the whole-image path
    (which an all-observed mask forces; it changes no value)."""
    recipe = build_recipe(find_recipe("fast", "restore"), {"degradation": "noise"}, {"noise.sigma": 5})
    recipe.tiling.max_tiles = max_tiles
    prior = tiny_prior(patch=32, levels=2)
    y = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(3))
    streamed = restore_tensor(y, recipe, prior=prior)
    whole = restore_tensor(y, recipe, mask=torch.ones(1, 1, height, width), prior=prior)
    return streamed, whole


def test_the_default_recipe_streams_with_the_whole_image_result(monkeypatch):
    """Small network blocks (64 px + 8 px halos, one pass up to 80x80) so that a 100x120 image spans 2 x 2 blocks:
    the real IR-Flow network and block geometry, in seconds (a pass costs ~0.4 s whatever its size, here)."""
    from flowprior.warmstart import LearnedInitializer

    monkeypatch.setattr(LearnedInitializer, "block", 64)
    monkeypatch.setattr(LearnedInitializer, "halo", 8)
    monkeypatch.setattr(LearnedInitializer, "max_block_pixels", 80 * 80)
    streamed, whole = _streamed_and_whole(100, 120, max_tiles=7)
    assert streamed.info["tiles"]["streamed"] and not whole.info["tiles"]["streamed"]
    assert torch.equal(streamed.image, whole.image)


@pytest.mark.slow
def test_the_default_recipe_streams_a_large_image_with_the_whole_image_result():
    """The shipped block geometry: 400x700 is above one network pass (2 x 2 blocks of 384 px)."""
    streamed, whole = _streamed_and_whole(400, 700, max_tiles=97)
    assert streamed.info["tiles"]["streamed"] and not whole.info["tiles"]["streamed"]
    assert torch.equal(streamed.image, whole.image)
