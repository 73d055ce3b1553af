"""Audience Workbench: online/offline audience activation in Python and Jupyter.

The public API starts at :class:`Workspace`; everything else hangs off it.
"""

from workbench.errors import WorkbenchError
from workbench.schema.model import Field, FieldType, Schema, SchemaClass
from workbench.schema.namespaces import Namespace
from workbench.settings import WorkspaceSettings
from workbench.workspace import Workspace

__version__ = "0.1.0"

__all__ = [
    "Field",
    "FieldType",
    "Namespace",
    "Schema",
    "SchemaClass",
    "WorkbenchError",
    "Workspace",
    "WorkspaceSettings",
    "__version__",
]
