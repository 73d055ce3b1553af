"""The profile explorer: find a unified profile by any identity and see all of it.

    from workbench.widgets import ProfileExplorer
    ex = ProfileExplorer(ws)
    ex.widget                        # in a notebook: a text box, a search button, the views
    ex.search("email:Ana@X.com")     # the same from Python: returns the Profile (or None)
    ex.profile, ex.error, ex.frames["events"], ex.figures["graph"]

A wrong or unknown identity is shown as a message in the widget (and kept in ``.error``),
never as a traceback.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd
import plotly.graph_objects as go
from IPython.display import display

from workbench.errors import WorkbenchError
from workbench.profile.profiles import Profile
from workbench.viz import data, figures

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

HELP = "Type an identity as namespace:value, e.g. email:ana@example.com or crm_id:C00000001."


def _table_html(df: pd.DataFrame, empty: str) -> str:
    if df.empty:
        return f"<i>{html.escape(empty)}</i>"
    return df.to_html(index=False, escape=True, na_rep="", border=0, classes="wb-table")


class ProfileExplorer:
    """Search a profile by any identity; show its attributes (with the source dataset of each
    value), identity graph, event timeline and segment memberships.

    Args:
        ws: The workspace (identity graph and profiles built).
        policy: Merge policy of the profiles shown (default: the workspace's).
        events: At most this many (the newest) events in the timeline.
        identity: Search this identity at once.
    """

    def __init__(
        self, ws: Workspace, *, policy: str | None = None, events: int = 500, identity: str = ""
    ) -> None:
        self.ws = ws
        self.policy = policy
        self.max_events = events
        #: The profile found by the last search (None after a failed one).
        self.profile: Profile | None = None
        #: The message of the last failed search (None after a successful one).
        self.error: str | None = None
        #: The frames behind the views: attributes, nodes, edges, events, memberships.
        self.frames: dict[str, pd.DataFrame] = {}
        #: The figures shown: graph, timeline, memberships.
        self.figures: dict[str, go.Figure] = {}

        self.text = W.Text(
            value=identity,
            placeholder="email:ana@example.com",
            description="Identity",
            continuous_update=False,
            layout=W.Layout(width="420px"),
        )
        self.button = W.Button(description="Search", button_style="primary", icon="search")
        self.message = W.HTML(value=f"<span>{html.escape(HELP)}</span>")
        self.attributes_out = W.Output()
        self.graph_out = W.Output()
        self.timeline_out = W.Output()
        self.memberships_out = W.Output()
        tabs = W.Tab(
            children=[self.attributes_out, self.graph_out, self.timeline_out, self.memberships_out]
        )
        for i, title in enumerate(("Attributes", "Identity graph", "Events", "Memberships")):
            tabs.set_title(i, title)
        self.tabs = tabs
        #: What a notebook displays.
        self.widget = W.VBox([W.HBox([self.text, self.button]), self.message, tabs])
        self._typing = True  # False while search() writes the text box itself
        self.button.on_click(lambda _b: self.search(self.text.value))
        self.text.observe(self._on_text, names="value")  # Enter (or leaving the box) searches
        if identity:
            self.search(identity)

    # ------------------------------------------------------------------ Python API
    def search(self, identity: str) -> Profile | None:
        """Find the profile of ``identity`` (``namespace:value``, normalized first) and show it.

        Args:
            identity: Any identity, e.g. ``email:Ana@Example.com``, ``crm_id:C00000001``.

        Returns:
            The profile, or None when the input is invalid or unknown (``.error`` says why,
            and so does the widget).
        """
        identity = (identity or "").strip()
        if self.text.value != identity:
            self._typing = False
            try:
                self.text.value = identity
            finally:
                self._typing = True
        if not identity:
            return self._fail(HELP)
        try:
            pid = self.ws.identity.lookup(identity)
            if pid is None:
                return self._fail(f"no profile holds {identity} (never seen, blocked or not built)")
            return self.open(pid, _label=identity)
        except WorkbenchError as e:
            return self._fail(str(e))
        except Exception as e:  # a UI boundary: show it, keep the log's traceback
            log.exception("profile explorer: search %r failed", identity)
            return self._fail(f"unexpected error: {type(e).__name__}: {e}")

    def open(self, profile_id: int, *, _label: str = "") -> Profile | None:
        """Show a profile by id.

        Args:
            profile_id: The profile.

        Returns:
            The profile, or None when there is no such profile (``.error`` says why).
        """
        try:
            profile = self.ws.profiles.by_id(int(profile_id), policy=self.policy, events=0)
            nodes, edges = data.profile_graph(self.ws, profile.profile_id)
            frames = {
                "attributes": data.profile_attributes(profile),
                "nodes": nodes,
                "edges": edges,
                "events": data.profile_events(self.ws, profile.profile_id, self.max_events),
                "memberships": data.profile_memberships(self.ws, profile.profile_id),
            }
        except WorkbenchError as e:
            return self._fail(str(e))
        title = f"profile {profile.profile_id}"
        self.figures = {
            "graph": figures.identity_graph(nodes, edges, f"Identity graph of {title}"),
            "timeline": figures.event_timeline(frames["events"], f"Events of {title}"),
            "memberships": figures.memberships(frames["memberships"], f"Segments of {title}"),
        }
        self.profile, self.error, self.frames = profile, None, frames
        found = f" (found by {html.escape(_label)})" if _label else ""
        self.message.value = (
            f"<b>{html.escape(title)}</b>{found}: {len(nodes[nodes['in_profile']])} identities, "
            f"{len(frames['events'])} events shown, {len(frames['memberships'])} memberships"
        )
        self._render()
        return profile

    # ------------------------------------------------------------------ view
    def _on_text(self, change: dict[str, Any]) -> None:
        if self._typing and (change["new"] or "").strip():
            self.search(change["new"])

    def _fail(self, message: str) -> None:
        self.profile, self.error, self.frames, self.figures = None, message, {}, {}
        self.message.value = f'<span style="color:#b91c1c">{html.escape(message)}</span>'
        for out in (self.attributes_out, self.graph_out, self.timeline_out, self.memberships_out):
            out.clear_output()
        return None

    def _render(self) -> None:
        f = self.frames
        with self.attributes_out:
            self.attributes_out.clear_output(wait=True)
            display(W.HTML(_table_html(f["attributes"], "no attributes (an anonymous visitor)")))
        with self.graph_out:
            self.graph_out.clear_output(wait=True)
            display(self.figures["graph"])
            idents = f["nodes"][f["nodes"]["in_profile"]][
                ["namespace", "value", "evidence", "first_seen", "last_seen"]
            ]
            display(W.HTML(_table_html(idents, "no identities")))
        with self.timeline_out:
            self.timeline_out.clear_output(wait=True)
            display(self.figures["timeline"])
        with self.memberships_out:
            self.memberships_out.clear_output(wait=True)
            display(W.HTML(_table_html(f["memberships"], "in no segment")))
            if not f["memberships"].empty:
                display(self.figures["memberships"])

    def _ipython_display_(self) -> None:
        display(self.widget)

    def __repr__(self) -> str:
        who = f"profile {self.profile.profile_id}" if self.profile else (self.error or "empty")
        return f"ProfileExplorer({who})"


def explore(ws: Workspace, identity: str = "", **kw: Any) -> ProfileExplorer:
    """A :class:`ProfileExplorer`, searching ``identity`` at once when given."""
    return ProfileExplorer(ws, identity=identity, **kw)


__all__ = ["ProfileExplorer", "explore"]
