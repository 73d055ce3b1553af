"""The catalog room: SQLAlchemy models and the functions that read and write them."""

from workbench.catalog.store import BatchInfo, Catalog, DatasetInfo

__all__ = ["BatchInfo", "Catalog", "DatasetInfo"]
