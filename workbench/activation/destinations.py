"""Destinations: where audiences go, as YAML in ``destinations/`` or via the API.

.. code-block:: yaml

    name: newsletter_email
    type: email                      # email | sms | social | advertising | file | webhook | audience_manager
    connection:
      url: exports/email             # a folder, sftp://user@host:port/path, s3://bucket/prefix, https://...
      key_file_env: SFTP_KEY         # secrets: *_env (an environment variable) or *_file, never inline
      format: csv                    # csv | parquet | jsonl (file destinations)
    segments: [newsletter_engaged, birthday_this_week]
    mapping: {first_name: first_name, tier: loyalty_tier}   # profile attribute -> column
    schedule: {daily_at: "06:00"}    # or {every_hours: 6}
    mode: full                       # full | incremental
    consent: {attribute: consent_email, allow: [y]}
    marketing_action: email_targeting

Each type brings defaults (the identity it needs, how identities are written, the consent
attribute, the marketing action); the YAML overrides what it sets. Parsing reports every
problem with its path; governance (data-usage labels against the marketing action) is
checked when the destination is added, against the workspace's schemas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import Problem, ValidationError

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
#: Connection keys that would hold a secret inline: refused.
_SECRET_KEYS = re.compile(r"(password|passwd|secret|token|api_key|private_key|credential)s?$", re.I)

#: Marketing actions and the data-usage labels that forbid them (cdp-facts: C1 aggregated
#: export only, C2 no third-party export, C4 no ad/content targeting, C5 no interest-based
#: cross-site targeting, C6/C7 no on-site ad/content targeting, C12 no export of any kind).
MARKETING_ACTIONS: dict[str, frozenset[str]] = {
    "email_targeting": frozenset({"C1", "C12"}),
    "sms_targeting": frozenset({"C1", "C12"}),
    "file_export": frozenset({"C1", "C12"}),
    "third_party_export": frozenset({"C1", "C2", "C12"}),
    "ad_targeting": frozenset({"C1", "C2", "C4", "C12"}),
    "interest_targeting": frozenset({"C1", "C2", "C4", "C5", "C12"}),
    "onsite_personalization": frozenset({"C6", "C7"}),
    "audience_sharing": frozenset({"C1", "C12"}),
}


@dataclass(frozen=True)
class IdentityColumn:
    """One identity written to the destination: which profile attribute, which column,
    and how (``clear`` normalized, ``sha256`` of the normalized value, ``sha256_digits``
    of the E.164 digits without ``+``)."""

    source: str
    column: str
    encoding: str = "clear"


@dataclass(frozen=True)
class DestinationType:
    """What a destination type needs and does by default."""

    name: str
    identities: tuple[IdentityColumn, ...]
    consent_attribute: str | None
    marketing_action: str
    #: ``all`` identities required, or ``any`` one of them
    require: str = "all"
    default_mapping: tuple[tuple[str, str], ...] = ()
    files: bool = True
    streaming: bool = False


TYPES: dict[str, DestinationType] = {
    "email": DestinationType(
        "email",
        (IdentityColumn("email", "email"),),
        "consent_email",
        "email_targeting",
        default_mapping=(("first_name", "first_name"),),
    ),
    "sms": DestinationType(
        "sms", (IdentityColumn("phone", "phone"),), "consent_sms", "sms_targeting"
    ),
    # custom-audience upload template: lower-case headers, SHA-256 of normalized values,
    # phone as digits with country code and no '+'
    "social": DestinationType(
        "social",
        (
            IdentityColumn("email", "email", "sha256"),
            IdentityColumn("phone", "phone", "sha256_digits"),
        ),
        "consent_ads",
        "interest_targeting",
        require="any",
    ),
    # customer-match upload template: "Email", "Phone" headers, SHA-256, phone in E.164
    "advertising": DestinationType(
        "advertising",
        (
            IdentityColumn("email", "Email", "sha256"),
            IdentityColumn("phone", "Phone", "sha256"),
        ),
        "consent_ads",
        "ad_targeting",
        require="any",
    ),
    "file": DestinationType("file", (IdentityColumn("crm_id", "crm_id"),), None, "file_export"),
    "webhook": DestinationType(
        "webhook", (), None, "third_party_export", files=False, streaming=True
    ),
    "audience_manager": DestinationType(
        "audience_manager", (), None, "audience_sharing", files=False, streaming=True
    ),
}

FORMATS = ("csv", "parquet", "jsonl")
DEFAULT_PATTERN = "{destination}_{segment}_{as_of:%Y%m%d_%H%M%S}.{ext}"


@dataclass(frozen=True)
class Consent:
    """Which consent attribute gates the export and which values pass (``y`` / ``n`` /
    ``unknown``; booleans and yes/no spellings are read as ``y`` / ``n``)."""

    attribute: str | None
    allow: tuple[str, ...] = ("y",)


@dataclass(frozen=True)
class Schedule:
    """When the destination is delivered: daily at a time (UTC) or every N hours."""

    daily_at: str | None = None
    every_hours: int | None = None


@dataclass(frozen=True)
class Destination:
    """A configured destination."""

    name: str
    type: str
    url: str
    segments: tuple[str, ...]
    identities: tuple[IdentityColumn, ...]
    require: str
    mapping: tuple[tuple[str, str], ...]
    consent: Consent
    marketing_action: str
    mode: str = "full"
    format: str = "csv"
    schedule: Schedule = field(default_factory=Schedule)
    file_pattern: str = DEFAULT_PATTERN
    max_rows_per_file: int = 5_000_000
    connection: tuple[tuple[str, Any], ...] = ()
    description: str = ""
    #: the YAML/dict it was parsed from (stored in the catalog, round-trips)
    source: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> DestinationType:
        """The destination type's defaults."""
        return TYPES[self.type]

    @property
    def ext(self) -> str:
        """File extension of the format."""
        return {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}[self.format]

    def option(self, key: str, default: Any = None) -> Any:
        """A connection option."""
        return dict(self.connection).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The definition as given (for the catalog and ``show``)."""
        return dict(self.source)

    def to_yaml(self) -> str:
        """YAML of :meth:`to_dict`."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def parse(data: Any, *, source: str = "") -> Destination:
    """A :class:`Destination` from a dict; every problem is reported with its path."""
    what = f"destination {source}".strip() if source else "destination"
    if not isinstance(data, Mapping):
        raise ValidationError(what, [Problem("", "a destination must be a mapping")])
    problems: list[Problem] = []

    def bad(path: str, msg: str) -> None:
        problems.append(Problem(path, msg))

    known = {
        "name", "type", "description", "connection", "segments", "identities", "require",
        "mapping", "schedule", "mode", "consent", "marketing_action", "file_pattern",
        "max_rows_per_file",
    }  # fmt: skip
    for k in sorted(set(map(str, data)) - known):
        bad(k, "unknown key")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        bad("name", f"{name!r} is not a valid destination name (a-z, 0-9, _)")
        name = ""
    what = f"destination {name!r}" + (f" ({source})" if source else "")
    typ = data.get("type")
    if typ not in TYPES:
        bad("type", f"unknown type {typ!r} (known: {', '.join(TYPES)})")
        raise ValidationError(what, problems)
    kind = TYPES[typ]
    conn = data.get("connection") or {}
    if not isinstance(conn, Mapping):
        bad("connection", "connection must be a mapping {url, ...}")
        conn = {}
    for k in conn:
        if _SECRET_KEYS.search(str(k)) and not str(k).endswith(("_env", "_file")):
            bad(
                f"connection.{k}",
                "secrets are never written inline: name an environment variable "
                f"({k}_env) or a file ({k}_file)",
            )
    url = conn.get("url")
    if not isinstance(url, str) or not url:
        bad("connection.url", "a URL (or a local folder) is required")
        url = ""
    if not kind.files and not url.startswith(("http://", "https://")):
        bad("connection.url", f"a {typ} destination needs an http(s) URL")
    fmt = conn.get("format", "csv")
    if fmt not in FORMATS:
        bad("connection.format", f"format must be one of {', '.join(FORMATS)}")
        fmt = "csv"
    segs = data.get("segments") or []
    if not isinstance(segs, list) or not all(isinstance(s, str) for s in segs) or not segs:
        bad("segments", "map at least one segment: a list of segment names")
        segs = []
    if len(segs) > 250:
        bad("segments", "at most 250 segments per destination")
    identities = kind.identities
    raw_ids = data.get("identities")
    if raw_ids is not None:
        parsed_ids = []
        if not isinstance(raw_ids, list) or not raw_ids:
            bad("identities", "identities must be a non-empty list of {source, column, encoding}")
        else:
            for i, r in enumerate(raw_ids):
                p = f"identities[{i}]"
                if isinstance(r, str):
                    r = {"source": r}
                if not isinstance(r, Mapping) or not isinstance(r.get("source"), str):
                    bad(p, "an identity needs a source attribute")
                    continue
                enc = r.get("encoding", "clear")
                if enc not in ("clear", "sha256", "sha256_digits"):
                    bad(f"{p}.encoding", "encoding must be clear, sha256 or sha256_digits")
                    continue
                parsed_ids.append(
                    IdentityColumn(r["source"], str(r.get("column", r["source"])), enc)
                )
        identities = tuple(parsed_ids)
    require = data.get("require", kind.require)
    if require not in ("all", "any"):
        bad("require", "require must be all or any")
        require = "all"
    raw_map = data.get("mapping")
    mapping = kind.default_mapping
    if raw_map is not None:
        if not isinstance(raw_map, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw_map.items()
        ):
            bad("mapping", "mapping must be {profile attribute: column name}")
        else:
            mapping = tuple(raw_map.items())
    if len(mapping) > 50:
        bad("mapping", "at most 50 mapped attributes")
    cols = [c.column for c in identities] + [c for _, c in mapping]
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        bad("mapping", f"column names used twice: {dup}")
    raw_consent = data.get("consent")
    consent = Consent(kind.consent_attribute)
    if raw_consent is not None:
        if raw_consent is False or raw_consent == "none":
            consent = Consent(None)
        elif not isinstance(raw_consent, Mapping):
            bad("consent", "consent must be {attribute, allow: [y, unknown]} or none")
        else:
            allow = raw_consent.get("allow", ["y"])
            if not isinstance(allow, list) or not set(map(str, allow)) <= {"y", "n", "unknown"}:
                bad("consent.allow", "allow lists consent values: y, n, unknown")
                allow = ["y"]
            consent = Consent(
                raw_consent.get("attribute", kind.consent_attribute), tuple(map(str, allow))
            )
    action = data.get("marketing_action", kind.marketing_action)
    if action not in MARKETING_ACTIONS:
        bad(
            "marketing_action",
            f"unknown marketing action {action!r} (known: {', '.join(MARKETING_ACTIONS)})",
        )
        action = kind.marketing_action
    mode = data.get("mode", "full")
    if mode not in ("full", "incremental"):
        bad("mode", "mode must be full or incremental")
        mode = "full"
    sched = data.get("schedule") or {}
    schedule = Schedule()
    if not isinstance(sched, Mapping):
        bad("schedule", "schedule must be {daily_at: HH:MM} or {every_hours: N}")
    elif sched:
        if set(sched) - {"daily_at", "every_hours"} or len(sched) != 1:
            bad("schedule", "schedule must be {daily_at: HH:MM} or {every_hours: N}")
        elif "daily_at" in sched:
            if not isinstance(sched["daily_at"], str) or not _TIME_RE.match(sched["daily_at"]):
                bad("schedule.daily_at", f"{sched['daily_at']!r} is not a time HH:MM (UTC)")
            else:
                schedule = Schedule(daily_at=sched["daily_at"])
        else:
            n = sched["every_hours"]
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 24:
                bad("schedule.every_hours", "every_hours must be a whole number from 1 to 24")
            else:
                schedule = Schedule(every_hours=n)
    pattern = data.get("file_pattern", DEFAULT_PATTERN)
    if not isinstance(pattern, str) or "{segment}" not in pattern:
        bad("file_pattern", "the file pattern must contain {segment}")
        pattern = DEFAULT_PATTERN
    max_rows = data.get("max_rows_per_file", 5_000_000)
    if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1:
        bad("max_rows_per_file", "must be a whole number >= 1")
        max_rows = 5_000_000
    if problems:
        raise ValidationError(what, problems)
    options = tuple((k, v) for k, v in conn.items() if k not in ("url", "format"))
    return Destination(
        name=name,
        type=typ,
        url=url,
        segments=tuple(segs),
        identities=identities,
        require=require,
        mapping=mapping,
        consent=consent,
        marketing_action=action,
        mode=mode,
        format=fmt,
        schedule=schedule,
        file_pattern=pattern,
        max_rows_per_file=max_rows,
        connection=options,
        description=str(data.get("description") or ""),
        source=dict(data),
    )


def load(path: str | Path) -> Destination:
    """One destination from a YAML file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValidationError(f"destination file {p}", [Problem("", f"cannot read: {e}")]) from e
    return parse(data, source=str(p))


def load_folder(folder: str | Path) -> list[Destination]:
    """Every ``*.yaml`` / ``*.yml`` destination of a folder (sorted by file name)."""
    root = Path(folder)
    return [load(f) for f in sorted(root.iterdir()) if f.suffix in (".yaml", ".yml")]


def with_segments(d: Destination, segments: list[str]) -> Destination:
    """The same destination restricted to some of its segments."""
    return replace(d, segments=tuple(s for s in d.segments if s in segments))


__all__ = [
    "FORMATS",
    "MARKETING_ACTIONS",
    "TYPES",
    "Consent",
    "Destination",
    "DestinationType",
    "IdentityColumn",
    "Schedule",
    "load",
    "load_folder",
    "parse",
    "with_segments",
]
