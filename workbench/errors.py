"""The one exception tree of the workbench.

Every error the package raises on purpose derives from :class:`WorkbenchError`. Where a
built-in exception has the same meaning, the workbench error also inherits it (the ibis
habit), so ``except ValueError`` keeps working for callers that do not know our tree.
"""

from __future__ import annotations

from dataclasses import dataclass


class WorkbenchError(Exception):
    """Base class of every error raised on purpose by the workbench."""


class ConfigError(WorkbenchError, ValueError):
    """A setting, a path or a URL given to the workbench is wrong."""


class NotFoundError(WorkbenchError, KeyError):
    """A named object (workspace, schema, dataset, batch) does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0]) if self.args else ""


class AlreadyExistsError(WorkbenchError, ValueError):
    """A named object already exists and may not be created again."""


@dataclass(frozen=True)
class Problem:
    """One validation problem with the path of the offending part (``fields[3].type``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(WorkbenchError, ValueError):
    """A definition (schema, dataset, settings) is invalid; all problems are reported together."""

    def __init__(self, what: str, problems: list[Problem]) -> None:
        self.what = what
        self.problems = list(problems)
        lines = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{what} is invalid: {lines}")


class SchemaConflictError(WorkbenchError, ValueError):
    """A schema change would remove or retype a field of a registered schema."""

    def __init__(self, schema: str, field: str, reason: str) -> None:
        self.schema = schema
        self.field = field
        self.reason = reason
        super().__init__(f"schema {schema!r}: field {field!r}: {reason}")


class InputError(WorkbenchError, ValueError):
    """Input data cannot be read at all (unreadable file, missing required columns)."""

    def __init__(self, source: str, reason: str, *, field: str | None = None) -> None:
        self.source = source
        self.field = field
        self.reason = reason
        where = f"{source}: field {field!r}" if field else source
        super().__init__(f"{where}: {reason}")


class DuplicateBatchError(WorkbenchError, ValueError):
    """The same content was already ingested into the dataset; pass ``force=True`` to reload."""


class BatchFailedError(WorkbenchError, RuntimeError):
    """A batch was refused as a whole (error threshold exceeded); nothing was committed."""

    def __init__(self, message: str, batch: object | None = None) -> None:
        self.batch = batch
        super().__init__(message)


class EngineError(WorkbenchError, RuntimeError):
    """The query engine failed; the SQL that failed is attached."""

    def __init__(self, message: str, sql: str | None = None) -> None:
        self.sql = sql
        super().__init__(f"{message}\n-- failing SQL:\n{sql}" if sql else message)


__all__ = [
    "AlreadyExistsError",
    "BatchFailedError",
    "ConfigError",
    "DuplicateBatchError",
    "EngineError",
    "InputError",
    "NotFoundError",
    "Problem",
    "SchemaConflictError",
    "ValidationError",
    "WorkbenchError",
]
