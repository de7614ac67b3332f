"""minivlm.tokenizer: fixed special ids, lossless round trips, save/load."""

import pytest
from tokenizers import Tokenizer, models

from minivlm.tokenizer import SPECIAL_TOKENS, BPETokenizer, corpus_from_samples

CORPUS = [
    "user\nHow many red squares are in the image?",
    "assistant\nThere are 3 red squares.",
    "user\nWhich colour is the circle at B2?",
    "assistant\nblue",
] * 20


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train(CORPUS, vocab_size=512)


def test_special_tokens_have_fixed_single_ids(tokenizer):
    assert [tokenizer.token_id(token) for token in SPECIAL_TOKENS] == list(range(7))
    for index, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.encode(token) == [index]
    assert tokenizer.pad_id == 0
    assert tokenizer.encode("<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|>")[3:] == [3, 5, 5]


@pytest.mark.parametrize("text", [
    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>How many squares?<|im_end|>\n",
    "ünïcödé 日本語 😀 and emoji\tand tabs\n\n",
    "digits 0123456789, 3.14 and -42",
    "<|video_pad|><|video_pad|><0.2 seconds><|im_end|>",
])
def test_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_digits_are_single_tokens(tokenizer):
    ids = tokenizer.encode("12345")
    assert len(ids) == 5
    assert [tokenizer.decode([i]) for i in ids] == list("12345")


def test_skip_special_tokens(tokenizer):
    ids = tokenizer.encode("<|im_start|>assistant\nblue<|im_end|>")
    assert tokenizer.decode(ids, skip_special_tokens=True) == "assistant\nblue"


def test_vocab_size_is_what_the_corpus_supports(tokenizer):
    assert len(SPECIAL_TOKENS) + 256 < tokenizer.vocab_size <= 512
    small = BPETokenizer.train(["ab"] * 3, vocab_size=8192)
    # 7 special tokens + 256 byte symbols + the single merge "ab".
    assert small.vocab_size == 264


def test_save_load_is_identical(tokenizer, tmp_path):
    path = tokenizer.save(tmp_path / "tok")
    assert path.name == "tokenizer.json"
    loaded = BPETokenizer.load(tmp_path / "tok")
    text = "<|im_start|>user\nHow many 12 blue circles?<|im_end|>"
    assert loaded.encode(text) == tokenizer.encode(text)
    assert loaded.vocab_size == tokenizer.vocab_size


def test_bad_inputs_raise(tmp_path):
    with pytest.raises(ValueError, match="vocab_size 100"):
        BPETokenizer.train(CORPUS, vocab_size=100)
    with pytest.raises(ValueError, match="no tokenizer at"):
        BPETokenizer.load(tmp_path)
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>'"):
        BPETokenizer(Tokenizer(models.BPE()))


def test_corpus_from_samples_writes_role_headers():
    sample = {"messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count?"}]},
        {"role": "assistant", "content": "4"},
    ]}
    assert list(corpus_from_samples([sample])) == ["user\nCount?", "assistant\n4"]
