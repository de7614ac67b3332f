"""The model card of an export: its ``README.md``, generated from the run so that it cannot drift.

It follows the Hugging Face model card layout (YAML metadata, then Markdown): what the model is,
the command and data it was trained with, its final accuracy beside each task's chance and
blind baselines, how to use it, and the run's resolved config.
"""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from minivlm.model import VLM, RopeConfig
from minivlm.model.sizes import parameter_counts


def launch_command() -> str | None:
    """The command line that started this run, when Hydra launched it (a sweep job: its own values)."""
    if not HydraConfig.initialized():
        return None
    return " ".join(["python train.py", *HydraConfig.get().overrides.task])


def data_lines(cfg: DictConfig) -> list[str]:
    data = cfg.data
    if data.get("real") is not None:
        real = data.real
        lines = [f"- real data: `{real.source}` (subset `{real.config_name}`, split `{real.split}`)"]
    else:
        lines = [f"- synthetic diagnostic tasks, mix `{OmegaConf.to_container(data.mix) if isinstance(data.mix, DictConfig) else data.mix}`"]
    task = {key: value for key, value in (OmegaConf.to_container(data.task) if data.get("task") else {}).items()
            if value is not None}
    if task:
        lines.append(f"- task distribution changed by `data.task`: `{task}`")
    for stage in data.get("curriculum") or []:
        lines.append(f"- curriculum stage of {stage.steps} steps: `{OmegaConf.to_container(stage)}`")
    lines.append(f"- images between {data.min_pixels} and {data.max_pixels} pixels, videos at {data.fps} fps "
                 f"({data.video_layout} layout), batches of {data.batch_size}, {cfg.steps} steps")
    return lines


def score_lines(result: dict[str, Any] | None, baselines: dict[str, dict]) -> list[str]:
    if result is None:
        return ["These weights were exported before a final evaluation: `python evaluate.py <this folder>` scores them."]
    lines = [f"Greedy exact match on the `val` prompts after {result['steps']} steps:", "",
             "| task | accuracy | chance | blind |", "|---|---|---|---|"]
    for task, accuracy in result["accuracy"].items():
        base = baselines.get(task, {})
        lines.append(f"| {task} | {accuracy:.3f} | {base.get('chance', float('nan')):.3f} | "
                     f"{base.get('blind', float('nan')):.3f} |")
    return lines


def model_card(cfg: DictConfig, model: VLM, baselines: dict[str, dict], result: dict[str, Any] | None,
               command: str | None) -> str:
    """The card's Markdown (``README.md`` of the export folder)."""
    config = model.config
    millions = parameter_counts(config)["total"] / 1e6
    rope = RopeConfig(**OmegaConf.to_container(cfg.rope, resolve=True)).label
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    lines = [
        "---", "library_name: minivlm", "license: mit", "pipeline_tag: image-text-to-text",
        "tags: [vision-language-model, rotary-position-embedding, minivlm]", "---", "",
        f"# {cfg.name}", "",
        f"A {config.size} minivlm vision-language model ({millions:.1f}M parameters: "
        f"ViT {config.vit_dim} x {config.vit_depth}, LM {config.lm_dim} x {config.lm_layers}) trained from scratch "
        f"with `{rope}` position encoding in the LM, seed {cfg.seed}.", "",
        "## Training", "",
        f"Command: `{command}`" if command else "Trained through `minivlm.train.run.train` (no command line).", "",
        *data_lines(cfg), "",
        "## Evaluation", "", *score_lines(result, baselines), "",
        "## Use", "", "```bash",
        'python -m minivlm.ask <this folder> --image your.png "Where is the red circle?"',
        "python evaluate.py <this folder>         # the run's prompts and scores again",
        "```", "", "```python",
        "from minivlm.model import VLM", "from minivlm.processing import Processor", "",
        'model = VLM.from_pretrained("<this folder>")', 'processor = Processor.from_pretrained("<this folder>")',
        "```", "",
        "## Config", "", "The run's resolved config:", "", "```yaml", resolved.rstrip(), "```", "",
    ]
    return "\n".join(lines)
