"""API keys of the streaming service (``ws.apikeys``), stored hashed in the catalog.

A token is ``wb_`` and 43 URL-safe characters (32 random bytes from :mod:`secrets`). It is
returned once by :meth:`ApiKeys.create` and never stored or logged: the catalog keeps its
SHA-256 (looked up by hash, compared with :func:`hmac.compare_digest`) and its first
characters (``prefix``), which is what listings and logs show.

Scopes: ``collect`` (send records and events) and ``read`` (profiles, segment counts,
personalization, the membership stream). A key may be limited to some datasets.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from workbench.catalog.models import ApiKeyRow, DatasetRow, utcnow
from workbench.errors import AlreadyExistsError, NotFoundError, Problem, ValidationError

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

#: What a key may do: ``collect`` (POST data), ``read`` (profiles, segments, personalization,
#: the membership stream).
SCOPES: tuple[str, ...] = ("collect", "read")
TOKEN_PREFIX = "wb_"
#: Characters of the token kept in clear (``wb_`` and 8 more) to tell keys apart.
PREFIX_LENGTH = 11
_TOKEN_RE = re.compile(r"^wb_[A-Za-z0-9_-]{43}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
#: ``last_used_at`` is written at most this often per key (verification stays a read).
LAST_USED_RESOLUTION_S = 60.0


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as recorded in the catalog (never the token itself)."""

    name: str
    prefix: str
    datasets: tuple[str, ...] | None  # None: every dataset
    scopes: tuple[str, ...]
    created_at: dt.datetime
    last_used_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def allows(self, dataset: str | None, scope: str) -> bool:
        """Whether the key may use ``scope`` on ``dataset`` (``None``: no particular
        dataset, e.g. a profile lookup: only the scope is checked)."""
        if not self.active or scope not in self.scopes:
            return False
        return dataset is None or self.datasets is None or dataset in self.datasets

    def __repr__(self) -> str:
        return (
            f"ApiKeyInfo(name={self.name!r}, prefix={self.prefix!r}, "
            f"datasets={self.datasets!r}, scopes={self.scopes!r}, active={self.active})"
        )


def hash_token(token: str) -> str:
    """Lower-case hex SHA-256 of the token (what the catalog stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _info(r: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        name=r.name,
        prefix=r.prefix,
        datasets=None if r.datasets is None else tuple(r.datasets),
        scopes=tuple(r.scopes or ()),
        created_at=r.created_at,
        last_used_at=r.last_used_at,
        revoked_at=r.revoked_at,
    )


class ApiKeys:
    """API keys of a workspace (``ws.apikeys``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._touched: dict[str, float] = {}  # key hash -> monotonic time of the last write
        self._lock = threading.Lock()

    def create(
        self,
        name: str,
        datasets: Iterable[str] | None = None,
        scopes: Iterable[str] = SCOPES,
    ) -> tuple[ApiKeyInfo, str]:
        """Create a key; returns it and its token. The token is shown this once: only its
        hash is stored, so it cannot be recovered later (revoke and create another).

        Args:
            name: a unique name (a-z, 0-9, ``_``, ``-``).
            datasets: the datasets the key may use; ``None``: all of them.
            scopes: ``collect`` and/or ``read`` (default both).

        Raises:
            ValidationError: bad name, unknown scope, empty lists.
            NotFoundError: a named dataset does not exist.
            AlreadyExistsError: a key (possibly revoked) already has this name.
        """
        problems: list[Problem] = []
        if not isinstance(name, str) or not _NAME_RE.match(name):
            problems.append(Problem("name", f"{name!r} is not a valid key name (a-z, 0-9, _, -)"))
        scope_list = [scopes] if isinstance(scopes, str) else list(scopes)
        for s in scope_list:
            if s not in SCOPES:
                problems.append(Problem("scopes", f"unknown scope {s!r} ({', '.join(SCOPES)})"))
        if not scope_list:
            problems.append(Problem("scopes", "a key needs at least one scope"))
        ds_list: list[str] | None = None
        if datasets is not None:
            ds_list = [datasets] if isinstance(datasets, str) else list(datasets)
            if not ds_list:
                problems.append(
                    Problem("datasets", "an empty list allows nothing; pass None for all datasets")
                )
        if problems:
            raise ValidationError(f"api key {name!r}", problems)
        scope_list = [s for s in SCOPES if s in scope_list]  # canonical order, no duplicates
        if ds_list is not None:
            ds_list = sorted(set(ds_list))
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        prefix = token[:PREFIX_LENGTH]
        with self._ws.catalog.session() as s:
            if s.scalars(select(ApiKeyRow.id).where(ApiKeyRow.name == name)).first() is not None:
                raise AlreadyExistsError(
                    f"api key {name!r} already exists (revoked keys keep their name); "
                    "choose another name"
                )
            for d in ds_list or ():
                if s.get(DatasetRow, d) is None:
                    raise NotFoundError(f"no dataset named {d!r}")
            row = ApiKeyRow(
                name=name,
                prefix=prefix,
                key_hash=hash_token(token),
                datasets=ds_list,
                scopes=scope_list,
            )
            s.add(row)
            s.flush()
            info = _info(row)
        log.info("api key %s created (%s..., scopes %s)", name, prefix, ",".join(scope_list))
        return info, token

    def verify(self, token: str) -> ApiKeyInfo | None:
        """The active key this token belongs to, or ``None`` (unknown, malformed, revoked).

        The lookup is by SHA-256, then the stored and computed hashes are compared in
        constant time. ``last_used_at`` is updated at most once a minute per key.
        """
        if not isinstance(token, str) or not _TOKEN_RE.match(token):
            return None
        digest = hash_token(token)
        with self._ws.catalog.session() as s:
            row = s.scalars(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.key_hash, digest):
                return None
            if row.revoked_at is not None:
                return None
            now = time.monotonic()
            with self._lock:
                last = self._touched.get(digest)
                due = last is None or now - last >= LAST_USED_RESOLUTION_S
                if due:
                    self._touched[digest] = now
            if due:
                row.last_used_at = utcnow()
            return _info(row)

    def get(self, name: str) -> ApiKeyInfo:
        """A key by name (revoked ones too)."""
        with self._ws.catalog.session() as s:
            row = s.scalars(select(ApiKeyRow).where(ApiKeyRow.name == name)).first()
            if row is None:
                raise NotFoundError(f"no api key named {name!r}")
            return _info(row)

    def list(self, include_revoked: bool = True) -> list[ApiKeyInfo]:
        """Every key by name (never a token)."""
        q = select(ApiKeyRow).order_by(ApiKeyRow.name)
        if not include_revoked:
            q = q.where(ApiKeyRow.revoked_at.is_(None))
        with self._ws.catalog.session() as s:
            return [_info(r) for r in s.scalars(q)]

    def revoke(self, name: str) -> ApiKeyInfo:
        """Revoke a key at once (idempotent); its row stays for the record."""
        with self._ws.catalog.session() as s:
            row = s.scalars(select(ApiKeyRow).where(ApiKeyRow.name == name)).first()
            if row is None:
                raise NotFoundError(f"no api key named {name!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                log.info("api key %s revoked (%s...)", name, row.prefix)
            return _info(row)


__all__ = ["PREFIX_LENGTH", "SCOPES", "TOKEN_PREFIX", "ApiKeyInfo", "ApiKeys", "hash_token"]
