"""A run's export: a standalone folder that reproduces the run's answers, loadable without Lightning.

    python -m minivlm.train.export outputs/<run>                        # (re)write outputs/<run>/export
    python -m minivlm.train.export outputs/<run> --push-to-hub you/tiny-vlm   # and upload it (needs a login)

Training writes it when it finishes (:func:`export_run`), in the layout of Hugging Face models
(:class:`~minivlm.run_folder.ExportFolder`): the model (``VLM.save_pretrained``), the processor
with its tokenizer and chat template (``Processor.save_pretrained``), the generation budget, the
task distribution the run was evaluated on (so ``python evaluate.py EXPORT`` poses the same
prompts from a copy anywhere), the final accuracy and a model card
(:mod:`minivlm.train.model_card`). Load it with ``VLM.from_pretrained(folder)`` and
``Processor.from_pretrained(folder)``, or ask it questions with ``python -m minivlm.ask``. A
training checkpoint is read with ``torch.load(weights_only=True)``: no Lightning, no pickled code.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from minivlm.model import VLM, ModelConfig
from minivlm.processing import Processor
from minivlm.run_folder import ExportFolder, RunFolder, write_atomically
from minivlm.tokenizer import IM_END
from minivlm.train.model_card import model_card


def evaluated_distribution(cfg: DictConfig, val_tasks: Sequence[str]) -> dict[str, Any]:
    """What ``evaluation_config.json`` holds: the data settings that choose a run's evaluation prompts."""
    data = cfg.data
    return {"mix": OmegaConf.to_container(data.mix) if isinstance(data.mix, DictConfig) else data.mix,
            "task": OmegaConf.to_container(data.task, resolve=True) if data.get("task") else None,
            "real": OmegaConf.to_container(data.real, resolve=True) if data.get("real") else None,
            "val_tasks": list(val_tasks), "per_task": data.final_eval_per_task, "eval_batch_size": data.eval_batch_size}


def export_run(folder: str | Path, model: VLM, processor: Processor, cfg: DictConfig, val_tasks: Sequence[str],
               baselines: dict[str, dict], result: dict[str, Any] | None, command: str | None = None) -> Path:
    """Write a run's export folder; returns it.

    Args:
        folder: the export folder (created; files already there are replaced).
        model, processor: the trained model and the run's processor (with its tokenizer).
        cfg: the run's resolved config.
        val_tasks: the tasks the run was evaluated on.
        baselines: ``{task: {"chance", "blind"}}`` of the run's ``val`` distribution.
        result: the run's ``final_eval.json`` content; None when the weights were not evaluated.
        command: the command line that trained the run, for the model card.
    """
    files = ExportFolder(model.save_pretrained(folder))
    processor.save_pretrained(files.root)
    tokenizer = processor.tokenizer
    files.generation.write_text(json.dumps({"max_new_tokens": cfg.data.max_new_tokens, "do_sample": False,
                                            "eos_token_id": tokenizer.token_id(IM_END),
                                            "pad_token_id": tokenizer.pad_id}, indent=2))
    files.evaluation.write_text(json.dumps({**evaluated_distribution(cfg, val_tasks), "baselines": baselines},
                                           indent=2))
    if result is not None:
        write_atomically(files.final_eval, json.dumps(result, indent=2))
    files.card.write_text(model_card(cfg, model, baselines, result, command))
    return files.root


def read_checkpoint(path: str | Path) -> tuple[VLM, int]:
    """The model (eval mode, CPU) of a Lightning checkpoint written by minivlm training, and its step."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mmap: optimizer states stay on disk
    model = VLM(ModelConfig.from_saved(checkpoint["hyper_parameters"]["model_config"]))
    prefix = "model."  # VLMTrainingModule holds the VLM as `model`
    model.load_state_dict({key.removeprefix(prefix): value for key, value in checkpoint["state_dict"].items()})
    return model.eval(), int(checkpoint["global_step"])


def push_to_hub(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload an export folder to a Hugging Face model repository (created if needed); returns its URL.

    Needs a login (``huggingface-cli login`` or ``HF_TOKEN``) and a connection.
    """
    from huggingface_hub import HfApi  # only here: nothing else in minivlm talks to the hub's write API

    api = HfApi()
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                      commit_message="Upload a minivlm export")
    return str(url)


def main(argv: Sequence[str] | None = None) -> None:
    from minivlm.train.run import build_run  # the run's processor and tasks, as training built them

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder (outputs/<run>); its last.ckpt is exported")
    parser.add_argument("--out", type=Path, default=None, help="the export folder (default: the run's export/)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", default=None, help="then upload it, e.g. you/tiny-vlm")
    parser.add_argument("--private", action="store_true", help="create the hub repository as private")
    args = parser.parse_args(argv)
    folder = RunFolder(args.run)
    try:
        model, step = read_checkpoint(folder.weights("last"))
        cfg = folder.load_config()
        cfg.data.tokenizer = str(folder.tokenizer_dir)  # the run's own tokenizer, whatever the working directory
        run = build_run(cfg, folder.root)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    final = folder.load_final_eval()
    result = final if final is not None and final["steps"] == step else None  # scores of these weights only
    out = export_run(args.out or folder.export, model, run.datamodule.processor, run.cfg, run.datamodule.val_tasks,
                     folder.load_baselines()["val"], result)
    print(f"exported step {step} of {folder.root} to {out}")
    if args.push_to_hub:
        print(f"uploaded to {push_to_hub(out, args.push_to_hub, args.private)}")


if __name__ == "__main__":
    main()
