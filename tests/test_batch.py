"""Archival batch restoration: folders, resume after kill -9, bad inputs, fidelity to masters, provenance, replay."""

from __future__ import annotations

import hashlib
import io as bytes_io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from flowprior import io
from flowprior.batch import BYTES_PER_PIXEL, TileCost, parse_size, plan_batch, plan_memory, read_manifest
from flowprior.batch.memory import FIXED_BYTES, ImageBuffers, estimate, image_buffers
from flowprior.restoration import RestoreRecipe
from flowprior.restore_file import pending_path, restore_file
from flowprior.tone import chroma_residual, rgb_to_ycbcr, ycbcr_to_rgb
from tests.cli_helpers import run, save_tiny_prior
from tests.conftest import natural_crop

ROOT = Path(__file__).resolve().parents[1]
FAST = ["-d", "noise", "--set", "noise.sigma=5", "--steps", "4"]


@pytest.fixture
def model(tmp_path):
    return save_tiny_prior(tmp_path)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_folder(root: Path, count: int, size: int = 40) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    return [
        io.write_image(root / f"scan{i:02d}.png", natural_crop(size, size, top=8 * i, left=4 * i))
        for i in range(count)
    ]


def sepia(rgb: torch.Tensor) -> torch.Tensor:
    y = rgb_to_ycbcr(rgb)[:, :1]
    return torch.cat([y * 1.07, y * 0.74 + 0.08 * y * (1 - y), y * 0.43], 1).clamp(0, 1).float()


# ------------------------------------------------------------------------------------------- folders + resume


def test_kill_9_mid_batch_then_rerun_restores_each_file_exactly_once(tmp_path, model, capsys):
    sources = make_folder(tmp_path / "in", 20, size=64)
    out = tmp_path / "out"
    argv = ["restore", tmp_path / "in", "-o", out, "--model", model, "-d", "noise", "--steps", "12", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "flowprior", *map(str, argv)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    manifest = out / "flowprior-manifest.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and child.poll() is None:
        if manifest.exists() and sum('"restored"' in line for line in manifest.read_text().splitlines()) >= 4:
            break
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    finished = {p.name[: -len(".json")]: p for p in out.glob("*.png.json")}
    assert 4 <= len(finished) < 20, "the kill must land in the middle of the batch"
    before = {name: ((out / name).stat().st_ino, (out / name).stat().st_mtime_ns) for name in finished}
    (out / ".scan19.png.0badc0de.tmp").write_bytes(b"half a file")  # what a kill during a write leaves

    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and f"skipped {len(finished)}" in stdout
    names = sorted(p.name for p in out.iterdir())
    expected = sorted([s.name for s in sources] + [s.name + ".json" for s in sources] + [manifest.name])
    assert names == expected  # every output exactly once, no temporary or partial files
    for name, identity in before.items():
        assert ((out / name).stat().st_ino, (out / name).stat().st_mtime_ns) == identity  # finished: not redone
    events = [e for e in read_manifest(manifest) if e["event"] == "file"]
    runs = list(dict.fromkeys(e["run_id"] for e in events))
    assert len(runs) == 2
    second = {Path(e["input"]).name: e["status"] for e in events if e["run_id"] == runs[1]}
    assert {n for n, s in second.items() if s == "skipped"} == set(finished)
    restored = [Path(e["input"]).name for e in events if e["status"] == "restored"]
    assert len(restored) == len(set(restored))


def test_an_image_without_its_sidecar_is_redone_and_limit_takes_a_sample(tmp_path, model, capsys):
    make_folder(tmp_path / "in", 4)
    out = tmp_path / "out"
    code, stdout, _ = run(
        capsys, "restore", tmp_path / "in", "-o", out, "--model", model, *FAST, "--quiet", "--limit", "2"
    )
    assert code == 0 and "restored 2" in stdout and len(list(out.glob("*.png"))) == 2
    (out / "scan00.png.json").unlink()  # killed between the image and its sidecar: what such a kill leaves
    pending_path(out / "scan00.png").write_bytes(b"")
    code, stdout, _ = run(capsys, "restore", tmp_path / "in", "-o", out, "--model", model, *FAST, "--quiet")
    assert code == 0 and "restored 3, skipped 1" in stdout
    assert (out / "scan00.png.json").is_file() and not pending_path(out / "scan00.png").exists()


def test_a_same_named_file_without_a_sidecar_is_never_overwritten_silently(tmp_path, model, capsys):
    make_folder(tmp_path / "in", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "scan00.png").write_bytes(b"someone else's file")
    code, stdout, stderr = run(capsys, "restore", tmp_path / "in", "-o", out, "--model", model, *FAST, "--quiet")
    assert code == 1 and "restored 1" in stdout
    assert "is not a flowprior output (no sidecar)" in stderr and "--overwrite" in stderr
    assert (out / "scan00.png").read_bytes() == b"someone else's file"
    code, stdout, _ = run(capsys, "restore", tmp_path / "in", "-o", out, "--model", model, *FAST, "--quiet",
                          "--overwrite")
    assert code == 0 and "restored 2" in stdout and io.read_image(out / "scan00.png").size == (40, 40)


def test_outputs_keep_the_folder_structure_and_never_touch_the_inputs(tmp_path, model, capsys):
    root = tmp_path / "in"
    make_folder(root / "box1" / "folder2", 2)
    io.write_image(root / "top.jpg", natural_crop(24, 24))
    io.write_image(root / "deep.tif", natural_crop(24, 24), bit_depth=16)
    hashes = {p: sha(p) for p in root.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    code, _, stderr = run(
        capsys, "restore", root, "-o", out, "--recursive", "--suffix", "_r", "--model", model, *FAST, "--quiet"
    )
    assert code == 0, stderr
    written = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.suffix != ".json" and p.suffix != ".jsonl"
    )
    assert written == ["box1/folder2/scan00_r.png", "box1/folder2/scan01_r.png", "deep_r.tif", "top_r.png"]
    assert io.read_image(out / "deep_r.tif").bit_depth == 16  # lossless input keeps its format; JPEG -> PNG
    assert {p: sha(p) for p in hashes} == hashes


@pytest.mark.parametrize("where", ["same", "inside"])
def test_output_folder_in_the_input_tree_is_a_usage_error(tmp_path, model, capsys, where):
    make_folder(tmp_path / "in", 1)
    out = tmp_path / "in" if where == "same" else tmp_path / "in" / "restored"
    code, _, stderr = run(capsys, "restore", tmp_path / "in", "-o", out, "--model", model, *FAST, "--quiet")
    assert code == 2 and "inside the input folder" in stderr
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["scan00.png"]


def test_two_inputs_with_one_output_name_both_fail_clearly(tmp_path):
    (tmp_path / "in").mkdir()
    io.write_image(tmp_path / "in" / "a.png", natural_crop(8, 8))
    io.write_image(tmp_path / "in" / "a.jpg", natural_crop(8, 8))
    items = plan_batch(tmp_path / "in", tmp_path / "out")
    assert [i.action for i in items] == ["error", "error"] and "a.jpg, a.png would all be written" in items[0].note


def test_dry_run_estimates_and_writes_nothing(tmp_path, model, capsys):
    make_folder(tmp_path / "in", 3, size=70)
    code, stdout, _ = run(
        capsys,
        "restore",
        tmp_path / "in",
        "-o",
        tmp_path / "out",
        "--model",
        model,
        *FAST,
        "--dry-run",
        "--progress",
        "json",
        "--max-memory",
        "8GiB",
    )
    assert code == 0 and not (tmp_path / "out").exists()
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [r["action"] for r in rows[:3]] == ["restore"] * 3
    assert rows[0]["tiles"] == 9 and rows[0]["size"] == [70, 70]  # 32-px tiles, stride 24: 3 x 3
    assert rows[0]["peak_bytes"] > BYTES_PER_PIXEL * 70 * 70 and rows[-1]["steps"] == 4


def test_a_fatal_disk_error_stops_the_batch_with_exit_code_3(tmp_path, model, capsys, monkeypatch):
    import errno

    import flowprior.pipeline.write as write_module

    make_folder(tmp_path / "in", 3)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(write_module, "write_array", full_disk)
    code, _, stderr = run(
        capsys, "restore", tmp_path / "in", "-o", tmp_path / "out", "--model", model, *FAST, "--quiet"
    )
    assert code == 3 and "No space left" in stderr and "rerun to resume" in stderr
    end = read_manifest(tmp_path / "out" / "flowprior-manifest.jsonl")[-1]
    assert end["event"] == "run_end" and end["status"] == "fatal" and end["failed"] == 1  # stopped at the first


def test_a_manifest_write_error_mid_batch_stops_it_with_exit_code_3(tmp_path, model, capsys, monkeypatch):
    import builtins
    import errno

    import flowprior.batch.manifest as manifest_module

    make_folder(tmp_path / "in", 4)
    appends = []

    def failing_open(path, mode="r", *args, **kwargs):  # the third append (run_start, file 1, file 2) fails
        if "a" in mode:
            appends.append(path)
            if len(appends) == 3:
                raise OSError(errno.EIO, "Input/output error")
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(manifest_module, "open", failing_open, raising=False)
    code, _, stderr = run(
        capsys, "restore", tmp_path / "in", "-o", tmp_path / "out", "--model", model, *FAST, "--quiet"
    )
    assert code == 3 and "Traceback" not in stderr, stderr
    assert "cannot write the manifest" in stderr and "Input/output error" in stderr and "rerun to resume" in stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["scan00.png", "scan01.png"]  # then stopped
    end = read_manifest(tmp_path / "out" / "flowprior-manifest.jsonl")[-1]
    assert end["event"] == "run_end" and end["status"] == "fatal" and end["exit_code"] == 3


def test_the_manifest_names_the_peak_rss_for_what_it_is_the_process_high_water_mark(tmp_path, model, capsys,
                                                                                       monkeypatch):
    import flowprior.batch.item as item_module

    make_folder(tmp_path / "in", 2)
    restore = item_module.restore_file

    def first_file_is_heavy(source, *args, **kwargs):
        if source.name == "scan00.png":
            ballast = np.ones(100 * 2**20 // 8)  # 100 MiB, touched
            ballast.sum()
        return restore(source, *args, **kwargs)

    monkeypatch.setattr(item_module, "restore_file", first_file_is_heavy)
    argv = ["restore", tmp_path / "in", "-o", tmp_path / "out", "--model", model, *FAST, "--quiet"]
    code, _, stderr = run(capsys, *argv)
    assert code == 0, stderr
    rows = [e for e in read_manifest(tmp_path / "out" / "flowprior-manifest.jsonl") if e.get("status") == "restored"]
    assert [Path(r["input"]).name for r in rows] == ["scan00.png", "scan01.png"]
    assert all("peak_rss" not in r for r in rows)  # not presented as the file's own peak
    heavy, light = rows
    assert light["process_peak_rss"] >= heavy["process_peak_rss"] > 100 * 2**20  # the light file carries the mark


# ------------------------------------------------------------------------------------------------ bad inputs


def test_a_corpus_of_bad_inputs_gives_per_file_errors_or_correct_results(tmp_path, model, capsys):
    src = tmp_path / "in"
    src.mkdir()
    photo = (natural_crop(24, 24)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buffer = bytes_io.BytesIO()
    PILImage.fromarray(photo).save(buffer, "JPEG", quality=90)
    (src / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (src / "zero.png").write_bytes(b"")
    (src / "text.png").write_text("not an image")
    PILImage.fromarray(photo).convert("CMYK").save(src / "cmyk.jpg", quality=95)
    palette = PILImage.fromarray(photo).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=16)
    palette.save(src / "palette.png", transparency=0)
    io.write_image(src / "gray16.tif", natural_crop(20, 30, channels=1), bit_depth=16)
    io.write_image(src / "one.png", torch.full((1, 3, 1, 1), 0.4))
    io.write_image(src / "actually-a-png.jpg", natural_crop(16, 16))
    (src / "gone.png").symlink_to(src / "missing-target.png")
    os.mkfifo(src / "pipe.png")
    if os.geteuid() != 0:  # root reads anything: then the dangling link and the FIFO stand for unreadable files
        (src / "locked.png").write_bytes((src / "one.png").read_bytes())
        (src / "locked.png").chmod(0)
    hashes = {p.name: sha(p) for p in src.iterdir() if p.is_file() and os.access(p, os.R_OK) and p.name != "pipe.png"}
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "restore", src, "-o", out, "--model", model, *FAST, "--quiet")
    assert code == 1
    failed = {line.split(": ")[1].split("/")[-1]: line for line in stderr.splitlines() if "failed: " in line}
    expected_failures = {"truncated.jpg", "zero.png", "text.png", "gone.png", "pipe.png"} | (
        {"locked.png"} if os.geteuid() != 0 else set()
    )
    assert set(failed) == expected_failures
    assert "empty" in failed["zero.png"] and "not a PNG, JPEG" in failed["text.png"]
    assert "not a regular file" in failed["pipe.png"] and "No such file" in failed["gone.png"]
    cmyk = io.read_image(out / "cmyk.png")
    assert cmyk.pixels.shape == (1, 3, 24, 24) and cmyk.icc_profile is None
    pal, pal_in = io.read_image(out / "palette.png"), io.read_image(src / "palette.png")
    assert pal.alpha is not None and torch.equal(pal.alpha, pal_in.alpha)  # transparency passes through
    gray = io.read_image(out / "gray16.tif")
    assert gray.bit_depth == 16 and gray.pixels.shape == (1, 1, 20, 30)
    assert io.read_image(out / "one.png").pixels.shape == (1, 3, 1, 1)
    assert io.read_image(out / "actually-a-png.png").pixels.shape == (1, 3, 16, 16)
    assert {name: sha(src / name) for name in hashes} == hashes
    assert "restored 5" in stdout


# ----------------------------------------------------------------------------------------------- fidelity


def _exif_with_maker_note() -> bytes:
    exif = PILImage.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "ScanCo", "Scanner 9000", "ScanSoft 2.1"
    exif.get_ifd(0x8769)[0x927C] = b"MAKERNOTE\x00\x01\x02offset-sensitive"
    return exif.tobytes()


def test_16_bit_icc_and_exif_survive_byte_for_byte(tmp_path, model):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = _exif_with_maker_note()
    source = io.write_image(tmp_path / "master.png", natural_crop(30, 40), bit_depth=16, icc_profile=icc, exif=exif)
    before = io.read_image(source).exif
    sidecar = restore_file(
        source, tmp_path / "out.png", model=str(model), degradation="noise", steps=4, progress=False, chroma="restore"
    )
    out = io.read_image(tmp_path / "out.png")
    assert out.bit_depth == 16 and out.icc_profile == icc
    assert out.exif[:10] == before[:10] and out.exif[14 : len(before)] == before[14:]  # only the IFD0 pointer moved
    parsed = PILImage.Exif()
    parsed.load(out.exif)
    assert parsed[0x000B] == "flowprior 0.1.0" and parsed[0x0131] == "ScanSoft 2.1"
    assert parsed.get_ifd(0x8769)[0x927C] == b"MAKERNOTE\x00\x01\x02offset-sensitive"
    assert sidecar["input"]["icc_sha256"] == hashlib.sha256(icc).hexdigest() and sidecar["output"]["bit_depth"] == 16


def test_16_bit_colour_tiff_keeps_the_text_tags_and_says_what_it_leaves_out(tmp_path, model):
    exif = PILImage.Exif()
    exif.load(_exif_with_maker_note())
    exif[0x013B], exif[0x8298], exif[0x010E] = "A. Archivist", "(c) The Archive", "Box 3, plate 7"
    source = io.write_image(tmp_path / "m.png", natural_crop(20, 20), bit_depth=16, exif=exif.tobytes(),
                            dpi=(600, 600))
    sidecar = restore_file(source, tmp_path / "o.tif", model=str(model), degradation="noise", steps=4, progress=False)
    written = PILImage.open(tmp_path / "o.tif")
    assert io.read_image(tmp_path / "o.tif").bit_depth == 16 and round(written.info["dpi"][0]) == 600
    tags = written.getexif()
    assert (tags[0x013B], tags[0x8298], tags[0x010E]) == ("A. Archivist", "(c) The Archive", "Box 3, plate 7")
    assert tags[0x010F] == "ScanCo" and tags[0x0131] == "ScanSoft 2.1"
    assert any("not written: Exif IFD (1 tags)" in w for w in sidecar["warnings"])


def test_gray_stays_gray_and_alpha_passes_through_unchanged(tmp_path, model):
    alpha = torch.linspace(0, 1, 24 * 24).reshape(1, 1, 24, 24)
    rgba = io.write_image(tmp_path / "rgba.png", natural_crop(24, 24), alpha=alpha)
    gray = io.write_image(tmp_path / "gray.png", natural_crop(24, 24, channels=1))
    restore_file(rgba, tmp_path / "o1.png", model=str(model), degradation="noise", steps=4, progress=False)
    restore_file(gray, tmp_path / "o2.png", model=str(model), degradation="noise", steps=4, progress=False)
    assert torch.equal(io.read_image(tmp_path / "o1.png").alpha, io.read_image(rgba).alpha)
    assert PILImage.open(tmp_path / "o2.png").mode == "L"


def test_toned_prints_keep_their_chroma(tmp_path, model):
    toned = sepia(natural_crop(48, 48, top=200, left=200))
    source = io.write_image(tmp_path / "sepia.png", toned)
    sidecar = restore_file(source, tmp_path / "o.png", model=str(model), degradation="noise", steps=6, progress=False)
    assert sidecar["colour"]["mode"] == "keep"
    before, after = io.read_image(source).pixels, io.read_image(tmp_path / "o.png").pixels
    assert not torch.equal(before, after)  # the luminance was restored
    unclipped = ((after > 1 / 255) & (after < 254 / 255)).all(1)[0]
    chroma_error = (rgb_to_ycbcr(after) - rgb_to_ycbcr(before))[0, 1:, unclipped].abs().max()
    assert chroma_error < 1.5 / 255  # only the 8-bit rounding of the output


def test_toned_detection_separates_sepia_from_colour_photos():
    from skimage import data

    photo = torch.from_numpy(data.astronaut().astype(np.float32) / 255).permute(2, 0, 1)[None]
    noisy_sepia = sepia(photo) + 10 / 255 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))
    assert chroma_residual(photo) > 0.05 and chroma_residual(noisy_sepia.clamp(0, 1)) < 0.008
    ycc = rgb_to_ycbcr(photo)
    assert torch.allclose(ycbcr_to_rgb(ycc), photo.double(), atol=1e-12)


def test_strength_0_returns_the_input_and_compare_shows_both(tmp_path, model, capsys):
    source = io.write_image(tmp_path / "in.png", natural_crop(20, 30))
    code, _, stderr = run(
        capsys,
        "restore",
        source,
        "-o",
        tmp_path / "o.png",
        "--model",
        model,
        *FAST,
        "--strength",
        "0",
        "--compare",
        "--quiet",
    )
    assert code == 0, stderr
    assert torch.equal(io.read_image(tmp_path / "o.png").pixels, io.read_image(source).pixels)
    review = io.read_image(tmp_path / "o.compare.png").pixels
    assert review.shape == (1, 3, 20, 68) and torch.equal(review[..., :30], io.read_image(source).pixels)
    code, _, stderr = run(
        capsys, "restore", source, "-o", tmp_path / "x.png", "--model", model, *FAST, "--strength", "1.5", "--quiet"
    )
    assert code == 2 and "[0, 1]" in stderr


def test_lossy_output_only_when_asked(tmp_path, model, capsys):
    make_folder(tmp_path / "in", 1)
    code, _, _ = run(capsys, "restore", tmp_path / "in", "-o", tmp_path / "a", "--model", model, *FAST, "--quiet")
    assert code == 0 and (tmp_path / "a" / "scan00.png").is_file()
    code, _, _ = run(
        capsys,
        "restore",
        tmp_path / "in",
        "-o",
        tmp_path / "b",
        "--model",
        model,
        *FAST,
        "--quiet",
        "--format",
        "jpg",
        "--quality",
        "80",
    )
    assert code == 0 and io.read_image(tmp_path / "b" / "scan00.jpg").format == "JPEG"
    code, _, stderr = run(
        capsys,
        "restore",
        tmp_path / "in",
        "-o",
        tmp_path / "c",
        "--model",
        model,
        *FAST,
        "--quiet",
        "--quality",
        "80",
    )
    assert code == 2 and "lossy" in stderr


# --------------------------------------------------------------------------------------- provenance + replay


def test_params_from_replays_a_run_bit_for_bit(tmp_path, model, capsys):
    source = io.write_image(tmp_path / "in.png", natural_crop(40, 40))
    mask = torch.ones(1, 1, 40, 40)
    mask[..., 10:18, 12:20] = 0
    io.write_image(tmp_path / "mask.png", mask)
    code, _, stderr = run(
        capsys,
        "restore",
        source,
        "-o",
        tmp_path / "first.png",
        "--model",
        model,
        "-d",
        "jpeg+noise+mask",
        "--mask",
        tmp_path / "mask.png",
        "--set",
        "jpeg.quality=40",
        "--seed",
        "7",
        "--steps",
        "5",
        "--strength",
        "0.8",
        "--chroma",
        "keep",
        "--quiet",
    )
    assert code == 0, stderr
    record = json.loads((tmp_path / "first.png.json").read_text())
    for key in (
        "input",
        "output",
        "model",
        "recipe",
        "degradation",
        "params",
        "tiles",
        "timings_s",
        "libraries",
        "warnings",
        "event",
        "runtime",
    ):
        assert key in record
    assert record["recipe"]["seed"] == 7 and record["input"]["sha256"] == sha(source)
    code, _, stderr = run(
        capsys,
        "restore",
        source,
        "-o",
        tmp_path / "again.png",
        "--params-from",
        tmp_path / "first.png.json",
        "--quiet",
    )
    assert code == 0, stderr
    assert sha(tmp_path / "again.png") == sha(tmp_path / "first.png")
    code, _, stderr = run(
        capsys,
        "restore",
        source,
        "-o",
        tmp_path / "x.png",
        "--params-from",
        tmp_path / "first.png.json",
        "--seed",
        "3",
        "--quiet",
    )
    assert code == 2 and "cannot be combined with seed" in stderr


@pytest.mark.parametrize("option", [["--seed", "0"], ["--strength", "0"]])
@pytest.mark.parametrize("target", ["file", "folder"])
def test_params_from_refuses_zero_valued_options_too(tmp_path, model, capsys, option, target):
    make_folder(tmp_path / "in", 1)
    source = tmp_path / "in" / "scan00.png"
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "first.png", "--model", model, *FAST, "--quiet")
    assert code == 0, stderr
    replay = ["--params-from", tmp_path / "first.png.json", *option, "--quiet"]
    output = tmp_path / ("again.png" if target == "file" else "again")
    code, _, stderr = run(capsys, "restore", source if target == "file" else tmp_path / "in", "-o", output, *replay)
    assert code == 2 and f"cannot be combined with {option[0][2:]}" in stderr
    assert not output.exists()


def test_options_override_the_recipe_in_one_place():
    from flowprior.restore_file import resolve_recipe

    recipe, replay = resolve_recipe(None, recipe=RestoreRecipe(seed=5, degradation="jpeg"), seed=0,
                                    settings={"solver.weight": 3}, operator_params={"noise.sigma": 2},
                                    degradation="noise")
    assert replay is None and recipe.seed == 0 and recipe.degradation == "noise" and recipe.solver.weight == 3
    assert recipe.params == {"noise.sigma": 2}
    with pytest.raises(TypeError, match="unknown"):
        resolve_recipe(None, sead=1)


# ---------------------------------------------------------------------------------------------------- memory


def test_memory_budget_picks_max_tiles_or_refuses():
    recipe, cost = (
        RestoreRecipe(degradation="noise"),
        TileCost(bytes_per_tile=10_000_000, seconds_per_tile_step=0.01),
    )
    budget, baseline = 1_000_000_000, 300_000_000
    plan = plan_memory(640, 640, recipe, 64, cost, budget=budget, baseline=baseline)
    assert plan["streamed"] and plan["output"] == "memory" and plan["estimated_peak"] <= budget
    more = estimate(640, 640, recipe, 64, cost, baseline, plan["max_tiles"] + 1)
    assert more["estimated_peak"] > budget  # the most tiles that fit
    assert plan["image_bytes"] == 6 * 640 * 640  # 8-bit RGB samples in and out; no float image
    # the whole-image path (holes to fill, a learned warm start) holds BYTES_PER_PIXEL per pixel while solving
    whole = plan_memory(640, 640, recipe, 64, cost, budget, baseline, ImageBuffers(streamed=False))
    room = budget - baseline - (BYTES_PER_PIXEL + 6) * 640 * 640 - FIXED_BYTES
    assert whole["max_tiles"] == room // 10_000_000
    # 50 megapixels in 4 GiB: streamed it fits; the whole-image path is refused with what it needs
    default = TileCost(bytes_per_tile=12_400_000, seconds_per_tile_step=0.01)
    big = plan_memory(5774, 8660, recipe, 64, default, parse_size("4GiB"), 500_000_000)
    assert big["max_tiles"] > 100 and big["estimated_peak"] <= parse_size("4GiB")
    with pytest.raises(ValueError, match="needs about"):
        plan_memory(5774, 8660, recipe, 64, default, parse_size("4GiB"), 500_000_000, ImageBuffers(streamed=False))
    # when even one tile does not fit beside the input and output samples, the output samples go to a file
    heavy, rgb16 = TileCost(bytes_per_tile=900_000_000, seconds_per_tile_step=1.0), image_buffers(3, False, 16, ".tif")
    assert rgb16 == ImageBuffers(decode=12, input=6, output=6, review=0, encode=0)  # TIFF 16-bit RGB: streamed
    need = estimate(5774, 8660, recipe, 64, heavy, 300_000_000, 1, rgb16)["estimated_peak"]
    squeezed = plan_memory(5774, 8660, recipe, 64, heavy, need - 1, 300_000_000, rgb16)
    assert squeezed["output"] == "disk" and squeezed["max_tiles"] == 1 and squeezed["estimated_peak"] < need
    assert parse_size("4GiB") == 4 * 1024**3 and parse_size("1.5 GB") == 1_500_000_000
    with pytest.raises(ValueError, match="4GiB"):
        parse_size("four gigs")


def test_a_learned_warm_start_adds_its_network_activations_bounded_by_blocks():
    from flowprior.batch.memory import NETWORK_BYTES_PER_PIXEL
    from flowprior.warmstart import LearnedInitializer

    cost, whole = TileCost(bytes_per_tile=1_000_000, seconds_per_tile_step=0.01), ImageBuffers(streamed=False)
    learned, filled = RestoreRecipe(degradation="jpeg", init="irflow"), RestoreRecipe(degradation="jpeg")
    small = estimate(500, 500, learned, 64, cost, 0, 1, whole)
    assert small["network_bytes"] == NETWORK_BYTES_PER_PIXEL * 500 * 500  # the whole image in one pass
    assert estimate(500, 500, filled, 64, cost, 0, 1, whole)["network_bytes"] == 0
    # the warm phase (~425 MB) outweighs one tile's solve here, so it sets the peak
    assert small["estimated_peak"] == small["image_bytes"] + small["network_bytes"] + FIXED_BYTES
    side = LearnedInitializer.block + 2 * LearnedInitializer.halo
    for height, width in [(4000, 6000), (600, 9000)]:  # blocks with their halo, clipped to the image
        big = estimate(height, width, learned, 64, cost, 0, 1, whole)
        assert big["network_bytes"] == NETWORK_BYTES_PER_PIXEL * min(height, side) * min(width, side)
    with pytest.raises(ValueError, match="for the warm-start network"):
        plan_memory(500, 500, learned, 64, cost, 300_000_000, 0, whole)
    assert plan_memory(500, 500, filled, 64, cost, 300_000_000, 0, whole)["max_tiles"] >= 1


def test_an_output_kept_on_disk_gives_the_same_bytes(tmp_path, model):
    from flowprior.batch.memory import estimate as estimate_peak

    source = io.write_image(tmp_path / "in.png", natural_crop(60, 90), bit_depth=16)
    seen = {}

    def planner(output):
        def plan(height, width, recipe, prior, buffers):
            seen[output] = buffers
            cost = TileCost(1, 0.0)
            return estimate_peak(height, width, recipe, prior.patch_size, cost, 0, 5, buffers, output == "disk")
        return plan

    for output in ("memory", "disk"):
        restore_file(source, tmp_path / f"{output}.png", model=str(model), degradation="noise", steps=4,
                     progress=False, compare=True, memory_planner=planner(output))
    assert sha(tmp_path / "memory.png") == sha(tmp_path / "disk.png")
    assert sha(tmp_path / "memory.compare.png") == sha(tmp_path / "disk.compare.png")
    assert seen["disk"].input == 6 and seen["disk"].review == 3  # 16-bit RGB; the review's 8-bit copy
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # the sample file is gone


def test_max_memory_is_recorded_in_the_sidecar(tmp_path, model, capsys):
    source = io.write_image(tmp_path / "in.png", natural_crop(70, 70))
    code, _, stderr = run(
        capsys,
        "restore",
        source,
        "-o",
        tmp_path / "o.png",
        "--model",
        model,
        *FAST,
        "--max-memory",
        "16GiB",
        "--quiet",
    )
    assert code == 0, stderr
    record = json.loads((tmp_path / "o.png.json").read_text())
    assert record["memory"]["max_tiles"] == record["recipe"]["tiling"]["max_tiles"] == 9


# ------------------------------------------------------------------------------------------------------- Ray


@pytest.mark.slow  # starts a local Ray instance (~10 s)
def test_ray_backend_has_the_local_semantics(tmp_path, model, capsys):
    ray = pytest.importorskip("ray")
    make_folder(tmp_path / "in", 4)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    argv = ["restore", tmp_path / "in", "--model", model, *FAST, "--quiet"]
    ray.init(num_cpus=2, object_store_memory=80_000_000, include_dashboard=False, log_to_driver=False)
    try:
        code, stdout, stderr = run(capsys, *argv, "-o", tmp_path / "ray", "--backend", "ray")
        assert code == 1 and "restored 4" in stdout and "broken.png" in stderr
        code, stdout, _ = run(capsys, *argv, "-o", tmp_path / "ray", "--backend", "ray")
        assert code == 1 and "restored 0, skipped 4" in stdout  # resume: nothing redone
    finally:
        ray.shutdown()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Ray workers run one thread; float reductions depend on the count
    try:
        code, _, _ = run(capsys, *argv, "-o", tmp_path / "local")
    finally:
        torch.set_num_threads(threads)
    assert code == 1
    for name in (f"scan{i:02d}.png" for i in range(4)):  # same bytes as the local backend (1 thread each)
        assert sha(tmp_path / "ray" / name) == sha(tmp_path / "local" / name)
    events = read_manifest(tmp_path / "ray" / "flowprior-manifest.jsonl")
    assert all(e["pid"] != os.getpid() for e in events if e.get("status") == "restored")  # done by Ray workers
    statuses = Counter(e["status"] for e in events if e["event"] == "file")
    assert statuses == {"restored": 4, "skipped": 4, "failed": 2}
