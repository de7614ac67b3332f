"""Export a trained model as safetensors + JSON config + tokenizer, loadable without Lightning.

    python -m minivlm.train.export outputs/<run>/checkpoints/last.ckpt out_dir/

The folder holds ``model.safetensors`` (weights; tensors only, safe to load from strangers),
``config.json`` (the :class:`~minivlm.model.ModelConfig` fields) and ``tokenizer.json``. A
training checkpoint is read with ``torch.load(weights_only=True)`` too: no Lightning, no pickled code.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from minivlm.model import VLM, ModelConfig
from minivlm.run_folder import EXPORT_CONFIG, EXPORT_WEIGHTS
from minivlm.tokenizer import BPETokenizer


def export_model(model: VLM, tokenizer: BPETokenizer, folder: str | Path) -> Path:
    """Write weights, config (``model.config``) and tokenizer to ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(folder / EXPORT_WEIGHTS))  # stores tied (shared) tensors once
    (folder / EXPORT_CONFIG).write_text(json.dumps(asdict(model.config), indent=2))
    tokenizer.save(folder)
    return folder


def load_exported(folder: str | Path) -> tuple[VLM, BPETokenizer]:
    """The model (eval mode, CPU) and tokenizer of an exported folder."""
    folder = Path(folder)
    config = ModelConfig(**json.loads((folder / EXPORT_CONFIG).read_text()))
    model = VLM(config)
    load_model(model, str(folder / EXPORT_WEIGHTS))  # strict: a mismatch raises, naming the tensors
    return model.eval(), BPETokenizer.load(folder)


def read_checkpoint(path: str | Path) -> tuple[VLM, int]:
    """The model (eval mode, CPU) of a Lightning checkpoint written by minivlm training, and its step."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mmap: optimizer states stay on disk
    model = VLM(ModelConfig(**checkpoint["hyper_parameters"]["model_config"]))
    prefix = "model."  # VLMTrainingModule holds the VLM as `model`
    model.load_state_dict({key.removeprefix(prefix): value for key, value in checkpoint["state_dict"].items()})
    return model.eval(), int(checkpoint["global_step"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a Lightning .ckpt of minivlm")
    parser.add_argument("out", type=Path, help="output folder")
    args = parser.parse_args()
    tokenizer = BPETokenizer.load(args.checkpoint.parent)  # saved beside the checkpoints by training
    export_model(read_checkpoint(args.checkpoint)[0], tokenizer, args.out)
    print(f"exported to {args.out}")


if __name__ == "__main__":
    main()
