"""Pixels to patches: smart resize goldens, RGB conversion, merge-window order, video timing."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from minivlm.processing import (
    group_times,
    load_rgb,
    normalised_tensor,
    pad_to_temporal_patch,
    patch_positions,
    patchify,
    sample_frame_indices,
    smart_resize,
    timestamp_text,
)

QWEN_BOUNDS = {"factor": 28, "min_pixels": 56 * 56, "max_pixels": 448 * 448}  # patch 14, merge 2


@pytest.mark.parametrize("size, expected", [
    ((224, 224), (224, 224)),      # already multiples of 28
    ((100, 150), (112, 140)),      # odd sizes to the nearest multiples of 28
    ((10, 10), (56, 56)),          # too small: scaled up to min_pixels
    ((1000, 1000), (448, 448)),    # huge: scaled down to max_pixels
    ((2000, 1000), (616, 308)),    # scaled down, aspect ratio kept
    ((4000, 20), (4004, 28)),      # aspect ratio exactly 200 is allowed
])
def test_smart_resize_goldens(size, expected):
    assert smart_resize(*size, **QWEN_BOUNDS) == expected


def test_smart_resize_invariants():
    for height in range(5, 700, 37):
        for width in range(5, 900, 53):
            out_h, out_w = smart_resize(height, width, **QWEN_BOUNDS)
            assert out_h % 28 == 0 and out_w % 28 == 0
            assert QWEN_BOUNDS["min_pixels"] <= out_h * out_w <= QWEN_BOUNDS["max_pixels"]


def test_smart_resize_rejects_extreme_shapes():
    with pytest.raises(ValueError, match="aspect ratio 201.0, above 200"):
        smart_resize(4020, 20, **QWEN_BOUNDS)
    with pytest.raises(ValueError, match="raise max_pixels to at least 43904"):
        smart_resize(4000, 20, factor=28, min_pixels=784, max_pixels=784 * 16)
    with pytest.raises(ValueError, match="empty"):
        smart_resize(0, 10, **QWEN_BOUNDS)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_load_rgb_reads_datasets_image_dicts(tmp_path):
    path = tmp_path / "red.png"
    path.write_bytes(png_bytes(Image.new("RGB", (3, 2), (255, 0, 0))))
    for record in ({"bytes": None, "path": str(path)}, {"bytes": path.read_bytes(), "path": None}):
        assert np.asarray(load_rgb(record))[1, 2].tolist() == [255, 0, 0]


def test_load_rgb_converts_modes():
    gray = load_rgb(Image.new("L", (3, 2), 77))
    assert gray.mode == "RGB" and np.asarray(gray)[0, 0].tolist() == [77, 77, 77]
    transparent = Image.new("RGBA", (2, 2), (255, 0, 0, 0))
    assert np.asarray(load_rgb(transparent))[0, 0].tolist() == [255, 255, 255]  # onto white
    half = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    assert np.asarray(load_rgb(half))[0, 0].tolist() == [127, 127, 127]
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert np.asarray(load_rgb(palette))[0, 0].tolist() == [10, 200, 30]
    palette.info["transparency"] = 1
    assert np.asarray(load_rgb(palette))[0, 0].tolist() == [255, 255, 255]
    assert np.asarray(load_rgb(png_bytes(Image.new("RGB", (4, 3), (1, 2, 3)))))[2, 3].tolist() == [1, 2, 3]
    assert load_rgb(np.zeros((5, 4, 1), dtype=np.uint8)).size == (4, 5)


@pytest.mark.parametrize("bad, message", [
    (b"", "empty"),
    (b"definitely not an image", "could not be decoded"),
    (png_bytes(Image.new("RGB", (64, 64), (9, 9, 9)))[:60], "could not be decoded"),  # truncated
    ({"bytes": None, "path": None}, "empty"),
    (Image.new("RGB", (0, 0)), "empty"),
    (np.zeros((4, 4, 2), dtype=np.uint8), "channels"),
    (np.zeros((4, 4, 3), dtype=np.float32), "uint8"),
    (Image.fromarray(np.zeros((4, 4), dtype=np.uint16)), "not 8-bit"),
    ("image.png", "unsupported image type"),
])
def test_load_rgb_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        load_rgb(bad)


def test_normalised_tensor_resizes_and_scales():
    image = Image.new("RGB", (10, 6), (255, 0, 255))
    pixels = normalised_tensor(image, height=4, width=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert pixels.shape == (3, 4, 8) and pixels.dtype == torch.float32
    assert torch.allclose(pixels[0], torch.ones(4, 8)) and torch.allclose(pixels[1], -torch.ones(4, 8))


def test_patch_positions_golden_merge_window_order():
    golden = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3),
              (2, 0), (2, 1), (3, 0), (3, 1), (2, 2), (2, 3), (3, 2), (3, 3)]
    assert [tuple(p) for p in patch_positions(1, 4, 4, 2).tolist()] == golden
    assert patch_positions(2, 4, 4, 2).tolist() == [list(p) for p in golden] * 2


def test_patchify_matches_conv3d():
    """Patch rows times the flattened Conv3d weight equal the Conv3d output at their coordinates."""
    torch.manual_seed(0)
    patch, temporal, merge = 2, 2, 2
    frames = torch.randn(3, 3, 8, 12)  # 3 frames -> 2 groups (last frame repeated), 4x6 patches
    rows, (grid_t, grid_h, grid_w) = patchify(frames, patch, temporal, merge)
    assert rows.shape == (2 * 4 * 6, 3 * temporal * patch * patch) and (grid_t, grid_h, grid_w) == (2, 4, 6)
    conv = torch.nn.Conv3d(3, 5, kernel_size=(temporal, patch, patch), stride=(temporal, patch, patch), bias=False)
    video = pad_to_temporal_patch(frames, temporal).permute(1, 0, 2, 3).unsqueeze(0)  # (1, C, T, H, W)
    expected = conv(video)[0].permute(1, 2, 3, 0)  # (grid_t, grid_h, grid_w, D)
    coords = patch_positions(grid_t, grid_h, grid_w, merge)
    group = torch.arange(grid_t).repeat_interleave(grid_h * grid_w)
    reference = expected[group, coords[:, 0], coords[:, 1]]
    assert torch.allclose(rows @ conv.weight.flatten(1).T, reference, atol=1e-5)


def test_pad_to_temporal_patch_repeats_last_frame():
    image = torch.randn(1, 3, 4, 4)
    assert torch.equal(pad_to_temporal_patch(image, 2), image.expand(2, -1, -1, -1))
    video = torch.arange(3.0).view(3, 1, 1, 1)
    assert pad_to_temporal_patch(video, 2).flatten().tolist() == [0.0, 1.0, 2.0, 2.0]


def test_patchify_rejects_unaligned_frames():
    with pytest.raises(ValueError, match="smart_resize"):
        patchify(torch.zeros(1, 3, 30, 28), 14, 2, 2)


@pytest.mark.parametrize("frames, source, target, indices, fps", [
    (4, 2.0, 2.0, [0, 1, 2, 3], 2.0),        # same rate: all frames
    (6, 1.0, 2.0, [0, 1, 2, 3, 4, 5], 1.0),  # slower than the target: never invent frames
    (8, 4.0, 2.0, [0, 2, 4, 6], 2.0),
    (30, 30.0, 2.0, [0, 15], 2.0),
    (10, 5.0, 2.0, [0, 2, 5, 7], 2.0),       # non-integer step 2.5
    (3, 30.0, 2.0, [0], 2.0),                # shorter than one target period: one frame
])
def test_sample_frame_indices(frames, source, target, indices, fps):
    assert sample_frame_indices(frames, source, target) == (indices, fps)


def test_timestamp_text_golden():
    # 4 frames at 2 fps: times 0, 0.5, 1, 1.5 -> groups at 0.25 and 1.25 s, written with one decimal.
    assert [timestamp_text(t) for t in group_times([0.0, 0.5, 1.0, 1.5], 2)] == ["<0.2 seconds>", "<1.2 seconds>"]
    # An odd count repeats the last frame: the third group is (2.0, 2.0).
    assert group_times([0.0, 0.5, 1.0, 1.5, 2.0], 2) == [0.25, 1.25, 2.0]
    assert timestamp_text(12.75) == "<12.8 seconds>"
