"""Cut an image of any size into square, overlapping, block-aligned tiles, and blend them back.

The prior models patches of a fixed size P, so the solver restores an image by cutting it into P×P tiles,
solving all tiles as one batch and blending the results back (Helminger et al. §5 use a margin M = 4 px, i.e.
an overlap of 2M = 8 px; larger overlaps trade compute for smoother seams).

Conventions:

* Tile origins lie on a regular stride ``tile - overlap`` and are all multiples of ``align``, so a JPEG data
  term inside a tile compares the same 8×8 (or 16×16 with 4:2:0 chroma) blocks as the real codec did. The
  stride is therefore rounded *down* to a multiple of ``align``, which can make the effective overlap larger
  than asked; :attr:`TileGrid.overlap` is the effective one.
* The image is padded on the bottom/right only (origins stay on the image's own block grid), up to the last
  tile flush with the padded border and to at least one tile. Padding reflects the image, falling back to
  replicate on an axis where the image is too short to reflect (pad ≥ size, e.g. a 5×7 image in a 64×64 tile).
* Tiles of batch item ``b`` are contiguous: tile ``t`` of item ``b`` is at index ``b * num_tiles + t``, and
  ``t`` runs row-major over the origins.
* Blending uses a separable window (raised cosine or linear ramp across the overlap, flat 1 elsewhere, flat
  also on tile sides that face the image border); each axis profile is divided by the accumulated profiles along
  that axis, in float64, so the weights of all tiles covering a pixel sum to 1 and blending the tiles of an image
  gives the image back.
* Streaming: :func:`split_range` cuts a range of tiles from only the rows it covers (of a tensor, or of an image
  read by rows), and :class:`Blender` blends tiles as they arrive, handing each image row out once final; the
  values do not depend on how the tiles were chunked.

* Super-resolution: the tiles lie on the clean (larger) grid; :func:`observed_grid` gives the matching tiles of
  the low-resolution observation.

Modules: ``grid`` (:func:`make_grid`, :func:`observed_grid`, :func:`iter_chunks`), ``cut`` (:func:`split_range`,
:func:`split_params_range`), ``blend`` (:class:`Blender`).

Example:
    >>> import torch
    >>> grid = make_grid(100, 70, tile=64, overlap=8, align=8)
    >>> grid.origins, (grid.padded_height, grid.padded_width)
    (((0, 0), (0, 56), (56, 0), (56, 56)), (120, 120))
    >>> x = torch.rand(2, 3, 100, 70, dtype=torch.float64)
    >>> tiles = split_range(x, grid, 0, 2 * grid.num_tiles)  # (2 * 4, 3, 64, 64)
    >>> out = torch.empty_like(x)
    >>> Blender(grid, lambda b, y0, y1, rows: out[b : b + 1, :, y0:y1].copy_(rows)).add(tiles)
    >>> bool((out - x).abs().max() < 1e-12)
    True
"""
from flowprior.tiling.blend import Blender
from flowprior.tiling.cut import RowReader, padded_rows, split_params_range, split_range
from flowprior.tiling.grid import WINDOWS, TileGrid, iter_chunks, make_grid, observed_grid

__all__ = ["WINDOWS", "Blender", "RowReader", "TileGrid", "iter_chunks", "make_grid", "observed_grid",
           "padded_rows", "split_params_range", "split_range"]
