"""Write the analyst notebooks notebooks/01_getting_started.ipynb, 03_profile_explorer.ipynb and
04_audience_analysis.ipynb (generated so that their cells stay small and reviewed here; all
logic lives in workbench.viz and workbench.widgets). Run: python notebooks/make_notebooks.py"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

OUT = Path(__file__).resolve().parent

WORKSPACE = 'import os\n\nworkspace = os.environ.get("WORKBENCH_WORKSPACE", "../data/workspace")  # from notebooks/'

OPEN = """\
import logging

from workbench import Workspace
from workbench.viz import data, figures

logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
ws = Workspace.open(workspace)
ws"""


def notebook(title: str, params: str, cells: list[tuple[str, str]], open_: str = OPEN) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(nbf.v4.new_markdown_cell(title))
    p = nbf.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells.append(p)
    nb.cells.append(nbf.v4.new_code_cell(open_))
    for kind, src in cells:
        nb.cells.append(nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src))
    return nb


NOTEBOOKS = {
    "01_getting_started": notebook(
        "# Getting started\n"
        "Open a workspace and look around: the datasets with their row and quarantine counts, "
        "the schemas, and the identity graph (cluster sizes, identities per namespace, links cut "
        "by the guardrails).\n\n"
        "The workspace comes from the parameters cell (`WORKBENCH_WORKSPACE`, default "
        "`data/workspace`, made by `make demo`).",
        WORKSPACE,
        [
            ("md", "## Datasets\nRows in the latest version; rejected rows stay in each dataset's quarantine."),
            ("code", "overview = data.datasets_overview(ws)\noverview"),
            ("code", "figures.datasets(overview)"),
            ("code", "reasons = data.quarantine_reasons(ws)\nreasons.head(10)"),
            ("code", "figures.quarantine_reasons(reasons)"),
            ("md", "## Schemas\nEvery field: type, identity namespace, data-usage labels."),
            ("code", "data.schema_fields(ws)"),
            ("md", "## Identity graph\nThe last build's figures, then the graph's shape."),
            ("code", "data.identity_build_stats(ws)"),
            ("code", "figures.cluster_sizes(data.cluster_sizes(ws))"),
            ("code", "figures.namespaces(data.identities_per_namespace(ws))"),
            ("code", "links = data.links_by_status(ws)\nfigures.links(links)"),
            ("md", "Links cut by the guardrails (two values of a unique namespace in one profile), newest first:"),
            ("code", "data.cut_links(ws, limit=10)"),
        ],
    ),
    "03_profile_explorer": notebook(
        "# Profile explorer\n"
        "Search by any identity (`email:…`, `phone:…`, `crm_id:…`, `loyalty_id:…`, `ecid:…`; the "
        "value is normalized first) and see the unified profile: attributes with the dataset each "
        "value came from, the identity graph, the event timeline (online and offline on one axis) "
        "and the segment memberships. A wrong or unknown identity shows a message in the widget.",
        WORKSPACE + '\nidentity = "crm_id:C00000001"',
        [
            ("code", "from workbench.widgets.profile_explorer import ProfileExplorer\n\n"
                     "explorer = ProfileExplorer(ws)\nprofile = explorer.search(identity)\nexplorer.widget"),
            ("md", "## The same views, one by one\nAttributes and their source dataset:"),
            ("code", "explorer.frames[\"attributes\"]"),
            ("code", "explorer.figures[\"graph\"]"),
            ("md", "Why the identity belongs to its profile (the links touching it):"),
            ("code", "ws.identity.explain(identity)[\"links\"]"),
            ("code", "explorer.figures[\"timeline\"]"),
            ("code", "explorer.frames[\"events\"].head(20)"),
            ("code", "explorer.frames[\"memberships\"]"),
        ],
    ),
    "04_audience_analysis": notebook(
        "# Audience analysis\n"
        "Pick segments and compare them: sizes, overlap (matrix and exact intersections), size over "
        "time, composition by an attribute, the channels of the members' events, reachability, and "
        "what a destination would receive (activation preview).",
        WORKSPACE
        + '\nas_of = "2026-12-01T00:00:00+00:00"\n'
        'segments = ["high_value_loyalty", "vip_at_risk", "lapsed_instore_email_ok", '
        '"newsletter_engaged", "omnichannel_buyers"]\n'
        'attributes = ["tier", "city"]\n'
        'destination = "newsletter_email"\n'
        'preview_segment = "newsletter_engaged"',
        [
            ("md", "## Sizes\nEvery segment, from the membership store (realized + existing)."),
            ("code", "sizes = data.segment_sizes(ws)\nfigures.segment_sizes(sizes)"),
            ("md", "## Overlap\nMembers in both segments of each pair (the diagonal is the size):"),
            ("code", "matrix = data.overlap_matrix(ws, segments)\nfigures.overlap(matrix)"),
            ("md", "Exact intersections: how many profiles are in exactly each combination."),
            ("code", "combos = data.intersections(ws, segments)\nfigures.upset(combos)"),
            ("code", "combos[[\"label\", \"degree\", \"profiles\"]]"),
            ("md", "## Size over time\nSize, entered (realized) and exited per segment run."),
            ("code", "history = data.size_history(ws, segments)\nfigures.size_history(history)"),
            ("md", "## Composition"),
            ("code", "for attribute in attributes:\n"
                     "    figures.composition(data.composition(ws, segments, attribute), attribute).show()"),
            ("code", "figures.channel_mix(data.channel_mix(ws, segments, as_of))"),
            ("md", "## Reachability\nMembers with an email / phone (sent clear or hashed), with a hashed "
                   "identity in the graph, and with consent per channel:"),
            ("code", "reach = data.reachability(ws, segments)\nreach"),
            ("code", "figures.reachability(reach)"),
            ("md", "Per destination (the activation preview's counts for each mapped segment):"),
            ("code", "destinations = data.destination_reach(ws, as_of)\nfigures.destination_reach(destinations)"),
            ("md", "## Activation preview\nWhat one destination would receive of one segment, "
                   "before anything is sent (hashed columns show hashes)."),
            ("code", "preview = ws.activation.preview(destination, preview_segment, as_of)\n"
                     "print(preview)\npreview.rows"),
        ],
    ),
}

if __name__ == "__main__":
    for name, nb in NOTEBOOKS.items():
        nbf.write(nb, OUT / f"{name}.ipynb")
        print(OUT / f"{name}.ipynb")
