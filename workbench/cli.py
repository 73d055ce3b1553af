"""The ``workbench`` command.

Errors the workbench raises on purpose print as one clear line and exit with code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from workbench.errors import BatchFailedError, ValidationError, WorkbenchError

log = logging.getLogger(__name__)
# not a terminal (make, CI, a pipe): rich would fall back to 80 columns and fold the tables
_WIDTH = None if sys.stdout.isatty() else max(120, int(os.environ.get("COLUMNS", "0") or 0))
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)

DEFAULT_WORKSPACE = "data/workspace"
F = TypeVar("F", bound=Callable[..., Any])


def _workspace_option(f: F) -> F:
    return click.option(
        "--workspace",
        "-w",
        envvar="WORKBENCH_WORKSPACE",
        default=DEFAULT_WORKSPACE,
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Workspace folder (or WORKBENCH_WORKSPACE).",
    )(f)


def _open(path: Path) -> Any:
    from workbench.workspace import Workspace

    return Workspace.open(path)


def _fmt_int(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t


def _batch_rows(batches: list[Any], ws_path: Path | None = None) -> list[list[Any]]:
    rows = []
    for b in batches:
        dur = b.duration_s
        rows.append(
            [
                b.id,
                b.dataset,
                Path(b.source).name if b.source != "DataFrame" else b.source,
                b.status,
                _fmt_int(b.rows_read),
                _fmt_int(b.rows_accepted),
                _fmt_int(b.rows_rejected),
                "" if dur is None else f"{dur:.2f}s",
            ]
        )
    return rows


BATCH_COLUMNS = ["batch", "dataset", "source", "status", "read", "accepted", "rejected", "time"]


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as e:
            err_console.print(f"[red]error:[/red] {e.what} is invalid:", highlight=False)
            for p in e.problems:
                err_console.print(f"  - {p}", highlight=False)
            sys.exit(2)
        except WorkbenchError as e:
            err_console.print(f"[red]error:[/red] {e}", highlight=False, markup=False)
            sys.exit(2)


@click.group(cls=_Main)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="audience-workbench")
def main(verbose: int) -> None:
    """Audience Workbench: ingest, stitch identities, segment and activate audiences."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------------- init
@main.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_WORKSPACE)
@click.option(
    "--catalog-url",
    default=None,
    help="SQLAlchemy URL of the catalog (default: SQLite in the workspace).",
)
@click.option("--region", default="US", show_default=True, help="Default region for phone numbers.")
def init(path: Path, catalog_url: str | None, region: str) -> None:
    """Create a workspace at PATH."""
    from workbench.settings import WorkspaceSettings
    from workbench.workspace import Workspace

    s = WorkspaceSettings(name=path.name, default_region=region)
    ws = Workspace.create(path, settings=s, catalog_url=catalog_url)
    console.print(f"created workspace [bold]{ws.path}[/bold] (catalog: {ws.catalog.backend})")


# ---------------------------------------------------------------------- schemas
@main.group()
def schema() -> None:
    """Register and inspect schemas."""


@schema.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_workspace_option
def schema_add(paths: tuple[Path, ...], workspace: Path) -> None:
    """Register (or evolve) schemas from YAML files or folders."""
    from workbench.schema.model import load_schemas

    ws = _open(workspace)
    for s in load_schemas(paths, ws.namespaces()):
        stored, action = ws.schemas.register(s)
        console.print(
            f"schema [bold]{stored.name}[/bold] {action} (version {stored.version}, {len(stored.fields)} fields)"
        )


@schema.command("list")
@_workspace_option
def schema_list(workspace: Path) -> None:
    """List schemas."""
    ws = _open(workspace)
    rows = [
        [
            s.name,
            s.cls.value,
            s.version,
            len(s.fields),
            ", ".join(f"{f.name}:{f.identity.namespace}" for f in s.identity_fields),
        ]
        for s in ws.schemas.list()
    ]
    console.print(_table("schemas", ["name", "class", "version", "fields", "identities"], rows))


@schema.command("show")
@click.argument("name")
@click.option("--yaml", "as_yaml", is_flag=True, help="Print the YAML definition.")
@_workspace_option
def schema_show(name: str, as_yaml: bool, workspace: Path) -> None:
    """Show a schema's fields (or its YAML)."""
    ws = _open(workspace)
    s = ws.schemas.get(name)
    if as_yaml:
        click.echo(s.to_yaml())
        return
    rows = []
    for f in s.fields:
        ident = ""
        if f.identity:
            ident = f.identity.namespace + (" (primary)" if f.identity.primary else "")
        extra = []
        if f.values:
            extra.append("values: " + ", ".join(f.values))
        if f.minimum is not None:
            extra.append(f"min {f.minimum:g}")
        if f.maximum is not None:
            extra.append(f"max {f.maximum:g}")
        if f.pattern:
            extra.append(f"pattern {f.pattern}")
        if f.default is not None:
            extra.append(f"default {f.default}")
        rows.append(
            [
                f.name,
                f.type.value,
                "yes" if f.required else "",
                ident,
                ", ".join(f.labels),
                "; ".join(extra),
            ]
        )
    console.print(
        _table(
            f"{s.name} ({s.cls.value}, version {s.version})",
            ["field", "type", "required", "identity", "labels", "rules"],
            rows,
        )
    )


# ---------------------------------------------------------------------- namespaces
@main.group()
def namespace() -> None:
    """List and add identity namespaces."""


@namespace.command("list")
@_workspace_option
def namespace_list(workspace: Path) -> None:
    """List identity namespaces, highest priority first."""
    ws = _open(workspace)
    rows = [
        [
            n.name,
            n.kind.value,
            n.normalizer.value,
            "yes" if n.unique else "",
            n.priority,
            n.description,
        ]
        for n in ws.namespaces()
    ]
    console.print(
        _table(
            "namespaces", ["name", "kind", "normalizer", "unique", "priority", "description"], rows
        )
    )


@namespace.command("add")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(["person", "cookie", "device", "hashed"]),
    default="person",
    show_default=True,
)
@click.option(
    "--normalizer",
    type=click.Choice(["email", "phone", "sha256", "trim", "lower"]),
    default="trim",
    show_default=True,
)
@click.option(
    "--unique/--not-unique", default=False, help="At most one value per person (like crm_id)."
)
@click.option("--priority", type=int, default=50, show_default=True)
@click.option("--description", default="")
@_workspace_option
def namespace_add(
    name: str,
    kind: str,
    normalizer: str,
    unique: bool,
    priority: int,
    description: str,
    workspace: Path,
) -> None:
    """Add a custom identity namespace."""
    ws = _open(workspace)
    n = ws.add_namespace(
        {
            "name": name,
            "kind": kind,
            "normalizer": normalizer,
            "unique": unique,
            "priority": priority,
            "description": description,
        }
    )
    console.print(
        f"namespace [bold]{n.name}[/bold] added ({n.kind.value}, {n.normalizer.value}, priority {n.priority})"
    )


# ---------------------------------------------------------------------- datasets
@main.group()
def dataset() -> None:
    """Create and list datasets."""


@dataset.command("create")
@click.argument("name")
@click.option("--schema", "schema_name", required=True, help="Registered schema name.")
@click.option(
    "--profile/--no-profile",
    "profile_enabled",
    default=False,
    help="Feeds identities and profiles.",
)
@click.option("--description", default="")
@click.option(
    "--error-threshold", type=float, default=None, help="Share of rejected rows that fails a batch."
)
@_workspace_option
def dataset_create(
    name: str,
    schema_name: str,
    profile_enabled: bool,
    description: str,
    error_threshold: float | None,
    workspace: Path,
) -> None:
    """Create a dataset bound to a schema."""
    ws = _open(workspace)
    d = ws.datasets.create(
        name,
        schema_name,
        profile_enabled=profile_enabled,
        description=description,
        error_threshold=error_threshold,
    )
    console.print(
        f"dataset [bold]{d.name}[/bold] created (schema {d.schema_name}, profile {'on' if d.profile_enabled else 'off'})"
    )


@dataset.command("list")
@_workspace_option
def dataset_list(workspace: Path) -> None:
    """List datasets with row counts."""
    ws = _open(workspace)
    rows = []
    for d in ws.datasets.list():
        batches = ws.batches(d.name)
        ok = [b for b in batches if b.status == "success"]
        rows.append(
            [
                d.name,
                d.schema_name,
                "yes" if d.profile_enabled else "",
                _fmt_int(ws.datasets.count(d.name)),
                len(ok),
                _fmt_int(sum(b.rows_rejected for b in batches)),
                ws.datasets.version(d.name),
            ]
        )
    console.print(
        _table(
            "datasets",
            ["name", "schema", "profile", "rows", "batches", "rejected", "version"],
            rows,
        )
    )


# ---------------------------------------------------------------------- api keys
@main.group()
def apikey() -> None:
    """API keys of the streaming service (stored hashed; a token is shown once)."""


@apikey.command("create")
@click.option("--name", required=True, help="Unique key name (a-z, 0-9, _, -).")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help="Dataset the key may use (repeat; default: every dataset).",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["collect", "read"]),
    help="collect (send data) and/or read (repeat; default: both).",
)
@_workspace_option
def apikey_create(
    name: str, datasets: tuple[str, ...], scopes: tuple[str, ...], workspace: Path
) -> None:
    """Create an API key and print its token, once."""
    ws = _open(workspace)
    info, token = ws.apikeys.create(
        name, datasets=list(datasets) or None, scopes=scopes or ("collect", "read")
    )
    # the token alone on stdout (TOKEN=$(workbench apikey create ...)); the rest on stderr
    err_console.print(
        f"api key [bold]{info.name}[/bold] created (scopes {', '.join(info.scopes)}; "
        f"datasets {', '.join(info.datasets) if info.datasets else 'all'})",
        highlight=False,
    )
    err_console.print(
        "[yellow]store this token now (a secret store or an environment variable): "
        "it is not kept and will not be shown again[/yellow]"
    )
    click.echo(token)


@apikey.command("list")
@_workspace_option
def apikey_list(workspace: Path) -> None:
    """List API keys (name, prefix, scopes, datasets, use; never a token)."""
    ws = _open(workspace)

    def when(t: dt.datetime | None) -> str:
        return "" if t is None else t.strftime("%Y-%m-%d %H:%M:%SZ")

    rows = [
        [
            k.name,
            f"{k.prefix}...",
            ", ".join(k.scopes),
            ", ".join(k.datasets) if k.datasets is not None else "all",
            when(k.created_at),
            when(k.last_used_at),
            "revoked " + when(k.revoked_at) if k.revoked_at else "active",
        ]
        for k in ws.apikeys.list()
    ]
    console.print(
        _table(
            "api keys",
            ["name", "prefix", "scopes", "datasets", "created", "last used", "status"],
            rows,
        )
    )


@apikey.command("revoke")
@click.argument("name")
@_workspace_option
def apikey_revoke(name: str, workspace: Path) -> None:
    """Revoke an API key at once (its record stays)."""
    ws = _open(workspace)
    info = ws.apikeys.revoke(name)
    console.print(f"api key [bold]{info.name}[/bold] ({info.prefix}...) revoked", highlight=False)


# ---------------------------------------------------------------------- ingestion
@main.command()
@click.argument("dataset_name", metavar="DATASET")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl"]), default=None)
@click.option("--force", is_flag=True, help="Load content that was already loaded.")
@click.option("--error-threshold", type=float, default=None)
@_workspace_option
def ingest(
    dataset_name: str,
    files: tuple[Path, ...],
    fmt: str | None,
    force: bool,
    error_threshold: float | None,
    workspace: Path,
) -> None:
    """Ingest FILES (CSV, Parquet, JSON Lines) into DATASET."""
    ws = _open(workspace)
    failed = False
    for f in files:
        with console.status(f"ingesting {f} into {dataset_name}..."):
            try:
                r = ws.ingest(
                    dataset_name, f, format=fmt, force=force, error_threshold=error_threshold
                )
            except BatchFailedError as e:
                err_console.print(f"[red]batch failed:[/red] {e}", highlight=False, markup=False)
                failed = True
                continue
        b = r.batch
        console.print(
            f"batch {b.id}: {f.name} -> {dataset_name}: read {b.rows_read:,}, accepted {b.rows_accepted:,}, "
            f"rejected {b.rows_rejected:,} in {r.seconds:.2f}s ({r.rows_per_second:,.0f} rows/s)"
        )
        for w in b.warnings:
            console.print(f"  [yellow]warning:[/yellow] {w}", highlight=False)
        if b.rows_rejected:
            console.print(
                f"  rejected rows: workbench quarantine {dataset_name} --batch {b.id}",
                highlight=False,
            )
    if failed:
        sys.exit(2)


@main.command()
@click.option("--dataset", "dataset_name", default=None)
@click.option("--limit", default=50, show_default=True)
@_workspace_option
def batches(dataset_name: str | None, limit: int, workspace: Path) -> None:
    """List ingestion batches, newest first."""
    ws = _open(workspace)
    console.print(
        _table("batches", BATCH_COLUMNS, _batch_rows(ws.batches(dataset_name, limit=limit)))
    )


@main.command()
@click.argument("dataset_name", metavar="DATASET")
@click.option("--batch", "batch_id", type=int, default=None)
@click.option("--limit", default=20, show_default=True, help="Rows to show.")
@click.option("--summary", is_flag=True, help="Counts per field and reason.")
@_workspace_option
def quarantine(
    dataset_name: str, batch_id: int | None, limit: int, summary: bool, workspace: Path
) -> None:
    """Show rejected rows of DATASET: row, field, value, reason."""
    ws = _open(workspace)
    if summary:
        t = ws.datasets.quarantine_summary(dataset_name)
        console.print(
            _table(
                f"quarantine of {dataset_name}",
                t.column_names,
                [list(r.values()) for r in t.to_pylist()],
            )
        )
        return
    q = ws.datasets.quarantine(dataset_name, batch_id)
    rows = [
        [r["batch_id"], r["row"], r["field"], r["value"], r["reason"]]
        for r in q.slice(0, limit).to_pylist()
    ]
    console.print(
        _table(
            f"quarantine of {dataset_name}: {q.num_rows:,} errors",
            ["batch", "row", "field", "value", "reason"],
            rows,
        )
    )
    console.print(f"stored in {ws.datasets.get(dataset_name).quarantine_path}", highlight=False)


# ---------------------------------------------------------------------- identity
@main.group()
def identity() -> None:
    """Build and inspect the identity graph."""


@identity.command("build")
@click.option("--full", is_flag=True, help="Re-read every batch instead of only the new ones.")
@_workspace_option
def identity_build(full: bool, workspace: Path) -> None:
    """Stitch identities of the profile-enabled datasets into profiles."""
    ws = _open(workspace)
    with console.status("building the identity graph..."):
        st = ws.identity.build(full=full)
    unchanged = "unchanged" in st.timings
    rows = [
        [
            "mode",
            f"{st.mode} (nothing new since build {st.graph_build_id}: graph kept)"
            if unchanged
            else st.mode,
        ],
        ["rows read", _fmt_int(st.rows_scanned)],
        ["identities", _fmt_int(st.identities)],
        ["links", _fmt_int(st.links)],
        ["profiles (clusters)", _fmt_int(st.profiles)],
        ["largest profile", _fmt_int(st.largest_profile)],
        ["clusters cut by the unique-namespace rule", _fmt_int(st.conflicting_components)],
        ["links cut", _fmt_int(st.links_cut)],
        ["clusters above the cap", _fmt_int(st.clusters_over_cap)],
        ["identities dropped by the cap", _fmt_int(st.identities_dropped_by_cap)],
        [
            "new / merged / split profile ids",
            f"{st.new_profiles:,} / {st.merged_profiles:,} / {st.split_profiles:,}",
        ],
        [
            "time",
            f"{st.seconds:.2f}s ({', '.join(f'{k} {v:.2f}s' for k, v in st.timings.items())})",
        ],
    ]
    console.print(_table(f"identity build {st.build_id}", ["", "value"], rows))


@identity.command("explain")
@click.argument("identity_a", metavar="IDENTITY")
@click.argument("identity_b", metavar="[OTHER]", required=False)
@_workspace_option
def identity_explain(identity_a: str, identity_b: str | None, workspace: Path) -> None:
    """Why IDENTITY is in its profile; with OTHER, why the two are or are not together."""
    ws = _open(workspace)
    e = ws.identity.explain(identity_a, identity_b)
    console.print(
        f"{e['identity']} is in profile {e['profile_id']} ({e['profile_identities']} identities)",
        highlight=False,
    )
    rows = [
        [
            f"{r['a_ns']}:{r['a_value']}",
            f"{r['b_ns']}:{r['b_value']}",
            r["dataset"],
            str(r["last_seen"])[:19],
            r["status"],
            r["reason"] or "",
        ]
        for r in e["links"]
    ]
    console.print(
        _table(
            "its links", ["from", "to", "latest evidence in", "last seen", "status", "why"], rows
        )
    )
    if identity_b is None:
        return
    if e["together"]:
        console.print(
            f"{e['identity']} and {e['other']} are together in profile {e['profile_id']}, linked by:",
            highlight=False,
        )
    else:
        console.print(
            f"{e['identity']} (profile {e['profile_id']}) and {e['other']} (profile {e['other_profile_id']}) are NOT together: {e['why']}",
            highlight=False,
        )
    for r in e["path"]:
        console.print(
            f"  {r['a_ns']}:{r['a_value']} -- {r['b_ns']}:{r['b_value']}  [{r['status']}, {r['dataset']}]",
            highlight=False,
        )


@identity.command("evaluate")
@click.option(
    "--truth",
    "truth_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@_workspace_option
def identity_evaluate(truth_dir: Path, workspace: Path) -> None:
    """Pairwise precision, recall and F1 against ground truth (the sample's truth/ folder)."""
    ws = _open(workspace)
    m = ws.identity.evaluate(truth_dir)
    keys = list(m["identities"])
    rows = [[k, m["identities"].get(k, ""), m["rows"].get(k, "")] for k in keys]
    console.print(
        _table("identity quality", ["", "identities (linkable truth)", "rows (all)"], rows)
    )


# ---------------------------------------------------------------------- profiles
@main.group()
def profile() -> None:
    """Build and look up unified profiles."""


@profile.command("build")
@click.option("--policy", default=None, help="Merge policy name (default: the workspace's).")
@_workspace_option
def profile_build(policy: str | None, workspace: Path) -> None:
    """Materialize the unified profile table and the event history."""
    ws = _open(workspace)
    with console.status("building profiles..."):
        st = ws.profiles.build(policy)
    console.print(
        f"profiles ({st.policy}): {st.profiles:,} profiles, {st.profiles_with_attributes:,} with attributes, "
        f"{st.attributes} attributes; event history: {st.events:,} events, "
        f"{st.events_not_attributable:,} not attributable (no known identity); {st.seconds:.2f}s",
        highlight=False,
    )


@profile.command("show")
@click.option(
    "--identity",
    "identity_text",
    required=True,
    help="namespace:value, e.g. email:Ana.Lima@Example.com",
)
@click.option("--policy", default=None)
@click.option("--events", "n_events", default=10, show_default=True)
@_workspace_option
def profile_show(identity_text: str, policy: str | None, n_events: int, workspace: Path) -> None:
    """Print the unified profile of any identity."""
    ws = _open(workspace)
    p = ws.profiles.get(identity_text, policy=policy, events=n_events)
    console.print(f"[bold]profile {p.profile_id}[/bold] (merge policy {p.policy})")
    console.print(
        _table(
            "attributes",
            ["attribute", "value", "from dataset"],
            [[k, v, p.sources.get(k, "")] for k, v in sorted(p.attributes.items())],
        )
    )
    console.print(
        _table(
            "identities",
            ["namespace", "value", "first seen", "last seen", "datasets", "status"],
            [
                [
                    i["namespace"],
                    i["value"],
                    str(i["first_seen"])[:19],
                    str(i["last_seen"])[:19],
                    ", ".join(i["datasets"] or []),
                    i["status"],
                ]
                for i in p.identities
            ],
        )
    )
    ev_rows = []
    for e in p.events:
        extra = {
            k: v
            for k, v in e.items()
            if k not in ("profile_id", "dataset", "timestamp", "event_type", "_batch_id", "_row")
        }
        ev_rows.append(
            [
                str(e.get("timestamp"))[:19],
                e.get("dataset"),
                e.get("event_type"),
                ", ".join(f"{k}={v}" for k, v in extra.items()),
            ]
        )
    console.print(
        _table(
            "recent events (online and offline)", ["time", "dataset", "event", "details"], ev_rows
        )
    )
    if not p.memberships:
        console.print(
            "segment memberships: none yet (segments are evaluated by workbench segment run)",
            highlight=False,
        )
    else:
        console.print(
            _table(
                "segment memberships",
                ["segment", "status", "since", "exited"],
                [
                    [
                        m["segment"],
                        m["status"],
                        str(m["since"])[:19],
                        str(m["exited_at"] or "")[:19],
                    ]
                    for m in p.memberships
                ],
            )
        )


# ---------------------------------------------------------------------- segments
@main.group()
def segment() -> None:
    """Segment definitions, sizes and the batch segment job."""


def _as_of_option(f: F) -> F:
    return click.option(
        "--as-of",
        "as_of",
        default=None,
        help="Evaluation time, ISO (2026-12-01T06:00Z); default now. Every window is relative to it.",
    )(f)


def _segment_source(ws: Any, name_or_path: str) -> Any:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml", ".json") or p.is_dir():
        return ws.segments.validate(p)
    return [ws.segments.get(name_or_path)]


@segment.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_workspace_option
def segment_validate(paths: tuple[Path, ...], workspace: Path) -> None:
    """Check definitions (files or folders) against the workspace's fields and segments."""
    ws = _open(workspace)
    defs = ws.segments.validate(list(paths))
    known = ws.segments.definitions()
    known.update({d.name: d for d in defs})
    from workbench.segments import classify

    rows = []
    for d in defs:
        m = classify(d, known)
        rows.append([d.name, m.method, m.reason])
    console.print(_table(f"{len(defs)} valid definition(s)", ["segment", "method", "why"], rows))


@segment.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_workspace_option
def segment_add(paths: tuple[Path, ...], workspace: Path) -> None:
    """Validate and store definitions (YAML/JSON files or folders such as segments/)."""
    ws = _open(workspace)
    done = ws.segments.add(list(paths))
    rows = [[i.name, action, i.version, i.method, i.reason] for i, action in done]
    console.print(_table(None, ["segment", "", "version", "method", "why"], rows))


@segment.command("list")
@_workspace_option
def segment_list(workspace: Path) -> None:
    """Stored segments with their method and current size."""
    ws = _open(workspace)
    rows = []
    for s in ws.segments.list():
        rows.append(
            [s.name, s.method, s.version, _fmt_int(ws.segments.size(s.name)), s.description]
        )
    console.print(_table(None, ["segment", "method", "version", "members", "description"], rows))


@segment.command("show")
@click.argument("name")
@_as_of_option
@_workspace_option
def segment_show(name: str, as_of: str | None, workspace: Path) -> None:
    """Definition, evaluation method and why, dependencies and the generated SQL."""
    ws = _open(workspace)
    info = ws.segments.show(name, as_of)
    console.print(
        f"[bold]{name}[/bold] (version {info['version']}) {info['description']}", highlight=False
    )
    console.print(f"method: {info['method']} ({info['reason']})", highlight=False)
    console.print(
        f"depends on: {', '.join(info['dependencies']) or 'no other segment'}", highlight=False
    )
    console.print(f"used by: {', '.join(info['used_by']) or 'no other segment'}", highlight=False)
    console.print("definition:", highlight=False)
    console.print(info["yaml"], highlight=False, markup=False)
    console.print(f"SQL (as of {as_of or 'now'}):", highlight=False)
    console.print(info["sql"], highlight=False, markup=False)


@segment.command("count")
@click.argument("name")
@_as_of_option
@_workspace_option
def segment_count(name: str, as_of: str | None, workspace: Path) -> None:
    """The exact size of a segment (stored name or a YAML/JSON file)."""
    ws = _open(workspace)
    (d,) = _segment_source(ws, name)
    t = time.perf_counter()
    n = ws.segments.count(d, as_of)
    console.print(f"{d.name}: {n:,} profiles ({time.perf_counter() - t:.2f}s)", highlight=False)


@segment.command("estimate")
@click.argument("name")
@_as_of_option
@_workspace_option
def segment_estimate(name: str, as_of: str | None, workspace: Path) -> None:
    """The size estimated from a sample of profiles, with a 95% interval."""
    ws = _open(workspace)
    (d,) = _segment_source(ws, name)
    e = ws.segments.estimate(d, as_of)
    console.print(f"{d.name}: {e}", highlight=False)


@segment.command("run")
@click.option("--as-of", "as_of", required=True, help="Evaluation time, ISO (2026-12-01T06:00Z).")
@click.option("--segments", "names", default=None, help="Comma-separated names (default: all).")
@click.option("--force", is_flag=True, help="Allow an as_of before the last run's.")
@_workspace_option
def segment_run(as_of: str, names: str | None, force: bool, workspace: Path) -> None:
    """The batch segment job: evaluate segments over all profiles and write memberships."""
    ws = _open(workspace)
    selected = [n.strip() for n in names.split(",") if n.strip()] if names else None
    with console.status("evaluating segments..."):
        r = ws.segments.run(as_of, selected, force=force)
    _print_run(r)


def _print_run(r: Any) -> None:
    rows = [
        [
            x.segment,
            x.method,
            _fmt_int(x.size),
            _fmt_int(x.realized),
            _fmt_int(x.existing),
            _fmt_int(x.exited),
        ]
        for x in r.results
    ]
    console.print(
        _table(
            f"segment run {r.run_id} as of {r.as_of.isoformat()}: {len(rows)} segments in {r.seconds:.2f}s",
            ["segment", "method", "members", "realized", "existing", "exited"],
            rows,
        )
    )


@segment.command("members")
@click.argument("name")
@click.option(
    "--as-of", "as_of", default=None, help="As the last run at or before this time left them."
)
@click.option("--limit", default=20, show_default=True)
@_workspace_option
def segment_members(name: str, as_of: str | None, limit: int, workspace: Path) -> None:
    """Members of a segment (profile ids with status and since)."""
    ws = _open(workspace)
    df = ws.segments.members(name, as_of)
    rows = [[r.profile_id, r.status, str(r.since)[:19]] for r in df.head(limit).itertuples()]
    console.print(_table(f"{name}: {len(df):,} members", ["profile", "status", "since"], rows))


@segment.command("history")
@click.argument("name")
@_workspace_option
def segment_history(name: str, workspace: Path) -> None:
    """Daily size, realized and exited of a segment."""
    ws = _open(workspace)
    df = ws.segments.history(name)
    rows = [
        [str(r.date), r.run_id, _fmt_int(r.size), _fmt_int(r.realized), _fmt_int(r.exited)]
        for r in df.itertuples()
    ]
    console.print(_table(name, ["date", "last run", "size", "realized", "exited"], rows))


@segment.command("runs")
@click.option("--limit", default=20, show_default=True)
@_workspace_option
def segment_runs(limit: int, workspace: Path) -> None:
    """Recent batch segment jobs."""
    ws = _open(workspace)
    rows = [
        [
            r.id,
            r.as_of.isoformat(),
            r.status,
            len(r.segments),
            f"{r.duration_s:.2f}s" if r.duration_s is not None else "",
            (r.error or "")[:80],
        ]
        for r in ws.segments.runs(limit)
    ]
    console.print(_table(None, ["run", "as of", "status", "segments", "took", "error"], rows))


# ---------------------------------------------------------------------- activation
@main.group()
def activate() -> None:
    """Destinations and exports (activation)."""


@activate.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_workspace_option
def activate_add(paths: tuple[Path, ...], workspace: Path) -> None:
    """Check and store destinations (YAML files or folders such as destinations/)."""
    ws = _open(workspace)
    rows = [[n, action] for n, action in ws.activation.add(list(paths))]
    console.print(_table(None, ["destination", ""], rows))


@activate.command("list")
@_workspace_option
def activate_list(workspace: Path) -> None:
    """Stored destinations."""
    ws = _open(workspace)
    rows = []
    for d in ws.activation.list():
        if d.schedule.daily_at:
            sched = f"daily {d.schedule.daily_at}"
        elif d.schedule.every_hours:
            sched = f"every {d.schedule.every_hours} h"
        else:
            sched = ""
        rows.append([d.name, d.type, d.mode, d.marketing_action, sched, ", ".join(d.segments)])
    console.print(
        _table(None, ["destination", "type", "mode", "action", "schedule", "segments"], rows)
    )


@activate.command("preview")
@click.argument("destination")
@click.argument("segment_name", metavar="SEGMENT")
@click.option("--as-of", "as_of", default=None, help="Evaluation time (default now).")
@click.option("--rows", default=5, show_default=True)
@_workspace_option
def activate_preview(
    destination: str, segment_name: str, as_of: str | None, rows: int, workspace: Path
) -> None:
    """What an export would send (counts by reason, first rows as written), sending nothing."""
    ws = _open(workspace)
    p = ws.activation.preview(destination, segment_name, as_of, rows)
    console.print(str(p), highlight=False)
    if p.blocked_by:
        console.print(f"blocked by governance: {'; '.join(p.blocked_by)}", highlight=False)
    elif not p.rows.empty:
        cols = [str(c) for c in p.rows.columns]
        console.print(
            _table("first rows, as they will be written", cols, p.rows.astype(str).values.tolist())
        )


@activate.command("run")
@click.argument("destination")
@click.option("--as-of", "as_of", required=True, help="Evaluation time, ISO (2026-12-01T06:00Z).")
@click.option("--segments", "names", default=None, help="Comma-separated (default: all mapped).")
@_workspace_option
def activate_run(destination: str, as_of: str, names: str | None, workspace: Path) -> None:
    """Export each mapped segment's members to the destination."""
    ws = _open(workspace)
    selected = [n.strip() for n in names.split(",") if n.strip()] if names else None
    results = ws.activation.run(destination, as_of, selected)
    rows = []
    for r in results:
        c = r.counts
        rows.append(
            [
                r.segment, r.status, r.mode, _fmt_int(c.eligible), _fmt_int(c.exported),
                _fmt_int(c.skipped_no_identity), _fmt_int(c.skipped_no_consent), _fmt_int(c.blocked),
                "\n".join(f.get("path", f.get("name", "")) for f in r.files),
            ]
        )  # fmt: skip
    console.print(
        _table(
            f"{destination} as of {as_of}",
            [
                "segment",
                "status",
                "mode",
                "eligible",
                "exported",
                "no identity",
                "no consent",
                "blocked",
                "files",
            ],
            rows,
        )
    )
    if any(r.status == "failed" for r in results):
        sys.exit(2)


@activate.command("status")
@click.option("--destination", default=None)
@click.option("--limit", default=30, show_default=True)
@_workspace_option
def activate_status(destination: str | None, limit: int, workspace: Path) -> None:
    """Recent activations with counts and files."""
    ws = _open(workspace)
    rows = []
    for a in ws.activation.status(destination, limit):
        c = a.counts
        rows.append(
            [
                a.id, a.destination, a.segment, a.as_of.isoformat(), a.status, a.mode,
                _fmt_int(c.get("exported")), _fmt_int(c.get("skipped_no_consent")),
                _fmt_int(c.get("blocked")), len(a.files), (a.error or "")[:60],
            ]
        )  # fmt: skip
    console.print(
        _table(
            None,
            [
                "id",
                "destination",
                "segment",
                "as of",
                "status",
                "mode",
                "exported",
                "no consent",
                "blocked",
                "files",
                "error",
            ],
            rows,
        )
    )


@activate.command("retry")
@click.argument("destination")
@_workspace_option
def activate_retry(destination: str, workspace: Path) -> None:
    """Replay a streaming destination's dead-lettered deliveries."""
    from workbench.activation.streaming import retry

    ws = _open(workspace)
    out = retry(ws, destination)
    console.print(", ".join(f"{k}: {v}" for k, v in out.items()), highlight=False)


# -- activate: streaming deliveries (deliver-all), kept apart from the commands above
@activate.command("deliver-all")
@click.option("--as-of", "as_of", required=True, help="Evaluation time, ISO (2026-12-01T06:00Z).")
@click.option(
    "--destinations", "names", default=None, help="Comma-separated (default: every destination)."
)
@click.option(
    "--timeout",
    "timeout_s",
    default=None,
    type=float,
    help="Time limit per destination in seconds (default: its deliver_timeout_s, else 900).",
)
@_workspace_option
def activate_deliver_all(
    as_of: str, names: str | None, timeout_s: float | None, workspace: Path
) -> None:
    """Run every destination in parallel; one that fails or hangs does not hold the others."""
    from workbench.activation.streaming import deliver_all

    ws = _open(workspace)
    selected = [n.strip() for n in names.split(",") if n.strip()] if names else None
    out = deliver_all(ws, as_of, selected, timeout_s=timeout_s)
    rows = []
    failed = False
    for name, res in out.items():
        if isinstance(res, str):
            failed = True
            rows.append([name, "", "error", "", "", res[:80]])
            continue
        for r in res:
            failed = failed or r.status in ("failed", "partial", "unconfirmed")
            rows.append(
                [
                    name, r.segment, r.status, _fmt_int(r.counts.exported),
                    _fmt_int(r.counts.dead_lettered), (r.error or "")[:80],
                ]
            )  # fmt: skip
    console.print(
        _table(
            f"deliveries as of {as_of}",
            ["destination", "segment", "status", "delivered", "dead-lettered", "error"],
            rows,
        )
    )
    if failed:
        sys.exit(2)


# ---------------------------------------------------------------------- jobs and schedule
@main.group()
def jobs() -> None:
    """Job notebooks executed by papermill, and their history."""


@jobs.command("run")
@click.argument("job")
@click.option(
    "-p",
    "--param",
    "params",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="A parameter (repeatable).",
)
@click.option("--retries", type=int, default=None, help="Override the job's retries.")
@click.option("--timeout", "timeout_s", type=int, default=None, help="Seconds per cell.")
@_workspace_option
def jobs_run(
    job: str,
    params: tuple[tuple[str, str], ...],
    retries: int | None,
    timeout_s: int | None,
    workspace: Path,
) -> None:
    """Execute a job notebook (ingest, daily_segmentation, export, daily_pipeline)."""
    from workbench.jobs import JobFailedError

    ws = _open(workspace)
    with console.status(f"running {job} (papermill)..."):
        try:
            run = ws.jobs.run(job, dict(params), retries=retries, timeout_s=timeout_s)
        except JobFailedError as e:
            err_console.print(
                f"[red]{job} failed[/red] (run {e.run.id}, cell {e.run.failed_cell}): {e.run.error}",
                highlight=False,
            )
            err_console.print(f"executed notebook: {e.run.output}", highlight=False, markup=False)
            sys.exit(2)
    console.print(
        f"{job}: {run.status} (run {run.id}, {run.duration_s or 0:.1f}s)", highlight=False
    )
    console.print(f"executed notebook: {run.output}", highlight=False)


@jobs.command("list")
@click.option("--job", default=None)
@click.option("--limit", default=30, show_default=True)
@_workspace_option
def jobs_list(job: str | None, limit: int, workspace: Path) -> None:
    """Job runs, newest first."""
    ws = _open(workspace)
    rows = [
        [
            r.id,
            r.job,
            r.slot,
            r.status,
            r.attempts,
            f"{r.duration_s:.1f}s" if r.duration_s else "",
            (r.error or "")[:60],
        ]
        for r in ws.jobs.list(job, limit)
    ]
    console.print(_table(None, ["run", "job", "slot", "status", "attempts", "took", "error"], rows))


@jobs.command("show")
@click.argument("run_id", type=int)
@_workspace_option
def jobs_show(run_id: int, workspace: Path) -> None:
    """One job run: parameters, status, the executed notebook and the error."""
    ws = _open(workspace)
    r = ws.jobs.get(run_id)
    console.print(
        f"[bold]run {r.id}[/bold]: {r.job} slot {r.slot}: {r.status} after {r.attempts} attempt(s)",
        highlight=False,
    )
    console.print(f"parameters: {r.parameters}", highlight=False, markup=False)
    console.print(
        f"started {r.started_at.isoformat()}, finished {r.finished_at.isoformat() if r.finished_at else '-'}",
        highlight=False,
    )
    console.print(f"executed notebook: {r.output}", highlight=False, markup=False)
    if r.error:
        console.print(f"error (cell {r.failed_cell}): {r.error}", highlight=False, markup=False)


@main.group()
def schedule() -> None:
    """The schedule: daily segmentation and each destination's exports."""


def _scheduler(workspace: Path, config: Path) -> Any:
    from workbench.jobs.schedule import ScheduleConfig, Scheduler

    cfg = ScheduleConfig.load(config) if config.exists() else ScheduleConfig()
    return Scheduler(_open(workspace), cfg)


_schedule_file = click.option(
    "--file", "config", default="schedule.yaml", show_default=True,
    type=click.Path(dir_okay=False, path_type=Path), help="The schedule (defaults when missing).",
)  # fmt: skip


@schedule.command("show")
@click.option("--hours", default=24, show_default=True)
@click.option("--at", "at", default=None, help="From this time (default now).")
@_schedule_file
@_workspace_option
def schedule_show(hours: int, at: str | None, config: Path, workspace: Path) -> None:
    """The next runs."""
    from workbench.segments.service import to_utc

    sch = _scheduler(workspace, config)
    now = to_utc(at)
    rows = [[s.at.isoformat(), s.job, s.key] for s in sch.next_runs(now, hours)]
    console.print(_table(f"next {hours} h from {now.isoformat()}", ["at", "job", "slot"], rows))


@schedule.command("once")
@click.option("--at", "at", default=None, help="Run what is due at this time (default now).")
@_schedule_file
@_workspace_option
def schedule_once(at: str | None, config: Path, workspace: Path) -> None:
    """Run what is due (for cron or another orchestrator to call)."""
    from workbench.segments.service import to_utc

    sch = _scheduler(workspace, config)
    done = sch.run_due(to_utc(at))
    rows = [[s.at.isoformat(), s.job, s.key, outcome] for s, outcome in done]
    console.print(_table("schedule", ["at", "job", "slot", "outcome"], rows))
    if any(o.startswith("failed") for _, o in done):
        sys.exit(2)


@schedule.command("run")
@click.option("--poll", "poll_s", default=30.0, show_default=True, help="Seconds between checks.")
@_schedule_file
@_workspace_option
def schedule_run(poll_s: float, config: Path, workspace: Path) -> None:
    """The long-running scheduler: runs due jobs, never twice for a slot, catches up on start."""
    sch = _scheduler(workspace, config)
    console.print(
        f"scheduler started (catch-up: {sch.config.catch_up}); Ctrl-C to stop", highlight=False
    )
    try:
        sch.loop(poll_s)
    except KeyboardInterrupt:
        console.print("scheduler stopped")


# ---------------------------------------------------------------------- sample + demo
@main.command()
@click.option("--persons", default=10_000, show_default=True, type=int)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--out",
    default="data/sample",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--as-of", default=None, help="Generation reference time (ISO 8601, default 2026-12-01T00:00Z)."
)
def sample(persons: int, seed: int, out: Path, as_of: str | None) -> None:
    """Generate the sample brand (with ground truth kept apart in OUT/truth)."""
    _generate(persons, seed, out, as_of)


def _generate(persons: int, seed: int, out: Path, as_of: str | None) -> Any:
    from workbench.sample import DEFAULT_AS_OF, generate
    from workbench.sample.brand import copy_schemas

    when = DEFAULT_AS_OF if as_of is None else _parse_time(as_of)
    t0 = time.perf_counter()
    with console.status(f"generating {persons:,} persons (seed {seed}) into {out}..."):
        manifest = generate(out, persons=persons, seed=seed, as_of=when)
    copy_schemas(out)
    m = manifest.to_dict()
    rows = [
        [f["name"], _fmt_int(f["rows"]), _fmt_int(len(f.get("malformed", [])))] for f in m["files"]
    ]
    console.print(
        _table(
            f"sample brand: {persons:,} persons in {time.perf_counter() - t0:.1f}s",
            ["file", "rows", "malformed on purpose"],
            rows,
        )
    )
    console.print(
        f"data in {out}, ground truth in {out / 'truth'}, schemas in {out / 'schemas'}",
        highlight=False,
    )
    return manifest


def _parse_time(value: str) -> dt.datetime:
    v = value.strip().replace("Z", "+00:00")
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError as e:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from e
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@main.command()
@click.option("--persons", default=10_000, show_default=True, type=int)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--sample-dir",
    default="data/sample",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--fresh/--keep", default=True, show_default=True, help="Start from a new workspace.")
@click.option(
    "--segments-dir",
    default="segments",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Segment definitions to add and run (skipped when the folder is missing).",
)
@click.option(
    "--destinations-dir",
    default="destinations",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Destinations to add; the local-folder ones are exported to (skipped when missing).",
)
@_workspace_option
def demo(
    persons: int,
    seed: int,
    sample_dir: Path,
    fresh: bool,
    segments_dir: Path,
    destinations_dir: Path,
    workspace: Path,
) -> None:
    """Generate the sample brand, create a workspace, ingest it all, stitch identities,
    build profiles, add the segments of segments/, run the batch segment job and export to
    the local file destinations of destinations/."""
    import shutil

    from workbench.sample import SampleManifest
    from workbench.sample.brand import SAMPLE_DATASETS, register
    from workbench.workspace import Workspace

    manifest_path = sample_dir / "manifest.json"
    current = None
    if manifest_path.exists():
        current = SampleManifest.load(manifest_path)
    from workbench.sample.generator import GENERATOR_VERSION

    if (
        current is None
        or current.persons != persons
        or current.seed != seed
        or current.generator_version != GENERATOR_VERSION
    ):
        _generate(persons, seed, sample_dir, None)
    else:
        console.print(
            f"sample brand already generated in {sample_dir} ({persons:,} persons, seed {seed})"
        )
    if fresh and workspace.exists():
        shutil.rmtree(workspace)
    ws = Workspace.create(workspace, exist_ok=True)
    register(ws)
    if segments_dir.is_dir():
        ws.segments.add(segments_dir)
    if destinations_dir.is_dir():
        ws.activation.add(destinations_dir)
    as_of = SampleManifest.load(manifest_path).as_of
    from workbench.jobs import JobFailedError

    t0 = time.perf_counter()
    with console.status("running the daily pipeline notebook (papermill)..."):
        try:
            job = ws.jobs.run(
                "daily_pipeline",
                {"as_of": as_of.isoformat(), "sample_dir": str(sample_dir.resolve())},
                slot=f"demo-{as_of.isoformat()}-{time.time_ns()}",
            )
        except JobFailedError as e:
            err_console.print(f"[red]daily pipeline failed[/red]: {e.run.error}", highlight=False)
            err_console.print(f"executed notebook: {e.run.output}", highlight=False, markup=False)
            sys.exit(2)
    _print_demo(ws, workspace, sample_dir, t0)
    console.print(f"executed notebook (the run's log): {job.output}", highlight=False)
    batches = ws.catalog.list_batches(limit=1000)
    if len(batches) != sum(len(d.files) for d in SAMPLE_DATASETS) or any(
        b.status != "success" for b in batches
    ):
        sys.exit(2)


def _print_demo(ws: Any, workspace: Path, sample_dir: Path, t0: float) -> None:
    """What the daily pipeline did, from the catalog."""
    batches = sorted(ws.catalog.list_batches(limit=1000), key=lambda b: b.id)
    rows = [
        [
            b.id,
            b.dataset,
            Path(b.source).name,
            _fmt_int(b.rows_read),
            _fmt_int(b.rows_accepted),
            _fmt_int(b.rows_rejected),
        ]
        for b in batches
    ]
    console.print(
        _table(
            f"ingested into {ws.path} (the whole pipeline took {time.perf_counter() - t0:.1f}s)",
            ["batch", "dataset", "file", "read", "accepted", "rejected"],
            rows,
        )
    )
    console.print(
        f"rejected rows (row, field, value, reason) are kept in {ws.path / 'lake' / 'quarantine'}/<dataset>;",
        highlight=False,
    )
    console.print(
        f"  see them with: workbench quarantine <dataset> [--batch N | --summary] -w {workspace}",
        highlight=False,
    )
    console.print(f"  all batches:   workbench batches -w {workspace}", highlight=False)
    idb = ws.catalog.last_build("identity")
    pb = ws.catalog.last_build("profiles")
    if idb is not None:
        st = idb.stats
        console.print(
            f"identity graph: {st.get('identities', 0):,} identities, {st.get('links', 0):,} links -> "
            f"{st.get('profiles', 0):,} profiles (largest {st.get('largest_profile')}), "
            f"{st.get('links_cut', 0):,} links cut by guardrails, {st.get('seconds', 0):.1f}s",
            highlight=False,
        )
    if pb is not None:
        st = pb.stats
        console.print(
            f"profiles ({st.get('policy')}): {st.get('profiles_with_attributes', 0):,} with CRM/loyalty attributes; "
            f"event history {st.get('events', 0):,} events, {st.get('events_not_attributable', 0):,} anonymous "
            f"(not attributable); {st.get('seconds', 0):.1f}s",
            highlight=False,
        )
    runs = ws.segments.runs(1)
    if runs:
        r = runs[0]
        from workbench.segments.service import SegmentResult, SegmentRun

        res = [
            SegmentResult(
                x["segment"], x["method"], x["size"], x["realized"], x["existing"], x["exited"]
            )
            for x in ws.catalog.segment_results(run_id=r.id)
        ]
        _print_run(SegmentRun(r.id, r.as_of, res, float(r.stats.get("seconds", 0.0))))
    acts = sorted(ws.activation.status(limit=1000), key=lambda a: a.id)
    if acts:
        rows = [
            [
                a.destination, a.segment, a.status, _fmt_int(a.counts.get("exported")),
                _fmt_int(a.counts.get("skipped_no_consent")), _fmt_int(a.counts.get("blocked")),
                Path(a.files[0]["path"]).name if a.files else (a.error or ""),
            ]
            for a in acts
        ]  # fmt: skip
        console.print(
            _table(
                f"activations (files under {ws.path / 'exports'}/<destination folder>)",
                ["destination", "segment", "status", "exported", "no consent", "blocked", "file"],
                rows,
            )
        )
    console.print(
        f"try: workbench profile show --identity crm_id:C00000001 -w {workspace}\n"
        f"     workbench identity evaluate --truth {sample_dir / 'truth'} -w {workspace}\n"
        f"     workbench segment show high_value_loyalty -w {workspace}\n"
        f"     workbench jobs list -w {workspace}",
        highlight=False,
    )


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option(
    "--notebook-dir",
    default="notebooks",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
@_workspace_option
def lab(notebook_dir: Path, jupyter_args: tuple[str, ...], workspace: Path) -> None:
    """Open JupyterLab on the analyst notebooks, with WORKBENCH_WORKSPACE set to the workspace
    (other arguments go to jupyter lab, e.g. --no-browser --port 8899)."""
    import importlib.util
    import subprocess

    from workbench.errors import ConfigError

    if importlib.util.find_spec("jupyterlab") is None:
        raise ConfigError("JupyterLab is not installed: pip install 'audience-workbench[lab]'")
    ws_path = workspace.expanduser().resolve()
    if not (ws_path / "workbench.yaml").exists():
        err_console.print(f"note: {ws_path} is not a workspace yet (make demo creates one)")
    env = dict(os.environ, WORKBENCH_WORKSPACE=str(ws_path))
    cmd = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={notebook_dir}", *jupyter_args]
    console.print(f"WORKBENCH_WORKSPACE={ws_path}; {' '.join(cmd[2:])}", highlight=False)
    sys.exit(subprocess.call(cmd, env=env))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option(
    "--dashboard-dir",
    default="dashboards",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--port", default=8866, show_default=True, type=int)
@click.argument("voila_args", nargs=-1, type=click.UNPROCESSED)
@_workspace_option
def dashboard(dashboard_dir: Path, port: int, voila_args: tuple[str, ...], workspace: Path) -> None:
    """Serve the stakeholder dashboards (audience overview, activation status, data health)
    with Voila on 127.0.0.1, with WORKBENCH_WORKSPACE set to the workspace (other arguments
    go to voila)."""
    import importlib.util
    import subprocess

    from workbench.errors import ConfigError

    if importlib.util.find_spec("voila") is None:
        raise ConfigError("Voila is not installed: pip install 'audience-workbench[lab]'")
    ws_path = workspace.expanduser().resolve()
    if not (ws_path / "workbench.yaml").exists():
        err_console.print(f"note: {ws_path} is not a workspace yet (make demo creates one)")
    env = dict(os.environ, WORKBENCH_WORKSPACE=str(ws_path))
    cmd = [
        sys.executable,
        "-m",
        "voila",
        str(dashboard_dir),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        # a preheated kernel per page: the page opens without waiting for a kernel start
        "--preheat_kernel=True",
        "--pool_size=1",
        *voila_args,
    ]
    console.print(f"WORKBENCH_WORKSPACE={ws_path}; {' '.join(cmd[2:])}", highlight=False)
    for name in ("audience_overview", "activation_status", "data_health"):
        console.print(f"http://127.0.0.1:{port}/voila/render/{name}.ipynb", highlight=False)
    sys.exit(subprocess.call(cmd, env=env))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8787, show_default=True, type=int)
@click.option(
    "--clock",
    type=click.Choice(["wall", "event"]),
    default="wall",
    show_default=True,
    help="'event': now is the latest event time seen (replaying history), from --as-of.",
)
@click.option("--as-of", default=None, help="Start time of an event clock (ISO 8601).")
@click.option(
    "--max-queue", default=20_000, show_default=True, type=int, help="Items waiting before 429."
)
@click.option(
    "--commit-interval",
    default=5.0,
    show_default=True,
    type=float,
    help="Seconds between lake commits.",
)
@_workspace_option
def serve(
    host: str,
    port: int,
    clock: str,
    as_of: str | None,
    max_queue: int,
    commit_interval: float,
    workspace: Path,
) -> None:
    """Run the streaming service (HTTP collection, streaming segments, personalization)."""
    from workbench.errors import ConfigError
    from workbench.streaming.engine import EventClock, WallClock
    from workbench.streaming.service import StreamingService

    if clock == "event" and as_of is None:
        raise ConfigError("--clock event needs --as-of (the time to start from)")
    ws = _open(workspace)
    t0 = time.perf_counter()
    svc = StreamingService(
        ws,
        clock=EventClock(as_of) if clock == "event" else WallClock(),
        max_queue=max_queue,
        commit_interval=commit_interval,
    )
    e = svc.engine
    console.print(
        f"state loaded in {time.perf_counter() - t0:.1f}s: {len(e.state.index):,} identities, "
        f"{len(e.streaming)} streaming segments ({', '.join(e.streaming) or 'none'}); "
        f"listening on http://{host}:{port} (OpenAPI: /openapi.json, metrics: /metrics)",
        highlight=False,
    )
    svc.serve(host, port)


if __name__ == "__main__":  # pragma: no cover
    main()
