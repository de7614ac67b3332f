"""Installed like any package: a wheel carries the configs, data and tokenizer, and works from any folder."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from train_helpers import REPO, TINY_MODEL, TINY_RUN

from minivlm.resources import PACKAGES

tomllib = pytest.importorskip("tomllib")  # Python 3.11+: 3.10 has no TOML reader in its standard library
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SOURCES = ["pyproject.toml", "README.md", "minivlm", "configs", "data"]  # what the wheel is built from


def test_the_package_list_names_every_package_folder_and_the_shipped_folders():
    setuptools = PYPROJECT["tool"]["setuptools"]
    folders = {".".join(path.parent.relative_to(REPO).parts) for path in (REPO / "minivlm").rglob("*.py")}
    # The shipped folders and all their subfolders, as data-only packages (minivlm.configs.data...).
    shipped = {".".join((package, *path.relative_to(REPO / folder).parts)) for folder, package in PACKAGES.items()
               for path in [REPO / folder, *(REPO / folder).rglob("*")] if path.is_dir() and path.name != "__pycache__"}
    assert set(setuptools["packages"]) == folders | shipped
    assert {package: setuptools["package-dir"][package] for package in PACKAGES.values()} == {
        package: folder for folder, package in PACKAGES.items()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment holding the built wheel; torch and the rest come from this environment."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"  # a copy: building in place would leave build/ and *.egg-info in the repository
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(root / "dist"),
                    str(source)], check=True, capture_output=True)
    env = root / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    env_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    # This environment's packages (torch...) as plain paths: its .pth files, an editable minivlm among them, stay unread.
    Path(env_site, "running_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    (wheel,) = (root / "dist").glob("minivlm-*.whl")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    return env


def run_in(folder: Path, *command) -> str:
    done = subprocess.run([str(part) for part in command], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_the_wheel_carries_the_shipped_files(installed):
    (wheel,) = installed.parent.glob("dist/minivlm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {"minivlm/configs/train.yaml", "minivlm/configs/data/recipe.yaml", "minivlm/shipped/tokenizer/tokenizer.json",
               "minivlm/shipped/synthetic/val.parquet", "minivlm/shipped/synthetic/baselines.json", "minivlm/ask.py"}
    assert shipped <= names
    modules = {f"minivlm/{path.relative_to(REPO / 'minivlm')}" for path in (REPO / "minivlm").rglob("*.py")}
    assert modules <= names


@pytest.mark.slow
def test_installed_from_the_wheel_it_trains_evaluates_and_answers_from_another_folder(installed, tmp_path):
    bin_dir = installed / "bin"
    found = run_in(tmp_path, bin_dir / "python", "-c", "import minivlm; from minivlm.data.storage import synthetic_set; "
                   "print(minivlm.__file__); print(len(synthetic_set('val')))")
    module, samples = found.split()
    assert Path(module).is_relative_to(installed) and int(samples) > 0
    run_in(tmp_path, bin_dir / "minivlm-train", *TINY_MODEL, *TINY_RUN, "steps=2", "eval_every=2", "hydra.run.dir=run")
    run = tmp_path / "run"
    assert json.loads((run / "final_eval.json").read_text())["steps"] == 2
    assert "validation accuracy after 2 steps" in (run / "train.log").read_text()
    scored = run_in(tmp_path, bin_dir / "minivlm-eval", "run", "--splits", "val", "--per-task", "1", "--workers", "0")
    assert "mean" in scored and (run / "evaluation.json").is_file()
    Image.new("RGB", (64, 64), "red").save(tmp_path / "red.png")
    run_in(tmp_path, bin_dir / "minivlm-ask", "run", "--image", "red.png", "Where is the red circle?")
    assert "== Config groups" in run_in(tmp_path, bin_dir / "minivlm-train", "--help")
