"""Tests for flowprior.data (photo pool, patch sampler, split, MNIST) on tiny generated data."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flowprior import data as D
from flowprior.estimate.noise import photo_grain
from flowprior.train_prior import DataSection, make_patch_sources


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _texture(h: int, w: int, lo: int = 0, hi: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi + 1, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- sampler


def test_sampler_shape_range_dtype():
    s = D.PatchSampler([_texture(50, 70, 0, 255)], patch_size=16)
    x = s.sample(5, _gen())
    assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    # Values are exact k/255 quantization levels of the uint8 source.
    k = x * 255
    assert torch.allclose(k, k.round(), atol=1e-4)
    assert D.PatchSampler([_texture(20, 20, 0, 255)], 8, channels=1).sample(3, _gen()).shape == (3, 1, 8, 8)


def test_sampler_deterministic_given_generator():
    imgs = [_texture(40, 60, 0, 255, 1), _texture(70, 30, 0, 255, 2)]
    a = D.PatchSampler(imgs, 12).sample(32, _gen(7))
    b = D.PatchSampler(imgs, 12).sample(32, _gen(7))
    c = D.PatchSampler(imgs, 12).sample(32, _gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_flat_patches_rejected():
    flat = np.full((200, 200, 3), 200, dtype=np.uint8)  # much larger than the textured image
    tex = _texture(24, 24, 0, 100)
    s = D.PatchSampler([flat, tex], 16, flat_threshold=0.02, flat_keep_prob=0.0)
    x = s.sample(64, _gen())
    assert float(x.max()) <= 100 / 255 + 1e-6  # nothing from the flat (value 200) image
    assert s.stats["flat_rejected"] > 0
    assert float(x[:, :, ::2, ::2].flatten(1).std(1).min()) > 0.02


def test_flat_patches_down_weighted_with_keep_prob():
    # Flat image with 3 times the crop positions of the textured one; keep prob 0.5 ->
    # expected flat share 0.75*0.5 / (0.75*0.5 + 0.25) = 0.6.
    p = 8
    flat = np.full((p, p + 2, 3), 200, dtype=np.uint8)  # 3 positions
    tex = _texture(p, p, 0, 100)  # 1 position
    s = D.PatchSampler([flat, tex], p, flat_threshold=0.02, flat_keep_prob=0.5, augment=False)
    x = s.sample(4000, _gen(3))
    share = float((x[:, 0, 0, 0] > 150 / 255).float().mean())
    assert abs(share - 0.6) < 5 * (0.6 * 0.4 / 4000) ** 0.5


def test_image_choice_weighted_by_crop_positions():
    p = 16
    small = _texture(p, p, 0, 100)  # 1 crop position
    big = _texture(p, p + 30, 150, 255)  # 31 crop positions
    s = D.PatchSampler([small, big], p, flat_threshold=0.0, augment=False)
    x = s.sample(3200, _gen(1))
    n_small = int((x.amax(dim=(1, 2, 3)) <= 100 / 255 + 1e-6).sum())
    mean, sd = 3200 / 32, (3200 * (1 / 32) * (31 / 32)) ** 0.5
    assert abs(n_small - mean) < 5 * sd


@pytest.mark.parametrize("weighting,share", [("uniform", 1 / 2), ("sqrt", 1 / (1 + 31 ** 0.5))])
def test_image_weighting_spreads_patches_over_photos(weighting, share):
    p = 16
    small, big = _texture(p, p, 0, 100), _texture(p, p + 30, 150, 255)  # 1 and 31 crop positions
    s = D.PatchSampler([small, big], p, flat_threshold=0.0, augment=False, image_weighting=weighting)
    x = s.sample(3200, _gen(1))
    n_small = int((x.amax(dim=(1, 2, 3)) <= 100 / 255 + 1e-6).sum())
    mean, sd = 3200 * share, (3200 * share * (1 - share)) ** 0.5
    assert abs(n_small - mean) < 5 * sd


def _smooth_photo(h: int, w: int, grain: float, seed: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = 60 + 120 * (x / w) + 40 * np.sin(y / 9.0)
    noisy = base[..., None] + np.random.default_rng(seed).normal(0, grain, (h, w, 3))
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def test_max_noise_drops_grainy_training_photos_only(tmp_path):
    grains = [0.0, 12.0] * 6
    for i, grain in enumerate(grains):
        Image.fromarray(_smooth_photo(64, 64, grain, i)).save(tmp_path / f"im{i:02d}.png")
    tr_paths, va_paths = D.split_pool(D.list_photos(tmp_path), 0.25, 0, root=tmp_path)
    grainy_train = sum(grains[int(Path(q).stem[2:])] > 0 for q in tr_paths)
    assert photo_grain(_smooth_photo(64, 64, 12.0, 0)) > 8  # grainy: above the pool's max_noise of 3
    assert photo_grain(_smooth_photo(64, 64, 0.0, 0)) < 2
    section = DataSection(root=str(tmp_path), patch_size=16, val_fraction=0.25, max_noise=3.0)
    train, val = make_patch_sources(section, seed=0)
    assert len(train) == len(tr_paths) - grainy_train and len(val) == len(va_paths)
    with pytest.raises(ValueError, match="image_weighting"):
        D.PatchSampler([_texture(16, 16)], 16, image_weighting="area2")


def test_augmentation_permutes_pixels_and_covers_dihedral_group():
    p = 6
    img = _texture(p, p, 0, 255, 5)  # one crop position: every patch is a transform of img
    s = D.PatchSampler([img], p, flat_threshold=0.0, augment=True)
    x = s.sample_uint8(400, _gen(2))
    ref = np.sort(img.reshape(-1))
    seen = set()
    for patch in x:
        assert np.array_equal(np.sort(patch.reshape(-1)), ref)
        seen.add(patch.tobytes())
    assert len(seen) == 8  # all 4 rotations x 2 flips of a generic image are distinct


def test_sampler_input_validation():
    with pytest.raises(ValueError, match="at least 32x32"):
        D.PatchSampler([_texture(20, 40)], 32)
    with pytest.raises(TypeError, match="uint8"):
        D.PatchSampler([np.zeros((40, 40, 3), np.float32)], 16)
    gray = np.arange(400, dtype=np.uint8).reshape(20, 20)
    x = D.PatchSampler([gray], 20, flat_threshold=0.0, augment=False).sample(1, _gen())
    assert torch.equal(x[0, 0], x[0, 2]) and torch.equal(x[0, 0], torch.from_numpy(gray).float() / 255)


# ---------------------------------------------------------------- split


def test_split_deterministic_disjoint_and_stable():
    names = [f"src{i % 3}/img{i:04d}.jpg" for i in range(2000)]
    tr, va = D.split_pool(names, 0.05, seed=0)
    tr2, va2 = D.split_pool(names, 0.05, seed=0)
    assert (tr, va) == (tr2, va2)
    assert not set(tr) & set(va) and len(tr) + len(va) == len(names)
    assert 60 <= len(va) <= 140  # binomial(2000, 0.05): mean 100, sd ~9.7
    # Adding files never moves existing ones; a different root prefix gives the same split.
    _, va_more = D.split_pool(names + [f"new/{i}.png" for i in range(100)], 0.05, seed=0)
    assert set(va) <= set(va_more)
    _, va_rooted = D.split_pool([f"/pool/{n}" for n in names], 0.05, seed=0, root="/pool")
    assert [p.as_posix() for p in va_rooted] == [f"/pool/{p.as_posix()}" for p in va]
    assert D.split_pool(names, 0.05, seed=1)[1] != va
    assert len(D.split_pool(["a.png", "b.png"], 0.05)[1]) == 1  # never silently empty
    with pytest.raises(ValueError, match="val_fraction"):
        D.split_pool(names, 1.0)


# ---------------------------------------------------------------- pool loading


def test_box_downscale2():
    img = np.array([[0, 2, 9], [4, 6, 9], [9, 9, 9]], dtype=np.uint8)[..., None]
    assert D.box_downscale2(img).tolist() == [[[3]]]
    up = np.repeat(np.repeat(_texture(5, 7), 2, 0), 2, 1)
    assert np.array_equal(D.box_downscale2(up), _texture(5, 7))


def test_load_photo_pool_rules(tmp_path):
    rgb = _texture(40, 60, 0, 255)
    (tmp_path / "krank").mkdir()
    (tmp_path / "other").mkdir()
    Image.fromarray(rgb).save(tmp_path / "krank" / "a.jpg", quality=95)
    Image.fromarray(rgb).save(tmp_path / "other" / "b.jpg", quality=95)
    Image.fromarray(rgb).save(tmp_path / "other" / "c.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "other" / "d.png")  # grayscale
    rgba = np.dstack([rgb, np.full((40, 60), 255, np.uint8)])
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "other" / "e.png")
    (tmp_path / "other" / "notes.txt").write_text("not an image")
    paths = D.list_photos(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "krank/a.jpg", "other/b.jpg", "other/c.png", "other/d.png", "other/e.png"]
    imgs = D.load_photo_pool(tmp_path)
    assert [im.shape for im in imgs] == [(40, 60, 3), (20, 30, 3), (40, 60, 3), (40, 60, 3), (40, 60, 3)]
    assert all(im.dtype == np.uint8 for im in imgs)
    assert np.array_equal(imgs[2], rgb)
    assert np.array_equal(imgs[3], np.repeat(rgb[..., :1], 3, axis=2))
    assert imgs[4][0, 0].tolist() == [0, 0, 0] and np.array_equal(imgs[4][1:], rgb[1:])
    assert [im.shape for im in D.load_photo_pool(tmp_path, downscale_lossy=False)][1] == (40, 60, 3)
    assert len(D.load_photo_pool(tmp_path, max_images=2)) == 2


def test_photo_sources_split(tmp_path):
    for i in range(12):
        Image.fromarray(_texture(40, 40, 0, 255, i)).save(tmp_path / f"im{i:02d}.png")
    train, val = D.photo_sources(tmp_path, patch_size=16, val_fraction=0.25, seed=0)
    tr_paths, va_paths = D.split_pool(D.list_photos(tmp_path), 0.25, 0, root=tmp_path)
    assert len(train) == len(tr_paths) and len(val) == len(va_paths) >= 1
    assert not val.augment and train.augment
    assert val.sample(4, _gen()).shape == (4, 3, 16, 16)


# ---------------------------------------------------------------- MNIST


def _fake_mnist(path, n=(6, 3, 2)):
    rng = np.random.default_rng(0)
    splits = []
    for m in n:
        k = rng.integers(0, 256, (m, 784))
        splits.append(((k / 256).astype(np.float32), rng.integers(0, 10, m)))
    with gzip.open(path, "wb") as f:
        pickle.dump(tuple(splits), f)
    return splits


def test_load_mnist_values_and_padding(tmp_path):
    raw = _fake_mnist(tmp_path / "mnist.pkl.gz")
    d = D.load_mnist(tmp_path)
    assert d.train[0].shape == (6, 1, 28, 28) and d.val[0].shape == (3, 1, 28, 28)
    assert d.test[1].dtype == torch.int64 and d.test[1].tolist() == raw[2][1].tolist()
    k = np.rint(raw[0][0] * 256).reshape(6, 1, 28, 28)
    assert torch.allclose(d.train[0], torch.from_numpy(k / 255).float())
    p = D.load_mnist(tmp_path / "mnist.pkl.gz", pad_to=32)
    assert p.train[0].shape == (6, 1, 32, 32)
    assert torch.equal(p.train[0][:, :, 2:30, 2:30], d.train[0])
    assert float(p.train[0][:, :, :2].abs().sum() + p.train[0][:, :, :, 30:].abs().sum()) == 0.0
    tr, va = D.mnist_sources(tmp_path)
    assert tr.sample(5, _gen()).shape == (5, 1, 32, 32) and len(va) == 3
    with pytest.raises(FileNotFoundError, match="--mnist"):
        D.load_mnist(tmp_path / "missing")
