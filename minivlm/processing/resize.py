"""Smart resize: the image size a ViT with patch merging can tile exactly (Qwen2-VL).

Qwen2-VL (arXiv 2409.12191, section 2.1, "Naive Dynamic Resolution") feeds images at close to
their native resolution instead of a fixed square: the height and width are rounded to multiples
of ``factor = patch_size * merge`` (so the patches group into whole merge windows), the aspect
ratio is kept, and the pixel count is scaled into ``[min_pixels, max_pixels]`` so that tiny images
still give a few tokens and huge ones do not flood the context (SPEC.md section 6).
"""

from __future__ import annotations

import math

MAX_ASPECT_RATIO = 200


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The ``(height, width)`` an image of the given size is resized to.

    Args:
        height, width: the original size in pixels.
        factor: both outputs are multiples of this (``patch_size * merge``).
        min_pixels, max_pixels: bounds on ``height * width`` of the output.

    Returns:
        ``(height, width)``, multiples of ``factor``, aspect ratio kept up to the rounding.

    Raises:
        ValueError: an empty image, an aspect ratio above 200, or one too elongated to fit
            ``max_pixels`` once its short side is at least ``factor``.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image of size {height}x{width} is empty; every image needs at least one pixel.")
    aspect = max(height, width) / min(height, width)
    if aspect > MAX_ASPECT_RATIO:
        raise ValueError(
            f"image of size {height}x{width} has aspect ratio {aspect:.1f}, above {MAX_ASPECT_RATIO}; "
            "crop or pad it to a less elongated shape."
        )
    # Nearest multiples of factor first; then rescale both sides by one ratio if out of bounds.
    out_h = max(factor, round(height / factor) * factor)
    out_w = max(factor, round(width / factor) * factor)
    if out_h * out_w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        # Floor so the rescaled image stays under the cap.
        out_h = max(factor, math.floor(height / scale / factor) * factor)
        out_w = max(factor, math.floor(width / scale / factor) * factor)
    elif out_h * out_w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        # Ceil so the rescaled image reaches the floor.
        out_h = math.ceil(height * scale / factor) * factor
        out_w = math.ceil(width * scale / factor) * factor
    if out_h * out_w > max_pixels:
        # Only reachable when the short side was raised to factor, or the bounds are too close.
        raise ValueError(
            f"image of size {height}x{width} needs {out_h}x{out_w} = {out_h * out_w} pixels to keep its "
            f"aspect ratio with sides multiple of {factor}, above max_pixels={max_pixels}; raise "
            f"max_pixels to at least {out_h * out_w} or crop the image."
        )
    return out_h, out_w
