"""The sample brand's datasets: which schema each uses and which generated files feed it."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.ingest.batch import IngestResult
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleDataset:
    """One dataset of the sample brand."""

    name: str
    schema: str
    profile_enabled: bool
    files: tuple[str, ...]
    description: str


SAMPLE_DATASETS: tuple[SampleDataset, ...] = (
    SampleDataset(
        "crm_customers",
        "crm_customer",
        True,
        ("crm_customers.csv", "crm_customers_updates.csv"),
        "CRM customer records (offline)",
    ),
    SampleDataset(
        "loyalty_members", "loyalty_member", True, ("loyalty_members.csv",), "Loyalty members"
    ),
    SampleDataset("pos_orders", "pos_order", True, ("pos_orders.csv",), "In-store orders"),
    SampleDataset("web_events", "web_event", True, ("web_events.parquet",), "Web shop events"),
    SampleDataset(
        "email_engagement",
        "email_engagement",
        True,
        ("email_engagement.jsonl",),
        "Email opens, clicks, unsubscribes",
    ),
)


def schema_dir() -> Path:
    """The folder of the sample brand's schema YAML files (shipped with the package)."""
    return Path(str(resources.files("workbench.sample") / "schemas"))


def copy_schemas(out: str | Path) -> Path:
    """Copy the sample schemas to ``out/schemas`` (so users can read and edit them)."""
    dest = Path(out) / "schemas"
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(schema_dir().glob("*.yaml")):
        shutil.copyfile(f, dest / f.name)
    return dest


def register(ws: Workspace) -> None:
    """Register the sample schemas and create the sample datasets (idempotent)."""
    ws.schemas.add_all([schema_dir()])
    for d in SAMPLE_DATASETS:
        ws.datasets.create(
            d.name,
            d.schema,
            profile_enabled=d.profile_enabled,
            description=d.description,
            exist_ok=True,
        )


def ingest(ws: Workspace, sample_dir: str | Path, *, force: bool = False) -> list[IngestResult]:
    """Ingest every generated file of the sample into its dataset, in order."""
    base = Path(sample_dir)
    results = []
    for d in SAMPLE_DATASETS:
        for f in d.files:
            results.append(ws.ingest(d.name, base / f, force=force))
    return results


__all__ = ["SAMPLE_DATASETS", "SampleDataset", "copy_schemas", "ingest", "register", "schema_dir"]
