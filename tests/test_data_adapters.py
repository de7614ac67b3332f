"""Real-data adapters on tiny local fixtures (cauldron parquet, llava jsonl, imagefolder), bad records included."""

from __future__ import annotations

import io
import json
import logging

import datasets
import pytest
from PIL import Image

from minivlm.data.adapters import RealDataset, detect_layout


def png(color: tuple[int, int, int], size: tuple[int, int] = (20, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def stored(data: bytes) -> dict:
    return {"bytes": data, "path": None}


def talk(question: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def read_all(dataset: RealDataset, caplog) -> tuple[list[dict], list[str]]:
    """The samples of one pass, and the warnings the pass logged."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="minivlm.data.adapters"):
        samples = list(dataset)
    return samples, [record.getMessage() for record in caplog.records]


def test_cauldron_parquet_with_bad_records(tmp_path, caplog):
    features = datasets.Features({"images": [datasets.Image()],
                                  "texts": [{"user": datasets.Value("string"), "assistant": datasets.Value("string")}]})
    rows = [
        {"images": [stored(png((255, 0, 0)))], "texts": [{"user": "Colour?", "assistant": "red"}]},
        {"images": [stored(png((0, 0, 255))), stored(png((0, 255, 0)))],
         "texts": [{"user": "First?", "assistant": "blue"}, {"user": "Second?", "assistant": "green"}]},
        {"images": [stored(b"not a png")], "texts": [{"user": "Q", "assistant": "A"}]},
        {"images": [stored(png((1, 1, 1)))], "texts": []},
        {"images": [None], "texts": [{"user": "Q", "assistant": "A"}]},
    ]
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp_path / "part.parquet"))
    samples, warnings = read_all(RealDataset(str(tmp_path / "part.parquet"), name="tiny"), caplog)
    assert warnings == ["tiny: skipped 3 of 5 records (corrupt image: 1, empty conversation: 1, missing image: 1)"]
    assert [s["answer"] for s in samples] == ["red", "green"]
    two = samples[1]
    assert [p["type"] for p in two["messages"][0]["content"]] == ["image", "image", "text"]
    assert [m["role"] for m in two["messages"]] == ["user", "assistant", "user", "assistant"]
    assert [im.getpixel((0, 0)) for im in two["images"]] == [(0, 0, 255), (0, 255, 0)]
    assert two["id"] == "tiny/1" and two["meta"] == {"source": "tiny", "row": 1, "layout": "cauldron"}


def test_llava_jsonl_with_relative_paths_and_bad_records(tmp_path, caplog):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(png((10, 20, 30), (8, 6)))
    (tmp_path / "images" / "broken.png").write_bytes(png((0, 0, 0))[:30])
    records = [
        {"image": "images/a.png", "conversations": talk("Look: <image>\nWhat colour?", "dark")},
        {"image": "images/a.png", "conversations": talk("No marker here?", "fine")},
        {"conversations": talk("Text only?", "yes")},
        {"image": "images/missing.png", "conversations": talk("<image>\nQ", "A")},
        {"image": "images/broken.png", "conversations": talk("<image>\nQ", "A")},
        {"image": "images/a.png", "conversations": [{"from": "human", "value": "<image> unanswered"}]},
        {"image": "images/a.png", "conversations": talk("<image><image> two markers", "A")},
        {"image": "images/a.png", "conversations": []},
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    samples, warnings = read_all(RealDataset(str(tmp_path / "train.jsonl")), caplog)
    assert warnings == ["train.jsonl: skipped 5 of 8 records (conversation does not end with an answer: 1, "
                        "corrupt image: 1, empty conversation: 1, image placeholders do not match images: 1, "
                        "missing image: 1)"]
    marked, unmarked, text_only = samples
    assert marked["messages"][0]["content"] == [{"type": "text", "text": "Look:"}, {"type": "image"},
                                                {"type": "text", "text": "What colour?"}]
    assert unmarked["messages"][0]["content"][0] == {"type": "image"}
    assert marked["images"][0].size == (8, 6) and marked["images"][0].getpixel((0, 0)) == (10, 20, 30)
    assert text_only["images"] == [] and text_only["answer"] == "yes"


def test_imagefolder_with_metadata_and_sharding(tmp_path):
    lines = []
    for i in range(6):
        Image.new("RGB", (12, 12), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
        lines.append(json.dumps({"file_name": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nRed level?"}, {"from": "gpt", "value": str(i * 40)}]}))
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines))
    shards = [list(RealDataset(str(tmp_path), rank=r, world_size=2)) for r in range(2)]
    rows = [[s["meta"]["row"] for s in shard] for shard in shards]
    assert set(rows[0]).isdisjoint(rows[1]) and sorted(rows[0] + rows[1]) == list(range(6))
    for sample in shards[0] + shards[1]:
        assert sample["meta"]["layout"] == "llava"
        assert str(sample["images"][0].getpixel((0, 0))[0]) == sample["answer"]


def test_layout_errors_name_the_fix():
    assert detect_layout(["images", "texts", "source"]) == "cauldron"
    assert detect_layout(["image", "conversations"]) == "llava"
    with pytest.raises(ValueError, match="layout="):
        detect_layout(["img", "qa"])
    with pytest.raises(ValueError, match="unknown layout"):
        RealDataset("x", layout="sharegpt")


def test_records_the_processor_rejects_are_skipped_and_counted_by_reason(tmp_path, caplog, processor):
    long = "word " * 2100  # above the processor's max_seq_len of 2048 tokens
    records = [
        {"conversations": talk("Fine?", "yes")},
        {"conversations": talk(long, "too long")},
        {"conversations": talk("Injected <|im_end|> turn?", "no")},
        {"image": "wide.png", "conversations": talk("<image>\nWide?", "very")},
        {"image": "wide.png", "conversations": talk("Q", "<image>")},  # the answer is an image: no text
        {"conversations": talk("Also fine?", "yes")},
    ]
    Image.new("RGB", (402, 2)).save(tmp_path / "wide.png")  # aspect ratio 201
    (tmp_path / "mixed.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    dataset = RealDataset(str(tmp_path / "mixed.jsonl"), transform=processor, max_bad_fraction=0.9)
    samples, warnings = read_all(dataset, caplog)
    assert [sample["answer"] for sample in samples] == ["yes", "yes"]
    assert "input_ids" in samples[0]  # processed where read
    assert warnings == ["mixed.jsonl: skipped 4 of 6 records (bad conversation: 1, bad image: 1, "
                        "longer than max_seq_len: 1, malformed record: 1)"]
    with pytest.raises(ValueError, match=r"4 of 6 records are bad, more than data.real.max_bad_fraction=0.5 "
                                         r"\(bad conversation: 1.*special token.*aspect ratio 201"):
        list(RealDataset(str(tmp_path / "mixed.jsonl"), transform=processor, max_bad_fraction=0.5))


def test_probe_reads_the_first_records_before_training(tmp_path, caplog, processor):
    records = [{"conversations": talk("<|im_start|>", "A")}] * 3 + [{"conversations": talk("Q", "A")}]
    (tmp_path / "bad.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    with pytest.raises(ValueError, match=r"3 of the first 4 records are bad.*bad conversation: 3"):
        RealDataset(str(tmp_path / "bad.jsonl"), transform=processor, max_bad_fraction=0.5).probe()
    with pytest.raises(ValueError, match=r"no usable sample in its first 3 records \(bad conversation: 3"):
        RealDataset(str(tmp_path / "bad.jsonl"), transform=processor).probe(records=3)


@pytest.mark.parametrize("name, content, message", [
    ("data.jsonl", "", "the data files are empty"),
    ("data.jsonl", "\n\n", "the data files are empty"),
    ("data.json", '{"conversations": [', "cannot be read as a dataset"),
])
def test_unreadable_local_sources_are_value_errors_naming_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        list(RealDataset(str(tmp_path / name)))
    assert str(tmp_path / name) in str(error.value)


def test_a_line_that_is_not_json_is_one_bad_record_wherever_it_sits(tmp_path, caplog):
    good = json.dumps({"conversations": talk("Q", "A")})
    lines = [good] * 300 + ["not json", "[1, 2]"] + [good] * 3  # past the probe's 100 records and a read batch
    (tmp_path / "data.jsonl").write_text("\n".join(lines))
    dataset = RealDataset(str(tmp_path / "data.jsonl"), max_bad_fraction=0.5)
    dataset.probe()
    samples, warnings = read_all(dataset, caplog)
    assert len(samples) == 303 and samples[-1]["meta"]["row"] == 304
    assert warnings == ["data.jsonl: skipped 2 of 305 records (bad json: 2)"]
    (tmp_path / "data.jsonl").write_text("not json\n" * 3)
    with pytest.raises(ValueError, match=r"no usable sample in its first 3 records \(bad json: 3; first of each: "
                                         r"bad json: data.jsonl/0: Expecting value"):
        RealDataset(str(tmp_path / "data.jsonl")).probe()
