"""Cross-modal positional bias of trained runs: accuracy by target location, attention maps, PTD.

Circle-RoPE (arXiv 2505.16416) claims that M-RoPE-style ids make a text token nearer some image
tokens than others (section 3.1, measured geometrically by PTD), so that the same content is
answered differently depending on where it sits, and that its ring removes the bias. This
module measures the claim in a run, three ways, on the ``val`` prompts of the run's own task
distribution (``data.task``: image size, ``question_first``...):

1. behaviour: every answer beside the merged-token cell of its target (the first object of a
   ``grounding`` or ``attribute_at`` scene, the one the question is about), for the heat maps and
   spreads of :mod:`minivlm.evaluation.bias_stats`, plus each cell's M-RoPE distance from the
   question (the text on its side of the image);
2. attention: the answer position's attention mass on every image location, per layer and head
   (:mod:`minivlm.evaluation.attention_map`), on those prompts and on the same prompts with
   content-free (uniform) images; and, in scenes of several objects, the target token's share of
   the attention on the objects' tokens per layer and head: whether any head picks the object the
   question names, or all of them look at every object alike;
3. PTD (:mod:`minivlm.rope.ptd`) of every layer's design on the run's own prompt layout, and
   its mean over layers (a staggered schedule's Circle-RoPE layers count 0).

    python -m minivlm.evaluation.bias outputs/<run>                       # one run
    python -m minivlm.evaluation.bias outputs/ablation_bias --report results/ablation_bias
    python -m minivlm.evaluation.bias --keep results/ablation_bias/runs --report results/ablation_bias

Answers come from the scoring loop of every other evaluation
(:func:`minivlm.scoring.answer_prompts`). Each part is written to the run's ``bias.json``
(``RunFolder.bias``) as soon as it is measured, and reused when the weights and prompt counts
are the same, so an interrupted sweep resumes where it stopped. ``--keep`` also copies each run's
measurements into a folder of its own (``<run>.json.gz``) and reports every run kept there, so a sweep's
report can be rebuilt, and grown run by run, after its run folders are gone.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.data

from minivlm.data.tasks import generate
from minivlm.data.tasks.scene import cell_name, cell_of
from minivlm.evaluation.attention_map import answer_attention, content_free, image_mass, location_maps
from minivlm.evaluation.bias_stats import bootstrap_interval, near_far_gap, null_third_gap, third_gap
from minivlm.evaluation.evaluate import Settings, load_config, load_model, sample_metadata
from minivlm.evaluation.targets import Target, find_targets
from minivlm.model import VLM
from minivlm.processing.resize import smart_resize
from minivlm.rope import Segment, TextSegment, VisionSegment, position_ids, ptd, vision_mask
from minivlm.run_folder import atomic_file, read_json, write_atomically
from minivlm.scoring import answer_prompts, normalise
from minivlm.train.datamodule import GeneratedSet
from minivlm.train.run import Run, build_run

TARGET_TASKS = ("grounding", "attribute_at")  # image tasks whose scene's first object is the one asked about


@dataclass(frozen=True)
class Probe:
    """How many prompts each measurement uses (the results are reused only for the same counts)."""

    answers: int = 576  # prompts answered per task: 16 per cell of a 6x6 grid
    attention: int = 128  # prompts whose attention is averaged, with real and with content-free images


def merged_shape(run: Run, width: int, height: int) -> tuple[int, int]:
    """Merged-token rows and columns of an image of ``width x height`` px after the run's resize."""
    spec = run.datamodule.processor.spec
    h, w = smart_resize(height, width, spec.factor, spec.min_pixels, spec.max_pixels)
    return h // spec.factor, w // spec.factor


def object_cells(scene: dict, shape: tuple[int, int]) -> list[tuple[int, int]]:
    """(row, column) of the merged token holding each object's centre; the first is the target's."""
    return [(o["y"] * shape[0] // scene["height"], o["x"] * shape[1] // scene["width"]) for o in scene["objects"]]


def named_objects(scene: dict, prediction: str) -> dict[str, int]:
    """Which object an answer names (its index in the scene, -1: none), and which object comes first in
    raster order of the answer grid: a wrong answer is then read as a wrong object, or as no object."""
    grid = scene["grid"]
    cells = [cell_of(o, grid, scene["width"], scene["height"]) for o in scene["objects"]]
    names = [cell_name(*cell) for cell in cells]
    said = normalise(prediction).upper()
    named = names.index(said) if said in names else -1
    return {"named": named, "first": min(range(len(cells)), key=lambda i: cells[i])}


def question_side(segments: Sequence[Segment], question_first: bool) -> torch.Tensor:
    """Bool ``(L,)``: the text tokens between the image and the question's end of the prompt."""
    index = next(i for i, s in enumerate(segments) if isinstance(s, VisionSegment))
    lengths = [s.num_tokens for s in segments]
    side = range(index) if question_first else range(index + 1, len(segments))
    flags = [torch.full((n,), i in side and isinstance(segments[i], TextSegment)) for i, n in enumerate(lengths)]
    return torch.cat(flags)


def question_distance(segments: Sequence[Segment], question_first: bool) -> np.ndarray:
    """``(H, W)``: the mean M-RoPE id distance of every image token from the text on the question's side."""
    ids = position_ids(list(segments), "mrope")
    image = vision_mask(list(segments))
    block = next(s for s in segments if isinstance(s, VisionSegment))
    distances = torch.cdist(ids[:, question_side(segments, question_first)].T.double(), ids[:, image].T.double())
    return distances.mean(dim=0).reshape(block.h, block.w).numpy()


def layer_ptd(run: Run, segments: Sequence[Segment]) -> list[float]:
    """PTD of every LM layer's design on one prompt's layout (1D designs: one row, SPEC.md section 5)."""
    image = vision_mask(list(segments))
    values = []
    for variant in run.schedule.layers:
        ids = variant.position_ids(list(segments))
        values.append(ptd(ids[:1] if variant.design == "rope1d" else ids, image))
    return values


def probe_prompts(run: Run, task: str, count: int, blank: bool = False) -> torch.utils.data.DataLoader:
    """The first ``count`` ``val`` prompts of ``task`` under the run's distribution; ``blank``: content-free images."""
    config = run.datamodule.distribution("val")
    encode = partial(run.datamodule.processor, prompt_only=True)
    data = GeneratedSet([task], count, "val", config, partial(_blank_then, encode) if blank else encode)
    return torch.utils.data.DataLoader(data, batch_size=run.cfg.data.eval_batch_size,
                                       collate_fn=run.datamodule.prompt_collator)


def _blank_then(encode: Any, sample: dict) -> Any:
    return encode(content_free(sample))


def behaviour(run: Run, model: VLM, task: str, count: int) -> list[dict[str, Any]]:
    """Every answer of ``count`` prompts with its target's cell and the image's merged grid."""
    answers = answer_prompts(model, probe_prompts(run, task, count), run.tokenizer, run.cfg.data.max_new_tokens)
    metadata = sample_metadata(run, "val", [a.sample_id for a in answers])
    records = []
    for answer in answers:
        scene = metadata[answer.sample_id]["scene"]
        shape = merged_shape(run, scene["width"], scene["height"])
        records.append({"id": answer.sample_id, "cell": list(object_cells(scene, shape)[0]), "grid": list(shape),
                        "objects": len(scene["objects"]), **named_objects(scene, answer.prediction),
                        "prediction": answer.prediction, "answer": answer.answer,
                        "hit": normalise(answer.prediction) == normalise(answer.answer)})
    return records


def object_attention(run: Run, model: VLM, task: str, count: int) -> dict[str, Any]:
    """Does the answer position read the question, and look at the object it names? Over the first
    ``count`` prompts, per layer and head (each part's ``mean`` and its ``best_head``):

    - ``words``: its attention mass on each word of the question that names the target (the query's
      values that are one token of the prompt, e.g. the colour and the shape);
    - ``target``: in scenes of several objects, the target token's share of its attention mass on
      the objects' tokens (the token under each object's centre); ``no_preference`` is the share a
      head that looks at every object alike gives (the mean of 1 / objects);
    - ``distractor``: the same share for another object (the scene's second), which the question
      does not name: the best of many heads sits above ``no_preference`` by noise and place alone,
      and this is how far, the floor the target's best head must clear.
    """
    merge, image_id = run.model_config.spatial_merge, model.config.image_token_id
    target, distractor, fair, words = [], [], [], {}
    for batch in probe_prompts(run, task, count):
        weights = answer_attention(model, batch, run.tokenizer.pad_id)  # (layers, B, heads, L)
        metadata = sample_metadata(run, "val", batch["sample_ids"])
        for row, (sample_id, mass) in enumerate(zip(batch["sample_ids"], image_mass(weights, batch, image_id, merge))):
            meta = metadata[sample_id]
            for field, value in meta["query"].items():
                word = run.tokenizer.encode(f" {value}") if isinstance(value, str) else []
                where = (batch["input_ids"][row] == word[0]).nonzero() if len(word) == 1 else []
                if len(where) == 1:  # a word of the question, once in the prompt
                    words.setdefault(field, []).append(weights[:, row, :, int(where[0])])
            cells = object_cells(meta["scene"], tuple(mass.shape[-2:]))
            if len(cells) > 1:
                on_objects = torch.stack([mass[..., r, c] for r, c in cells], dim=-1)  # (layers, heads, objects)
                share = on_objects / on_objects.sum(dim=-1, keepdim=True)
                target.append(share[..., 0])
                distractor.append(share[..., 1])
                fair.append(1 / len(cells))
    return {"n": len(target), "target": head_means(target), "distractor": head_means(distractor),
            "no_preference": float(np.mean(fair)) if fair else None,
            "words": {field: {"n": len(values), **head_means(values)} for field, values in words.items()}}


def head_means(values: list[torch.Tensor]) -> dict[str, Any]:
    """``{"mean": (layers, heads) mean over prompts, "best_head": {"layer", "head", "value"}}`` (None without prompts)."""
    if not values:
        return {"mean": None, "best_head": None}
    mean = torch.stack(values).double().mean(dim=0)
    layer, head = divmod(int(mean.argmax()), mean.shape[1])
    return {"mean": mean.tolist(), "best_head": {"layer": layer, "head": head, "value": float(mean[layer, head])}}


def layout(run: Run, task: str) -> dict[str, Any]:
    """The first prompt's layout: its segments' PTD per layer and the cells' distances from the question."""
    config = run.datamodule.distribution("val")
    segments = run.datamodule.processor(generate(task, 0, "val", 0, config), prompt_only=True)["segments"]
    values = layer_ptd(run, segments)
    return {"question_first": config.question_first, "ptd_layers": values, "ptd": float(np.mean(values)),
            "question_distance": question_distance(segments, config.question_first).tolist()}


def summary(records: list[dict[str, Any]], distance: np.ndarray) -> dict[str, Any]:
    """Accuracy (also by the scene's object count), the two spreads with 95 % bootstrap intervals (and the
    third gap's no-bias floor), over the prompts whose image grid is ``distance``'s."""
    kept = [r for r in records if tuple(r["grid"]) == distance.shape]
    cells = np.array([r["cell"][0] * distance.shape[1] + r["cell"][1] for r in kept])
    hits = np.array([r["hit"] for r in kept], dtype=float)
    near_far = near_far_gap(distance)
    by_objects = {k: float(np.mean([r["hit"] for r in kept if r["objects"] == k]))
                  for k in sorted({r["objects"] for r in kept})}
    several = [r for r in kept if r["objects"] > 1]
    wrong = [r for r in several if not r["hit"]]
    # Are objects picked by place? The share of answers naming the object first in raster order, beside
    # the share a model that picks the right object (or any object at random) would give: 1 / objects.
    first = float(np.mean([r["named"] == r["first"] for r in several])) if several else float("nan")
    fair = float(np.mean([1 / r["objects"] for r in several])) if several else float("nan")
    return {"n": len(kept), "accuracy": float(hits.mean()), "by_objects": by_objects,
            "wrong_multi": len(wrong), "wrong_other_object": sum(r["named"] > 0 for r in wrong),
            "names_first": first, "names_first_fair": fair,
            "third_gap": third_gap(cells, hits), "third_gap_ci": bootstrap_interval(third_gap, cells, hits),
            "third_gap_null": null_third_gap(cells, hits),
            "near_far": near_far(cells, hits), "near_far_ci": bootstrap_interval(near_far, cells, hits)}


def final_evaluation(target: Target, tasks: list[str]) -> dict[str, dict[str, float]]:
    """``{task: {"accuracy", "chance"}}`` of the run's own final evaluation (its ``val`` prompts at the last
    step), kept beside the probe so that whether a run learnt its task can be read without its folder."""
    final = target.folder.load_final_eval()
    chance = target.folder.load_baselines().get("val", {}) if target.folder.baselines.is_file() else {}
    return {task: {"accuracy": final["accuracy"][task], "chance": chance[task]["chance"]}
            for task in tasks if final and task in final["accuracy"] and task in chance}


def measure_run(target: Target, probe: Probe, device: str = "cpu") -> dict[str, Any]:
    """Measure one run (what ``bias.json`` already holds for the same weights and counts is reused)."""
    cfg = load_config(target, Settings(num_workers=0))
    run = build_run(cfg, target.folder.root)
    tasks = [task for task in run.datamodule.val_tasks if task in TARGET_TASKS]
    if not tasks:
        raise ValueError(f"{target.folder.root} validates {run.datamodule.val_tasks}; the bias probe needs one of "
                         f"{TARGET_TASKS} (an image task whose target object has a location)")
    model, step = load_model(target)
    model = model.to(device).eval()
    settings = {"weights": str(target.weights), "step": step, "answers": probe.answers, "attention": probe.attention}
    path = target.folder.bias
    stored = read_json(path) if path.is_file() else {}
    result = stored if stored.get("settings") == json.loads(json.dumps(settings)) else {"settings": settings}
    merge = run.model_config.spatial_merge
    for task in tasks:
        parts = result.setdefault("tasks", {}).setdefault(task, {})
        steps = {
            "layout": lambda: layout(run, task),
            "records": lambda: behaviour(run, model, task, probe.answers),
            "attention": lambda: location_maps(model, probe_prompts(run, task, probe.attention), run.tokenizer.pad_id,
                                               merge),
            "attention_content_free": lambda: location_maps(
                model, probe_prompts(run, task, probe.attention, blank=True), run.tokenizer.pad_id, merge),
            "object_attention": lambda: object_attention(run, model, task, probe.attention),
        }
        for name, measure in steps.items():
            if name not in parts:
                parts[name] = measure()
                write_atomically(path, json.dumps(result))
        distance = np.array(parts["layout"]["question_distance"])
        parts["summary"] = summary(parts["records"], distance)
        write_atomically(path, json.dumps(result))
        s = parts["summary"]
        objects = ", ".join(f"{k}: {v:.2f}" for k, v in s["by_objects"].items())
        print(f"{target.folder.root.name} {task}: accuracy {s['accuracy']:.3f} (n {s['n']}; by objects {objects}), third gap "
              f"{s['third_gap']:.3f} [{s['third_gap_ci'][0]:.3f}, {s['third_gap_ci'][1]:.3f}] (no-bias floor "
              f"{s['third_gap_null']:.3f}), near-far "
              f"{s['near_far']:+.3f} [{s['near_far_ci'][0]:+.3f}, {s['near_far_ci'][1]:+.3f}], "
              f"PTD {parts['layout']['ptd']:.3f}; with several objects: {s['wrong_multi']} wrong, "
              f"{s['wrong_other_object']} of them naming another object; answers naming the first object in "
              f"raster order {s['names_first']:.2f} (without a preference {s['names_first_fair']:.2f})")
        print(f"  the answer position: {reading(parts['object_attention'])}")
    final = final_evaluation(target, tasks)
    for task in tasks:
        result["tasks"][task]["final"] = final.get(task)
    return {"run": target.folder.root.name, "rope": run.model_config.rope.label, "seed": cfg.seed,
            "question_first": result["tasks"][tasks[0]]["layout"]["question_first"],
            "tasks": result["tasks"]}


def reading(looks: dict[str, Any]) -> str:
    """One line of :func:`object_attention`'s best heads (layer L, head H)."""
    words = ", ".join(f"{field} {best_head(part)}" for field, part in looks["words"].items())
    fair = "n/a" if looks["no_preference"] is None else f"{looks['no_preference']:.2f}"
    return (f"attention on the question's words, best head: {words or 'none found'}; share of the attention on "
            f"the objects, best head: target {best_head(looks['target'])}, a distractor "
            f"{best_head(looks['distractor'])} (no preference: {fair})")


def best_head(part: dict[str, Any] | None) -> str:
    """``value (L<layer>H<head>)`` of one part of :func:`object_attention`; n/a without prompts."""
    head = part["best_head"] if part else None
    return "n/a" if head is None else f"{head['value']:.3f} (L{head['layer']}H{head['head']})"


def keep(results: list[dict[str, Any]], folder: Path) -> None:
    """Write each measured run to ``folder/<run>.json.gz`` (replacing an earlier measurement of it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for result in results:
        with atomic_file(folder / f"{result['run']}.json.gz") as handle:
            handle.write(gzip.compress(json.dumps(result).encode(), mtime=0))


def kept(folder: Path) -> list[dict[str, Any]]:
    """Every run kept in ``folder`` by :func:`keep`, in name order."""
    return [json.loads(gzip.decompress(path.read_bytes())) for path in sorted(folder.glob("*.json.gz"))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, nargs="?", help="a run folder or a sweep folder (none: only report the "
                        "runs --keep holds)")
    parser.add_argument("--answers", type=int, default=Probe.answers, help="prompts answered per task")
    parser.add_argument("--attention", type=int, default=Probe.attention, help="prompts per attention map")
    parser.add_argument("--weights", default="last", help="last | best | export")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    parser.add_argument("--report", type=Path, default=None, help="then write tables and figures to this folder")
    parser.add_argument("--keep", type=Path, default=None, help="keep every measured run in this folder and report "
                        "all the runs it holds")
    args = parser.parse_args(argv)
    if args.answers < 1 or args.attention < 1:
        raise SystemExit(f"error: --answers and --attention must be >= 1, got {args.answers} and {args.attention}")
    if args.path is None and args.keep is None:
        raise SystemExit("error: pass a run or sweep folder to measure, or --keep <folder> to report the runs kept there")
    try:
        targets = find_targets(args.path, args.weights) if args.path is not None else []
        unfinished = [t for t in targets if t.weights.suffix == ".ckpt" and t.folder.load_final_eval() is None]
        for target in unfinished:  # a sweep in progress: its checkpoint is of some middle step
            print(f"skipped: {target.folder.root} has not finished training")
        results = [measure_run(t, Probe(args.answers, args.attention), args.device)
                   for t in targets if t not in unfinished]
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.keep is not None:
        keep(results, args.keep)
        results = kept(args.keep)
        print(f"{len(results)} runs kept in {args.keep}")
    if args.report is not None:
        from minivlm.evaluation.bias_report import write_report  # matplotlib only when asked for

        command = shlex.join(["python", "-m", "minivlm.evaluation.bias", *(argv or sys.argv[1:])])
        for path in write_report(results, args.report, command):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
