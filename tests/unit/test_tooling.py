"""The repository's own tooling: `make help` lists every target, and the
pre-commit hooks run what `make lint` runs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def targets() -> dict[str, str]:
    """Each target of the Makefile and its `##` line ('' when it has none)."""
    found = {}
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([a-z][a-z-]*):(?!=)(.*)$", line)
        if match:
            found[match[1]] = match[2].partition("## ")[2].strip()
    return found


def test_every_make_target_says_what_it_does() -> None:
    assert targets()
    assert {name for name, text in targets().items() if not text} == set()


def test_every_make_target_is_phony() -> None:
    phony = next(line for line in (ROOT / "Makefile").read_text().splitlines()
                 if line.startswith(".PHONY:"))
    assert set(targets()) == set(phony.split(":", 1)[1].split())


def test_make_help_lists_every_target() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shown = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout
    for name, text in targets().items():
        assert re.search(rf"^make {re.escape(name)} +{re.escape(text)}$", shown, re.M), name


def test_pre_commit_runs_ruff_mypy_and_the_import_contracts() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    entries = " ".join(hook["entry"] for hook in hooks)
    for tool in ("ruff", "mypy", "lint-imports"):
        assert tool in entries
    assert all(hook["language"] == "system" for hook in hooks)
