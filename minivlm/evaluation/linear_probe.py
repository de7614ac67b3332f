"""What the LM is shown of an image: linear probes of the image tokens for the scene facts.

When an image task stays at chance, the first question is whether the vision tower hands the LM
what the task needs at all, or whether the LM fails to use it. A linear probe answers the first
half (Alain and Bengio, "Understanding intermediate layers using linear classifier probes",
arXiv 1610.01644): if a linear map of the features recovers a fact, the fact is there in a form
an attention layer can read.

The facts are those every scene task asks about, read from the scene itself (not from a task's
question): each object's colour and shape, read from the image token under the object's centre
(the token ``attribute_at`` or a named-object question has to read); whether an object sits in
each cell of the task grid, read from the mean of the tokens whose centres lie in that cell; and
the number of objects, read from all cells side by side. The features are the merged image
tokens the LM receives (``VLM.vision`` then the merger) or, with ``--features vit``, the ViT's
output before the merger (each merge window's patches concatenated, the merger's own input), to
tell which of the two loses a fact. Each fact gets an L2-regularised multinomial logistic
regression (full-batch L-BFGS; least squares onto one-hot classes would be faster but misses facts
that are linear, by masking), its strength chosen on a fifth of the training scenes held aside,
fitted on ``train`` scenes of the run's own task distribution and scored on held-out ``val``
scenes; beside it the majority class, and the same probe on the model at initialisation (the
run's seed), since random features already separate much (what training added is the difference).
Several checkpoints of one run (``keep_every`` keeps them) give one row each: what the tokens hold
over training.

Readable is not the same as prominent: a second table gives, over the held-out tokens under the
objects, the share of their variance that each object's colour, its shape and the token's place
in the grid explain (the correlation ratio, eta squared: the spread of the class means over the
total spread). A fact a probe reads at 0.99 may still be a direction the LM's attention has to
single out from features that mostly say where a token is.

    python -m minivlm.evaluation.linear_probe outputs/<run>                    # the run's last weights
    python -m minivlm.evaluation.linear_probe outputs/<run>/checkpoints/step-*.ckpt --features vit
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
FACTS = ("colour", "shape", "occupied", "count")
STRENGTHS = (1e-1, 1e-2, 1e-3, 1e-4)  # L2 strengths tried, strongest first (on standardised features)


@dataclass
class Facts:
    """Of a list of scenes: each object's colour and shape index and (scene, token row, token column)
    of the token under its centre; each cell's occupancy; the object count per scene."""

    colour: torch.Tensor  # (objects,) long
    shape: torch.Tensor  # (objects,) long
    token: list[tuple[int, int, int]]  # per object
    occupied: torch.Tensor  # (scenes, cells) long, 0 or 1
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


def scene_facts(samples: list[dict], token_grids: Sequence[tuple[int, int]]) -> Facts:
    """The facts of ``samples``, whose images are ``token_grids[i]`` = (rows, columns) of image tokens."""
    grid = samples[0]["meta"]["scene"]["grid"]
    colour, shape, token = [], [], []
    occupied = torch.zeros(len(samples), grid * grid, dtype=torch.long)
    for index, (sample, (rows, cols)) in enumerate(zip(samples, token_grids, strict=True)):
        scene = sample["meta"]["scene"]
        for obj in scene["objects"]:
            row, col = cell_of(obj, grid, scene["width"], scene["height"])
            occupied[index, row * grid + col] = 1
            colour.append(COLOR_NAMES.index(obj["color"]))
            shape.append(SHAPES.index(obj["shape"]))
            token.append((index, obj["y"] * rows // scene["height"], obj["x"] * cols // scene["width"]))
    return Facts(torch.tensor(colour), torch.tensor(shape), token, occupied,
                 torch.tensor([len(s["meta"]["scene"]["objects"]) for s in samples]))


@torch.no_grad()
def token_grids(model: VLM, run: Run, samples: list[dict], features: str = "merged",
                batch_size: int = 64) -> list[torch.Tensor]:
    """Per sample ``(rows, cols, dim)``: its image tokens in raster order, the merged ones or (``features``
    "vit") the ViT's patches of each merge window concatenated, as the merger receives them."""
    merge = run.model_config.spatial_merge
    out = []
    for start in range(0, len(samples), batch_size):
        encoded = [run.datamodule.processor(s, prompt_only=True) for s in samples[start:start + batch_size]]
        batch = run.datamodule.prompt_collator(encoded)
        patches, _ = model.vision(batch["pixel_values"], batch["vision_grid"], batch["patch_positions"],
                                  batch.get("vision_frames"), batch.get("longest_frame"))
        tokens = model.merger(patches) if features == "merged" else patches.reshape(-1, merge * merge * patches.shape[-1])
        shapes = (batch["vision_grid"][:, 1:] // merge).tolist()
        out += [t.view(rows, cols, -1) for t, (rows, cols) in
                zip(tokens.float().split([r * c for r, c in shapes]), shapes, strict=True)]
    return out


def cell_means(grids: list[torch.Tensor], grid: int) -> torch.Tensor:
    """``(scenes, cells, dim)``: each cell's mean token, a token belonging to the cell under its centre."""
    out = []
    for tokens in grids:
        rows, cols = tokens.shape[:2]
        # A token's centre (i + 0.5) / rows of the way down the image lies in grid row floor(that * grid).
        row = ((torch.arange(rows) + 0.5) * grid / rows).long()
        col = ((torch.arange(cols) + 0.5) * grid / cols).long()
        cell = (row[:, None] * grid + col[None, :]).flatten()
        sums = torch.zeros(grid * grid, tokens.shape[-1]).index_add_(0, cell, tokens.flatten(0, 1))
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


def fact_features(grids: list[torch.Tensor], facts: Facts, grid: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{fact: (features, labels)}``; occupancy has one column per cell (features ``(scenes, cells, dim)``)."""
    at_objects = torch.stack([grids[scene][row, col] for scene, row, col in facts.token])
    cells = cell_means(grids, grid)
    return {"colour": (at_objects, facts.colour), "shape": (at_objects, facts.shape),
            "occupied": (cells, facts.occupied), "count": (cells.flatten(1), facts.count)}


def explained_variance(x: torch.Tensor, labels: torch.Tensor) -> float:
    """Eta squared: the share of the features' total squared spread about their mean that lies in the
    spread of the class means (each class weighted by its size)."""
    mean = x.mean(dim=0)
    total = (x - mean).pow(2).sum()
    between = sum((labels == c).sum() * (x[labels == c].mean(dim=0) - mean).pow(2).sum() for c in labels.unique())
    return float(between / total)


def variance_shares(at_objects: torch.Tensor, facts: Facts) -> dict[str, float]:
    """``{fact: eta squared}`` of the tokens under the objects (``fact_features``' colour features): their
    colour, their shape, and the token's place (its row and column in the image's token grid)."""
    at_objects = at_objects.double()
    place = torch.tensor([row * 1000 + col for _, row, col in facts.token])
    return {"colour": explained_variance(at_objects, facts.colour), "shape": explained_variance(at_objects, facts.shape),
            "place": explained_variance(at_objects, place)}


def fact_probes(train: dict[str, tuple[torch.Tensor, torch.Tensor]],
                test: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, tuple[float, float]]:
    """``{fact: (probe accuracy, majority accuracy)}`` on the test scenes; occupancy averaged over cells."""
    summary = {}
    for fact in FACTS:
        (train_x, train_y), (test_x, test_y) = train[fact], test[fact]
        if fact == "occupied":
            pairs = [(probe_accuracy(train_x[:, c], train_y[:, c], test_x[:, c], test_y[:, c]),
                      majority(train_y[:, c], test_y[:, c])) for c in range(train_x.shape[1])]
            summary[fact] = tuple(sum(v) / len(v) for v in zip(*pairs))
        else:
            summary[fact] = (probe_accuracy(train_x, train_y, test_x, test_y), majority(train_y, test_y))
    return summary


def probe_models(run: Run, models: dict[str, VLM], count: int = 2000,
                 features: str = "merged") -> dict[str, dict[str, dict]]:
    """``{model name: {"probes": {fact: (accuracy, majority)}, "variance": variance_shares}}`` on ``count``
    train scenes (a quarter as many held out, where the variance shares are read), the same scenes for
    every model."""
    train, test = scenes(run, "train", count), scenes(run, "val", max(1, count // 4))
    grid = train[0]["meta"]["scene"]["grid"]
    facts: dict[int, Facts] = {}  # per split: the scenes' facts, the same for every model
    results = {}
    for name, model in models.items():
        split_features = []
        for index, samples in enumerate((train, test)):
            grids = token_grids(model.eval(), run, samples, features)
            if index not in facts:
                facts[index] = scene_facts(samples, [tuple(g.shape[:2]) for g in grids])
            split_features.append(fact_features(grids, facts[index], grid))
        results[name] = {"probes": fact_probes(*split_features), "variance": variance_shares(split_features[1]["colour"][0], facts[1])}
    return results


def probe_checkpoints(paths: Sequence[Path], weights: str = "last", count: int = 2000,
                      features: str = "merged") -> dict[str, dict[str, dict]]:
    """The probes of one run's checkpoints (or its ``weights``), after the same model at initialisation."""
    targets = [target for path in paths for target in find_targets(path, weights)]
    roots = {target.folder.root.resolve() for target in targets}
    if len(roots) > 1:
        raise ValueError(f"the checkpoints come from {len(roots)} runs ({', '.join(map(str, sorted(roots)))}); "
                         "probe one run at a time, so every row shares its scenes and its initialisation")
    cfg = load_config(targets[0], Settings(num_workers=0))
    run = build_run(cfg, targets[0].folder.root)
    L.seed_everything(cfg.seed, verbose=False)
    models = {f"initialisation (seed {cfg.seed})": VLM(run.model_config)}
    for target in targets:
        model, step = load_model(target)
        models[f"step {step}" if step is not None else target.weights.name] = model
    return probe_models(run, dict(sorted(models.items(), key=lambda item: step_order(item[0]))), count, features)


def step_order(name: str) -> int:
    """Initialisation first, then checkpoints by step."""
    return int(name.split()[1]) if name.startswith("step ") else -1


def table(results: dict[str, dict[str, dict]]) -> str:
    lines = ["| weights | " + " | ".join(FACTS) + " |", "|---" * (len(FACTS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{result['probes'][f][0]:.3f}" for f in FACTS) + " |"
              for name, result in results.items()]
    some = next(iter(results.values()))["probes"]
    return "\n".join([*lines, "| majority class | " + " | ".join(f"{some[f][1]:.3f}" for f in FACTS) + " |"])


def variance_table(results: dict[str, dict[str, dict]]) -> str:
    names = list(next(iter(results.values()))["variance"])
    lines = ["| weights | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{result['variance'][n]:.3f}" for n in names) + " |"
              for name, result in results.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="a run folder, or checkpoints of one run")
    parser.add_argument("--scenes", type=int, default=2000, help="training scenes per probe (a quarter as many held out)")
    parser.add_argument("--weights", default="last", help="of a run folder: last | best | export")
    parser.add_argument("--features", default="merged", choices=FEATURES, help="the LM's image tokens (merged) or "
                        "the ViT's output before the merger (vit)")
    args = parser.parse_args(argv)
    if args.scenes < 20:
        raise SystemExit(f"error: --scenes must be >= 20 (a fifth is held aside to choose the strength), got {args.scenes}")
    try:
        results = probe_checkpoints(args.paths, args.weights, args.scenes, args.features)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{', '.join(map(str, args.paths))}: linear probes of the {args.features} image tokens (held-out accuracy; "
          "colour and shape from the token under each object, occupied per cell, count from all cells)\n"
          f"{table(results)}\n\nshare of the variance of the tokens under the objects that each explains "
          f"(eta squared, held-out scenes)\n{variance_table(results)}")


if __name__ == "__main__":
    main()
