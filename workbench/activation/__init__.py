"""Activation: destinations, consent and governance, file exports, streaming deliveries."""

from workbench.activation.destinations import (
    MARKETING_ACTIONS,
    TYPES,
    Destination,
    load,
    load_folder,
    parse,
)
from workbench.activation.service import Activation, ActivationResult, Counts, Preview
from workbench.activation.streaming import deliver, deliver_all, retry

__all__ = [
    "MARKETING_ACTIONS",
    "TYPES",
    "Activation",
    "ActivationResult",
    "Counts",
    "Destination",
    "Preview",
    "deliver",
    "deliver_all",
    "load",
    "load_folder",
    "parse",
    "retry",
]
