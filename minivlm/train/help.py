"""``python train.py --help``: the config groups, their choices and the main keys, read from the configs.

Hydra prints its help template (``hydra.help.template`` in ``configs/train.yaml``); the template
is ``${minivlm_help:}``, which the resolver registered here fills when Hydra reads it: each group
with its choices and the first sentence of each choice file's header comment, the default marked,
then the keys of ``train.yaml`` and ``data/mix.yaml`` exactly as written there, comments
included. The page is the config files themselves, so it cannot drift from them.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

from minivlm.resources import CONFIG_DIR

RESOLVER = "minivlm_help"
SUMMARY_CHARACTERS = 110  # of a choice's header comment


def summary(path: Path) -> str:
    """The first sentence of a config file's header comment (Hydra's ``@package`` line skipped)."""
    lines = [line.lstrip("# ").rstrip() for line in path.read_text().splitlines()
             if line.startswith("#") and "@package" not in line]
    header = []
    for line in lines:  # the first comment paragraph
        if not line:
            break
        header.append(line)
    sentence = re.split(r"(?<=\.)\s", " ".join(header), maxsplit=1)[0]
    return sentence if len(sentence) <= SUMMARY_CHARACTERS else sentence[:SUMMARY_CHARACTERS - 3] + "..."


def defaults(train_yaml: Path) -> dict[str, str | None]:
    """``{group: default choice}`` of train.yaml's defaults list."""
    entries = OmegaConf.to_container(OmegaConf.load(train_yaml).defaults)
    return {key: value for entry in entries if isinstance(entry, dict) for key, value in entry.items()
            if not key.startswith("override")}


def key_lines(path: Path) -> list[str]:
    """The key lines of a config file with their comments: its defaults list and hydra section left out."""
    kept, skipping = [], False
    for line in path.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            skipping = line.startswith(("defaults:", "hydra:"))
        if not skipping and line and not line.startswith("#"):
            kept.append("  " + line)
    return kept


def help_text() -> str:
    """The help page (``$`` doubled: Hydra fills the template with :class:`string.Template`)."""
    train_yaml = CONFIG_DIR / "train.yaml"
    chosen = defaults(train_yaml)
    lines = ["minivlm training: python train.py [GROUP=CHOICE ...] [KEY=VALUE ...]   (installed: minivlm-train)",
             "  python train.py experiment=quick        a one-minute check of the whole pipeline",
             "  python train.py rope=circle steps=500   a choice and a key",
             "  python train.py -m rope=mrope,circle    a sweep: one folder per job under outputs/multirun/",
             "", "== Config groups: GROUP=CHOICE (configs/<group>/<choice>.yaml) =="]
    for group in sorted(chosen):
        lines.append(f"{group}:")
        for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
            mark = "(default) " if path.stem == chosen[group] else ""
            lines.append(f"  {path.stem:<20} {mark}{summary(path)}")
    lines += ["", "== Main keys: KEY=VALUE (configs/train.yaml) ==", *key_lines(train_yaml),
              "", "== Data keys: data.KEY=VALUE (configs/data/mix.yaml, which every data choice starts from) ==",
              *key_lines(CONFIG_DIR / "data" / "mix.yaml"),
              "", "The model/ and rope/ keys are the fields of ModelConfig and RopeConfig (minivlm/model/config.py), "
              "e.g. model.vit_depth=2 rope.theta=1e4.",
              "Every key of a composed config: python train.py --cfg job [overrides]; Hydra's own flags: --hydra-help."]
    return "\n".join(lines).replace("$", "$$") + "\n"


def register_help() -> None:
    """Make ``${minivlm_help:}`` resolvable (idempotent)."""
    OmegaConf.register_new_resolver(RESOLVER, help_text, replace=True)
