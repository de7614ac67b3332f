"""Byte-level BPE tokenizer trained from scratch, with the chat and vision special tokens.

Byte-level BPE (GPT-2, Radford et al. 2019, section 2.2): text is read as UTF-8 bytes, each byte
mapped to a printable symbol, and BPE merges are learned on top, so every string, any script or
emoji, encodes losslessly with no unknown token. Digits are split one per token before BPE (as
Qwen2 does) so that numbers, which the diagnostic tasks are full of, have one spelling per digit
instead of corpus-dependent chunks.

The special tokens of the chat template (Qwen-style ChatML) are reserved first, so they have the
fixed ids ``0 .. len(SPECIAL_TOKENS)-1`` in every tokenizer trained here: models and checkpoints
agree on them whatever the corpus. ``<|endoftext|>`` doubles as the padding token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
# Order fixes the ids: SPECIAL_TOKENS[i] has id i.
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)
ROLES = ("system", "user", "assistant")
TOKENIZER_FILE = "tokenizer.json"


class BPETokenizer:
    """A trained byte-level BPE with the special tokens of :data:`SPECIAL_TOKENS` at ids 0..6.

    Build one with :meth:`train` or :meth:`load`; the wrapped ``tokenizers.Tokenizer`` does the
    work (Rust, fast enough to run inside DataLoader workers).
    """

    def __init__(self, backend: Tokenizer) -> None:
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            found = backend.token_to_id(token)
            if found != expected_id:
                raise ValueError(
                    f"tokenizer has special token {token!r} at id {found}, expected {expected_id}; "
                    "train it with BPETokenizer.train so the special tokens come first."
                )
        self.backend = backend

    @classmethod
    def train(cls, corpus: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2) -> BPETokenizer:
        """Learn merges on ``corpus`` (any iterable of strings).

        Args:
            corpus: training texts.
            vocab_size: the largest vocabulary wanted, special tokens and the 256 byte symbols
                included; a small corpus yields fewer merges, see :attr:`vocab_size`.
            min_frequency: a pair must occur this often to be merged.
        """
        floor = len(SPECIAL_TOKENS) + 256
        if vocab_size < floor:
            raise ValueError(
                f"vocab_size {vocab_size} is below {floor} (the special tokens plus the 256 byte "
                "symbols every byte-level BPE needs); ask for a larger vocabulary."
            )
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            # All 256 byte symbols even if the corpus lacks some: nothing is ever out of vocabulary.
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(corpus, trainer)
        return cls(backend)

    @classmethod
    def load(cls, directory: str | Path) -> BPETokenizer:
        """Load ``directory/tokenizer.json`` written by :meth:`save`."""
        path = Path(directory) / TOKENIZER_FILE
        if not path.is_file():
            raise ValueError(
                f"no tokenizer at {path}; train one with BPETokenizer.train(...).save({str(directory)!r})."
            )
        return cls(Tokenizer.from_file(str(path)))

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/tokenizer.json`` (the directory is created) and return its path."""
        path = Path(directory) / TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(path))
        return path

    @property
    def vocab_size(self) -> int:
        """Number of token ids, special tokens included (the LM's embedding rows)."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special-token strings in it become their single ids."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_id(self, token: str) -> int:
        """The id of a single token (a special token, or any vocabulary entry)."""
        found = self.backend.token_to_id(token)
        if found is None:
            raise ValueError(f"{token!r} is not a single token of this vocabulary.")
        return found

    @property
    def pad_id(self) -> int:
        return SPECIAL_TOKENS.index(PAD_TOKEN)


def corpus_from_samples(samples: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Training texts of a tokenizer from samples (:class:`minivlm.schema.Sample`).

    Yields each message as ``"role\\ntext"``, the way the chat template writes it, so that role
    headers and answers get learned merges; special tokens need not be in the corpus.
    """
    for sample in samples:
        for message in sample["messages"]:
            content = message["content"]
            parts = [content] if isinstance(content, str) else [
                part["text"] for part in content if part.get("type") == "text"
            ]
            yield f"{message['role']}\n" + "".join(parts)
