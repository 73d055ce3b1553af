"""Segments: the definition model, its compiler to SQL, the evaluation-method classifier,
the batch segment job, sizing (exact count and estimate) and the membership store."""

from workbench.segments.classify import BATCH, STREAMING, Method, classify
from workbench.segments.compiler import Compiler, dependency_order
from workbench.segments.fields import FieldCatalog, FieldInfo
from workbench.segments.fluent import (
    all_of,
    any_of,
    attr,
    events,
    field,
    in_segment,
    not_in_segment,
    segment,
    sequence,
    step,
)
from workbench.segments.model import SegmentDefinition, load, load_folder, parse
from workbench.segments.service import Estimate, SegmentResult, SegmentRun, Segments

__all__ = [
    "BATCH",
    "STREAMING",
    "Compiler",
    "Estimate",
    "FieldCatalog",
    "FieldInfo",
    "Method",
    "SegmentDefinition",
    "SegmentResult",
    "SegmentRun",
    "Segments",
    "all_of",
    "any_of",
    "attr",
    "classify",
    "dependency_order",
    "events",
    "field",
    "in_segment",
    "load",
    "load_folder",
    "not_in_segment",
    "parse",
    "segment",
    "sequence",
    "step",
]
