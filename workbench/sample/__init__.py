"""The synthetic brand generator (with ground truth): see :func:`generate`."""

from workbench.sample.generator import (
    DEFAULT_AS_OF,
    GENERATOR_VERSION,
    MalformedRow,
    SampleFile,
    SampleManifest,
    TrapCounts,
    generate,
)

__all__ = [
    "DEFAULT_AS_OF",
    "GENERATOR_VERSION",
    "MalformedRow",
    "SampleFile",
    "SampleManifest",
    "TrapCounts",
    "generate",
]
