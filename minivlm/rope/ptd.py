"""PTD, Per-Token Distance: how unevenly a text token sees the tokens of an image.

Circle-RoPE (arXiv 2505.16416, section 3.1) measures cross-modal positional bias as follows. For
each text token x, take its Euclidean distance in position-id space to every image token,
``d(x, i)``; the bias is how far those distances spread around their mean for that text token,
averaged over all (x, i) pairs (SPEC.md section 5):

    PTD = mean_{x, i} | d(x, i) - mean_i d(x, i) |

PTD is 0 when every text token is equidistant from all image tokens (Circle-RoPE's ring); it is
large under flattened 1D positions, where the first image token is much nearer than the last.
For the 1D design pass a single row (``ids[:1]``): a 1D position is one number.
"""

from __future__ import annotations

import torch


def ptd(ids: torch.Tensor, is_vision: torch.Tensor) -> float:
    """Per-Token Distance of a sequence.

    Args:
        ids: position ids ``(D, L)`` (D = 3 for 3D designs, 1 for 1D).
        is_vision: bool ``(L,)``, True at image tokens; the rest are text tokens.

    Returns:
        The PTD as a float.

    Raises:
        ValueError: mismatched shapes, or no text or no vision token (PTD is undefined).
    """
    is_vision = torch.as_tensor(is_vision, dtype=torch.bool)
    if ids.dim() != 2 or is_vision.shape != (ids.shape[1],):
        raise ValueError(
            f"ptd needs ids (D, L) and is_vision (L,), got {tuple(ids.shape)} and {tuple(is_vision.shape)}."
        )
    if is_vision.all() or not is_vision.any():
        raise ValueError("ptd needs at least one text and one vision token.")
    points = ids.double().T  # (L, D)
    distances = torch.cdist(points[~is_vision], points[is_vision])  # (text, vision)
    spread = (distances - distances.mean(dim=1, keepdim=True)).abs()
    return float(spread.mean())
