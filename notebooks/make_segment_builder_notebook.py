"""Write ``notebooks/02_segment_builder.ipynb`` (run: ``python notebooks/make_segment_builder_notebook.py``).

The notebook only wires the workbench together: all logic lives in
:mod:`workbench.widgets.segment_builder`.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
OUT = HERE / "02_segment_builder.ipynb"

INTRO = """# Segment builder

Build a segment from conditions on profile attributes, events and other segments, grouped
with **all / any / not**. The audience size updates as the rule changes (an estimate first,
then the exact count), with how it would have moved over the last 30 days and whether the
segment is evaluated in **streaming** or in **batch** (and why). The YAML on the right is what
**Save** writes to `segments/` and adds to the catalog; problems are listed under the builder
with the path of the part they concern.

Everything shown here is also a Python API: `builder.definition`, `builder.errors`,
`builder.size`, `builder.add_attribute(...)`, `builder.save()` (see
`workbench/widgets/segment_builder.py`)."""

PARAMETERS = """import os

workspace = os.environ.get("WORKBENCH_WORKSPACE", "../data/workspace")  # from notebooks/
as_of = "2026-12-01T00:00:00+00:00"
segment = "high_value_loyalty\""""

SETUP = """from pathlib import Path

from workbench import Workspace
from workbench.widgets.segment_builder import SegmentBuilder

# the repository root: Jupyter and Voila run a notebook from notebooks/, papermill from anywhere
root = Path.cwd() if (Path.cwd() / "segments").is_dir() else Path.cwd().parent
ws_path = Path(workspace).expanduser()
ws = Workspace.open(ws_path if ws_path.is_absolute() else root / ws_path)
builder = SegmentBuilder(ws, as_of=as_of, folder=root / "segments")
if segment:
    builder.set_definition(segment)"""

SHOW = "builder"


def build() -> nbformat.NotebookNode:
    """The notebook."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    params = new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [new_markdown_cell(INTRO), params, new_code_cell(SETUP), new_code_cell(SHOW)]
    for i, c in enumerate(nb.cells):  # stable ids: regenerating gives the same file
        c["id"] = f"cell-{i}"
    return nb


def main() -> None:
    """Write the notebook next to this script."""
    nb = build()
    nbformat.validate(nb)
    nbformat.write(nb, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
