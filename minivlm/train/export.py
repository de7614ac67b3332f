"""Export a trained model as safetensors + JSON config + tokenizer, loadable without Lightning.

    python -m minivlm.train.export outputs/<run>/checkpoints/last.ckpt out_dir/

The folder holds ``model.safetensors`` (weights; tensors only, safe to load from strangers),
``config.json`` (the :class:`~minivlm.model.ModelConfig` fields) and ``tokenizer.json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import load_model, save_model

from minivlm.model import VLM, ModelConfig
from minivlm.tokenizer import BPETokenizer
from minivlm.train.module import VLMTrainingModule

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"


def export_model(model: VLM, tokenizer: BPETokenizer, folder: str | Path) -> Path:
    """Write weights, config (``model.config``) and tokenizer to ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(folder / WEIGHTS_FILE))  # stores tied (shared) tensors once
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=2))
    tokenizer.save(folder)
    return folder


def load_exported(folder: str | Path) -> tuple[VLM, BPETokenizer]:
    """The model (eval mode, CPU) and tokenizer of an exported folder."""
    folder = Path(folder)
    config = ModelConfig(**json.loads((folder / CONFIG_FILE).read_text()))
    model = VLM(config)
    load_model(model, str(folder / WEIGHTS_FILE))  # strict: a mismatch raises, naming the tensors
    return model.eval(), BPETokenizer.load(folder)


def model_from_checkpoint(checkpoint: str | Path) -> VLM:
    """The model (eval mode, CPU) of a Lightning checkpoint written by minivlm training."""
    module = VLMTrainingModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    return module.model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a Lightning .ckpt of minivlm")
    parser.add_argument("out", type=Path, help="output folder")
    args = parser.parse_args()
    tokenizer = BPETokenizer.load(args.checkpoint.parent)  # saved beside the checkpoints by training
    export_model(model_from_checkpoint(args.checkpoint), tokenizer, args.out)
    print(f"exported to {args.out}")


if __name__ == "__main__":
    main()
