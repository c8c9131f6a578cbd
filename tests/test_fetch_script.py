"""Offline tests of scripts/fetch_training_data.py: manifest, de-duplication, idempotence, failures."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load_script(name: str):
    """A script of scripts/ as the module ``name`` (what ``python scripts/NAME.py`` runs, where a sibling script
    imports as a plain module because Python puts the script's folder first on sys.path)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_load_script("unpack_formats")  # what fetch_training_data imports
ft = _load_script("fetch_training_data")


def _png(w: int, h: int, seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _fake_source(calls: list[int], version: str = "1.0-1") -> ft.Source:
    def extract(root: Path):
        calls.append(1)
        yield ft.Item("a.png", _png(12, 7, 0), "usr/share/x/a.png", "CC0-1.0")
        yield ft.Item("sub/b.png", _png(5, 9, 1), "usr/share/x/b.png", "public-domain", {"copyright": "Z"})
        yield ft.Item("dup.png", _png(12, 7, 0), "usr/share/x/dup.png", "CC0-1.0")  # same bytes as a.png

    return ft.Source("fakepkg", version, "deb", extract)


def test_fetch_writes_manifest_skips_duplicates_and_is_idempotent(tmp_path, monkeypatch):
    archive = tmp_path / "fake.deb"
    archive.write_bytes(b"")
    monkeypatch.setattr(ft, "download", lambda src, cache: archive)
    monkeypatch.setattr(ft, "unpack", lambda a, dest: dest)
    out, cache, calls = tmp_path / "train", tmp_path / "cache", []
    cache.mkdir()

    status = ft.fetch_sources(out, cache, {"fake": _fake_source(calls)})
    assert status == {"fake": "fetched 2 files"}
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert sorted(files) == ["fake/a.png", "fake/sub/b.png"]
    b = files["fake/sub/b.png"]
    assert (b["width"], b["height"], b["licence"], b["package"], b["version"]) == (5, 9, "public-domain",
                                                                                  "fakepkg", "1.0-1")
    assert b["attribution"] == {"copyright": "Z"} and b["path_in_package"] == "usr/share/x/b.png"
    assert b["sha256"] == ft.sha256((out / "fake/sub/b.png").read_bytes())
    assert "fake  " in ft.summarize(out) and "2 files" in ft.summarize(out)

    # Second run: nothing to do, the extractor is not even called.
    assert ft.fetch_sources(out, cache, {"fake": _fake_source(calls)}) == {"fake": "up to date (2 files)"}
    assert len(calls) == 1
    # A damaged file or a new pinned version triggers a refetch.
    (out / "fake/a.png").write_bytes(b"corrupt")
    assert ft.fetch_sources(out, cache, {"fake": _fake_source(calls)})["fake"] == "fetched 2 files"
    assert (out / "fake/a.png").read_bytes() == _png(12, 7, 0)
    ft.fetch_sources(out, cache, {"fake": _fake_source(calls, "2.0-1")})
    assert {v["version"] for v in json.loads((out / "manifest.json").read_text())["files"].values()} == {"2.0-1"}


def test_failed_source_is_reported_and_others_continue(tmp_path, monkeypatch):
    def download(src, cache):
        if src.package == "broken":
            raise RuntimeError("E: Version '9' for 'broken' was not found")
        return tmp_path

    monkeypatch.setattr(ft, "download", download)
    monkeypatch.setattr(ft, "unpack", lambda a, dest: dest)
    broken = ft.Source("broken", "9", "deb", lambda root: iter(()))
    status = ft.fetch_sources(tmp_path / "o", tmp_path, {"bad": broken, "fake": _fake_source([])})
    assert status["bad"].startswith("FAILED") and "not found" in status["bad"]
    assert status["fake"] == "fetched 2 files"


def test_cli_rejects_unknown_source(capsys):
    with pytest.raises(SystemExit) as exc:
        ft.main(["--sources", "nope"])
    assert exc.value.code == 2
    assert "unknown source" in capsys.readouterr().err
