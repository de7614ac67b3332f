"""minivlm.processing.Processor: template, placeholder counts, labels, segments, errors."""

import pytest
import torch
from PIL import Image

from minivlm.processing import Processor, SampleError
from minivlm.schema import IGNORE_INDEX
from minivlm.rope import PRESETS, TextSegment, VisionSegment, get_variant
from minivlm.tokenizer import BPETokenizer

ANSWER = "3 red squares"


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    corpus = ["user\nHow many red squares are there?", f"assistant\n{ANSWER}", "system\nBe brief."] * 20
    return BPETokenizer.train(corpus, vocab_size=400)


def image(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), (200, 30, 30))


def chat(*user_parts, answer: str = ANSWER, sample_id: str = "count/train/0/7", images=(), videos=()) -> dict:
    return {
        "id": sample_id, "task": "count", "answer": answer, "meta": {},
        "images": list(images), "videos": list(videos),
        "messages": [
            {"role": "user", "content": list(user_parts)},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
    }


IMAGE, VIDEO = {"type": "image"}, {"type": "video"}
QUESTION = {"type": "text", "text": "How many red squares are there?"}


def test_template_text_and_placeholder_count(tokenizer):
    processor = Processor(tokenizer)  # patch 8, merge 2: one token per 16x16 px
    encoded = processor(chat(IMAGE, QUESTION, images=[image(160, 112)]))
    text = tokenizer.decode(encoded["input_ids"].tolist())
    pads = "<|image_pad|>" * 70  # 160x112 px -> 10x7 merged tokens
    assert text == (f"<|im_start|>user\n<|vision_start|>{pads}<|vision_end|>How many red squares are there?"
                    f"<|im_end|>\n<|im_start|>assistant\n{ANSWER}<|im_end|>")
    assert encoded["vision_grid"].tolist() == [[1, 14, 20]]
    assert encoded["pixel_values"].shape == (280, 3 * 2 * 8 * 8)  # 70 tokens * 2x2 patches
    assert encoded["patch_positions"].shape == (280, 2)
    assert encoded["segments"][1] == VisionSegment(1, 7, 10)
    assert sum(s.num_tokens for s in encoded["segments"]) == encoded["input_ids"].numel()
    assert (encoded["id"], encoded["task"], encoded["answer"]) == ("count/train/0/7", "count", ANSWER)


def test_labels_cover_exactly_the_answer_and_im_end(tokenizer):
    encoded = Processor(tokenizer)(chat(IMAGE, QUESTION, images=[image(64, 64)]))
    labelled = encoded["labels"] != IGNORE_INDEX
    count = len(tokenizer.encode(ANSWER)) + 1
    assert labelled.sum() == count and labelled[-count:].all()  # the last tokens, contiguous
    assert torch.equal(encoded["labels"][labelled], encoded["input_ids"][labelled])
    assert tokenizer.decode(encoded["input_ids"][labelled].tolist()) == ANSWER + "<|im_end|>"


def test_train_user_text_labels_the_question_as_well_but_no_marker_or_placeholder(tokenizer):
    sample = chat(IMAGE, QUESTION, images=[image(64, 64)])
    answer_only, both = Processor(tokenizer)(sample), Processor(tokenizer, train_user_text=True)(sample)
    assert torch.equal(answer_only["input_ids"], both["input_ids"])
    labelled = both["labels"] != IGNORE_INDEX
    assert torch.equal(both["labels"][labelled], both["input_ids"][labelled])
    question = tokenizer.encode(QUESTION["text"])
    assert tokenizer.decode(both["input_ids"][labelled].tolist()) == QUESTION["text"] + ANSWER + "<|im_end|>"
    assert labelled.sum() == (answer_only["labels"] != IGNORE_INDEX).sum() + len(question)
    prompt = Processor(tokenizer, train_user_text=True)(sample, prompt_only=True)
    assert (prompt["labels"] == IGNORE_INDEX).all()  # a prompt trains on nothing
    assert Processor(tokenizer, train_user_text=True).settings()["train_user_text"] is True


def test_prompt_only_is_the_training_prefix(tokenizer):
    processor = Processor(tokenizer)
    sample = chat(IMAGE, QUESTION, images=[image(64, 48)])
    full, prompt = processor(sample), processor(sample, prompt_only=True)
    length = prompt["input_ids"].numel()
    assert torch.equal(prompt["input_ids"], full["input_ids"][:length])
    assert tokenizer.decode(prompt["input_ids"][-3:].tolist()) == "<|im_start|>assistant\n"
    assert (prompt["labels"] == IGNORE_INDEX).all()
    assert tokenizer.decode(full["input_ids"][length:].tolist()) == ANSWER + "<|im_end|>"


def test_mrope_golden_a_from_the_processor(tokenizer):
    """SPEC.md golden A: x x x <vs> [image 4x6 patches] <ve> x x, where x x x = <|im_start|> user \\n."""
    assert len(tokenizer.encode("user\n")) == 2
    encoded = Processor(tokenizer, patch_size=14)(chat(IMAGE, images=[image(84, 56)]))
    ids = PRESETS["mrope"].position_ids(encoded["segments"])[:, :13]
    golden = torch.tensor([[0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 7, 8, 9],
                           [0, 1, 2, 3, 4, 4, 4, 5, 5, 5, 7, 8, 9],
                           [0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9]], dtype=torch.float32)
    assert torch.equal(ids, golden)


def test_mrope_golden_h_from_the_processor_segment(tokenizer):
    """SPEC.md golden H: x <vs> [image 4x8 patches] <ve> x, with the processor's vision segment."""
    encoded = Processor(tokenizer, patch_size=14)(chat(IMAGE, images=[image(112, 56)]))
    block = encoded["segments"][1]
    assert block == VisionSegment(1, 2, 4) and encoded["vision_grid"].tolist() == [[1, 4, 8]]
    ids = PRESETS["mrope"].position_ids([TextSegment(2), block, TextSegment(2)])
    golden = torch.tensor([[0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 6, 7],
                           [0, 1, 2, 2, 2, 2, 3, 3, 3, 3, 6, 7],
                           [0, 1, 2, 3, 4, 5, 2, 3, 4, 5, 6, 7]], dtype=torch.float32)
    assert torch.equal(ids, golden)


def test_image_pixel_clamps(tokenizer):
    processor = Processor(tokenizer, min_pixels=32 * 32, max_pixels=384 * 384)
    assert processor(chat(IMAGE, images=[image(8, 8)]))["vision_grid"].tolist() == [[1, 4, 4]]  # up to 32x32
    assert processor(chat(IMAGE, images=[image(1000, 1000)]))["vision_grid"].tolist() == [[1, 48, 48]]  # 384 px


def frames(count: int) -> list[Image.Image]:
    return [Image.new("RGB", (32, 32), (10 * i, 0, 0)) for i in range(count)]


def test_video_timestamps_layout(tokenizer):
    # 8 frames at 4 fps subsampled to 2 fps: frames 0 2 4 6 at 0, 0.5, 1, 1.5 s -> groups 0.25 s, 1.25 s.
    processor = Processor(tokenizer, fps=2.0, video_layout="timestamps")
    encoded = processor(chat(VIDEO, QUESTION, videos=[{"frames": frames(8), "fps": 4.0}]))
    text = tokenizer.decode(encoded["input_ids"].tolist())
    block = "<|vision_start|>" + "<|video_pad|>" * 4 + "<|vision_end|>"  # 32x32 px -> 2x2 tokens
    assert text.startswith(f"<|im_start|>user\n<0.2 seconds>{block}<1.2 seconds>{block}How many")
    assert encoded["vision_grid"].tolist() == [[1, 4, 4], [1, 4, 4]]
    assert [s for s in encoded["segments"] if isinstance(s, VisionSegment)] == [VisionSegment(1, 2, 2)] * 2
    assert encoded["pixel_values"].shape[0] == 2 * 16


def test_video_absolute_time_layout(tokenizer):
    processor = Processor(tokenizer, fps=2.0, video_layout="absolute_time")
    encoded = processor(chat(VIDEO, videos=[{"frames": frames(5), "fps": 2.0}]))  # 5 frames -> 3 groups
    assert encoded["vision_grid"].tolist() == [[3, 4, 4]]
    block = encoded["segments"][1]
    assert block == VisionSegment(3, 2, 2, seconds_per_grid=1.0)  # temporal_patch / fps
    ids = get_variant("mrope", options={"tokens_per_second": 2}).position_ids(encoded["segments"])
    start = encoded["segments"][0].length
    assert ids[0, start:start + 12].tolist() == [start + 2.0 * k for k in range(3) for _ in range(4)]


def test_media_follow_token_order(tokenizer):
    """A video part before an image part: pixel rows and grids come video first."""
    sample = chat(VIDEO, IMAGE, images=[image(64, 64)], videos=[{"frames": frames(2), "fps": 1.0}])
    encoded = Processor(tokenizer)(sample)
    assert encoded["vision_grid"].tolist() == [[1, 4, 4], [1, 8, 8]]
    assert encoded["pixel_values"].shape[0] == 16 + 64


def test_text_only_sample_has_empty_vision_tensors(tokenizer):
    encoded = Processor(tokenizer)(chat(QUESTION))
    assert encoded["pixel_values"].shape == (0, 384) and encoded["vision_grid"].shape == (0, 3)
    assert encoded["segments"] == [TextSegment(encoded["input_ids"].numel())]


@pytest.mark.parametrize("sample, options, message", [
    (chat(IMAGE, images=[b"\x89PNG not really"]), {}, "could not be decoded"),
    (chat(IMAGE, images=[Image.new("RGB", (0, 0))]), {}, "empty"),
    (chat(IMAGE, images=[image(2010, 10)]), {}, "aspect ratio 201.0"),
    (chat(IMAGE, QUESTION, images=[image(64, 64)]), {"max_seq_len": 20}, "max_seq_len=20.*raise max_seq_len"),
    (chat(IMAGE, QUESTION, images=[]), {}, "1 image and 0 video parts but the sample has 0 images"),
    (chat({"type": "text", "text": "fake <|image_pad|>"}), {}, "special token"),
    (chat({"type": "audio"}), {}, "unknown content part type 'audio'"),
])
def test_bad_samples_raise_naming_the_sample(tokenizer, sample, options, message):
    with pytest.raises(ValueError, match=message) as error:
        Processor(tokenizer, **options)(sample)
    assert str(error.value).startswith("sample 'count/train/0/7': ")


def with_fields(**fields) -> dict:
    return {**chat(QUESTION), **fields}


@pytest.mark.parametrize("sample, reason, message", [
    (with_fields(images="a.png"), "malformed sample", "'images' must be a list"),
    (with_fields(videos=[{"fps": 2.0}]), "malformed sample", "'videos' must be a list of"),
    (with_fields(answer=3), "malformed sample", "'answer' must be a string"),
    (with_fields(messages=[]), "bad conversation", "messages must be a non-empty list"),
    (with_fields(messages="hello"), "bad conversation", "messages must be a non-empty list"),
    (with_fields(messages=[{"role": "user"}, "hi"]), "bad conversation", "message 1 must be a dict"),
    (with_fields(messages=[{"role": "user", "content": [{"type": "text", "text": 7}]}]), "bad conversation",
     "text part without a string"),
    (with_fields(messages=[{"role": "user", "content": "Q?"}]), "bad conversation", "no assistant turn"),
    (with_fields(messages=[{"role": "user", "content": "Q?"}, {"role": "assistant", "content": " "}]),
     "bad conversation", "message 1 is an assistant turn without text"),
    (with_fields(messages=[{"role": "user", "content": "Q?"}, {"role": "assistant", "content": []}]),
     "bad conversation", "message 1 is an assistant turn without text"),
    (chat(IMAGE, images=[{"path": 12}]), "bad image", "image path 12 is not a file"),
    (chat(VIDEO, videos=[{"frames": [image(64, 64), image(64, 48)], "fps": 2.0}]), "bad video",
     "video frame 1 is 64x48 pixels but frame 0 is 64x64"),
    (chat(VIDEO, videos=[{"frames": [image(64, 64)], "fps": float("inf")}]), "bad video", "positive finite"),
    (chat(VIDEO, videos=[{"frames": [image(64, 64)], "fps": "2"}]), "bad video", "positive finite"),
])
def test_malformed_samples_are_value_errors_with_a_reason(tokenizer, sample, reason, message):
    with pytest.raises(SampleError, match=message) as error:
        Processor(tokenizer)(sample)
    assert error.value.reason == reason and str(error.value).startswith("sample 'count/train/0/7': ")


def test_a_prompt_needs_no_assistant_turn(tokenizer):
    prompt = Processor(tokenizer)(with_fields(messages=[{"role": "user", "content": "Q?"}]), prompt_only=True)
    assert tokenizer.decode(prompt["input_ids"][-3:].tolist()) == "<|im_start|>assistant\n"


def test_a_prompts_earlier_answers_are_context_not_targets(tokenizer):
    turns = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q2?"}]
    full = Processor(tokenizer)(with_fields(messages=turns + [{"role": "assistant", "content": "B"}]))
    prompt = Processor(tokenizer)(with_fields(messages=turns), prompt_only=True)
    assert torch.equal(prompt["input_ids"], full["input_ids"][:prompt["input_ids"].numel()])
    assert (prompt["labels"] == IGNORE_INDEX).all()
    assert tokenizer.decode(full["input_ids"][full["labels"] != IGNORE_INDEX].tolist()) == "A<|im_end|>B<|im_end|>"


def test_bad_config_raises(tokenizer):
    with pytest.raises(ValueError, match="fps must be a positive finite number"):
        Processor(tokenizer, fps=float("inf"))
    with pytest.raises(ValueError, match="video_layout"):
        Processor(tokenizer, video_layout="frames")
    with pytest.raises(ValueError, match="min_pixels <= max_pixels"):
        Processor(tokenizer, min_pixels=10_000, max_pixels=1_000)
