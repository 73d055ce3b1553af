"""The ingest room: batch ingestion, quarantine, batch records."""

from workbench.ingest.batch import QUARANTINE_SCHEMA, Ingestor, IngestResult
from workbench.ingest.sources import SourceData, read_source

__all__ = ["QUARANTINE_SCHEMA", "IngestResult", "Ingestor", "SourceData", "read_source"]
