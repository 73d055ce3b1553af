"""Plotly figures built from the frames of :mod:`workbench.viz.data`.

Each function takes the DataFrame the matching ``data`` function returns and gives a
``plotly.graph_objects.Figure``; nothing here reads the workspace, so a dashboard can cache
the frames and redraw.

    from workbench.viz import data, figures
    figures.cluster_sizes(data.cluster_sizes(ws)).show()
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

log = logging.getLogger(__name__)

#: Colours by namespace kind / status, stable across figures.
STATUS_COLORS = {
    "kept": "#9aa5b1",
    "cut_unique_namespace": "#d62728",
    "cut_cap": "#ff7f0e",
    "realized": "#2ca02c",
    "existing": "#1f77b4",
    "exited": "#d62728",
}
CHANNEL_COLORS = {"online": "#1f77b4", "offline": "#ff7f0e"}
_LAYOUT = {"template": "plotly_white", "margin": {"l": 40, "r": 20, "t": 60, "b": 40}}


def _fig(title: str, **layout: object) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, **_LAYOUT)
    if layout:
        fig.update_layout(**layout)
    return fig


# ---------------------------------------------------------------------- datasets
def datasets(overview: pd.DataFrame) -> go.Figure:
    """Accepted and rejected rows per dataset (stacked bars).

    Args:
        overview: :func:`workbench.viz.data.datasets_overview`.

    Returns:
        Two bar traces: ``rows`` and ``rejected rows``.
    """
    fig = _fig("Rows per dataset", barmode="stack", yaxis_title="rows")
    fig.add_bar(x=overview["dataset"], y=overview["rows"], name="rows")
    fig.add_bar(
        x=overview["dataset"],
        y=overview["rejected_rows"],
        name="rejected rows",
        marker_color="#d62728",
        customdata=overview[["quarantine_errors"]],
        hovertemplate="%{x}: %{y:,} rejected rows (%{customdata[0]:,} field errors)<extra></extra>",
    )
    return fig


def quarantine_reasons(reasons: pd.DataFrame, top: int = 15) -> go.Figure:
    """The most frequent rejection reasons (horizontal bars, one trace per dataset).

    Args:
        reasons: :func:`workbench.viz.data.quarantine_reasons`.
        top: How many (dataset, field, reason) rows to show.

    Returns:
        One bar trace per dataset present in the top rows.
    """
    r = reasons.head(top)
    fig = _fig("Quarantine: rejections by field and reason", barmode="stack", xaxis_title="errors")
    labels = r["field"] + ": " + r["reason"].str.slice(0, 60)
    for name, part in r.groupby("dataset", sort=True):
        fig.add_bar(y=labels[part.index], x=part["errors"], name=str(name), orientation="h")
    fig.update_yaxes(autorange="reversed")
    return fig


# ---------------------------------------------------------------------- identity
def cluster_sizes(sizes: pd.DataFrame) -> go.Figure:
    """Histogram of identities per profile.

    Args:
        sizes: :func:`workbench.viz.data.cluster_sizes`.

    Returns:
        One bar trace.
    """
    fig = _fig(
        "Identities per profile (cluster sizes)",
        xaxis_title="identities in the profile",
        yaxis_title="profiles",
    )
    fig.add_bar(x=sizes["identities"], y=sizes["profiles"], name="profiles")
    fig.update_xaxes(dtick=1)
    return fig


def namespaces(per_namespace: pd.DataFrame) -> go.Figure:
    """Identities and profiles per namespace (grouped bars).

    Args:
        per_namespace: :func:`workbench.viz.data.identities_per_namespace`.

    Returns:
        Two bar traces: ``identities`` and ``profiles``.
    """
    fig = _fig("Identities per namespace", barmode="group")
    fig.add_bar(x=per_namespace["namespace"], y=per_namespace["identities"], name="identities")
    fig.add_bar(x=per_namespace["namespace"], y=per_namespace["profiles"], name="profiles")
    return fig


def links(by_status: pd.DataFrame) -> go.Figure:
    """Links per namespace pair, kept and cut by the guardrails (stacked bars).

    Args:
        by_status: :func:`workbench.viz.data.links_by_status`.

    Returns:
        One bar trace per status.
    """
    fig = _fig("Links kept and cut by guardrails", barmode="stack", yaxis_title="links")
    for status, part in by_status.groupby("status", sort=True):
        fig.add_bar(
            x=part["pair"],
            y=part["links"],
            name=str(status),
            marker_color=STATUS_COLORS.get(str(status)),
        )
    return fig


# ---------------------------------------------------------------------- one profile
def _layout(nodes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Node positions: the profile's identities on a circle (by namespace), identities of
    other profiles on an outer circle."""
    x = np.zeros(len(nodes))
    y = np.zeros(len(nodes))
    inside = nodes["in_profile"].to_numpy(dtype=bool)
    for mask, radius in ((inside, 1.0), (~inside, 1.8)):
        n = int(mask.sum())
        if n == 1 and radius == 1.0:
            continue  # a lone identity sits in the middle
        angle = np.linspace(0, 2 * math.pi, n, endpoint=False) + math.pi / 2
        x[mask] = radius * np.cos(angle)
        y[mask] = radius * np.sin(angle)
    return x, y


def identity_graph(nodes: pd.DataFrame, edges: pd.DataFrame, title: str = "") -> go.Figure:
    """One profile's identity graph as a network.

    Args:
        nodes: First frame of :func:`workbench.viz.data.profile_graph`.
        edges: Second frame of it.
        title: Figure title (default: ``Identity graph``).

    Returns:
        One line trace per link status present (cut links dashed), then one marker trace per
        namespace (identities of other profiles hollow).
    """
    fig = _fig(title or "Identity graph", showlegend=True, hovermode="closest")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    if nodes.empty:
        return fig
    x, y = _layout(nodes)
    pos = pd.DataFrame({"x": x, "y": y}, index=nodes["id"])
    if len(edges):
        src = pos.reindex(edges["source"]).to_numpy()
        dst = pos.reindex(edges["target"]).to_numpy()
        for status, idx in edges.groupby("status", sort=True).groups.items():
            k = edges.index.get_indexer(idx)
            # segments separated by None: one trace per status
            xs = np.column_stack([src[k, 0], dst[k, 0], np.full(len(k), np.nan)]).ravel()
            ys = np.column_stack([src[k, 1], dst[k, 1], np.full(len(k), np.nan)]).ravel()
            fig.add_scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=f"link: {status}",
                line={
                    "color": STATUS_COLORS.get(str(status), "#9aa5b1"),
                    "dash": "solid" if status == "kept" else "dash",
                    "width": 2,
                },
                hoverinfo="skip",
            )
    hover = (
        nodes["id"]
        + "<br>profile "
        + nodes["profile_id"].astype(str)
        + "<br>evidence "
        + nodes["evidence"].astype(str)
    )
    for ns, part in nodes.groupby("namespace", sort=True):
        inside = part["in_profile"].to_numpy(dtype=bool)
        fig.add_scatter(
            x=pos.loc[part["id"], "x"],
            y=pos.loc[part["id"], "y"],
            mode="markers+text",
            name=str(ns),
            text=part["value"].str.slice(0, 18),
            textposition="top center",
            hovertext=hover[part.index],
            hoverinfo="text",
            marker={
                "size": 18,
                "symbol": np.where(inside, "circle", "circle-open").tolist(),
                "line": {"width": 2},
            },
        )
    return fig


def event_timeline(events: pd.DataFrame, title: str = "") -> go.Figure:
    """Online and offline events of one profile on one time axis.

    Args:
        events: :func:`workbench.viz.data.profile_events`.
        title: Figure title (default: ``Event timeline``).

    Returns:
        One marker trace per channel present (y: event type).
    """
    fig = _fig(title or "Event timeline", xaxis_title="time", yaxis_title="event type")
    for channel, part in events.groupby("channel", sort=True):
        fig.add_scatter(
            x=part["timestamp"],
            y=part["event_type"],
            mode="markers",
            name=str(channel),
            marker={"size": 11, "color": CHANNEL_COLORS.get(str(channel))},
            hovertext=part["dataset"],
        )
    return fig


def memberships(rows: pd.DataFrame, title: str = "") -> go.Figure:
    """A profile's segment memberships: since when, with their status.

    Args:
        rows: :func:`workbench.viz.data.profile_memberships`.
        title: Figure title (default: ``Segment memberships``).

    Returns:
        One marker trace per status present (x: since, y: segment).
    """
    fig = _fig(title or "Segment memberships", xaxis_title="since")
    for status, part in rows.groupby("status", sort=True):
        fig.add_scatter(
            x=part["since"],
            y=part["segment"],
            mode="markers",
            name=str(status),
            marker={"size": 12, "color": STATUS_COLORS.get(str(status))},
            hovertext=np.where(
                part["exited_at"].notna(), "exited " + part["exited_at"].astype(str), "member"
            ),
        )
    return fig


# ---------------------------------------------------------------------- segments
def segment_sizes(sizes: pd.DataFrame) -> go.Figure:
    """Members per segment (horizontal bars, realized and existing stacked).

    Args:
        sizes: :func:`workbench.viz.data.segment_sizes`.

    Returns:
        Two bar traces: ``realized`` and ``existing``.
    """
    s = sizes.sort_values("members")
    fig = _fig("Segment sizes", barmode="stack", xaxis_title="members")
    for status in ("realized", "existing"):
        fig.add_bar(
            y=s["segment"],
            x=s[status],
            name=status,
            orientation="h",
            marker_color=STATUS_COLORS[status],
        )
    return fig


def overlap(matrix: pd.DataFrame) -> go.Figure:
    """Heat map of members shared by each pair of segments.

    Args:
        matrix: :func:`workbench.viz.data.overlap_matrix`.

    Returns:
        One heatmap trace, counts written in the cells.
    """
    fig = _fig("Segment overlap (members in both)")
    names = [str(c) for c in matrix.columns]
    fig.add_heatmap(
        z=matrix.to_numpy(),
        x=names,
        y=names,
        text=matrix.to_numpy(),
        texttemplate="%{text:,}",
        colorscale="Blues",
        hovertemplate="%{y} & %{x}: %{z:,}<extra></extra>",
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def upset(combos: pd.DataFrame, top: int = 20) -> go.Figure:
    """UpSet-style chart: bars of the exact intersections over a dot matrix of segments.

    Args:
        combos: :func:`workbench.viz.data.intersections`.
        top: How many combinations (largest first).

    Returns:
        Four traces: the intersection bars, the empty dots, the filled dots and the lines
        joining the filled dots of each combination.
    """
    c = combos.head(top).reset_index(drop=True)
    names = [
        col for col in combos.columns if col not in ("segments", "label", "degree", "profiles")
    ]
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.03
    )
    fig.update_layout(title="Exact intersections (UpSet)", showlegend=False, **_LAYOUT)
    xs = np.arange(len(c))
    fig.add_bar(x=xs, y=c["profiles"], name="profiles", hovertext=c["label"], row=1, col=1)
    grid = c[names].to_numpy(dtype=bool) if len(c) else np.zeros((0, len(names)), dtype=bool)
    gx, gy = np.meshgrid(xs, np.arange(len(names)), indexing="ij")
    fig.add_scatter(
        x=gx[~grid],
        y=gy[~grid],
        mode="markers",
        marker={"size": 12, "color": "#e5e7eb"},
        name="not in",
        hoverinfo="skip",
        row=2,
        col=1,
    )
    fig.add_scatter(
        x=gx[grid],
        y=gy[grid],
        mode="markers",
        marker={"size": 12, "color": "#1f2937"},
        name="in",
        hoverinfo="skip",
        row=2,
        col=1,
    )
    # a vertical line from the lowest to the highest filled dot of each combination
    ys = np.where(grid, gy, np.nan)
    low = np.nanmin(ys, axis=1, initial=np.inf) if len(c) else np.array([])
    high = np.nanmax(ys, axis=1, initial=-np.inf) if len(c) else np.array([])
    lx = np.column_stack([xs, xs, np.full(len(c), np.nan)]).ravel()
    ly = np.column_stack([low, high, np.full(len(c), np.nan)]).ravel()
    fig.add_scatter(
        x=lx,
        y=ly,
        mode="lines",
        line={"color": "#1f2937", "width": 2},
        name="combination",
        hoverinfo="skip",
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text="profiles", row=1, col=1)
    fig.update_yaxes(
        tickvals=list(range(len(names))), ticktext=names, autorange="reversed", row=2, col=1
    )
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_xaxes(visible=False, row=2, col=1)
    return fig


def size_history(history: pd.DataFrame) -> go.Figure:
    """Size over time (lines) and entered / exited per day (bars, exits below zero).

    Args:
        history: :func:`workbench.viz.data.size_history`.

    Returns:
        Per segment three traces: the size line, the entered bars, the exited bars.
    """
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.06
    )
    fig.update_layout(
        title="Size over time; entered and exited per run", barmode="relative", **_LAYOUT
    )
    for seg, part in history.groupby("segment", sort=True):
        d = pd.to_datetime(part["date"])
        fig.add_scatter(x=d, y=part["size"], mode="lines+markers", name=f"{seg}", row=1, col=1)
        fig.add_bar(x=d, y=part["realized"], name=f"{seg}: entered", row=2, col=1)
        fig.add_bar(x=d, y=-part["exited"], name=f"{seg}: exited", row=2, col=1)
    fig.update_yaxes(title_text="members", row=1, col=1)
    fig.update_yaxes(title_text="entered / exited", row=2, col=1)
    return fig


def composition(comp: pd.DataFrame, attribute: str = "") -> go.Figure:
    """Share of each segment's members by attribute value (100% stacked bars).

    Args:
        comp: :func:`workbench.viz.data.composition`.
        attribute: The attribute's name, for the title.

    Returns:
        One bar trace per value.
    """
    fig = _fig(
        f"Composition by {attribute}" if attribute else "Composition",
        barmode="stack",
        yaxis_title="share of members",
        yaxis_tickformat=".0%",
    )
    for value, part in comp.groupby("value", sort=True):
        fig.add_bar(
            x=part["segment"],
            y=part["share"],
            name=str(value),
            customdata=part[["members"]],
            hovertemplate="%{x}: %{customdata[0]:,} (%{y:.1%})<extra>" + str(value) + "</extra>",
        )
    return fig


def channel_mix(mix: pd.DataFrame) -> go.Figure:
    """Members of each segment by the channels of their events (stacked bars).

    Args:
        mix: :func:`workbench.viz.data.channel_mix`.

    Returns:
        One bar trace per channel combination (``both``, ``online only``…).
    """
    fig = _fig("Channels of the members' events", barmode="stack", yaxis_title="members")
    for kind in ("both", "online only", "offline only", "no events"):
        part = mix[mix["channels"] == kind]
        if len(part):
            fig.add_bar(x=part["segment"], y=part["members"], name=kind)
    return fig


def reachability(reach: pd.DataFrame) -> go.Figure:
    """Members reachable by email / phone / hashed identity and with consent per channel.

    Args:
        reach: :func:`workbench.viz.data.reachability`.

    Returns:
        One bar trace per measure (``members`` first), grouped by segment.
    """
    fig = _fig("Reachability", barmode="group", yaxis_title="members")
    for col in [c for c in reach.columns if c != "segment"]:
        fig.add_bar(x=reach["segment"], y=reach[col], name=col.replace("_", " "))
    return fig


def destination_reach(reach: pd.DataFrame) -> go.Figure:
    """What each destination would receive: exported, skipped (identity, consent), blocked.

    Args:
        reach: :func:`workbench.viz.data.destination_reach`.

    Returns:
        Four stacked bar traces over ``destination / segment``.
    """
    fig = _fig("Activation preview per destination", barmode="stack", yaxis_title="members")
    x = reach["destination"] + " / " + reach["segment"]
    colors = {
        "exported": "#2ca02c",
        "skipped_no_identity": "#9aa5b1",
        "skipped_no_consent": "#ff7f0e",
        "blocked": "#d62728",
    }
    for col, color in colors.items():
        fig.add_bar(x=x, y=reach[col], name=col.replace("_", " "), marker_color=color)
    return fig


# ---------------------------------------------------------------------- dashboards
def batches(frame: pd.DataFrame) -> go.Figure:
    """Accepted and rejected rows of each ingestion batch over time, per dataset.

    Args:
        frame: :func:`workbench.viz.data.batches` (missing counts are not drawn).

    Returns:
        Two bar traces per dataset: accepted, then rejected (red).
    """
    fig = _fig("Ingestion batches: accepted and rejected rows", barmode="stack")
    fig.update_layout(yaxis_title="rows")
    for ds, part in frame.groupby("dataset", sort=True):
        x = part["dataset"] + " #" + part["batch_id"].astype(str)
        fig.add_bar(x=x, y=part["rows_accepted"], name=f"{ds}: accepted", legendgroup=str(ds))
        fig.add_bar(
            x=x,
            y=part["rows_rejected"],
            name=f"{ds}: rejected",
            legendgroup=str(ds),
            marker_color="#d62728",
        )
    return fig


def job_durations(runs: pd.DataFrame) -> go.Figure:
    """Duration of each job run over time (one line per job, failures marked red).

    Args:
        runs: :func:`workbench.viz.data.job_runs`.

    Returns:
        One line trace per job, then one marker trace of the failed runs.
    """
    fig = _fig("Job runs: duration", yaxis_title="seconds", xaxis_title="started")
    for job, part in runs.groupby("job", sort=True):
        fig.add_scatter(
            x=part["started_at"], y=part["duration_s"], mode="lines+markers", name=str(job)
        )
    failed = runs[runs["status"] != "success"]
    if len(failed):
        fig.add_scatter(
            x=failed["started_at"],
            y=failed["duration_s"],
            mode="markers",
            name="failed",
            marker={"color": "#d62728", "size": 12, "symbol": "x"},
            hovertext=failed["error"],
        )
    return fig


__all__ = [
    "batches",
    "channel_mix",
    "cluster_sizes",
    "composition",
    "datasets",
    "destination_reach",
    "event_timeline",
    "identity_graph",
    "job_durations",
    "links",
    "memberships",
    "namespaces",
    "overlap",
    "quarantine_reasons",
    "reachability",
    "segment_sizes",
    "size_history",
    "upset",
]
