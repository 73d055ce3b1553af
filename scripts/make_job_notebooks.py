"""Write notebooks/jobs/*.ipynb (the job notebooks are generated so that their cells stay
small and reviewed here; run: python scripts/make_job_notebooks.py)."""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

OUT = Path(__file__).resolve().parents[1] / "notebooks" / "jobs"

OPEN = """\
import logging

import pandas as pd
import plotly.express as px

from workbench import Workspace
from workbench.jobs import steps

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
ws = Workspace.open(workspace)
print(f"workspace {ws.path}")"""


def notebook(title: str, params: str, cells: list[tuple[str, str]]) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(nbf.v4.new_markdown_cell(title))
    p = nbf.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells.append(p)
    nb.cells.append(nbf.v4.new_code_cell(OPEN))
    for kind, src in cells:
        nb.cells.append(
            nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src)
        )
    return nb


JOBS = {
    "ingest": notebook(
        "# Ingest\nLoad files (or every new file of a drop folder) into a dataset. "
        "Rejected rows go to the dataset's quarantine; content already loaded is skipped.",
        'workspace = "data/workspace"\ndataset = "crm_customers"\nfiles = []\ndrop_folder = ""\nforce = False',
        [
            ("code", "summary = steps.ingest(ws, dataset, files, drop_folder, force)\nsummary"),
            ("md", "## Summary"),
            (
                "code",
                'print(f"{len(summary)} file(s): {summary.accepted.sum():,} rows accepted, '
                '{summary.rejected.sum():,} rejected")\n'
                'px.bar(summary, x="file", y=["accepted", "rejected"], title=f"{dataset}: rows per file")',
            ),
        ],
    ),
    "daily_segmentation": notebook(
        "# Daily segmentation\nIdentity and profile builds, then the batch segment job at `as_of`: "
        "memberships (realized / existing / exited) and their history.",
        'workspace = "data/workspace"\nas_of = "2026-12-01T00:00:00+00:00"\nsegments = []\nrebuild = True',
        [
            ("code", "if rebuild:\n    display(steps.build(ws))"),
            ("code", "sizes = steps.segmentation(ws, as_of, segments)\nsizes"),
            ("md", "## Summary"),
            (
                "code",
                "print(f\"segment run {sizes.attrs['run_id']}: {len(sizes)} segments in "
                "{sizes.attrs['seconds']:.2f}s\")\n"
                'px.bar(sizes, x="segment", y=["realized", "existing", "exited"], '
                'title=f"memberships as of {as_of}")',
            ),
        ],
    ),
    "export": notebook(
        "# Export\nExport each segment mapped to a destination at `as_of` (consent and governance "
        "checked, files written under a temporary name then renamed, manifest last).",
        'workspace = "data/workspace"\ndestination = "newsletter_email"\n'
        'as_of = "2026-12-01T00:00:00+00:00"\nmode = ""',
        [
            ("code", "result = steps.export(ws, destination, as_of, mode)\nresult"),
            ("md", "## Summary"),
            (
                "code",
                'px.bar(result, x="segment", y=["exported", "skipped_no_identity", '
                '"skipped_no_consent", "blocked"], title=f"{destination} as of {as_of}")',
            ),
        ],
    ),
    "daily_pipeline": notebook(
        "# Daily pipeline\nIngest → identity → profiles → segmentation → exports, in one run.",
        'workspace = "data/workspace"\nas_of = "2026-12-01T00:00:00+00:00"\n'
        'sample_dir = ""\ndestinations = []',
        [
            ("md", "## 1. Ingest"),
            (
                "code",
                "ingested = steps.ingest_sample(ws, sample_dir) if sample_dir else pd.DataFrame()\ningested",
            ),
            ("md", "## 2. Identity graph and profiles"),
            ("code", "steps.build(ws)"),
            ("md", "## 3. Segmentation"),
            ("code", "sizes = steps.segmentation(ws, as_of)\nsizes"),
            ("md", "## 4. Exports"),
            ("code", "exports = steps.export_all(ws, as_of, destinations)\nexports"),
            ("md", "## Summary"),
            (
                "code",
                'print(f"{len(sizes)} segments evaluated; {len(exports)} exports, '
                '{exports.exported.sum():,} rows written")\n'
                'px.bar(sizes, x="segment", y=["realized", "existing", "exited"], title="memberships")',
            ),
            (
                "code",
                'px.bar(exports, x="segment", y="exported", color="destination", title="exported rows")',
            ),
        ],
    ),
}

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, nb in JOBS.items():
        nbf.write(nb, OUT / f"{name}.ipynb")
        print(OUT / f"{name}.ipynb")
