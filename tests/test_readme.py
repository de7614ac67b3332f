"""What the READMEs quote stays true: parameter counts, the module layout, the recipe's settings."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from train_helpers import CONFIGS, REPO

from minivlm.model import SIZES, ModelConfig
from minivlm.model.sizes import parameter_counts, size_table

README = (REPO / "README.md").read_text()
LEARNING = (REPO / "results" / "learning" / "README.md").read_text()


def test_the_size_table_is_the_sizes_command_output(tokenizer):
    assert f"shipped tokenizer ({tokenizer.vocab_size} tokens)" in README
    assert size_table(tokenizer.vocab_size) in README


def test_every_quoted_parameter_count_is_a_size_total(tokenizer):
    totals = [parameter_counts(ModelConfig(size=size, vocab_size=vocab))["total"] / 1e6
              for size in SIZES for vocab in (tokenizer.vocab_size, ModelConfig.vocab_size)]
    quoted = re.findall(r"(\d+(?:\.\d)?)M[- ]parameter", README)
    assert quoted
    for value in quoted:
        decimals = len(value.partition(".")[2])
        assert any(round(total, decimals) == float(value) for total in totals), f"{value}M is no size's count"


def layout_block() -> str:
    return README.split("## Layout", 1)[1].split("```")[1]


def test_the_layout_lists_every_module_and_only_modules_that_exist():
    listed = layout_block()
    package = REPO / "minivlm"
    modules = [path for path in package.rglob("*.py") if path.name != "__init__.py"]
    # Each module is named in its package's part of the block (after the package's own line).
    for path in modules:
        folder = path.parent.name + "/"
        section = listed if path.parent == package else listed.split(f" {folder}", 1)[-1]
        assert re.search(rf"(^|\s){re.escape(path.name)}(\s|$)", section, re.M), f"{path} is missing"
    named = re.findall(r"(\w+\.py)\b", listed)
    existing = {path.name for path in package.rglob("*.py")} | {"train.py", "evaluate.py"}
    assert set(named) <= existing


def recipe_settings() -> list[str]:
    table = LEARNING.split("| lever | setting |", 1)[1].split("\n\n", 1)[0]
    return [setting for row in table.splitlines()[2:] for setting in re.findall(r"`([\w.]+=[^`]+)`", row.split("|")[2])]


@pytest.mark.parametrize("setting", recipe_settings())
def test_the_recipe_table_is_the_default_run(setting):
    key, value = setting.split("=", 1)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        default = compose("train")  # exactly `python train.py`
    expected = OmegaConf.create(f"value: {value}")  # the setting as YAML, as Hydra reads an override
    assert OmegaConf.create({"value": OmegaConf.select(default, key)}) == expected


def test_every_relative_link_in_the_project_markdown_resolves():
    documents = [REPO / "README.md", REPO / "data" / "README.md", REPO / "minivlm" / "SPEC.md",
                 *(REPO / "results").rglob("*.md")]
    broken = []
    for document in documents:
        for target in re.findall(r"\]\(([^)\s]+)\)", document.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            if not (document.parent / target.split("#")[0]).exists():
                broken.append(f"{document.relative_to(REPO)}: {target}")
    assert not broken
