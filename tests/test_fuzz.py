"""Property-based fault tests (Hypothesis): random shapes, sizes, aspect ratios, frame counts, types
and corrupt bytes into the processor, the collator and the rope library. Each input gets a clear
``ValueError`` or a valid output, never another exception."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from minivlm.data.collate import Collator
from minivlm.processing import Processor
from minivlm.rope import (ALLOCATIONS, DESIGNS, TextSegment, VisionSegment, make_schedule, position_ids,
                          rotary_cos_sin, sequence_length)
from minivlm.schema import IGNORE_INDEX
from minivlm.tokenizer import IMAGE_PAD, ROLES, SPECIAL_TOKENS

# No example database: the suite leaves no files behind; every run draws fresh examples.
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SMALL_PROCESSOR = {"patch_size": 8, "min_pixels": 256, "max_pixels": 64 * 64, "max_seq_len": 256}


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 90).save(buffer, format="PNG")
    return buffer.getvalue()


def mostly(valid: st.SearchStrategy, faulty: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` seven times in eight, else ``faulty``: with a handful of parts per input, valid
    outputs get checked about as often as errors."""
    return st.integers(0, 7).flatmap(lambda pick: faulty if pick == 0 else valid)


sides = st.integers(1, 500)
good_images = st.builds(lambda w, h, mode: Image.new(mode, (w, h), 90), st.integers(8, 200), st.integers(8, 200),
                        st.sampled_from(["RGB", "L", "RGBA", "P"]))


@st.composite
def faulty_images(draw) -> object:
    """Anything else an image slot may hold: odd modes and extreme aspect ratios, arrays of any shape
    and dtype, encoded bytes cut or flipped anywhere, dicts, junk."""
    width, height = draw(sides), draw(sides)
    kind = draw(st.sampled_from(["pil", "array", "bytes", "corrupt", "dict", "junk"]))
    if kind == "pil":
        return Image.new(draw(st.sampled_from(["RGB", "LA", "1", "CMYK", "I;16", "F"])), (width, height))
    if kind == "array":
        shape = draw(st.lists(st.integers(0, 6), min_size=1, max_size=4))
        return np.zeros(shape, dtype=draw(st.sampled_from([np.uint8, np.uint16, np.float32, np.bool_])))
    data = png(width, height, draw(st.sampled_from(["RGB", "L", "RGBA"])))
    if kind == "corrupt":
        data = bytearray(data)
        data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(data[:draw(st.integers(0, len(data)))])
    if kind == "dict":
        return {"bytes": draw(st.sampled_from([data, b"", None])), "path": draw(st.sampled_from([None, "", 3, "/no/such.png"]))}
    return data if kind == "bytes" else draw(st.one_of(st.none(), st.integers(), st.text(max_size=5)))


@st.composite
def faulty_videos(draw) -> object:
    size = (draw(st.integers(1, 80)), draw(st.integers(1, 80)))
    frames = [Image.new("RGB", size if draw(st.booleans()) or i == 0 else (size[0] + 1, size[1]))
              for i in range(draw(st.integers(0, 6)))]
    fps = draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 60), st.text(max_size=3)))
    return {"frames": frames, "fps": fps} if draw(st.booleans()) else draw(st.sampled_from([{}, [], "video"]))


good_videos = st.builds(lambda count, w, h, fps: {"frames": [Image.new("RGB", (w, h))] * count, "fps": fps},
                        st.integers(1, 7), st.integers(16, 64), st.integers(16, 64), st.floats(0.5, 30))
texts = mostly(st.text(max_size=40), st.sampled_from(SPECIAL_TOKENS).map(lambda token: f"look {token} here"))
faulty_parts = st.sampled_from([{"type": "audio"}, {"type": "text"}, {"type": "text", "text": 3}, {}, "text", 5])


@st.composite
def samples(draw) -> object:
    """A conversation about some images and a video, any part of it possibly broken."""
    pictures = draw(st.lists(mostly(good_images, faulty_images()), max_size=2))
    clips = draw(st.lists(mostly(good_videos, faulty_videos()), max_size=1))
    media = [{"type": "image"}] * len(pictures) + [{"type": "video"}] * len(clips)
    media = draw(mostly(st.permutations(media), st.lists(st.sampled_from([{"type": "image"}, {"type": "video"}]))))
    user = media + [{"type": "text", "text": draw(texts)}] + draw(mostly(st.just([]), st.lists(faulty_parts, max_size=2)))
    turns = [{"role": "user", "content": user}, {"role": "assistant", "content": draw(texts)}]
    turns = draw(mostly(st.just(turns), st.sampled_from([[], turns[:1], turns[::-1], [{"role": "robot", **turns[0]}],
                                                         [{"role": "user", "content": 7}], "hello"])))
    sample = {"id": "fuzz", "images": pictures, "videos": clips, "messages": turns}
    if draw(st.integers(0, 9)) == 0:  # a wrong type anywhere
        key = draw(st.sampled_from(["images", "videos", "messages", "answer", "task"]))
        sample[key] = draw(st.one_of(st.none(), st.integers(), st.text(max_size=3), st.just({"a": 1})))
    return sample


def check_encoded(encoded: dict, max_seq_len: int, prompt_only: bool) -> None:
    """What every consumer of an encoded sample relies on (minivlm.schema.EncodedSample)."""
    length = encoded["input_ids"].numel()
    assert encoded["input_ids"].dtype == torch.long and encoded["labels"].shape == (length,)
    assert 0 < length <= max_seq_len and sequence_length(encoded["segments"]) == length
    trained = int((encoded["labels"] != IGNORE_INDEX).sum())
    assert trained == 0 if prompt_only else trained > 0
    patches = int(encoded["vision_grid"].prod(dim=1).sum())
    assert encoded["pixel_values"].shape[0] == encoded["patch_positions"].shape[0] == patches
    assert torch.isfinite(encoded["pixel_values"]).all()
    merged = sum(s.num_tokens for s in encoded["segments"] if isinstance(s, VisionSegment))
    assert merged * 4 == patches  # one placeholder per 2x2 merge window, never cut


@pytest.fixture(scope="module")
def processor(tokenizer) -> Processor:
    return Processor(tokenizer, **SMALL_PROCESSOR)


@FUZZ
@given(sample=samples(), prompt_only=st.booleans())
def test_processor_gives_a_value_error_or_a_valid_sample(processor, sample, prompt_only):
    try:
        encoded = processor(sample, prompt_only=prompt_only)
    except ValueError as error:
        assert str(error).startswith("sample ")  # names the sample
        event(f"ValueError: {error.reason}")  # pytest --hypothesis-show-statistics counts the outcomes
        return
    event("valid sample")
    check_encoded(encoded, processor.max_seq_len, prompt_only)


def test_a_png_whose_chunk_is_broken_is_a_value_error(processor):
    # Pillow raises SyntaxError ("broken PNG file"), not OSError, for a chunk whose bytes were flipped:
    # a case the random draws above rarely hit, kept as an example.
    data = bytearray(png(40, 30, "RGB"))
    data[36] ^= 0x24
    sample = {"id": "broken", "images": [bytes(data[:96])], "answer": "a",
              "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]},
                           {"role": "assistant", "content": "a"}]}
    with pytest.raises(ValueError, match=r"sample 'broken': image data could not be decoded \(SyntaxError"):
        processor(sample)


@st.composite
def encodable(draw) -> dict:
    """Well-formed samples of random sizes: the collator's input."""
    pictures = [Image.new("RGB", (draw(st.integers(1, 120)), draw(st.integers(1, 120))))
                for _ in range(draw(st.integers(0, 2)))]
    question = " ".join(["where"] * draw(st.integers(0, 30)))
    content = [{"type": "image"} for _ in pictures] + [{"type": "text", "text": question}]
    return {"id": f"s{draw(st.integers(0, 99))}", "task": "fuzz", "answer": "B2", "images": pictures,
            "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "B2"}]}


SCHEDULE = make_schedule(["mrope", "circle"], 2)


@FUZZ
@given(batch=st.lists(encodable(), min_size=1, max_size=5), mode=st.sampled_from(["pad", "pack"]),
       left=st.booleans(), max_tokens=mostly(st.integers(120, 400), st.integers(-1, 120)), corrupt=st.integers(0, 7))
def test_collator_gives_a_value_error_or_a_valid_batch(processor, tokenizer, batch, mode, left, max_tokens, corrupt):
    encoded = [processor(sample) for sample in batch]
    if corrupt == 0:  # segments that do not describe the tokens
        encoded[0] = {**encoded[0], "segments": encoded[0]["segments"][1:]}
    try:
        collator = Collator(SCHEDULE, tokenizer.pad_id, max_tokens, mode=mode, padding_side="left" if left else "right")
        out = collator(encoded)
    except ValueError:
        event("ValueError")
        return
    event("valid batch")
    lengths = [sample["input_ids"].numel() for sample in encoded]
    rows, width = out["input_ids"].shape
    assert (out["input_ids"] != tokenizer.pad_id).sum() == sum(lengths) and width <= max_tokens
    assert rows == len(encoded) if mode == "pad" else rows <= len(encoded)
    assert (out["labels"] != IGNORE_INDEX).sum() == sum(int((s["labels"] != IGNORE_INDEX).sum()) for s in encoded)
    assert sorted(out["sample_ids"]) == sorted(s["id"] for s in encoded)
    assert all(ids.shape == (rows, 3, width) and torch.isfinite(ids).all() for ids in out["position_ids"].values())
    patches = sum(s["pixel_values"].shape[0] for s in encoded)
    assert (out["pixel_values"].shape[0] if out["pixel_values"] is not None else 0) == patches
    placeholders = int((out["input_ids"] == tokenizer.token_id(IMAGE_PAD)).sum())
    assert placeholders * 4 == patches and 0 < out["packing_efficiency"] <= 1


counts = st.integers(1, 6)
odd = st.integers(-2, 0) | st.floats(allow_nan=True, allow_infinity=True) | st.just("3")
segments = st.lists(mostly(
    st.builds(TextSegment, counts) | st.builds(VisionSegment, counts, counts, counts, st.none() | st.floats(0.1, 4)),
    st.builds(TextSegment, odd) | st.builds(VisionSegment, counts | odd, counts | odd, counts | odd, odd),
), min_size=1, max_size=4)
design_options = {
    "rope1d": st.just({}),
    "mrope": st.fixed_dictionaries({}, optional={"tokens_per_second": st.none() | st.integers(-1, 4)}),
    "circle": st.fixed_dictionaries({}, optional={"alpha": mostly(st.floats(0, 1), st.floats(-0.5, 1.5)),
                                                  "temporal_stride": st.floats(0, 3),
                                                  "radius": st.floats(0.5, 20) | st.sampled_from(["auto", "auto-k", "x", -1.0])}),
    "videorope": st.fixed_dictionaries({}, optional={"delta": st.floats(0, 4)}),
}


@FUZZ
@given(data=st.data(), design=st.sampled_from(DESIGNS),
       head_dim=mostly(st.sampled_from([12, 16, 32, 64, 128]), st.integers(-2, 40)),
       allocation=mostly(st.sampled_from(ALLOCATIONS), st.just("spiral")),
       sections=mostly(st.none(), st.tuples(st.integers(-1, 12), st.integers(-1, 12), st.integers(-1, 12))),
       theta=mostly(st.sampled_from([100.0, 1e4, 1e6]), st.sampled_from([0.0, -1.0, math.inf, math.nan])))
def test_rope_gives_a_value_error_or_valid_ids_and_tables(data, design, head_dim, allocation, sections, theta):
    try:
        segs = data.draw(segments)
        options = data.draw(design_options[design])
        ids = position_ids(segs, design, **options)
        cos, sin = rotary_cos_sin(ids, head_dim, theta, allocation, sections)
    except ValueError:
        event("ValueError")
        return
    event("valid ids and tables")
    length = sequence_length(segs)
    assert ids.shape == (3, length) and ids.dtype == torch.float32 and torch.isfinite(ids).all()
    assert cos.shape == sin.shape == (length, head_dim)
    assert torch.isfinite(cos).all() and torch.allclose(cos**2 + sin**2, torch.ones(()), atol=1e-5)
    assert not math.isnan(float(ids.sum()))
