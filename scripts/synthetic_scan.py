"""Write a large synthetic scan (smooth colour fields + texture + grain) for memory and speed measurements.

    python scripts/synthetic_scan.py scan50.png                      # 8660 x 5774 RGB 8-bit, 50 megapixels
    python scripts/synthetic_scan.py wide.png --width 8660 --height 600 --bit-depth 16

The image is computed and PNG-encoded a block of rows at a time (flowprior.io.write_array), so writing it needs
little memory; the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse

import numpy as np

from flowprior.io import LazyRows, write_array


def scan_rows(width: int, bit_depth: int = 8, seed: int = 0):
    """``rows(y0, y1)`` -> (y1 - y0, width, 3) uint samples of the synthetic scan."""
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, size=(4, 3)).astype(np.float32)
    top = float(2**bit_depth - 1)
    x = np.arange(width, dtype=np.float32)[None, :, None]

    def rows(y0: int, y1: int) -> np.ndarray:
        y = np.arange(y0, y1, dtype=np.float32)[:, None, None]
        smooth = (0.5 + 0.18 * np.sin(2 * np.pi * (x / 1700 + y / 2300) + phases[0])
                  + 0.12 * np.sin(2 * np.pi * x / 530 + phases[1]) * np.cos(2 * np.pi * y / 410 + phases[2]))
        texture = 0.05 * np.sin(2 * np.pi * (0.11 * x + 0.07 * y) + phases[3]) * np.sin(2 * np.pi * y / 97)
        grain = np.random.default_rng([seed, y0]).normal(0.0, 3 / 255, size=(y1 - y0, width, 3))
        return np.rint(np.clip(smooth + texture + grain, 0, 1) * top).astype(np.uint16 if bit_depth == 16 else np.uint8)

    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help=".png or .tif")
    parser.add_argument("--width", type=int, default=8660)
    parser.add_argument("--height", type=int, default=5774)
    parser.add_argument("--bit-depth", type=int, choices=(8, 16), default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dtype = np.uint16 if args.bit_depth == 16 else np.uint8
    rows = scan_rows(args.width, args.bit_depth, args.seed)
    write_array(args.output, LazyRows((args.height, args.width, 3), dtype, rows))


if __name__ == "__main__":
    main()
