"""Write the stakeholder dashboards dashboards/audience_overview.ipynb, activation_status.ipynb
and data_health.ipynb (served by Voila: ``workbench dashboard`` or ``make dashboard``). Their cells
stay small: the panels live in workbench.dashboards. Run: python dashboards/make_dashboards.py"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

OUT = Path(__file__).resolve().parent

WORKSPACE = (
    "import os\n\n"
    'workspace = os.environ.get("WORKBENCH_WORKSPACE", "../data/workspace")  # from dashboards/'
)

OPEN = """\
import logging

import workbench.dashboards as dash
from workbench import Workspace

logging.basicConfig(level=logging.WARNING)
ws = Workspace.open(workspace)"""


def dashboard(title: str, builder: str) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    p = nbf.v4.new_code_cell(WORKSPACE)
    p.metadata["tags"] = ["parameters"]
    nb.cells.append(p)
    nb.cells.append(nbf.v4.new_code_cell(OPEN))
    nb.cells.append(nbf.v4.new_code_cell(f"# {title}\ndash.{builder}(ws)"))
    return nb


DASHBOARDS = {
    "audience_overview": dashboard("Audience overview", "audience_overview"),
    "activation_status": dashboard("Activation status", "activation_status"),
    "data_health": dashboard("Data health", "data_health"),
}


def main() -> None:
    for name, nb in DASHBOARDS.items():
        path = OUT / f"{name}.ipynb"
        nbf.write(nb, path)
        print(path)


if __name__ == "__main__":
    main()
