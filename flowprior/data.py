"""Training data: the natural-photo pool, a fast random patch sampler, and MNIST.

The photo pool is the folder written by ``scripts/fetch_training_data.py`` (``data/train/<source>/...``).
Images are held in memory as uint8 ``(H, W, 3)`` arrays; patches are cut with numpy slicing and
returned as float tensors ``(B, 3, P, P)`` in [0, 1]. All randomness comes from the caller's
``torch.Generator``, so a seed replays the same batches.

Conventions:

* Lossy sources (JPEG, WebP) are box-downscaled x0.5 on load, which averages away most block and
  ringing artifacts -- a prior that must *remove* compression artifacts should not learn them.
  ``krank`` and ``enlightenment`` photos are clean enough to keep at full size (``shared/DATA.md``).
* Validation photos are chosen by a hash of their path relative to the pool root
  (:func:`split_pool`), so the split is stable when images are added and never overlaps training.
* Flat patches (sky, wallpaper gradients) are down-weighted, not banned: a candidate whose pixel
  standard deviation is below ``flat_threshold`` is kept with probability ``flat_keep_prob``. The
  prior must still learn that smooth regions are likely, just not spend most of its capacity there.
* By default an image is drawn in proportion to its area, so the 54 full-size ``krank`` and ``enlightenment``
  photos give 70 % of all patches; ``image_weighting="sqrt"`` spreads them over the pool's 442 photos.
* ``keep_train`` filters the training photos; recipes use it to drop photos whose own grain is above
  ``data.max_noise``: a denoiser taught that grain is signal learns to keep some of the noise it is given.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".ppm")
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp")
FULL_SIZE_SOURCES = ("krank", "enlightenment")
IMAGE_WEIGHTINGS = {"area": 1.0, "sqrt": 0.5, "uniform": 0.0}  # name: exponent on an image's crop positions
DEFAULT_MNIST_PATH = Path("data/mnist/mnist.pkl.gz")


# ---------------------------------------------------------------- photo pool


def list_photos(root: str | Path) -> list[Path]:
    """All image files under ``root`` (recursive), sorted by their relative path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"photo pool {root} does not exist; run scripts/fetch_training_data.py")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_rgb8(path: str | Path) -> np.ndarray:
    """Decode an image file to a C-contiguous uint8 ``(H, W, 3)`` array.

    EXIF orientation is applied; grayscale is replicated to three channels; alpha is composited
    over black (premultiplied), which keeps only what the photo shows; 16-bit data is reduced to 8.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            arr = np.clip(np.round(arr / (65535.0 if arr.max() > 255 else 255.0) * 255.0), 0, 255)
            return np.ascontiguousarray(np.repeat(arr.astype(np.uint8)[..., None], 3, axis=2))
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = np.asarray(im.convert("RGBA"), dtype=np.uint16)
            rgb = (rgba[..., :3] * rgba[..., 3:] + 127) // 255
            return np.ascontiguousarray(rgb.astype(np.uint8))
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def box_downscale2(img: np.ndarray) -> np.ndarray:
    """Halve an ``(H, W, C)`` uint8 image with a 2x2 box filter (odd last row/column dropped)."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    blocks = img[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).astype(np.uint16)
    return ((blocks.sum(axis=(1, 3)) + 2) // 4).astype(np.uint8)


def _is_full_size(path: Path, root: Path | None) -> bool:
    rel = path.relative_to(root) if root is not None and path.is_relative_to(root) else path
    return any(part in FULL_SIZE_SOURCES for part in rel.parts[:-1])


def load_photo(path: str | Path, downscale_lossy: bool = True, root: str | Path | None = None) -> np.ndarray:
    """Load one pool photo, box-downscaled x0.5 if it is lossy and not from a full-size source."""
    path = Path(path)
    img = read_rgb8(path)
    lossy = path.suffix.lower() in LOSSY_EXTENSIONS
    if downscale_lossy and lossy and not _is_full_size(path, Path(root) if root is not None else None):
        img = box_downscale2(img)
    return img


def load_photo_pool(root: str | Path, downscale_lossy: bool = True, max_images: int | None = None,
                    paths: Sequence[str | Path] | None = None) -> list[np.ndarray]:
    """Load the photo pool into memory.

    Args:
        root: Pool folder (``data/train``); sources are its first-level subfolders.
        downscale_lossy: Box-downscale JPEG/WebP x0.5 except for :data:`FULL_SIZE_SOURCES`.
        max_images: Keep at most this many, chosen in :func:`split_pool` hash order (spread over
            sources rather than the alphabetically first folder).
        paths: Load these files instead of listing ``root`` (e.g. one side of :func:`split_pool`).

    Returns:
        uint8 ``(H, W, 3)`` arrays in the order of ``paths`` (or the listing).

    Example:
        >>> train, val = split_pool(list_photos("data/train"), 0.05)  # doctest: +SKIP
        >>> images = load_photo_pool("data/train", paths=train)  # doctest: +SKIP
    """
    root = Path(root)
    files = [Path(p) for p in paths] if paths is not None else list_photos(root)
    if max_images is not None:
        keep = set(sorted(files, key=lambda p: _unit_hash(_rel_name(p, root), 0))[:max_images])
        files = [p for p in files if p in keep]
    return [load_photo(p, downscale_lossy, root) for p in files]


def _rel_name(path: str | Path, root: Path | None) -> str:
    p = Path(path)
    if root is not None and p.is_relative_to(root):
        p = p.relative_to(root)
    return p.as_posix()


def _unit_hash(name: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_pool(paths: Sequence[str | Path], val_fraction: float = 0.05, seed: int = 0,
               root: str | Path | None = None) -> tuple[list[Path], list[Path]]:
    """Deterministic train/validation split by a hash of each file name.

    A file goes to validation when ``sha256(f"{seed}:{name}")`` mapped to [0, 1) is below
    ``val_fraction``; ``name`` is the path relative to ``root`` (or as given), so the assignment of
    one file never depends on the others. If that selects nothing while ``val_fraction > 0`` and
    there are at least two files, the file with the smallest hash is used, so validation is never
    silently empty.

    Args:
        paths: Image files.
        val_fraction: Expected share of validation files, in [0, 1).
        seed: Changes the split.
        root: Strip this prefix before hashing (makes the split independent of where the pool lives).

    Returns:
        ``(train, val)``: disjoint lists, each in the input order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root_p = Path(root) if root is not None else None
    files = [Path(p) for p in paths]
    h = [_unit_hash(_rel_name(p, root_p), seed) for p in files]
    is_val = [v < val_fraction for v in h]
    if val_fraction > 0 and not any(is_val) and len(files) >= 2:
        is_val[int(np.argmin(h))] = True
    return ([p for p, v in zip(files, is_val) if not v], [p for p, v in zip(files, is_val) if v])


# ---------------------------------------------------------------- patch sampler


def _dihedral(patch: np.ndarray, k: int) -> np.ndarray:
    """Element ``k`` in 0..7 of the dihedral group: ``k % 4`` quarter turns, then a flip if ``k >= 4``."""
    out = np.rot90(patch, k % 4, axes=(0, 1))
    return out[:, ::-1] if k >= 4 else out


class PatchSampler:
    """Random ``P x P`` patches from in-memory uint8 images.

    An image is drawn with probability proportional to its number of valid crop positions (about
    its area) raised to the ``image_weighting`` exponent, then a uniform crop position. A candidate
    whose pixel standard deviation (in [0, 1] units, measured on a stride-2 grid for speed) is
    below ``flat_threshold`` is kept only with
    probability ``flat_keep_prob``. With ``augment`` each patch gets a uniformly random element of the
    8-element dihedral group (flips and 90-degree rotations), which permutes pixels without changing
    their values.

    Args:
        images: uint8 ``(H, W, 3)`` arrays (``(H, W)`` grayscale and ``(H, W, 1)`` are broadcast to 3
            channels); images smaller than the patch are skipped.
        patch_size: Side ``P`` of the square patches.
        flat_threshold: Standard deviation below which a patch counts as flat; 0 disables the test.
        flat_keep_prob: Probability of keeping a flat candidate.
        image_weighting: ``"area"`` (every crop position equally likely), ``"sqrt"`` or ``"uniform"`` (every
            image equally likely), see :data:`IMAGE_WEIGHTINGS`.
        augment: Apply random dihedral transforms.
        channels: 3 for RGB; 1 returns the channel mean (for grayscale priors).

    Example:
        >>> imgs = [np.random.default_rng(0).integers(0, 256, (80, 90, 3), dtype=np.uint8)]
        >>> s = PatchSampler(imgs, patch_size=16)
        >>> s.sample(4, torch.Generator().manual_seed(0)).shape
        torch.Size([4, 3, 16, 16])
    """

    def __init__(self, images: Sequence[np.ndarray], patch_size: int = 64, flat_threshold: float = 0.02,
                 flat_keep_prob: float = 0.1, augment: bool = True, channels: int = 3,
                 image_weighting: str = "area") -> None:
        if patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        if not 0.0 <= flat_keep_prob <= 1.0:
            raise ValueError(f"flat_keep_prob must be in [0, 1], got {flat_keep_prob}")
        if image_weighting not in IMAGE_WEIGHTINGS:
            raise ValueError(f"image_weighting must be one of {sorted(IMAGE_WEIGHTINGS)}, got {image_weighting!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.patch_size = patch_size
        self.flat_threshold = float(flat_threshold)
        self.flat_keep_prob = float(flat_keep_prob)
        self.augment = augment
        self.channels = channels
        self.images: list[np.ndarray] = []
        for img in images:
            img = np.asarray(img)
            if img.dtype != np.uint8:
                raise TypeError(f"images must be uint8, got {img.dtype}")
            if img.ndim == 2:
                img = img[..., None]
            if img.shape[2] == 1:
                img = np.repeat(img, 3, axis=2)
            if img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"images must be (H, W, 3), got {img.shape}")
            if img.shape[0] >= patch_size and img.shape[1] >= patch_size:
                self.images.append(np.ascontiguousarray(img))
        if not self.images:
            raise ValueError(f"no image is at least {patch_size}x{patch_size}")
        self._span = np.array([[im.shape[0] - patch_size + 1, im.shape[1] - patch_size + 1]
                               for im in self.images], dtype=np.int64)
        positions = torch.tensor(self._span.prod(axis=1), dtype=torch.float64)
        self._weights = positions ** IMAGE_WEIGHTINGS[image_weighting]
        self.stats = {"candidates": 0, "flat_rejected": 0}

    def __len__(self) -> int:
        return len(self.images)

    def _candidates(self, n: int, generator: torch.Generator) -> tuple[np.ndarray, ...]:
        idx = torch.multinomial(self._weights, n, replacement=True, generator=generator).numpy()
        u = torch.rand(n, 3, generator=generator, dtype=torch.float64).numpy()
        span = self._span[idx]
        ys = np.minimum((u[:, 0] * span[:, 0]).astype(np.int64), span[:, 0] - 1)
        xs = np.minimum((u[:, 1] * span[:, 1]).astype(np.int64), span[:, 1] - 1)
        return idx, ys, xs, u[:, 2]

    def sample_uint8(self, batch: int, generator: torch.Generator) -> np.ndarray:
        """Like :meth:`sample` but returns the raw uint8 ``(B, P, P, 3)`` patches."""
        p = self.patch_size
        out = np.empty((batch, p, p, 3), dtype=np.uint8)
        flips = torch.randint(0, 8, (batch,), generator=generator).numpy() if self.augment else None
        filled = 0
        # Thresholds on the stride-2 grid, squared and in 0-255 units, so the test is one var().
        var_thr = (self.flat_threshold * 255.0) ** 2
        while filled < batch:
            # Over-draw so that one round nearly always suffices even when most candidates are flat.
            idx, ys, xs, keep_u = self._candidates(max(8, 4 * (batch - filled)), generator)
            for i, y, x, ku in zip(idx, ys, xs, keep_u):
                patch = self.images[i][y:y + p, x:x + p]
                self.stats["candidates"] += 1
                if var_thr > 0 and ku >= self.flat_keep_prob and patch[::2, ::2].var() < var_thr:
                    self.stats["flat_rejected"] += 1
                    continue
                out[filled] = _dihedral(patch, int(flips[filled])) if flips is not None else patch
                filled += 1
                if filled == batch:
                    break
        return out

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``batch`` patches.

        Args:
            batch: Number of patches ``B``.
            generator: Source of all randomness; the same state gives the same patches.

        Returns:
            Float32 tensor ``(B, C, P, P)`` in [0, 1] (``C`` = ``channels``).
        """
        x = torch.from_numpy(self.sample_uint8(batch, generator)).permute(0, 3, 1, 2).float().div_(255.0)
        if self.channels == 1:
            x = x.mean(dim=1, keepdim=True)
        return x.contiguous()


def photo_sources(root: str | Path, patch_size: int = 64, val_fraction: float = 0.05, seed: int = 0,
                  downscale_lossy: bool = True, max_images: int | None = None, image_weighting: str = "area",
                  keep_train: Callable[[np.ndarray], bool] | None = None, val_image_weighting: str = "area",
                  **sampler_kwargs) -> tuple[PatchSampler, PatchSampler]:
    """Train and validation patch samplers over a photo pool, split by :func:`split_pool`.

    ``max_images``, ``image_weighting`` and ``keep_train`` (a predicate on each ``(H, W, 3)`` uint8 photo; the
    recipe's ``data.max_noise`` passes one built on :func:`flowprior.estimate.noise.photo_grain`) apply to the
    training images only: validation keeps its full hash-selected set, drawn by area unless
    ``val_image_weighting`` says otherwise, so held-out scores stay comparable across recipes.
    Validation patches are not augmented. Only when the split leaves validation empty
    (``val_fraction=0`` or a single photo) does validation fall back to the first training image.

    Returns:
        ``(train, val)`` :class:`PatchSampler` objects; ``sample(batch, generator)`` gives
        ``(B, 3, patch_size, patch_size)`` floats in [0, 1].
    """
    root = Path(root)
    train_paths, val_paths = split_pool(list_photos(root), val_fraction, seed, root=root)
    train = load_photo_pool(root, downscale_lossy, max_images, paths=train_paths)
    val = load_photo_pool(root, downscale_lossy, paths=val_paths) if val_paths else train[:1]
    if keep_train is not None:
        train = [image for image in train if keep_train(image)]
    return (PatchSampler(train, patch_size, augment=True, image_weighting=image_weighting, **sampler_kwargs),
            PatchSampler(val, patch_size, augment=False, image_weighting=val_image_weighting, **sampler_kwargs))


# ---------------------------------------------------------------- MNIST


@dataclass(frozen=True)
class DigitSplits:
    """MNIST as float tensors ``(N, 1, S, S)`` in [0, 1] plus int64 labels ``(N,)`` per split."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def load_mnist(path: str | Path | None = None, pad_to: int | None = None) -> DigitSplits:
    """Load MNIST from the ``mnist.pkl.gz`` extracted by ``fetch_training_data.py --mnist``.

    The pickle holds the classic 50,000 / 10,000 / 10,000 train/val/test split as flattened float32
    arrays of ``k / 256``; they are mapped back to the integers ``k`` and then to ``k / 255`` so that
    255 is white, like every other image in this project.

    Args:
        path: The ``.pkl.gz`` file or its folder; default ``data/mnist/mnist.pkl.gz``.
        pad_to: Zero-pad the 28x28 digits symmetrically to this size (32 makes them divisible by
            2**L for a Glow with up to L = 5 levels).

    Returns:
        :class:`DigitSplits`.
    """
    p = Path(path) if path is not None else DEFAULT_MNIST_PATH
    if p.is_dir():
        p = p / "mnist.pkl.gz"
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found; run scripts/fetch_training_data.py --sources '' --mnist {p.parent}")
    with gzip.open(p, "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    if pad_to is not None and pad_to < 28:
        raise ValueError(f"pad_to must be >= 28, got {pad_to}")

    def convert(split) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = split
        k = np.rint(np.asarray(x, dtype=np.float64) * 256.0).clip(0, 255)
        img = torch.from_numpy(k.reshape(-1, 1, 28, 28) / 255.0).float()
        if pad_to is not None and pad_to > 28:
            lo = (pad_to - 28) // 2
            img = torch.nn.functional.pad(img, (lo, pad_to - 28 - lo, lo, pad_to - 28 - lo))
        return img, torch.as_tensor(np.asarray(y), dtype=torch.int64)

    return DigitSplits(*(convert(s) for s in raw))


class TensorSource:
    """Uniform random draws (with replacement) from a fixed image tensor ``(N, C, H, W)``."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``batch`` images drawn uniformly with replacement, shape ``(B, C, H, W)``."""
        idx = torch.randint(0, self.images.shape[0], (batch,), generator=generator)
        return self.images[idx].clone()


def mnist_sources(root: str | Path | None = None, val_fraction: float | None = None,
                  pad_to: int = 32) -> tuple[TensorSource, TensorSource]:
    """Train and validation sources over MNIST digits padded to ``pad_to``.

    MNIST ships its own validation split, so ``val_fraction`` is accepted for interface symmetry
    with :func:`photo_sources` and ignored. ``root`` is the file or its folder (see :func:`load_mnist`).
    """
    splits = load_mnist(root, pad_to=pad_to)
    return TensorSource(splits.train[0]), TensorSource(splits.val[0])
