"""environment.yml stays in sync with pyproject.toml's dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"duckdb": "python-duckdb", "psycopg[binary]": "psycopg", "moto[server]": "moto"}


def _names(reqs: list[str]) -> set[str]:
    out = set()
    for r in reqs:
        name = re.split(r"[<>=!~ ]", r, maxsplit=1)[0].strip()
        if name.startswith("audience-workbench"):
            continue
        out.add(CONDA_NAMES.get(name, name).lower())
    return out


def test_environment_yml_lists_every_dependency() -> None:
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(proj["dependencies"])
    for extra in ("postgres", "bench", "s3", "lab", "dev"):
        wanted |= _names(proj["optional-dependencies"][extra])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have = {
        re.split(r"[<>=!~ ]", d, maxsplit=1)[0].lower()
        for d in env["dependencies"]
        if isinstance(d, str)
    }
    assert wanted - have == set(), f"missing from environment.yml: {sorted(wanted - have)}"
