"""The stakeholder dashboards of ``dashboards/`` (served by Voila): panel data and layouts.

Each ``*_data`` function takes a :class:`~workbench.workspace.Workspace` and returns plain
frames/dicts of aggregates (read through :mod:`workbench.viz.data`, so the notebooks and the
dashboards show the same numbers); each page builder (:func:`audience_overview`,
:func:`activation_status`, :func:`data_health`) returns one ready-made ipywidgets layout.

Small counts are suppressed in one place: :func:`suppress` (charts: the value is hidden) and
:func:`fmt_count` (tables and KPIs: shown as ``<10``). A count of people or records below
``ws.settings.min_count`` (default 10) is never shown; zero is shown as ``0`` (it singles
nobody out). Operational figures that are not about people (job runs, batches, durations)
are not suppressed.

    import workbench.dashboards as dash
    dash.audience_overview(ws)       # an ipywidgets.VBox
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.viz import data, figures

if TYPE_CHECKING:
    import ipywidgets
    import plotly.graph_objects as go

    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

#: Attributes the segment picker breaks a segment down by (those the profiles have).
COMPOSITION_ATTRIBUTES = ("tier", "city")
#: Rejection reasons the data health page lists (the most frequent first).
TOP_REASONS = 15
#: Columns of the activation counts, in display order, with their labels.
ACTIVATION_COUNTS = {
    "eligible": "eligible",
    "exported": "exported",
    "skipped_no_identity": "skipped: no identity",
    "skipped_no_consent": "skipped: no consent",
    "blocked": "blocked: governance",
    "dead_lettered": "dead-lettered",
}


# ---------------------------------------------------------------------- suppression
def is_small(value: Any, min_count: int) -> bool:
    """True for a count that must not be shown: ``0 < value < min_count``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return 0 < value < min_count


def fmt_count(value: Any, min_count: int) -> str:
    """A count for a table or KPI: ``1,234``, ``<10`` when suppressed, ``–`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if is_small(value, min_count):
        return f"<{min_count}"
    return f"{int(value):,}"


def fmt_share(part: Any, whole: Any, min_count: int) -> str:
    """``part / whole`` as a percentage, or ``<10`` when ``part`` is suppressed."""
    if is_small(part, min_count):
        return f"<{min_count}"
    if not whole:
        return "–"
    return f"{100 * part / whole:.1f}%"


def suppress(frame: pd.DataFrame, columns: Iterable[str], min_count: int) -> pd.DataFrame:
    """A copy of ``frame`` where each small count of ``columns`` is missing (NaN): charts
    drawn from it leave those bars/points out."""
    out = frame.copy()
    for c in columns:
        col = pd.to_numeric(out[c], errors="coerce").astype("float64")
        out[c] = col.mask((col > 0) & (col < min_count))
    return out


def fmt_frame(frame: pd.DataFrame, columns: Iterable[str], min_count: int) -> pd.DataFrame:
    """A copy of ``frame`` for display: each count of ``columns`` formatted by
    :func:`fmt_count` (small ones as ``<10``)."""
    out = frame.copy()
    for c in columns:
        out[c] = [fmt_count(v, min_count) for v in out[c]]
    return out


# ---------------------------------------------------------------------- audience overview
def overview_kpis(ws: Workspace) -> dict[str, str]:
    """The audience overview's KPI boxes, formatted (and suppressed).

    Returns:
        ``{label: text}``: profiles, known profiles, known identities and the share of
        profiles reachable by email, SMS and ads.
    """
    m = ws.settings.min_count
    r = data.profile_reach(ws)
    n = r["profiles"]
    return {
        "Profiles": fmt_count(n, m),
        "Known profiles": fmt_count(r["known_profiles"], m),
        "Known identities": fmt_count(r["known_identities"], m),
        "Reachable by email": fmt_share(r["email"], n, m),
        "Reachable by SMS": fmt_share(r["sms"], n, m),
        "Reachable by ads": fmt_share(r["ads"], n, m),
    }


def segment_table(ws: Workspace) -> pd.DataFrame:
    """Every segment: members now, change since the previous run, method and last run.

    Returns:
        Columns ``segment``, ``method``, ``members``, ``change`` (members minus the size at
        the previous daily run; missing with one run or none), ``last_run`` (``as_of`` of
        the last run, ISO text, empty when never run); counts unsuppressed.
    """
    sizes = data.segment_sizes(ws)
    hist = data.size_history(ws)
    change: dict[str, Any] = {}
    last: dict[str, str] = {}
    for seg, part in hist.groupby("segment", sort=False):
        part = part.sort_values("as_of")
        last[str(seg)] = pd.Timestamp(part["as_of"].iloc[-1]).strftime("%Y-%m-%d %H:%M")
        if len(part) > 1:
            change[str(seg)] = int(part["size"].iloc[-1]) - int(part["size"].iloc[-2])
    out = sizes[["segment", "method", "members"]].copy()
    out["change"] = out["segment"].map(change)
    out["last_run"] = out["segment"].map(last).fillna("")
    return out


def fmt_change(value: Any, min_count: int) -> str:
    """A signed change (``+12``, ``-30``), ``<10`` in absolute value when small."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    v = int(value)
    if is_small(abs(v), min_count):
        return f"±<{min_count}"
    return f"{v:+,}"


def segment_table_display(ws: Workspace) -> pd.DataFrame:
    """:func:`segment_table` formatted for display, small counts suppressed."""
    m = ws.settings.min_count
    t = segment_table(ws)
    t["members"] = [fmt_count(v, m) for v in t["members"]]
    t["change"] = [fmt_change(v, m) for v in t["change"]]
    return t.rename(columns={"change": "change since previous run", "last_run": "last run (as of)"})


def segment_detail(ws: Workspace, name: str) -> dict[str, pd.DataFrame]:
    """The frames behind the segment picker, small counts suppressed (NaN).

    Returns:
        ``history`` (:func:`workbench.viz.data.size_history` of the segment),
        ``composition`` (by each of :data:`COMPOSITION_ATTRIBUTES` the profiles have, with an
        ``attribute`` column; the share of a suppressed group is hidden too) and ``overlap``
        (``segment``, ``members in both`` with each other segment, largest first).
    """
    m = ws.settings.min_count
    hist = suppress(data.size_history(ws, [name]), ["size", "realized", "existing", "exited"], m)
    have = set(ws.profiles.table().schema.names) if _has_profiles(ws) else set()
    comps = []
    for a in COMPOSITION_ATTRIBUTES:
        if a in have:
            c = data.composition(ws, [name], a)
            c.insert(0, "attribute", a)
            comps.append(c)
    comp = (
        pd.concat(comps, ignore_index=True)
        if comps
        else pd.DataFrame(columns=["attribute", "segment", "value", "members", "share"])
    )
    comp = suppress(comp, ["members"], m)
    comp["share"] = pd.to_numeric(comp["share"], errors="coerce").mask(comp["members"].isna())
    names = [s.name for s in ws.segments.list()]
    mat = data.overlap_matrix(ws, names)
    ov = pd.DataFrame(
        {"segment": [n for n in names if n != name], "members in both": 0}, dtype="object"
    )
    if name in mat.index:
        ov["members in both"] = [int(mat.loc[name, n]) for n in ov["segment"]]
    ov = ov.sort_values("members in both", ascending=False, kind="stable", ignore_index=True)
    ov = suppress(ov, ["members in both"], m)
    return {"history": hist, "composition": comp, "overlap": ov}


def _has_profiles(ws: Workspace) -> bool:
    return bool(ws.lake.exists(ws.profiles.table_uri()))


# ---------------------------------------------------------------------- activation status
def _next_deliveries(ws: Workspace, now: dt.datetime | None = None) -> dict[str, str]:
    from workbench.jobs.schedule import Scheduler

    now = now or dt.datetime.now(dt.UTC)
    out: dict[str, str] = {}
    try:
        slots = Scheduler(ws).next_runs(now, hours=24 * 8)
    except Exception as e:  # a broken schedule must not take the dashboard down
        log.warning("dashboards: no schedule: %s", e)
        return out
    for s in slots:  # the delivery time (the export job itself runs a little earlier)
        if s.destination and s.destination not in out:
            when = dt.datetime.fromisoformat(s.params["as_of"].replace("Z", "+00:00"))
            out[s.destination] = when.strftime("%Y-%m-%d %H:%M UTC")
    return out


def activation_summary(ws: Workspace, now: dt.datetime | None = None) -> pd.DataFrame:
    """One row per destination: its last activations (the latest per segment) summed.

    Returns:
        Columns ``destination``, ``type``, ``segments``, ``last_activation`` (``as_of``),
        ``last_status`` (worst status of the latest activations: failed > blocked >
        success), the counts of :data:`ACTIVATION_COUNTS`, ``dead_letter_changes`` (changes
        waiting in the streaming dead-letter table) and ``next_delivery``; counts
        unsuppressed.
    """
    from workbench.activation.streaming import dead_letters

    dl = dead_letters(ws).to_pandas()
    nxt = _next_deliveries(ws, now)
    rank = {"failed": 3, "partial": 2, "blocked": 1, "success": 0}
    rows = []
    for d in ws.activation.list():
        latest: dict[str, Any] = {}
        for a in ws.activation.status(d.name, limit=200):  # newest first
            latest.setdefault(a.segment, a)
        acts = list(latest.values())
        row: dict[str, Any] = {
            "destination": d.name,
            "type": str(getattr(d.type, "value", d.type)),
            "segments": ", ".join(d.segments),
            "last_activation": max((a.as_of for a in acts), default=None),
            "last_status": max((a.status for a in acts), key=lambda s: rank.get(s, 2))
            if acts
            else "never run",
        }
        for c in ACTIVATION_COUNTS:
            row[c] = sum(int(a.counts.get(c, 0) or 0) for a in acts)
        part = dl[dl["destination"] == d.name] if len(dl) else dl
        row["dead_letter_changes"] = int(part["events"].sum()) if len(part) else 0
        row["next_delivery"] = nxt.get(d.name, "not scheduled")
        rows.append(row)
    cols = ["destination", "type", "segments", "last_activation", "last_status"]
    cols += [*ACTIVATION_COUNTS, "dead_letter_changes", "next_delivery"]
    return pd.DataFrame(rows, columns=cols)


def recent_activations(ws: Workspace, limit: int = 30) -> pd.DataFrame:
    """The latest activations of every destination, newest first (counts unsuppressed).

    Returns:
        Columns ``started``, ``destination``, ``segment``, ``as_of``, ``mode``, ``status``,
        the counts of :data:`ACTIVATION_COUNTS` and ``error``.
    """
    rows = []
    for a in ws.activation.status(limit=limit):
        rows.append(
            {
                "started": a.started_at.strftime("%Y-%m-%d %H:%M"),
                "destination": a.destination,
                "segment": a.segment,
                "as_of": a.as_of.strftime("%Y-%m-%d %H:%M"),
                "mode": a.mode,
                "status": a.status,
                **{c: int(a.counts.get(c, 0) or 0) for c in ACTIVATION_COUNTS},
                "error": a.error or "",
            }
        )
    cols = ["started", "destination", "segment", "as_of", "mode", "status"]
    cols += [*ACTIVATION_COUNTS, "error"]
    return pd.DataFrame(rows, columns=cols)


def dead_letter_summary(ws: Workspace) -> pd.DataFrame:
    """Dead-lettered streaming batches per destination and segment (aggregates only).

    Returns:
        Columns ``destination``, ``segment``, ``batches``, ``changes``, ``attempts`` (most),
        ``last_error``, ``since`` (oldest batch).
    """
    from workbench.activation.streaming import dead_letters

    dl = dead_letters(ws).to_pandas()
    cols = ["destination", "segment", "batches", "changes", "attempts", "last_error", "since"]
    if dl.empty:
        return pd.DataFrame(columns=cols)
    g = dl.groupby(["destination", "segment"], as_index=False).agg(
        batches=("delivery_id", "count"),
        changes=("events", "sum"),
        attempts=("attempts", "max"),
        last_error=("last_error", "last"),
        since=("created_at", "min"),
    )
    return g[cols]


# ---------------------------------------------------------------------- data health
def health_kpis(ws: Workspace) -> dict[str, str]:
    """The data health KPI boxes, formatted (record counts suppressed)."""
    m = ws.settings.min_count
    b = data.batches(ws)
    runs = data.job_runs(ws)
    out = {
        "Batches": f"{len(b):,}",
        "Rows accepted": fmt_count(int(b["rows_accepted"].sum()), m),
        "Rows rejected": fmt_count(int(b["rows_rejected"].sum()), m),
    }
    if ws.identity.exists():
        sizes = data.cluster_sizes(ws)
        cap = ws.settings.identity_cap
        links = data.links_by_status(ws)
        out["Clusters at the cap"] = fmt_count(
            int(sizes.loc[sizes["identities"] >= cap, "profiles"].sum()), m
        )
        out["Links cut"] = fmt_count(int(links.loc[links["status"] != "kept", "links"].sum()), m)
    out["Job runs"] = f"{len(runs):,}"
    out["Failed job runs"] = f"{int((runs['status'] == 'failed').sum()):,}"
    return out


def failed_jobs(ws: Workspace) -> pd.DataFrame:
    """Failed job runs, newest first, with the executed notebook (the run's log)."""
    runs = data.job_runs(ws)
    f = runs[runs["status"] != "success"].iloc[::-1]
    return f[["run_id", "job", "slot", "status", "started_at", "error", "output"]].reset_index(
        drop=True
    )


# ---------------------------------------------------------------------- widgets
_CSS = """
<style>
.wb-dash { max-width: 1240px; font-family: system-ui, sans-serif; }
.wb-dash h1 { font-size: 26px; margin: 4px 0 2px 0; }
.wb-dash h2 { font-size: 18px; margin: 18px 0 2px 0; border-bottom: 1px solid #e5e7eb; }
.wb-note { color: #4b5563; font-size: 13px; margin: 0 0 6px 0; }
.wb-kpis { display: flex; flex-flow: row wrap; gap: 8px; }
.wb-kpi { border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px 14px; min-width: 150px;
          background: #f9fafb; }
.wb-kpi-label { color: #6b7280; font-size: 12px; text-transform: uppercase; }
.wb-kpi-value { font-size: 24px; font-weight: 600; color: #111827; }
.wb-table table { border-collapse: collapse; font-size: 12px; width: 100%; }
.wb-table th { text-align: left; background: #f3f4f6; padding: 3px 6px; }
.wb-table td { padding: 3px 6px; border-top: 1px solid #e5e7eb; }
</style>
"""


def _w() -> Any:
    import ipywidgets

    return ipywidgets


def header(title: str, note: str) -> ipywidgets.Widget:
    """The page title and its explanation (with the dashboard CSS)."""
    w = _w().HTML(f"{_CSS}<h1>{html.escape(title)}</h1><p class='wb-note'>{html.escape(note)}</p>")
    w.add_class("wb-header")
    return w


def section(title: str, note: str = "") -> ipywidgets.Widget:
    """A section title with a short explanation."""
    n = f"<p class='wb-note'>{html.escape(note)}</p>" if note else ""
    return _w().HTML(f"<h2>{html.escape(title)}</h2>{n}")


def kpi_row(kpis: dict[str, str]) -> ipywidgets.Widget:
    """KPI boxes in a row, as one HTML widget (a page draws fewer widgets); each box has the
    class ``wb-kpi-<label slug>``."""
    boxes = "".join(
        f"<div class='wb-kpi wb-kpi-{'-'.join(label.lower().split())}'>"
        f"<div class='wb-kpi-label'>{html.escape(label)}</div>"
        f"<div class='wb-kpi-value'>{html.escape(value)}</div></div>"
        for label, value in kpis.items()
    )
    row = _w().HTML(f"<div class='wb-kpis'>{boxes}</div>")
    row.add_class("wb-kpi-row")
    return row


def table(frame: pd.DataFrame, css: str = "", max_rows: int = 50) -> ipywidgets.Widget:
    """A read-only HTML table (already formatted/suppressed frame)."""
    body = (
        frame.head(max_rows).to_html(index=False, escape=True, border=0, na_rep="–")
        if len(frame)
        else "<p class='wb-note'>(none)</p>"
    )
    t = _w().HTML(body)
    t.add_class("wb-table")
    if css:
        t.add_class(css)
    return t


def figure(fig: go.Figure, css: str = "", height: int = 360) -> ipywidgets.Widget:
    """A plotly figure in an Output widget (plotly's mime renderer, works offline)."""

    out = _w().Output(layout=_w().Layout(width="100%"))
    if css:
        out.add_class(css)
    show_figure(out, fig, height)
    return out


def show_figure(out: ipywidgets.Output, fig: go.Figure, height: int = 360) -> None:
    """Replace what ``out`` shows by ``fig``."""
    from IPython.display import display

    fig.update_layout(height=height, autosize=True)
    out.clear_output(wait=True)
    with out:
        display(fig)


def grid(*children: ipywidgets.Widget, columns: int = 2) -> ipywidgets.Widget:
    """Children in a grid of equal columns."""
    w = _w()
    return w.GridBox(
        list(children),
        layout=w.Layout(
            grid_template_columns=f"repeat({columns}, minmax(0, 1fr))", grid_gap="12px"
        ),
    )


def page(*children: ipywidgets.Widget) -> ipywidgets.Widget:
    """The whole dashboard as one VBox (class ``wb-dash``)."""
    box = _w().VBox(list(children))
    box.add_class("wb-dash")
    return box


# ---------------------------------------------------------------------- pages
def audience_overview(ws: Workspace) -> ipywidgets.Widget:
    """The audience overview: KPIs, the segments table and a segment picker (size over
    time, composition by tier and city, overlap with the other segments)."""
    w = _w()
    m = ws.settings.min_count
    parts = [
        header(
            "Audience overview",
            f"Unified profiles and segments. Aggregates only: any count below {m} is shown "
            f"as <{m} (and left out of charts).",
        ),
        kpi_row(overview_kpis(ws) if _has_profiles(ws) else {"Profiles": "0"}),
        section(
            "Segments",
            "Members now, change since the previous run, how each is evaluated and when it "
            "last ran.",
        ),
        table(segment_table_display(ws), "wb-segments", max_rows=500),
    ]
    names = [s.name for s in ws.segments.list()]
    if names:
        sizes = data.segment_sizes(ws).set_index("segment")["members"]
        first = max(names, key=lambda n: (int(sizes.get(n, 0)), n))
        picker = w.Dropdown(options=names, value=first, description="Segment")
        picker.add_class("wb-picker")
        title = w.HTML()
        title.add_class("wb-seg-title")
        outs = {k: w.Output(layout=w.Layout(width="100%")) for k in ("history", "comp", "overlap")}
        for k, o in outs.items():
            o.add_class(f"wb-fig-{k}")

        def draw(name: str) -> None:
            d = segment_detail(ws, name)
            title.value = f"<h2>Segment: {html.escape(name)}</h2>"
            fh = figures.size_history(d["history"])
            fh.update_layout(title=f"{name}: size over time; entered / exited per run")
            show_figure(outs["history"], fh)
            fc = go_composition(d["composition"], name)
            show_figure(outs["comp"], fc)
            fo = go_overlap(d["overlap"], name)
            show_figure(outs["overlap"], fo, height=420)

        picker.observe(lambda ch: draw(ch["new"]), names="value")
        draw(first)
        parts += [
            section(
                "One segment",
                "Pick a segment: its size per run, who is in it by tier and city, and how "
                "much it shares with the other segments.",
            ),
            picker,
            title,
            grid(outs["history"], outs["comp"]),
            outs["overlap"],
        ]
    return page(*parts)


def go_composition(comp: pd.DataFrame, name: str) -> go.Figure:
    """Composition of one segment by each attribute: one figure, one bar group per
    attribute (suppressed groups left out)."""
    parts = []
    for a, c in comp.groupby("attribute", sort=False):
        c = c.dropna(subset=["members"]).copy()
        c["segment"] = str(a)
        parts.append(c)
    frame = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["segment", "value", "members", "share"])
    )
    fig = figures.composition(frame)
    fig.update_layout(title=f"{name}: composition by {' and '.join(COMPOSITION_ATTRIBUTES)}")
    return fig


def go_overlap(ov: pd.DataFrame, name: str) -> go.Figure:
    """Members shared with each other segment (suppressed overlaps left out)."""
    import plotly.graph_objects as go

    o = ov.dropna(subset=["members in both"])
    o = o[o["members in both"] > 0]
    fig = go.Figure()
    fig.add_bar(x=o["segment"], y=o["members in both"], name="members in both")
    fig.update_layout(
        title=f"{name}: overlap with other segments (members in both)",
        template="plotly_white",
        yaxis_title="members",
        margin={"l": 40, "r": 20, "t": 60, "b": 120},
    )
    return fig


def activation_status(ws: Workspace, now: dt.datetime | None = None) -> ipywidgets.Widget:
    """Activation status: per destination the last activations, counts exported and
    skipped by reason, the next scheduled delivery, failures and dead letters."""
    import plotly.graph_objects as go

    m = ws.settings.min_count
    s = activation_summary(ws, now)
    counts = [*ACTIVATION_COUNTS, "dead_letter_changes"]
    show = fmt_frame(s, counts, m)
    show["last_activation"] = [
        "" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M")
        for v in s["last_activation"]
    ]
    show = show.rename(columns={**ACTIVATION_COUNTS, "dead_letter_changes": "dead letters"})
    recent = recent_activations(ws)
    failures = recent[recent["status"] != "success"]
    chart = suppress(s, list(ACTIVATION_COUNTS), m)
    fig = go.Figure()
    colors = {
        "exported": "#2ca02c",
        "skipped_no_identity": "#9aa5b1",
        "skipped_no_consent": "#ff7f0e",
        "blocked": "#d62728",
        "dead_lettered": "#8c564b",
    }
    for c, color in colors.items():
        fig.add_bar(
            x=chart["destination"], y=chart[c], name=ACTIVATION_COUNTS[c], marker_color=color
        )
    fig.update_layout(
        title="Last activations per destination: exported and skipped by reason",
        barmode="stack",
        template="plotly_white",
        yaxis_title="profiles",
    )
    n_fail = int((s["last_status"].isin(["failed", "partial"])).sum())
    kpis = {
        "Destinations": f"{len(s):,}",
        "Exported": fmt_count(int(s["exported"].sum()), m),
        "Skipped": fmt_count(
            int(s[["skipped_no_identity", "skipped_no_consent", "blocked"]].sum().sum()), m
        ),
        "Failing destinations": f"{n_fail:,}",
        "Dead-lettered changes": fmt_count(int(s["dead_letter_changes"].sum()), m),
    }
    return page(
        header(
            "Activation status",
            f"What each destination received at its last activations, what was skipped and "
            f"why, and what comes next. Counts below {m} are shown as <{m}.",
        ),
        kpi_row(kpis),
        section(
            "Destinations",
            "The latest activation of each of a destination's segments, summed; blocked = "
            "stopped by data-usage governance.",
        ),
        table(show, "wb-destinations"),
        figure(fig, "wb-fig-activation"),
        section("Recent activations", "Newest first."),
        table(
            fmt_frame(recent, list(ACTIVATION_COUNTS), m).rename(columns=ACTIVATION_COUNTS),
            "wb-recent",
        ),
        section("Failures", "Activations that failed or were blocked, with the reason."),
        table(failures[["started", "destination", "segment", "status", "error"]], "wb-failures"),
        section(
            "Dead-lettered streaming changes",
            "Batches a streaming destination refused; replay with workbench activation retry.",
        ),
        table(fmt_frame(dead_letter_summary(ws), ["changes"], m), "wb-dead-letters"),
    )


def data_health(ws: Workspace) -> ipywidgets.Widget:
    """Data health: ingestion batches and rejection reasons, identity graph health, job
    runs (duration trend, failures with the executed notebook)."""
    m = ws.settings.min_count
    b = data.batches(ws)
    reasons = data.quarantine_reasons(ws)
    parts = [
        header(
            "Data health",
            f"Ingestion, identity graph and scheduled jobs. Record counts below {m} are shown "
            f"as <{m} (and left out of charts).",
        ),
        kpi_row(health_kpis(ws)),
        section(
            "Ingestion",
            "Accepted and rejected rows per batch; the most frequent rejection reasons "
            "(rejected rows are kept in each dataset's quarantine).",
        ),
        grid(
            figure(
                figures.batches(suppress(b, ["rows_accepted", "rows_rejected"], m)),
                "wb-fig-batches",
            ),
            table(
                fmt_frame(reasons.head(TOP_REASONS), ["errors", "rows"], m),
                "wb-reasons",
            ),
        ),
        table(
            fmt_frame(
                b.assign(started_at=b["started_at"].map(lambda t: f"{t:%Y-%m-%d %H:%M}"))[
                    [
                        "batch_id",
                        "dataset",
                        "status",
                        "started_at",
                        "rows_read",
                        "rows_accepted",
                        "rows_rejected",
                    ]
                ].iloc[::-1],
                ["rows_read", "rows_accepted", "rows_rejected"],
                m,
            ),
            "wb-batches",
        ),
    ]
    if ws.identity.exists():
        parts += [
            section(
                "Identity graph",
                f"Identities per profile (cap {ws.settings.identity_cap}) and the links the "
                f"guardrails kept and cut, per pair of namespaces.",
            ),
            grid(
                figure(
                    figures.cluster_sizes(suppress(data.cluster_sizes(ws), ["profiles"], m)),
                    "wb-fig-clusters",
                ),
                table(fmt_frame(data.links_by_status(ws), ["links"], m), "wb-links"),
            ),
        ]
    runs = data.job_runs(ws)
    parts += [
        section("Job runs", "Duration of each run; failures with their executed notebook."),
        figure(figures.job_durations(runs), "wb-fig-jobs", height=320),
        table(failed_jobs(ws), "wb-failed-jobs"),
    ]
    return page(*parts)


__all__ = [
    "activation_status",
    "activation_summary",
    "audience_overview",
    "data_health",
    "dead_letter_summary",
    "failed_jobs",
    "fmt_count",
    "fmt_frame",
    "fmt_share",
    "health_kpis",
    "is_small",
    "overview_kpis",
    "recent_activations",
    "segment_detail",
    "segment_table",
    "segment_table_display",
    "suppress",
]
