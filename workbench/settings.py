"""Typed workspace settings that round-trip through YAML (``workbench.yaml``)."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import ConfigError, Problem, ValidationError

log = logging.getLogger(__name__)

SETTINGS_FILE = "workbench.yaml"
CATALOG_URL_ENV = "WORKBENCH_CATALOG_URL"


@dataclass
class WorkspaceSettings:
    """Settings of one workspace. Secrets never live here: URLs name env variables instead."""

    name: str = "workbench"
    #: SQLAlchemy URL of the catalog; empty = SQLite file inside the workspace.
    #: ``WORKBENCH_CATALOG_URL`` overrides it (so a password never needs to be in the file).
    catalog_url: str = ""
    #: Region for phone numbers written without a country code (ISO 3166 alpha-2).
    default_region: str = "US"
    #: Share of rejected rows above which a batch fails and commits nothing.
    error_threshold: float = 0.05
    #: Engine threads (0 = all cores).
    threads: int = 0
    #: Dashboards suppress any count below this.
    min_count: int = 10
    #: Identity values that never become identities (added to the built-in list);
    #: ``value`` blocks it in every namespace, ``namespace:value`` in one.
    blocked_identities: list[str] = field(default_factory=list)
    #: Most identities one profile may hold; above it the oldest cookies/devices go first.
    identity_cap: int = 50
    #: Named merge policies: ``{name: {type: timestamp}}`` or
    #: ``{name: {type: dataset_precedence, datasets: [a, b, ...]}}``.
    merge_policies: dict[str, Any] = field(
        default_factory=lambda: {"timestamp": {"type": "timestamp"}}
    )
    #: The policy whose profiles lookups, segments and activation use.
    default_merge_policy: str = "timestamp"
    #: Days an exited segment membership is kept (then deleted), as in the reference platform.
    membership_retention_days: int = 30
    #: Profiles in the sample behind segment size estimates (all profiles when fewer).
    estimate_sample_size: int = 50_000

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for YAML."""
        return asdict(self)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any] | None, source: str = SETTINGS_FILE
    ) -> WorkspaceSettings:
        """Parse and validate; unknown keys and wrong types are reported together."""
        data = dict(data or {})
        known = {f.name: f for f in fields(cls)}
        problems = [Problem(k, "unknown setting") for k in sorted(set(data) - set(known))]
        s = cls()
        for k, v in data.items():
            if k not in known:
                continue
            default = getattr(s, k)
            if isinstance(default, bool) or isinstance(v, bool) != isinstance(default, bool):
                ok = isinstance(v, type(default))
            elif isinstance(default, float):
                ok = isinstance(v, int | float)
            else:
                ok = isinstance(v, type(default))
            if not ok:
                problems.append(Problem(k, f"expected {type(default).__name__}, got {v!r}"))
                continue
            setattr(s, k, float(v) if isinstance(default, float) else v)
        if not 0 <= s.error_threshold <= 1:
            problems.append(Problem("error_threshold", "must be between 0 and 1"))
        if s.membership_retention_days < 1:
            problems.append(Problem("membership_retention_days", "must be at least 1"))
        if s.estimate_sample_size < 1000:
            problems.append(Problem("estimate_sample_size", "must be at least 1000"))
        if s.identity_cap < 2:
            problems.append(Problem("identity_cap", "must be at least 2"))
        for name, pol in s.merge_policies.items():
            kind = pol.get("type") if isinstance(pol, dict) else None
            if kind not in ("timestamp", "dataset_precedence"):
                problems.append(
                    Problem(
                        f"merge_policies.{name}.type", "must be timestamp or dataset_precedence"
                    )
                )
            elif kind == "dataset_precedence" and not pol.get("datasets"):
                problems.append(
                    Problem(f"merge_policies.{name}.datasets", "list the datasets in order")
                )
        if s.default_merge_policy not in s.merge_policies:
            problems.append(
                Problem(
                    "default_merge_policy", f"{s.default_merge_policy!r} is not in merge_policies"
                )
            )
        if len(s.default_region) != 2 or not s.default_region.isalpha():
            problems.append(Problem("default_region", "must be a two-letter region code like US"))
        s.default_region = s.default_region.upper()
        if problems:
            raise ValidationError(f"settings ({source})", problems)
        return s

    @classmethod
    def load(cls, workspace: Path) -> WorkspaceSettings:
        """Read ``workbench.yaml`` of a workspace."""
        p = workspace / SETTINGS_FILE
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except FileNotFoundError as e:
            raise ConfigError(
                f"{workspace} is not a workspace (no {SETTINGS_FILE}); run workbench init"
            ) from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from e
        return cls.from_dict(data, str(p))

    def save(self, workspace: Path) -> None:
        """Write ``workbench.yaml`` (atomically: temp file then rename)."""
        p = workspace / SETTINGS_FILE
        tmp = p.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        os.replace(tmp, p)

    def resolved_catalog_url(self, workspace: Path) -> str:
        """The catalog URL in force: env override, then setting, then the SQLite default."""
        url = os.environ.get(CATALOG_URL_ENV) or self.catalog_url
        return url or f"sqlite:///{(workspace / 'catalog.db').resolve()}"


__all__ = ["CATALOG_URL_ENV", "SETTINGS_FILE", "WorkspaceSettings"]
