"""Identity namespaces: the identity types the workbench knows and how each is normalized."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from workbench.errors import Problem, ValidationError

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class NamespaceKind(StrEnum):
    """What an identity of the namespace stands for."""

    PERSON = "person"
    COOKIE = "cookie"
    DEVICE = "device"
    HASHED = "hashed"


class Normalizer(StrEnum):
    """How a raw value becomes the canonical identity value."""

    EMAIL = "email"  # trim + lower-case + syntax check
    PHONE = "phone"  # E.164 with the workspace's default region
    SHA256 = "sha256"  # trim + lower-case, 64 hex characters
    TRIM = "trim"  # trim only (ids are case-sensitive)
    LOWER = "lower"  # trim + lower-case


@dataclass(frozen=True)
class Namespace:
    """One identity namespace (``email``, ``crm_id``, ``ecid``...)."""

    name: str
    kind: NamespaceKind
    normalizer: Normalizer
    unique: bool = False
    priority: int = 50
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for YAML/JSON and the catalog."""
        d = asdict(self)
        d["kind"] = self.kind.value
        d["normalizer"] = self.normalizer.value
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Namespace:
        """Build and validate a namespace from a plain dict."""
        problems: list[Problem] = []
        name = str(data.get("name", ""))
        if not _NAME_RE.match(name):
            problems.append(Problem("name", f"{name!r} is not a valid namespace name"))
        try:
            kind = NamespaceKind(data.get("kind", "person"))
        except ValueError:
            problems.append(Problem("kind", f"unknown kind {data.get('kind')!r}"))
            kind = NamespaceKind.PERSON
        try:
            normalizer = Normalizer(data.get("normalizer", "trim"))
        except ValueError:
            problems.append(Problem("normalizer", f"unknown normalizer {data.get('normalizer')!r}"))
            normalizer = Normalizer.TRIM
        priority = data.get("priority", 50)
        if not isinstance(priority, int) or isinstance(priority, bool):
            problems.append(Problem("priority", "must be an integer"))
            priority = 50
        unknown = set(data) - {"name", "kind", "normalizer", "unique", "priority", "description"}
        problems.extend(Problem(k, "unknown key") for k in sorted(unknown))
        if problems:
            raise ValidationError(f"namespace {name!r}", problems)
        return cls(
            name=name,
            kind=kind,
            normalizer=normalizer,
            unique=bool(data.get("unique", False)),
            priority=priority,
            description=str(data.get("description", "")),
        )


#: The namespaces every workspace starts with. Priority: person ids > devices > cookies.
DEFAULT_NAMESPACES: tuple[Namespace, ...] = (
    Namespace("crm_id", NamespaceKind.PERSON, Normalizer.TRIM, True, 100, "CRM customer id"),
    Namespace("loyalty_id", NamespaceKind.PERSON, Normalizer.TRIM, True, 90, "Loyalty card id"),
    Namespace("email", NamespaceKind.PERSON, Normalizer.EMAIL, False, 70, "Email address"),
    Namespace("phone", NamespaceKind.PERSON, Normalizer.PHONE, False, 60, "Phone, E.164"),
    Namespace(
        "email_sha256", NamespaceKind.HASHED, Normalizer.SHA256, False, 50, "SHA-256 of email"
    ),
    Namespace(
        "phone_sha256", NamespaceKind.HASHED, Normalizer.SHA256, False, 40, "SHA-256 of E.164"
    ),
    Namespace("device_id", NamespaceKind.DEVICE, Normalizer.TRIM, False, 30, "Mobile device id"),
    Namespace("ecid", NamespaceKind.COOKIE, Normalizer.TRIM, False, 20, "Web cookie id (ECID)"),
)

__all__ = ["DEFAULT_NAMESPACES", "Namespace", "NamespaceKind", "Normalizer"]
