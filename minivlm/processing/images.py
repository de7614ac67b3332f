"""Image decoding, conversion to RGB, resizing and normalisation into a float tensor.

Inputs come from many places (PIL images from the synthetic tasks, encoded bytes from parquet
shards, arrays from video decoders) and in many modes (grayscale, palette, with alpha). Everything
is brought to 8-bit RGB first, so the patch embedding always sees three channels; transparent
pixels are composited onto white rather than dropped, because a dropped alpha channel reveals
whatever colour the transparent pixels happen to store.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from minivlm.schema import ImageInput

# Modes whose pixels are not 8-bit: their range is unknown, so we refuse instead of clipping.
HIGH_BIT_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _decode(data: bytes | bytearray) -> Image.Image:
    if len(data) == 0:
        raise ValueError("image data is empty (0 bytes); check the sample's image source.")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # Decode now: a truncated file fails here, not later in a worker.
    # Pillow reports corrupt bytes in many ways (OSError, SyntaxError for a broken PNG chunk,
    # ValueError, struct.error, EOFError...): whatever it raises while decoding, the data is bad.
    except Exception as error:
        raise ValueError(f"image data could not be decoded ({type(error).__name__}: {error}); the file is corrupt "
                         "or not an image.") from None
    return image


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        raise ValueError(f"image array has dtype {array.dtype}; pass uint8 values in 0..255.")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(array, mode="L")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(array, mode="RGB" if array.shape[2] == 3 else "RGBA")
    raise ValueError(
        f"image array has shape {tuple(array.shape)}; expected (H, W) or (H, W, C) with C in 1, 3, 4 "
        "channels (grayscale, RGB, RGBA)."
    )


def _read_file(path: object) -> bytes:
    """The bytes of an image dict's ``path`` (none: no bytes, reported as an empty image)."""
    if not path:
        return b""
    if not isinstance(path, (str, Path)) or not Path(path).is_file():
        raise ValueError(f"image path {path!r:.120} is not a file; give the image's bytes or an existing path.")
    return Path(path).read_bytes()


def load_rgb(image: ImageInput) -> Image.Image:
    """An 8-bit RGB PIL image from any supported input (see :data:`ImageInput`).

    Raises:
        ValueError: empty or corrupt data, an empty image, a wrong channel count, a high bit depth.
    """
    if isinstance(image, dict):
        image = image.get("bytes") or _read_file(image.get("path"))
    if isinstance(image, (bytes, bytearray)):
        image = _decode(image)
    elif isinstance(image, np.ndarray):
        image = _from_array(image)
    elif not isinstance(image, Image.Image):
        raise ValueError(
            f"unsupported image type {type(image).__name__}; pass a PIL image, encoded bytes or a uint8 array."
        )
    if image.width < 1 or image.height < 1:
        raise ValueError(f"image is empty ({image.width}x{image.height} pixels).")
    if image.mode in HIGH_BIT_DEPTH_MODES:
        raise ValueError(f"image mode {image.mode!r} is not 8-bit; convert it to 8-bit (L or RGB) first.")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def normalised_tensor(
    image: Image.Image, height: int, width: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Resize an RGB image to ``height x width`` (bicubic) and normalise it: FloatTensor ``(3, H, W)``.

    ``(pixel / 255 - mean) / std`` per channel.
    """
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (pixels - mean_t) / std_t
