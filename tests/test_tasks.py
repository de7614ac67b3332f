"""Synthetic tasks: determinism, schema, and answers re-derived from the scene by independent checkers."""

from __future__ import annotations

import numpy as np
import pytest

from minivlm.data.tasks import TASKS, TaskConfig, generate, split_config
from minivlm.data.tasks.clips import BACKDROP_RGB
from minivlm.data.tasks.core import parse_sample_id
from minivlm.data.tasks.scene import COLORS
from minivlm.processing import Processor
from minivlm.processing.video import group_times, timestamp_text

SAMPLES = 30  # per task and split: every form appears, and the whole file stays around a few seconds


def cell_of_pixel(obj: dict, scene: dict) -> str:
    col, row = obj["x"] * scene["grid"] // scene["width"], obj["y"] * scene["grid"] // scene["height"]
    return "ABCDEFGHIJ"[col] + str(row + 1)


def only(items: list):
    assert len(items) == 1, items
    return items[0]


def big_objects(scene: dict) -> list[tuple[int, dict]]:
    """(frame index, object) of the event shapes of a video scene: anything larger than clutter."""
    return [(f, o) for f, frame in enumerate(scene["frames"]) for o in frame if o["r"] > scene["width"] / 5]


def group_timestamp(frame: int, scene: dict) -> str:
    """The processor's own timestamp text of the temporal group holding `frame`."""
    times = group_times([i / scene["fps"] for i in range(len(scene["frames"]))], temporal_patch=2)
    return timestamp_text(times[frame // 2])[1:].split(" ")[0]  # "<2.5 seconds>" -> "2.5"


def pictures(sample: dict) -> list:
    return sample["images"] + [f for v in sample["videos"] for f in v["frames"]]


def expected_answer(task: str, meta: dict) -> str:
    """The answer recomputed from pixel coordinates and the query alone (not the generator's cells)."""
    scene, query = meta["scene"], meta["query"]
    form = query["form"]
    if task == "grounding":
        target = [query["color"], query["shape"]]
        return cell_of_pixel(only([o for o in scene["objects"] if [o["color"], o["shape"]] == target]), scene)
    if task == "attribute_at":
        if form == "identify":
            return only([o for o in scene["objects"] if cell_of_pixel(o, scene) == query["cell"]])[query["attribute"]]
        return cell_of_pixel(only([o for o in scene["objects"] if o[query["attribute"]] == query["value"]]), scene)
    if task == "relation":
        a = only([o for o in scene["objects"] if [o["color"], o["shape"]] == query["a"]])
        b = only([o for o in scene["objects"] if [o["color"], o["shape"]] == query["b"]])
        dx, dy = a["x"] - b["x"], a["y"] - b["y"]
        assert abs(dx) != abs(dy), "relation must have a dominant axis in pixels"
        relation = ("left" if dx < 0 else "right") if abs(dx) > abs(dy) else ("above" if dy < 0 else "below")
        return relation if form == "locate" else ("yes" if relation == query["relation"] else "no")
    if task == "count":
        if form == "total":
            return str(sum(o["color"] == query["color"] for o in scene["objects"]))
        axis = 0 if query["axis"] == "column" else 1
        return str(sum((o["x"], o["y"])[axis] * scene["grid"] // scene["width"] == query["line"]
                       for o in scene["objects"]))
    if task == "compare":
        first, second = scene["images"]
        changed = only([a for a, b in zip(first, second, strict=True) if a != b])
        if form == "locate":
            return cell_of_pixel(changed, scene)
        assert query["cell"] in {cell_of_pixel(o, scene) for o in first}, "verify must ask an occupied cell"
        return "no" if cell_of_pixel(changed, scene) == query["cell"] else "yes"
    if task == "needle":
        events = big_objects(scene)
        if form == "locate":
            needle = [query["color"], query["shape"]]
            frame, _ = only([(f, o) for f, o in events if [o["color"], o["shape"]] == needle])
            return group_timestamp(frame, scene)
        return only([o for f, o in events if group_timestamp(f, scene) == query["time"]])[query["attribute"]]
    if task == "order":
        frames = {o["color"]: f for f, o in big_objects(scene)}
        first, second = query["colors"]
        assert frames[first] // 2 != frames[second] // 2, "events must be in different temporal groups"
        if form == "which":
            return first if frames[first] < frames[second] else second
        return "yes" if frames[first] < frames[second] else "no"
    if task.startswith("clip_"):
        return expected_clip_answer(task, scene, query)
    raise AssertionError(f"no checker for task {task}")


def clip_groups(scene: dict) -> list[dict]:
    """One frame per temporal group, after checking that both frames of a group are the same."""
    frames = scene["frames"]
    assert all(frames[i] == frames[i + 1] for i in range(0, len(frames), 2)), "a group shows one picture"
    return frames[::2]


def expected_clip_answer(task: str, scene: dict, query: dict) -> str:
    groups = clip_groups(scene)
    label = (lambda k: group_timestamp(2 * k, scene)) if query["form"] == "time" else (lambda k: str(k + 1))
    if task == "clip_when":
        return label(only([k for k, g in enumerate(groups) if g["color"] == query["color"]]))
    if task == "clip_what":
        return only([g["color"] for k, g in enumerate(groups) if k == query["group"]])
    shown = [(k, g) for k, g in enumerate(groups) if g["color"] is not None]
    if task in ("clip_first", "clip_gap"):
        (early, first), (late, _) = shown  # exactly two events
        return first["color"] if task == "clip_first" else str(late - early - 1)
    # clip_needle: the one square with the named colour (and corner); every other event a look-alike.
    named = {"shape": (), "color": ("color",), "conjunction": ("color", "corner")}[query["form"]]
    squares = [g for _, g in shown if g["mark"] == "square"]
    needle = only([g for g in squares if all(g[key] == query[key] for key in named)])
    for _, g in shown:
        if g is needle:
            continue
        if query["form"] == "shape":  # a disc, anything else may be the same
            assert g["mark"] == "disc"
        elif query["form"] == "color":  # alike in all but the colour the question names
            assert g["color"] != query["color"] and g["corner"] == query["corner"]
        else:  # shares exactly one of colour and corner
            assert (g["color"] == query["color"]) != (g["corner"] == query["corner"])
    return needle["backdrop"]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_same_sample_and_other_index_other_sample(task):
    a, b = generate(task, 5, "val", seed=3), generate(task, 5, "val", seed=3)
    assert a["meta"] == b["meta"] and a["messages"] == b["messages"] and a["id"] == b["id"]
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(pictures(a), pictures(b), strict=True))
    assert generate(task, 6, "val", seed=3)["meta"]["scene"] != a["meta"]["scene"]
    assert generate(task, 5, "val", seed=4)["meta"]["scene"] != a["meta"]["scene"]


@pytest.mark.parametrize("split", ["train", "val", "extrapolate"])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_answers_are_right_by_construction(task, split):
    forms = set()
    for index in range(SAMPLES):
        sample = generate(task, index, split)
        meta = sample["meta"]
        forms.add(meta["query"]["form"])
        assert sample["answer"] == expected_answer(task, meta), (sample["id"], sample["messages"])
        assert sample["answer"] in meta["choices"]
        assert sample["messages"][-1]["content"][-1]["text"] == sample["answer"]
    assert forms == set(TASKS[task].forms)


@pytest.mark.parametrize("task", sorted(t for t in TASKS if not t.startswith("clip_")))
def test_pixels_show_the_scene(task):
    """Each object's centre pixel has its colour; rendering the stored scene gives the same pixels."""
    for index in range(5):
        sample = generate(task, index, "val")
        scene = sample["meta"]["scene"]
        media = sample["images"] or sample["videos"][0]["frames"]
        per_media = scene.get("images") or scene.get("frames") or [scene["objects"]]
        for image, objects in zip(media, per_media, strict=True):
            assert image.mode == "RGB" and image.size == (scene["width"], scene["height"])
            pixels = np.asarray(image)
            drawn_last = objects[-1:] if "frames" in scene else objects  # video clutter may overlap; events are on top
            for obj in drawn_last:
                assert tuple(pixels[obj["y"], obj["x"]]) == COLORS[obj["color"]]
        redrawn = TASKS[task].render(scene)
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(media, redrawn, strict=True))


@pytest.mark.parametrize("task", sorted(t for t in TASKS if t.startswith("clip_")))
def test_clip_pixels_show_each_group(task):
    """A clip frame is its backdrop with the square, if any, filling the named corner's patch."""
    for index in range(5):
        sample = generate(task, index, "val")
        scene = sample["meta"]["scene"]
        for image, frame in zip(sample["videos"][0]["frames"], scene["frames"], strict=True):
            pixels, half = np.asarray(image), scene["width"] // 2
            corners = {"top left": (0, 0), "top right": (0, 1), "bottom left": (1, 0), "bottom right": (1, 1)}
            for corner, (row, col) in corners.items():
                centre = tuple(pixels[row * half + half // 2, col * half + half // 2])
                edge = tuple(pixels[row * half + 1, col * half + 1])  # a square fills it, a disc does not
                if corner == frame["corner"]:
                    assert centre == COLORS[frame["color"]]
                    assert (edge == COLORS[frame["color"]]) == (frame["mark"] == "square")
                else:
                    assert centre == edge == BACKDROP_RGB[frame["backdrop"]]


def test_clip_needle_distractors_are_periodic_and_the_depth_is_kept():
    config = split_config("train", frames=(32, 32), distractor_period=4, depth=(0.5, 0.5))
    for index in range(10):
        meta = generate("clip_needle", index, "train", config=config)["meta"]
        groups, needle = clip_groups(meta["scene"]), meta["query"]["group"]
        assert needle == round(0.5 * 15)
        events = [k for k, g in enumerate(groups) if g["color"] is not None and k != needle]
        assert events and {k % 4 for k in events} == {events[0] % 4} and all(b - a in (4, 8) for a, b in zip(events, events[1:]))


def test_clips_cost_one_token_per_group_at_16_px(processor):
    sample = generate("clip_first", 0, "val", config=split_config("val", frames=(32, 32)))
    encoded = Processor(processor.tokenizer, patch_size=8, min_pixels=256, video_layout="absolute_time")(sample)
    assert encoded["vision_grid"].tolist() == [[16, 2, 2]]  # 16 groups of 2x2 patches: 16 merged tokens


def test_sample_ids_name_where_a_sample_comes_from():
    sample = generate("clip_gap", 7, "val", seed=2)
    assert parse_sample_id(sample["id"]) == ("clip_gap", "val", 2, 7)


def test_sample_schema():
    video, image = generate("needle", 0, "train"), generate("compare", 0, "train")
    assert video["images"] == [] and video["videos"][0]["fps"] == 1.0 and len(video["videos"][0]["frames"]) % 2 == 0
    assert [p["type"] for p in video["messages"][0]["content"]] == ["video", "text"]
    assert [p["type"] for p in image["messages"][0]["content"]] == ["image", "image", "text"]
    assert [m["role"] for m in image["messages"]] == ["user", "assistant"]
    assert set(image) == {"id", "task", "images", "videos", "messages", "answer", "meta"}


def test_needle_distractors_are_periodic_look_alikes():
    config = split_config("train", frames=(16, 16), distractor_period=3)
    for index in range(10):
        sample = generate("needle", index, "train", config=config)
        needle = [sample["meta"]["query"].get(k) for k in ("color", "shape")]
        events = big_objects(sample["meta"]["scene"])
        groups = [f // 2 for f, _ in events]
        assert len(set(groups)) == len(groups), "one event per temporal group"
        if sample["meta"]["query"]["form"] == "locate":
            distractors = [(f // 2, o) for f, o in events if [o["color"], o["shape"]] != needle]
            assert all((o["color"] == needle[0]) != (o["shape"] == needle[1]) for _, o in distractors)
            assert {g % 3 for g, _ in distractors} <= {distractors[0][0] % 3}


def test_forms_and_config_are_validated():
    assert {s["meta"]["query"]["form"] for s in (generate("count", i, config=TaskConfig(form="region"))
                                                 for i in range(8))} == {"region"}
    with pytest.raises(ValueError, match="no form"):
        generate("count", 0, config=TaskConfig(form="locate"))
    with pytest.raises(ValueError, match="unknown task"):
        generate("counting", 0)
    with pytest.raises(ValueError, match="unknown split"):
        generate("count", 0, split="test")
    for bad in (dict(frames=(7, 9)), dict(image_size=(100, 112)), dict(objects=(3, 9)), dict(grid=8), dict(fps=30.0)):
        with pytest.raises(ValueError, match="TaskConfig"):
            TaskConfig(**bad)
