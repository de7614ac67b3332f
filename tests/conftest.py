"""Shared fixtures: the shipped tokenizer, a processor, and encoded samples with images and videos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from minivlm.processing import Processor
from minivlm.tokenizer import BPETokenizer
from minivlm.train.config_store import register_configs

REPO = Path(__file__).resolve().parents[1]
register_configs()  # every test that composes configs/ needs the model/ and rope/ schemas


@pytest.fixture(scope="session")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.load(REPO / "data" / "tokenizer")


@pytest.fixture(scope="session")
def processor(tokenizer) -> Processor:
    return Processor(tokenizer, patch_size=8, min_pixels=256)


def noise_image(seed: int, width: int, height: int) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def chat_sample(processor: Processor, name: str, question: str, answer: str, images=(), videos=(),
                prompt_only: bool = False) -> dict:
    """Encode a one-turn conversation: the media first, then the question."""
    parts = [{"type": "image"} for _ in images] + [{"type": "video"} for _ in videos]
    return processor({
        "id": name, "task": "test", "answer": answer, "meta": {},
        "images": list(images), "videos": list(videos),
        "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": question}]},
                     {"role": "assistant", "content": [{"type": "text", "text": answer}]}],
    }, prompt_only=prompt_only)


@pytest.fixture(scope="session")
def media_samples(processor) -> list[dict]:
    """An image + video prompt, a larger image, and text only (prompts for generation)."""
    frames = [noise_image(10 + i, 32, 16) for i in range(4)]
    return [
        chat_sample(processor, "image+video", "Where is the red square?", "left",
                    images=[noise_image(1, 32, 32)], videos=[{"frames": frames, "fps": 2.0}], prompt_only=True),
        chat_sample(processor, "big image", "Count the dots.", "3", images=[noise_image(2, 48, 32)], prompt_only=True),
        chat_sample(processor, "text", "Say hi.", "hi", prompt_only=True),
    ]
