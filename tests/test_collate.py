"""minivlm.data.collate.Collator: padding, packing, masks, per-design positions, vision order."""

import pickle

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from minivlm.data.collate import Collator
from minivlm.model.attention import DocumentMask
from minivlm.processing import Processor
from minivlm.schema import IGNORE_INDEX
from minivlm.rope import make_schedule
from minivlm.tokenizer import IMAGE_PAD, VIDEO_PAD, BPETokenizer

SCHEDULE = make_schedule("alternate", num_layers=4)  # circle + mrope: two designs, two id sets


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train(["user\nWhat colour is the shape?", "assistant\nred"] * 20, vocab_size=400)


@pytest.fixture(scope="module")
def encoded(tokenizer) -> list[dict]:
    """Four samples of different lengths: image sizes, a video, and a text-only one."""
    processor = Processor(tokenizer)

    def sample(index: int, parts: list, answer: str, images=(), videos=()) -> dict:
        question = {"type": "text", "text": "What colour is the shape?" + " Look again." * index}
        return processor({
            "id": f"s{index}", "task": f"task{index}", "answer": answer, "meta": {},
            "images": list(images), "videos": list(videos),
            "messages": [{"role": "user", "content": [*parts, question]},
                         {"role": "assistant", "content": [{"type": "text", "text": answer}]}],
        })

    frames = [Image.new("RGB", (32, 48), (0, 9 * i, 0)) for i in range(4)]
    return [
        sample(0, [{"type": "image"}], "red", images=[Image.new("RGB", (64, 48), (255, 0, 0))]),
        sample(1, [{"type": "video"}], "green", videos=[{"frames": frames, "fps": 2.0}]),
        sample(2, [], "blue"),
        sample(3, [{"type": "image"}], "yellow", images=[Image.new("RGB", (96, 96), (255, 255, 0))]),
    ]


def lengths(samples: list[dict]) -> list[int]:
    return [s["input_ids"].numel() for s in samples]


def test_right_padding(encoded):
    batch = Collator(SCHEDULE, pad_id=0, max_tokens=512)(encoded)
    width = max(lengths(encoded))
    assert batch["input_ids"].shape == batch["labels"].shape == (4, width)
    assert batch["document_ids"] is None and batch["next_position"] is not None
    assert batch["real_tokens"] == sum(lengths(encoded))
    assert batch["answer_tokens"] == sum(int((s["labels"][1:] != IGNORE_INDEX).sum()) for s in encoded)
    assert set(batch["position_ids"]) == set(SCHEDULE.design_keys) and len(SCHEDULE.design_keys) == 2
    for b, sample in enumerate(encoded):
        n = sample["input_ids"].numel()
        assert torch.equal(batch["input_ids"][b, :n], sample["input_ids"])
        assert (batch["input_ids"][b, n:] == 0).all() and (batch["labels"][b, n:] == IGNORE_INDEX).all()
        assert torch.equal(batch["labels"][b, :n], sample["labels"])
        for key in SCHEDULE.design_keys:
            variant = SCHEDULE.design_variant(key)
            assert torch.equal(batch["position_ids"][key][b, :, :n], variant.position_ids(sample["segments"]))
            assert batch["next_position"][key][b] == variant.next_position(sample["segments"])
    assert batch["tasks"] == ["task0", "task1", "task2", "task3"]
    assert batch["answers"] == ["red", "green", "blue", "yellow"]
    assert batch["packing_efficiency"] == pytest.approx(sum(lengths(encoded)) / (4 * width))


def test_left_padding_for_generation(encoded):
    batch = Collator(SCHEDULE, pad_id=0, max_tokens=512, padding_side="left")(encoded)
    width = batch["input_ids"].shape[1]
    documents = batch["document_ids"]
    assert documents.shape == (4, width) and documents.dtype == torch.long
    mask = DocumentMask(documents).dense()[:, 0]  # what attention applies
    assert mask.any(dim=-1).all()  # no empty softmax row anywhere
    for b, sample in enumerate(encoded):
        n = sample["input_ids"].numel()
        assert torch.equal(batch["input_ids"][b, width - n:], sample["input_ids"])
        real = slice(width - n, width)
        assert torch.equal(mask[b, real, real], torch.ones(n, n, dtype=torch.bool).tril())
        assert not mask[b, real, : width - n].any()  # real tokens never see padding
        key = SCHEDULE.design_keys[0]
        ids = SCHEDULE.design_variant(key).position_ids(sample["segments"])
        assert torch.equal(batch["position_ids"][key][b, :, real], ids)  # positions ignore the padding


def test_packing_keeps_samples_apart(encoded):
    budget = max(lengths(encoded)) + min(lengths(encoded))
    batch = Collator(SCHEDULE, pad_id=0, max_tokens=budget, mode="pack")(encoded)
    rows, width = batch["input_ids"].shape
    assert rows < len(encoded) and width <= budget
    order = [int(sid[1:]) for sid in batch["sample_ids"]]
    assert sorted(order) == [0, 1, 2, 3] and batch["answers"] == [encoded[i]["answer"] for i in order]
    # Walk the rows: samples sit back to back, in batch order.
    placed, real_tokens = iter(order), 0
    for r in range(rows):
        start, row_mask = 0, DocumentMask(batch["document_ids"]).dense()[r, 0]
        while start < width and batch["input_ids"][r, start:].ne(0).any():
            sample = encoded[next(placed)]
            n = sample["input_ids"].numel()
            span = slice(start, start + n)
            assert torch.equal(batch["input_ids"][r, span], sample["input_ids"])
            assert torch.equal(batch["labels"][r, span], sample["labels"])
            for key in SCHEDULE.design_keys:  # positions restart at every sample
                ids = SCHEDULE.design_variant(key).position_ids(sample["segments"])
                assert torch.equal(batch["position_ids"][key][r, :, span], ids)
            assert torch.equal(row_mask[span, span], torch.ones(n, n, dtype=torch.bool).tril())
            assert not row_mask[span, :start].any() and not row_mask[span, start + n:].any()
            start, real_tokens = start + n, real_tokens + n
    assert real_tokens == sum(lengths(encoded))
    assert batch["packing_efficiency"] == pytest.approx(real_tokens / (rows * width))
    assert batch["next_position"] is None
    assert (batch["labels"] != IGNORE_INDEX).sum() == sum((s["labels"] != IGNORE_INDEX).sum() for s in encoded)


@pytest.mark.parametrize("mode", ["pad", "pack"])
def test_vision_tensors_follow_token_order(encoded, tokenizer, mode):
    """Placeholder runs read row by row equal the merged token counts of vision_grid, in order."""
    batch = Collator(SCHEDULE, pad_id=0, max_tokens=400, mode=mode)(encoded)
    pads = torch.tensor([tokenizer.token_id(IMAGE_PAD), tokenizer.token_id(VIDEO_PAD)])
    # Blocks are separated by <|vision_end|> ... <|vision_start|>, so each run of pads is one block.
    is_pad, counts = torch.unique_consecutive(torch.isin(batch["input_ids"].flatten(), pads), return_counts=True)
    grid = batch["vision_grid"]
    assert counts[is_pad].tolist() == (grid.prod(dim=1) // 4).tolist()
    assert batch["pixel_values"].shape[0] == batch["patch_positions"].shape[0] == int(grid.prod(dim=1).sum())
    # The model's placeholder positions come with the batch (no search on the device), in token order.
    assert torch.equal(batch["vision_index"], torch.stack(torch.nonzero(torch.isin(batch["input_ids"], pads), as_tuple=True)))
    assert (batch["vision_frames"], batch["longest_frame"]) == (int(grid[:, 0].sum()), int((grid[:, 1] * grid[:, 2]).max()))


@pytest.mark.parametrize("mode", ["pad", "pack"])
def test_answer_task_names_the_sample_of_every_answer_position(encoded, mode):
    names = ["task3", "task1", "other", "task0", "task2"]  # not in sample order: indices are into this list
    budget = max(lengths(encoded)) + min(lengths(encoded))
    batch = Collator(SCHEDULE, pad_id=0, max_tokens=budget, mode=mode, task_names=names)(encoded)
    # Answer positions run row by row, as the samples of the batch do: each sample's answer tokens in turn.
    expected = [names.index(task) for task, sid in zip(batch["tasks"], batch["sample_ids"])
                for _ in range(int((encoded[int(sid[1:])]["labels"] != IGNORE_INDEX).sum()))]
    assert batch["answer_task"].tolist() == expected
    assert batch["answer_task"].shape == (batch["answer_tokens"],)
    assert Collator(SCHEDULE, pad_id=0, max_tokens=budget, mode=mode)(encoded)["answer_task"] is None


def test_a_task_outside_task_names_raises(encoded):
    with pytest.raises(ValueError, match="sample 's2' has task 'task2', not one of the collator's task_names"):
        Collator(SCHEDULE, pad_id=0, max_tokens=512, task_names=["task0", "task1"])(encoded[:3])


def test_text_only_batch_has_no_vision(encoded):
    batch = Collator(SCHEDULE, pad_id=0, max_tokens=512)([encoded[2]])
    assert batch["pixel_values"] is None and batch["vision_grid"] is None and batch["patch_positions"] is None


@pytest.mark.parametrize("mode", ["pad", "pack"])
def test_sample_over_the_budget_raises(encoded, mode):
    with pytest.raises(ValueError, match="sample 's3' has .* tokens, more than max_tokens=60"):
        Collator(SCHEDULE, pad_id=0, max_tokens=60, mode=mode)(encoded[2:])


def test_bad_config_raises():
    with pytest.raises(ValueError, match="unknown collate mode"):
        Collator(SCHEDULE, pad_id=0, max_tokens=10, mode="stack")
    with pytest.raises(ValueError, match="left-padded"):
        Collator(SCHEDULE, pad_id=0, max_tokens=10, mode="pack", padding_side="left")


def test_runs_in_dataloader_workers(encoded):
    collator = pickle.loads(pickle.dumps(Collator(SCHEDULE, pad_id=0, max_tokens=512, mode="pack")))
    loader = DataLoader(encoded, batch_size=4, collate_fn=collator, num_workers=1)
    batch = next(iter(loader))
    assert sorted(batch["sample_ids"]) == ["s0", "s1", "s2", "s3"]
