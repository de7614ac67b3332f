"""Score trained models on the shipped diagnostic splits: per task, exact match, near miss, valid.

    python evaluate.py outputs/tiny-mrope-seed0                 # a run folder (its last.ckpt)
    python evaluate.py outputs/tiny-mrope-seed0/export          # an exported model
    python evaluate.py outputs/ablation_frequency --per-task 96 --out results/ablation_frequency/runs.json
    python evaluate.py outputs/ablation_frequency --report results/ablation_frequency   # + aggregate
    python evaluate.py outputs/<run> rope.scaling.type=yarn rope.scaling.factor=3 rope.scaling.original_max_position=64
    python evaluate.py outputs/<run> --splits real my_vqa.parquet    # real data (minivlm.evaluation.real)

Answers are decoded by the loop of training's final evaluation (:func:`minivlm.scoring.answer_prompts`)
on the same prompts: the run's own config and processor, and the prompt batches of
``VLMDataModule.eval_dataloader`` (the first ``per_task`` samples of every task). Each answer is
then judged against its sample's metadata
(:mod:`minivlm.evaluation.tolerance`). A run's result is written into its folder
(``evaluation.json`` + ``evaluation.csv``, and every answer with its judgement in
``predictions.jsonl`` for error analysis) as soon as it is scored, and a run already scored from
the same weights file with the same settings is skipped, so an interrupted evaluation of a sweep
resumes where it stopped.

A RoPE scaling has no weights, so it can be switched on for a trained run:
``rope.scaling.<key>=<value>`` arguments (:mod:`minivlm.rope.scaling`) score the same weights
under that scaling, and their results go to their own files (``evaluation-yarn3.json`` for
``type=yarn factor=3``), never over the unscaled ones.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow.parquet as pq
import torch
from omegaconf import DictConfig, OmegaConf

from minivlm.data.tasks import get_task, pose_problem
from minivlm.data.tasks.core import parse_sample_id
from minivlm.evaluation.real import is_real_split, real_answers
from minivlm.evaluation.targets import Target, find_targets
from minivlm.evaluation.tolerance import judge
from minivlm.evaluation.vqa import ALL_METRICS
from minivlm.model import VLM, RopeConfig
from minivlm.resources import SYNTHETIC_DIR
from minivlm.run_folder import EXPORT_CONFIG, WEIGHT_CHOICES, ExportFolder, read_json, write_atomically
from minivlm.scoring import answer_prompts
from minivlm.train.config_store import NOT_IN_MODEL_GROUP, compose_train
from minivlm.train.export import read_checkpoint
from minivlm.train.run import Run, build_run


@dataclass(frozen=True)
class Settings:
    """What to score and how. Only ``splits`` and ``per_task`` change the scores."""

    splits: tuple[str, ...] = ("val", "extrapolate")  # shipped sets in data/synthetic/, or real ones (real.py)
    per_task: int | None = None  # samples per task and split; None: the run's data.final_eval_per_task
    weights: str = "last"  # in a run folder: last | best | export
    device: str = "cpu"  # torch device of the model
    num_workers: int | None = None  # DataLoader workers; None: the run's data.num_workers
    batch_size: int | None = None  # prompts per generation batch; None: the run's data.eval_batch_size
    rope_scaling: tuple[tuple[str, Any], ...] = ()  # rope.scaling keys set for this evaluation (no retraining)

    @property
    def tag(self) -> str:
        """The suffix of scaled results' file names, e.g. ``yarn3``; empty without a scaling."""
        scaling = dict(self.rope_scaling)
        return f"{scaling.get('type', '')}{float(scaling.get('factor', 1)):g}" if scaling else ""


def parse_rope_scaling(overrides: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """``rope.scaling.<key>=<value>`` arguments as ``(key, value)`` pairs (values parsed as YAML).

    Raises:
        ValueError: an argument that sets anything else (weights must match the trained model).
    """
    bad = [o for o in overrides if not o.startswith("rope.scaling.") or "=" not in o]
    if bad:
        raise ValueError(f"evaluation overrides {bad}: only rope.scaling.<key>=<value> can change without "
                         "retraining, e.g. rope.scaling.type=yarn rope.scaling.factor=3")
    return tuple(OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides))).get("rope", {})
                 .get("scaling", {}).items())


def saved_model_fields(weights: Path) -> dict[str, Any]:
    """The ModelConfig fields stored with the weights themselves (checkpoint hparams or config.json)."""
    if weights.suffix == ".ckpt":
        return torch.load(weights, map_location="cpu", weights_only=True, mmap=True)["hyper_parameters"]["model_config"]
    fields = read_json(weights / EXPORT_CONFIG)
    fields.pop("model_type", None)
    return fields


def use_export_settings(cfg: DictConfig, files: ExportFolder) -> None:
    """Set ``cfg.data`` to what an export carries: its processor's settings, the task distribution and
    prompt count it was evaluated on, its answer budget (exports made before these files keep the defaults)."""
    data = cfg.data
    if files.processor.is_file():
        processor = read_json(files.processor)
        data.min_pixels, data.max_pixels = processor["min_pixels"], processor["max_pixels"]
        data.fps, data.video_layout = processor["fps"], processor["video_layout"]
    if files.evaluation.is_file():
        evaluated = read_json(files.evaluation)
        data.mix, data.task, data.curriculum = evaluated["mix"], evaluated["task"], []
        if evaluated.get("real"):  # a real-data run: its source and held-out slice (evaluate.py --splits real)
            data.real = evaluated["real"]
        data.final_eval_per_task, data.eval_batch_size = evaluated["per_task"], evaluated["eval_batch_size"]
    if files.generation.is_file():
        data.max_new_tokens = read_json(files.generation)["max_new_tokens"]


def load_config(target: Target, settings: Settings) -> DictConfig:
    """The run's resolved config (or the defaults plus the saved model), with evaluation overrides."""
    if target.config is not None:
        cfg = OmegaConf.load(target.config)
    else:  # weights outside a run: the shipped defaults, the model from the weights, an export's own settings
        cfg = compose_train()
        OmegaConf.set_struct(cfg, False)
        model = saved_model_fields(target.weights)
        cfg.rope = model["rope"]
        cfg.model = {key: value for key, value in model.items() if key not in NOT_IN_MODEL_GROUP}
        if target.weights.is_dir():
            use_export_settings(cfg, ExportFolder(target.weights))
    cfg.data.tokenizer = str(target.tokenizer_dir)  # the run's own tokenizer, whatever the working directory
    cfg.compile = False  # a few hundred short generations: compiling would cost more than it saves
    if settings.num_workers is not None:
        cfg.data.num_workers = settings.num_workers
    if settings.batch_size is not None:
        cfg.data.eval_batch_size = settings.batch_size
    if settings.rope_scaling:
        cfg.rope.scaling = {**(cfg.rope.get("scaling") or {}), **dict(settings.rope_scaling)}
    return cfg


def load_model(target: Target) -> tuple[VLM, int | None]:
    """The target's model and the training step its weights come from (strict: a mismatch names the tensors)."""
    if target.weights.suffix == ".ckpt":
        return read_checkpoint(target.weights)
    final = ExportFolder(target.weights).load_final_eval() or target.folder.load_final_eval()
    return VLM.from_pretrained(target.weights), final["steps"] if final else None


def split_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """``{sample id: meta}`` of a shipped split, read without decoding any image."""
    table = pq.read_table(path, columns=["id", "meta"])
    return {sample_id: json.loads(meta) for sample_id, meta in zip(table["id"].to_pylist(), table["meta"].to_pylist())}


def sample_metadata(run: Run, split: str, sample_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{sample id: meta}`` of the samples a run is scored on: the shipped split's, or, when
    ``data.task`` changed the distribution (the prompts are generated), the problems posed again
    (no pixels drawn)."""
    config = run.datamodule.task_config(split)
    if config is None:
        return split_metadata(run.datamodule.synthetic_dir / f"{split}.parquet")
    metadata = {}
    for name in sample_ids:
        task, split_name, seed, index = parse_sample_id(name)
        problem = pose_problem(get_task(task), index, split_name, seed, config)
        metadata[name] = {"scene": problem.scene, "query": problem.query, "choices": list(problem.choices)}
    return metadata


class JudgedAnswer(NamedTuple):
    """One generated answer and its scores: a line of a run's ``predictions.jsonl``."""

    split: str
    task: str
    id: str  # sample id in the split (a shipped sample's metadata says what the scene held)
    prediction: str
    answer: str
    scores: dict[str, Any]  # exact, near, valid (synthetic splits); exact and, with references, vqa (real ones)

    def record(self) -> dict[str, Any]:
        """The ``predictions.jsonl`` line: the fields, the scores flattened beside them."""
        fields = {key: value for key, value in self._asdict().items() if key != "scores"}
        return {**fields, **self.scores}


def summarise(answers: Sequence[JudgedAnswer]) -> dict[str, float]:
    """Sample count and the mean of each metric every one of ``answers`` (one task's) has."""
    metrics = [m for m in ALL_METRICS if all(m in a.scores for a in answers)]
    return {"n": len(answers), **{m: sum(a.scores[m] for a in answers) / len(answers) for m in metrics}}


def answer_split(run: Run, model: VLM, split: str, per_task: int) -> list[JudgedAnswer]:
    """Every judged answer of ``model`` on the first ``per_task`` samples per task of a split."""
    if is_real_split(split) and split not in shipped_splits():
        return [JudgedAnswer(split, a.task, a.sample_id, a.prediction, a.answer, scores)
                for a, scores in real_answers(run, model, split, per_task)]
    answers = answer_prompts(model, run.datamodule.eval_dataloader(split, per_task), run.tokenizer,
                             run.cfg.data.max_new_tokens)
    metadata = sample_metadata(run, split, [a.sample_id for a in answers])
    return [JudgedAnswer(split, a.task, a.sample_id, a.prediction, a.answer,
                         judge(a.prediction, a.answer, metadata[a.sample_id])._asdict()) for a in answers]


def summarise_split(answers: Sequence[JudgedAnswer]) -> dict[str, dict[str, float]]:
    """``{task: {"n", metric: mean, ...}}`` over the judged answers of one split."""
    judged: dict[str, list[JudgedAnswer]] = defaultdict(list)
    for answer in answers:
        judged[answer.task].append(answer)
    return {task: summarise(judged[task]) for task in sorted(judged)}


def fingerprint(target: Target, per_task: int, settings: Settings) -> dict[str, Any]:
    """What a stored result must match to be reused: the same weights file, unchanged, same sample count
    and scaling."""
    return {"weights": str(target.weights.resolve()), "modified_ns": target.weights.stat().st_mtime_ns,
            "per_task": per_task, "rope_scaling": dict(settings.rope_scaling) or None}


def stored_result(target: Target, per_task: int, settings: Settings) -> dict[str, Any] | None:
    """The run's saved result when it covers these splits with these weights and settings."""
    path = target.folder.evaluation(settings.tag)[0]
    if not path.is_file():
        return None
    result = read_json(path)
    same = all(result.get(key) == value for key, value in fingerprint(target, per_task, settings).items())
    return result if same and set(settings.splits) <= set(result["scores"]) else None


def answer_target(target: Target, settings: Settings, cfg: DictConfig,
                  per_task: int) -> tuple[dict[str, list[JudgedAnswer]], int | None]:
    """``{split: judged answers}`` of one model (``cfg``: :func:`load_config`'s), and the step of its weights."""
    run = build_run(cfg, target.folder.root)  # checks the scaling, with the rest of the config
    model, step = load_model(target)
    if settings.rope_scaling:
        model = model.with_rope_scaling(run.model_config.rope.scaling)
    model = model.to(settings.device)
    return {split: answer_split(run, model, split, per_task) for split in settings.splits}, step


def evaluate_target(target: Target, settings: Settings, force: bool = False) -> dict[str, Any]:
    """Score one model on every split, save the result in its run folder, and return it."""
    cfg = load_config(target, settings)
    per_task = settings.per_task or int(cfg.data.final_eval_per_task)
    result_json, result_csv, predictions = target.folder.evaluation(settings.tag)
    if not force and (result := stored_result(target, per_task, settings)) is not None:
        print(f"{target.folder.root}: already scored ({result_json}), skipped")
        return result
    answers, step = answer_target(target, settings, cfg, per_task)
    scores = {split: summarise_split(split_answers) for split, split_answers in answers.items()}
    result = {
        "run": target.folder.root.name,
        "run_dir": str(target.folder.root),
        **fingerprint(target, per_task, settings),
        "step": step,
        "finished": target.folder.load_final_eval() is not None,
        "config": {"rope": RopeConfig(**cfg.rope).label, "vit_rope": bool(cfg.model.vit_rope), "seed": cfg.seed,
                   "model": cfg.model.size},
        "scores": scores,
        "mean": {split: {m: sum(s[m] for s in tasks.values()) / len(tasks)
                         for m in ALL_METRICS if all(m in s for s in tasks.values())}
                 for split, tasks in scores.items()},
    }
    write_csv([result], result_csv)
    with predictions.open("w") as handle:  # for error analysis (README, results/)
        handle.writelines(json.dumps(a.record()) + "\n" for split_answers in answers.values() for a in split_answers)
    # The JSON marks the run as scored, so it is written last and whole: an evaluation interrupted
    # here leaves either no result or a complete one.
    write_atomically(result_json, json.dumps(result, indent=2))
    print(format_result(result))
    return result


def shipped_splits() -> list[str]:
    return sorted(p.stem for p in SYNTHETIC_DIR.glob("*.parquet"))


def evaluate_path(path: str | Path, settings: Settings, force: bool = False) -> list[dict[str, Any]]:
    """Score everything ``path`` names (see :func:`find_targets`); returns one result per model."""
    shipped = shipped_splits()
    for split in settings.splits:
        if split not in shipped and not is_real_split(split):
            raise ValueError(f"unknown split {split!r}; the shipped splits are {shipped} (in {SYNTHETIC_DIR}); real "
                             "data: `real` (a run's held-out records), a local data file or folder, or a hub "
                             "dataset owner/name[:config[:split]]")
    return [evaluate_target(target, settings, force) for target in find_targets(Path(path), settings.weights)]


def csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"run": result["run"], "step": result["step"], "split": split, "task": task, **values}
            for split, tasks in result["scores"].items() for task, values in tasks.items()]


def write_csv(results: Sequence[dict[str, Any]], path: Path) -> None:
    """One row per run, split and task: n and every metric (blank where a split has no such metric)."""
    rows = [row for result in results for row in csv_rows(result)]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["run", "step", "split", "task", "n", *ALL_METRICS], restval="")
        writer.writeheader()
        writer.writerows(rows)


def format_result(result: dict[str, Any]) -> str:
    """A plain-text table: tasks down; per split, its metrics across; the mean over tasks last."""
    splits = list(result["scores"])
    metrics = {split: list(result["mean"][split]) for split in splits}
    tasks = sorted({task for scores in result["scores"].values() for task in scores})

    def row(label: str, values: dict[str, dict[str, float]]) -> str:
        cells = ["".join(f"{'-' if values[s].get(m) is None else f'{values[s][m]:.3f}':>7}" for m in metrics[s])
                 for s in splits]
        return f"{label[:13]:<14}" + "  ".join(cells)

    lines = [f"{result['run_dir']}  ({Path(result['weights']).name}, step {result['step']}, "
             f"{result['per_task']} per task)",
             f"{'':<14}" + "  ".join(f"{split[-7 * len(metrics[split]):]:>{7 * len(metrics[split])}}" for split in splits),
             f"{'task':<14}" + "  ".join("".join(f"{m:>7}" for m in metrics[s]) for s in splits)]
    for task in tasks:
        lines.append(row(task, {s: result["scores"][s].get(task, {}) for s in splits}))
    lines.append(row("mean", result["mean"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a .ckpt, an export folder, a run folder, or a folder of runs")
    parser.add_argument("overrides", nargs="*", help="rope.scaling.<key>=<value>: score under a RoPE scaling, e.g. "
                        "rope.scaling.type=yarn rope.scaling.factor=3 rope.scaling.original_max_position=64")
    parser.add_argument("--splits", nargs="+", default=["val", "extrapolate"],
                        help="shipped splits (val, extrapolate), `real` (a run's held-out real records), a local data "
                        "file or folder, or a hub dataset owner/name[:config[:split]]")
    parser.add_argument("--per-task", type=int, default=None, help="samples per task (default: the run's "
                        "data.final_eval_per_task)")
    parser.add_argument("--weights", choices=WEIGHT_CHOICES, default="last",
                        help="which weights of a run folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=None, help="prompts per generation batch")
    parser.add_argument("--force", action="store_true", help="re-score runs already scored")
    parser.add_argument("--out", type=Path, default=None, help="also write all results to this JSON (+ .csv)")
    parser.add_argument("--report", type=Path, default=None,
                        help="then aggregate the folder's runs into this folder (tables and plots)")
    args = parser.parse_args(argv)
    if args.per_task is not None and args.per_task < 1:
        parser.error(f"--per-task must be >= 1, got {args.per_task}")
    try:
        settings = Settings(tuple(args.splits), args.per_task, args.weights, args.device, args.workers,
                            args.batch_size, parse_rope_scaling(args.overrides))
        results = evaluate_path(args.path, settings, args.force)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"runs": results}, indent=2))
        write_csv(results, args.out.with_suffix(".csv"))
        print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")
    if args.report is not None:
        from minivlm.evaluation.aggregate import write_report  # matplotlib only when asked for

        for path in write_report(args.path, args.report):
            print(f"wrote {path}")
