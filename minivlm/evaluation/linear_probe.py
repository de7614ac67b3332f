"""What the LM is shown of an image: linear probes of the merged vision tokens for the scene facts.

When an image task stays at chance, the first question is whether the vision tower hands the LM
what the task needs at all, or whether the LM fails to use it. A linear probe answers the first
half (Alain and Bengio, "Understanding intermediate layers using linear classifier probes",
arXiv 1610.01644): if a linear map of the features recovers a fact, the fact is there in a form
an attention layer can read.

The facts are those every scene task asks about, read from the scene itself (not from a task's
question): for each cell of the task grid, whether an object sits there, and if one does, its
colour and its shape; and the number of objects in the scene. The features are the merged vision
tokens the LM receives (``VLM.vision`` then the merger; ``--features vit``: the ViT's output before
the merger, each merge window's patches averaged, to tell which of the two loses a fact), grouped by the grid cell under each
token's centre and averaged, so a cell's facts are read from that cell's tokens (where
``attribute_at`` and ``count``'s rows and columns need them) and the count from all cells
side by side. Each fact gets an L2-regularised multinomial logistic regression (full-batch L-BFGS;
least squares onto one-hot classes would be faster but misses facts that are linear, by masking),
its strength chosen on a fifth of the training scenes held aside, fitted on ``train``
scenes of the run's own task distribution and scored on held-out ``val`` scenes; beside it the
majority class, and the same probe on the model at initialisation (the run's seed), since random
features already separate much (what training added is the difference).

    python -m minivlm.evaluation.linear_probe outputs/<run>                    # the run's last weights
    python -m minivlm.evaluation.linear_probe outputs/<run> --scenes 4000 --weights best --features vit
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from minivlm.data.tasks import TASKS, generate, get_task
from minivlm.data.tasks.scene import COLOR_NAMES, SHAPES, cell_of
from minivlm.evaluation.evaluate import Settings, load_config, load_model
from minivlm.evaluation.targets import find_targets
from minivlm.model import VLM
from minivlm.train.run import Run, build_run

FEATURES = ("merged", "vit")  # the LM's image tokens, or the ViT's output before the merger
STRENGTHS = (1e-1, 1e-2, 1e-3, 1e-4)  # L2 strengths tried, strongest first (on standardised features)


@dataclass
class Facts:
    """Per scene: each cell's occupant colour and shape index (-1: empty), and the object count."""

    colour: torch.Tensor  # (scenes, cells) long
    shape: torch.Tensor  # (scenes, cells) long
    count: torch.Tensor  # (scenes,) long


def scenes(run: Run, split: str, count: int) -> list[dict]:
    """``count`` samples of ``split`` under the run's task distribution, taking in turn the run's validated
    tasks that draw one scene of objects in a grid (``compare``'s two images and the videos have none)."""
    config = run.datamodule.distribution(split)
    tasks = [task for task in run.datamodule.val_tasks if get_task(task).media == "image"
             and "objects" in generate(task, 0, split, 0, config)["meta"]["scene"]]
    if not tasks:
        raise ValueError(f"{run.folder.root} validates {run.datamodule.val_tasks}, none a one-scene image task "
                         f"({', '.join(t for t in TASKS if get_task(t).media == 'image' and t != 'compare')}); "
                         "the probe reads scenes")
    return [generate(tasks[i % len(tasks)], i // len(tasks), split, 0, config) for i in range(count)]


def scene_facts(samples: list[dict]) -> Facts:
    grid = samples[0]["meta"]["scene"]["grid"]
    colour = torch.full((len(samples), grid * grid), -1, dtype=torch.long)
    shape = colour.clone()
    for index, sample in enumerate(samples):
        scene = sample["meta"]["scene"]
        for obj in scene["objects"]:
            row, col = cell_of(obj, grid, scene["width"], scene["height"])
            colour[index, row * grid + col] = COLOR_NAMES.index(obj["color"])
            shape[index, row * grid + col] = SHAPES.index(obj["shape"])
    return Facts(colour, shape, torch.tensor([len(s["meta"]["scene"]["objects"]) for s in samples]))


@torch.no_grad()
def cell_features(model: VLM, run: Run, samples: list[dict], features: str = "merged",
                  batch_size: int = 64) -> torch.Tensor:
    """``(scenes, cells, dim)``: each grid cell's mean image token (tokens by their centre's cell); ``features``
    "vit" takes the ViT's patches before the merger, each merge window averaged (the windows are consecutive)."""
    grid, merge = samples[0]["meta"]["scene"]["grid"], run.model_config.spatial_merge
    out = []
    for start in range(0, len(samples), batch_size):
        encoded = [run.datamodule.processor(s, prompt_only=True) for s in samples[start:start + batch_size]]
        batch = run.datamodule.prompt_collator(encoded)
        patches, _ = model.vision(batch["pixel_values"], batch["vision_grid"], batch["patch_positions"],
                                  batch.get("vision_frames"), batch.get("longest_frame"))
        window = merge * merge
        merged = (model.merger(patches) if features == "merged" else patches.view(-1, window, patches.shape[-1]).mean(1))
        merged = merged.float()
        shapes = (batch["vision_grid"][:, 1:] // merge).tolist()
        for tokens, (rows, cols) in zip(merged.split([r * c for r, c in shapes]), shapes, strict=True):
            # A token's centre (i + 0.5) / rows of the way down the image lies in grid row floor(that * grid).
            row = ((torch.arange(rows) + 0.5) * grid / rows).long()
            col = ((torch.arange(cols) + 0.5) * grid / cols).long()
            cell = (row[:, None] * grid + col[None, :]).flatten()
            sums = torch.zeros(grid * grid, tokens.shape[1]).index_add_(0, cell, tokens)
            out.append(sums / torch.bincount(cell, minlength=grid * grid).clamp(min=1)[:, None])
    return torch.stack(out)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, strength: float,
                 start: torch.Tensor | None = None) -> torch.Tensor:
    """Weights ``(features + 1, classes)`` minimising mean cross-entropy + ``strength`` * |W|^2 (bias
    unpenalised) by full-batch L-BFGS, from ``start`` (a neighbouring strength's solution) or zeros."""
    x = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    weights = (torch.zeros(x.shape[1], classes) if start is None else start.clone()).requires_grad_(True)
    optimiser = torch.optim.LBFGS([weights], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(x @ weights, y) + strength * weights[:-1].pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return weights.detach()


def predict(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (torch.cat([x, torch.ones(len(x), 1)], dim=1) @ weights).argmax(dim=1)


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor) -> float:
    """Held-out accuracy of the logistic probe whose strength does best on a fifth of ``train`` held aside."""
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    aside = len(train_x) // 5
    scores, weights = [], None
    for strength in STRENGTHS:  # strongest first, each fit starting from the previous one (a regularisation path)
        weights = fit_logistic(train_x[aside:], train_y[aside:], classes, strength, weights)
        scores.append((predict(weights, train_x[:aside]) == train_y[:aside]).float().mean().item())
    best = STRENGTHS[max(range(len(STRENGTHS)), key=scores.__getitem__)]
    return (predict(fit_logistic(train_x, train_y, classes, best), test_x) == test_y).float().mean().item()


def majority(train_y: torch.Tensor, test_y: torch.Tensor) -> float:
    return (test_y == torch.bincount(train_y).argmax()).float().mean().item()


def fact_probes(train: tuple[torch.Tensor, Facts], test: tuple[torch.Tensor, Facts]) -> dict[str, tuple[float, float]]:
    """``{fact: (probe accuracy, majority accuracy)}`` on the test scenes; per-cell facts averaged over cells."""
    (train_x, train_f), (test_x, test_f) = train, test
    results: dict[str, list[tuple[float, float]]] = {"occupied": [], "colour": [], "shape": []}
    for cell in range(train_x.shape[1]):
        xs, xt = train_x[:, cell], test_x[:, cell]
        occupied, occupied_test = train_f.colour[:, cell] >= 0, test_f.colour[:, cell] >= 0
        results["occupied"].append((probe_accuracy(xs, occupied.long(), xt, occupied_test.long()),
                                    majority(occupied.long(), occupied_test.long())))
        for fact in ("colour", "shape"):  # asked only where an object is
            y, y_test = getattr(train_f, fact)[:, cell], getattr(test_f, fact)[:, cell]
            if occupied.sum() >= 10 and occupied_test.any():
                results[fact].append((probe_accuracy(xs[occupied], y[occupied], xt[occupied_test], y_test[occupied_test]),
                                      majority(y[occupied], y_test[occupied_test])))
    summary = {fact: tuple(float(sum(v) / len(v)) for v in zip(*pairs)) for fact, pairs in results.items() if pairs}
    summary["count"] = (probe_accuracy(train_x.flatten(1), train_f.count, test_x.flatten(1), test_f.count),
                        majority(train_f.count, test_f.count))
    return summary


def probe_run(path: Path, weights: str = "last", count: int = 2000,
              features: str = "merged") -> dict[str, dict[str, tuple[float, float]]]:
    """``{"trained": facts, "initial": facts}`` for one run (``count`` train scenes, a quarter as many held out)."""
    target = find_targets(path, weights)[0]
    cfg = load_config(target, Settings(num_workers=0))
    run = build_run(cfg, target.folder.root)
    trained, _ = load_model(target)
    L.seed_everything(cfg.seed, verbose=False)
    initial = VLM(run.model_config)
    train, test = scenes(run, "train", count), scenes(run, "val", max(1, count // 4))
    facts = scene_facts(train), scene_facts(test)
    return {name: fact_probes((cell_features(model.eval(), run, train, features), facts[0]),
                              (cell_features(model.eval(), run, test, features), facts[1]))
            for name, model in (("trained", trained), ("initial", initial))}


def table(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    lines = ["| fact | trained | at initialisation | majority class |", "|---|---|---|---|"]
    for fact, (accuracy, base) in results["trained"].items():
        lines.append(f"| {fact} | {accuracy:.3f} | {results['initial'][fact][0]:.3f} | {base:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a run folder (or a checkpoint in one)")
    parser.add_argument("--scenes", type=int, default=2000, help="training scenes per probe (a quarter as many held out)")
    parser.add_argument("--weights", default="last", help="last | best | export")
    parser.add_argument("--features", default="merged", choices=FEATURES, help="the LM's image tokens (merged) or "
                        "the ViT's output before the merger (vit)")
    args = parser.parse_args(argv)
    if args.scenes < 20:
        raise SystemExit(f"error: --scenes must be >= 20 (a fifth is held aside to choose the strength), got {args.scenes}")
    try:
        results = probe_run(args.path, args.weights, args.scenes, args.features)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{args.path}: linear probes of the {args.features} image tokens (held-out accuracy)\n{table(results)}")


if __name__ == "__main__":
    main()
