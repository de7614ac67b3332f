"""Circle-RoPE: put every image token on a ring orthogonal to the text direction.

Circle-RoPE (arXiv 2505.16416, section 3) observes that M-RoPE gives text tokens different
distances to different image tokens (a cross-modal positional bias, measured by PTD). It removes
the bias geometrically. In the 3D position space (t, h, w) text tokens advance along the diagonal
(1, 1, 1). Each image token is placed on a circle of radius R that lies in the plane through the
block's start position orthogonal to that diagonal. Every point of such a ring is at the same
distance from any point on the diagonal, so each text token is equidistant from all image tokens
(PTD = 0), while the angle around the ring still encodes where the token was in the image.

The angle mixes two views of the token's place (SPEC.md section 3, "circle"):
- spatial angle (SA): the polar angle of the centred patch coordinate, rescaled to [0, 2 pi];
- grid-index angle (GA): the raster index spread evenly around the circle, 2 pi k / N.
``theta = alpha * SA + (1 - alpha) * GA``. The point ``R (cos theta, sin theta)`` in a 2D plane
is then rotated into the plane orthogonal to (1, 1, 1) with an orthonormal basis
``u = (0, 1, -1)/sqrt2`` (as (t, h, w)) and ``v = (2, -1, -1)/sqrt6``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch


def resolve_radius(radius: float | str, h: int, w: int) -> float:
    """The ring radius R for an ``h x w`` merged grid.

    ``radius`` is a number, ``"auto"`` (R = the largest centred coordinate, max(|x'|, |y'|)) or
    ``"auto-k"`` with a scale k, e.g. ``"auto-2"`` (R = k * max(|x'|, |y'|)).
    """
    if isinstance(radius, str):
        if radius == "auto":
            scale = 1.0
        elif radius.startswith("auto-"):
            try:
                scale = float(radius[len("auto-"):])
            except ValueError:
                scale = -1.0
            if not scale > 0:
                raise ValueError(
                    f"circle radius {radius!r}: the scale after 'auto-' must be a positive number, "
                    "e.g. 'auto-2'."
                )
        else:
            raise ValueError(
                f"circle radius {radius!r} is not valid; use a positive number, 'auto' or 'auto-k' "
                "(k a positive scale, e.g. 'auto-2')."
            )
        return scale * max((w - 1) / 2, (h - 1) / 2)
    if not float(radius) > 0:
        raise ValueError(f"circle radius must be positive, got {radius!r}.")
    return float(radius)


@lru_cache(maxsize=1024)
def _ring(h: int, w: int, alpha: float, radius: float) -> torch.Tensor:
    y, x = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    x_c = (x - (w - 1) / 2).flatten()  # centred coordinates, raster order
    y_c = (y - (h - 1) / 2).flatten()

    angle = torch.atan2(y_c, x_c)
    span = angle.max() - angle.min()
    # A single token (or a degenerate layout) has no angular range to stretch: keep the raw angle.
    spatial = 2 * math.pi * (angle - angle.min()) / span if span > 0 else angle
    grid_index = 2 * math.pi * torch.arange(h * w, dtype=torch.float64) / (h * w)
    theta = alpha * spatial + (1 - alpha) * grid_index

    cx, cy = radius * theta.cos(), radius * theta.sin()
    sqrt2, sqrt6 = math.sqrt(2.0), math.sqrt(6.0)
    dt = 2 * cy / sqrt6
    dh = cx / sqrt2 - cy / sqrt6
    dw = -cx / sqrt2 - cy / sqrt6
    return torch.stack([dt, dh, dw])


def circle_offsets(h: int, w: int, alpha: float = 0.5, radius: float | str = 10.0) -> torch.Tensor:
    """Ring offsets ``(3, h*w)`` float64, rows ``(dt, dh, dw)``, tokens in raster order.

    Each column sums to 0 (it is orthogonal to the text direction) and has norm R.
    Cached per grid shape: images of one size share one ring.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"circle alpha must lie in [0, 1], got {alpha!r}.")
    return _ring(h, w, float(alpha), resolve_radius(radius, h, w))
