"""The steps the job notebooks call: each does one stage through the workbench API and
returns a small summary table (pandas) for the notebook to show and plot."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.errors import DuplicateBatchError, WorkbenchError

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

_EXTS = (".csv", ".parquet", ".jsonl", ".json")


def ingest(
    ws: Workspace,
    dataset: str,
    files: list[str] | None = None,
    drop_folder: str = "",
    force: bool = False,
) -> pd.DataFrame:
    """Ingest files, or every file of a drop folder not loaded yet; one row per batch.
    A file whose content was already loaded is listed as ``skipped`` (nothing twice)."""
    paths = [Path(f) for f in files or []]
    if drop_folder:
        paths += sorted(p for p in Path(drop_folder).iterdir() if p.suffix in _EXTS)
    rows = []
    for p in paths:
        t = time.perf_counter()
        try:
            r = ws.ingest(dataset, p, force=force)
        except DuplicateBatchError as e:
            rows.append(
                {
                    "file": p.name,
                    "status": "skipped",
                    "read": 0,
                    "accepted": 0,
                    "rejected": 0,
                    "note": str(e),
                }
            )
            continue
        b = r.batch
        rows.append(
            {
                "file": p.name, "status": b.status, "read": b.rows_read, "accepted": b.rows_accepted,
                "rejected": b.rows_rejected, "note": f"{time.perf_counter() - t:.1f}s",
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["file", "status", "read", "accepted", "rejected", "note"])


def ingest_sample(ws: Workspace, sample_dir: str) -> pd.DataFrame:
    """Every file of the sample brand into its dataset (already loaded content skipped)."""
    from workbench.sample.brand import SAMPLE_DATASETS

    frames = []
    for d in SAMPLE_DATASETS:
        df = ingest(ws, d.name, [str(Path(sample_dir) / f) for f in d.files])
        df.insert(0, "dataset", d.name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def build(ws: Workspace) -> pd.DataFrame:
    """Identity graph and profiles (incremental identity build)."""
    st = ws.identity.build()
    ps = ws.profiles.build()
    return pd.DataFrame(
        [
            {"step": "identity graph", "seconds": st.seconds, "identities": st.identities,
             "links": st.links, "profiles": st.profiles, "links_cut": st.links_cut},
            {"step": f"profiles ({ps.policy})", "seconds": ps.seconds, "identities": None,
             "links": None, "profiles": ps.profiles, "links_cut": None},
        ]
    )  # fmt: skip


def segmentation(ws: Workspace, as_of: str, segments: list[str] | None = None) -> pd.DataFrame:
    """The batch segment job; one row per segment (method, size, realized, existing, exited)."""
    if not ws.catalog.list_segments():
        log.warning("no segments defined: nothing to evaluate")
        empty = pd.DataFrame(
            columns=["segment", "method", "size", "realized", "existing", "exited"]
        )
        empty.attrs.update(run_id=None, seconds=0.0)
        return empty
    run = ws.segments.run(as_of, segments or None)
    df = run.to_frame()
    df.attrs["run_id"] = run.run_id
    df.attrs["seconds"] = run.seconds
    return df


def export(ws: Workspace, destination: str, as_of: str, mode: str = "") -> pd.DataFrame:
    """Export a destination's segments; one row per segment. Raises when one failed."""
    d = ws.activation.get(destination)
    if mode:
        if mode not in ("full", "incremental"):
            raise WorkbenchError(f"mode must be full or incremental, not {mode!r}")
        d = replace(d, mode=mode)
    results = ws.activation.run(d, as_of)
    df = _results_frame(results)
    failed = df[df["status"] == "failed"]
    if not failed.empty:
        raise WorkbenchError(f"export to {destination} failed for {', '.join(failed['segment'])}")
    return df


def export_all(ws: Workspace, as_of: str, destinations: list[str] | None = None) -> pd.DataFrame:
    """Every (or the given) destination writing to a local folder; one row per segment."""
    frames = []
    for d in ws.activation.list():
        if destinations and d.name not in destinations:
            continue
        if not destinations and (not d.kind.files or "://" in d.url):
            continue
        frames.append(_results_frame(ws.activation.run(d.name, as_of)))
    return pd.concat(frames, ignore_index=True) if frames else _results_frame([])


def _results_frame(results: list[Any]) -> pd.DataFrame:
    cols = ["destination", "segment", "status", "mode", "eligible", "exported", "skipped_no_identity",
            "skipped_no_consent", "blocked", "file"]  # fmt: skip
    rows = [
        {
            "destination": r.destination, "segment": r.segment, "status": r.status, "mode": r.mode,
            "eligible": r.counts.eligible, "exported": r.counts.exported,
            "skipped_no_identity": r.counts.skipped_no_identity,
            "skipped_no_consent": r.counts.skipped_no_consent, "blocked": r.counts.blocked,
            "file": r.files[0]["path"] if r.files else "",
        }
        for r in results
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


__all__ = ["build", "export", "export_all", "ingest", "ingest_sample", "segmentation"]
