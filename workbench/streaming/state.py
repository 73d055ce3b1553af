"""The streaming service's in-memory state, loaded from the lake and updated per item.

What is held (all of it rebuilt at start-up from the lake plus the durable log):

* the identity index: ``(namespace, value)`` -> profile id, for every active identity of the
  graph, plus what streamed rows added; retired profile ids point to their survivor;
* profiles: the unified profile table as one Arrow table (a row per profile, found by id in
  O(1) through a position array) with an overlay of the attributes streamed rows changed;
* each profile's recent events (the lookback of the streaming segments, at most 24 hours
  plus a margin), for the per-profile evaluation of streaming segments;
* batch memberships (the last segment job's members, for personalization) and the streaming
  memberships the service maintains.

Identity rules in the streaming path (the batch build applies the full rules again):

* a row's identities are normalized and blocked values dropped exactly as in the batch build;
* a record belongs to the profile of its primary identity, an event to the profile of its
  highest-priority known identity (as in :mod:`workbench.profile.attribution`);
* identities new to the graph join that profile; two profiles seen on one row are merged
  (the older id survives, the other points to it) unless the merge would put two values of
  a unique namespace in one profile or exceed the identity cap: then the lower-priority
  identity stays where it was and the cut is counted;
* a row whose identities are all unknown starts a provisional profile, with an id from
  :data:`PROVISIONAL_BASE` up (never confused with a batch id); the next identity build
  gives it its permanent id;
* a profile at the identity cap takes no further identity and is merged with no other
  profile that would take it over the cap (counted); the batch build then applies the
  drop-the-oldest-cookie-first rule.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from workbench.errors import NotFoundError
from workbench.identity.graph import BLOCKED_PHONE_PATTERN, DEFAULT_BLOCKED
from workbench.schema.model import SchemaClass
from workbench.schema.namespaces import Namespace
from workbench.schema.normalize import normalize_value
from workbench.segments.service import MEMBER_STATUSES

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

#: Provisional profile ids (profiles first seen by the streaming service) start here.
PROVISIONAL_BASE = 1 << 40
#: Profile attribute labels never returned for on-site personalization: no on-site ad or
#: content targeting (C6, C7), directly or indirectly identifying (I1, I2), sensitive (S1, S2).
PERSONALIZATION_FORBIDDEN = frozenset({"C6", "C7", "I1", "I2", "S1", "S2"})
_PROFILE_META = (
    "profile_id",
    "sources",
    "updated_at",
    "records",
    "identity_count",
    "first_seen",
    "last_seen",
)
_BLOCKED_PHONE = re.compile(BLOCKED_PHONE_PATTERN)
_SEP = "\x1f"  # between namespace and value in the index's keys (never in either)


@dataclass(frozen=True)
class DatasetPlan:
    """What the service needs to know about one profile-enabled dataset."""

    name: str
    cls: SchemaClass
    channel: str | None
    #: (field, namespace), highest priority first
    identities: tuple[tuple[str, Namespace], ...]
    primary: str | None
    #: non-identity fields (an event's own fields in the event history)
    fields: tuple[str, ...]
    #: a record's fields that are profile attributes (every field but ``updated_at``)
    attributes: tuple[str, ...]
    profile_enabled: bool


@dataclass
class IdentityStats:
    """Counters of identity decisions made by the streaming path."""

    new_profiles: int = 0
    new_identities: int = 0
    merges: int = 0
    links_cut_unique: int = 0
    links_cut_cap: int = 0
    not_attributable: int = 0
    blocked_values: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return dict(self.__dict__)


@dataclass
class ProfileDelta:
    """What the streaming path changed in one profile."""

    attributes: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    updated_at: dict[str, dt.datetime] = field(default_factory=dict)


class OnlineState:
    """Identity index, profiles, recent events and memberships in memory (see the module doc).

    Args:
        ws: The workspace (its latest identity graph, profiles and memberships are loaded).
        now: The evaluation time at start-up (recent events are those after ``now - lookback``).
        lookback: How far back events are kept for streaming evaluation.
    """

    def __init__(self, ws: Workspace, now: dt.datetime, lookback: dt.timedelta) -> None:
        self.ws = ws
        self.lookback = lookback
        self.region = ws.settings.default_region
        self.cap = ws.settings.identity_cap
        self.stats = IdentityStats()
        self.namespaces = {n.name: n for n in ws.catalog.namespaces()}
        extra = ws.settings.blocked_identities
        self._blocked = {v.lower() for v in (*DEFAULT_BLOCKED, *(x for x in extra if ":" not in x))}
        self._blocked_scoped = {x for x in extra if ":" in x}
        self.datasets = self._plans()
        pol_name = ws.settings.default_merge_policy
        self.policy = dict(ws.settings.merge_policies.get(pol_name, {"type": "timestamp"}))
        self._load_identities()
        self._load_profiles()
        self._load_events(now)
        self._load_memberships()

    # ------------------------------------------------------------------ loading
    def _plans(self) -> dict[str, DatasetPlan]:
        ws = self.ws
        out = {}
        for d in ws.catalog.list_datasets():
            sch = ws.catalog.get_schema(d.schema_name)
            ids = [
                (f.name, self.namespaces[f.identity.namespace])
                for f in sch.identity_fields
                if f.identity is not None and f.identity.namespace in self.namespaces
            ]
            ids.sort(key=lambda x: (-x[1].priority, x[0]))
            prim = sch.primary_identity
            out[d.name] = DatasetPlan(
                d.name,
                sch.cls,
                sch.channel,
                tuple(ids),
                prim.name if prim is not None else None,
                tuple(f.name for f in sch.fields if f.identity is None),
                tuple(f.name for f in sch.fields if f.name != "updated_at"),
                d.profile_enabled,
            )
        return out

    def _load_identities(self) -> None:
        ws = self.ws
        #: ``"namespace\x1fvalue"`` -> profile id (one string per key: less memory than tuples)
        self.index: dict[str, int] = {}
        self.members_base: dict[int, list[tuple[str, str]]] = {}
        self.redirect: dict[int, int] = {}
        self._ids_by_pid: pa.Table | None = None
        self._ids_offsets = np.zeros(1, np.int64)
        self._ids_pids = np.zeros(0, np.int64)
        self.next_provisional = PROVISIONAL_BASE
        if not ws.identity.exists():
            return
        t = ws.identity.identities()
        if "status" in t.column_names:
            t = t.filter(pc.equal(t.column("status"), "active"))
        t = t.select(["namespace", "value", "profile_id"]).sort_by("profile_id")
        keys = pc.binary_join_element_wise(t.column("namespace"), t.column("value"), _SEP)
        pids = t.column("profile_id").to_numpy()
        self.index = dict(zip(keys.to_pylist(), pids.tolist(), strict=True))
        self._ids_by_pid = t
        uniq, starts = np.unique(pids, return_index=True)
        self._ids_pids = uniq
        self._ids_offsets = np.append(starts, len(pids))
        m = ws.identity.merges()
        self.redirect = dict(
            zip(
                m.column("retired_profile_id").to_pylist(),
                m.column("profile_id").to_pylist(),
                strict=True,
            )
        )
        log.info("identity index: %d identities of %d profiles", len(self.index), len(uniq))

    def _load_profiles(self) -> None:
        ws = self.ws
        self.delta: dict[int, ProfileDelta] = {}
        self._profiles: pa.Table | None = None
        self._pos = np.zeros(0, np.int64)
        self.attr_names: list[str] = []
        try:
            t = ws.profiles.table().to_table()
        except NotFoundError:
            return
        self._profiles = t
        # one contiguous array per column: a value is one O(1) ``array[i]`` away
        self._cols = {c: t.column(c).combine_chunks() for c in t.column_names}
        pids = t.column("profile_id").to_numpy()
        pos = np.full(int(pids.max()) + 1 if len(pids) else 0, -1, np.int64)
        pos[pids] = np.arange(len(pids))
        self._pos = pos
        self.attr_names = [c for c in t.column_names if c not in _PROFILE_META]
        log.info("profiles: %d rows, %d attributes", t.num_rows, len(self.attr_names))

    def _load_events(self, now: dt.datetime) -> None:
        self.events: dict[int, list[dict[str, Any]]] = {}
        self.event_keys: set[tuple[str, Any]] = set()
        try:
            ds = self.ws.profiles.events_table()
        except NotFoundError:
            return
        since = now - self.lookback
        t = ds.to_table(
            filter=pads.field("timestamp") > pa.scalar(since, pa.timestamp("us", "UTC"))
        )
        t = t.sort_by([("profile_id", "ascending"), ("timestamp", "ascending")])
        for row in t.to_pylist():
            row.pop("_batch_id", None)
            row.pop("_row", None)
            self._add_event(row["profile_id"], row)
        log.info("recent events: %d of %d profiles since %s", t.num_rows, len(self.events), since)

    def _load_memberships(self) -> None:
        """Batch memberships (members only) of the last segment job, by profile: one Arrow
        column sorted by profile, found through offsets (no Python object per membership)."""
        self._mem_pids = np.zeros(0, np.int64)
        self._mem_offsets = np.zeros(1, np.int64)
        self._mem_segments: pa.Array = pa.array([], pa.string())
        ds = self.ws.segments._memberships()
        if ds is None:
            return
        t = ds.to_table(
            columns=["segment", "profile_id"],
            filter=pads.field("status").isin(list(MEMBER_STATUSES)),
        ).sort_by("profile_id")
        pids = t.column("profile_id").to_numpy()
        self._mem_pids, starts = np.unique(pids, return_index=True)
        self._mem_offsets = np.append(starts, len(pids))
        self._mem_segments = t.column("segment").combine_chunks()

    def batch_segments(self, pid: int) -> list[str]:
        """The segments a profile was a member of in the last segment job."""
        i = int(np.searchsorted(self._mem_pids, pid))
        if i >= len(self._mem_pids) or self._mem_pids[i] != pid:
            return []
        a, b = int(self._mem_offsets[i]), int(self._mem_offsets[i + 1])
        return sorted(self._mem_segments.slice(a, b - a).to_pylist())

    def batch_member_sets(self, segments: Iterable[str]) -> dict[str, set[int]]:
        """Members of the given segments in the last segment job."""
        want = set(segments)
        out: dict[str, set[int]] = {s: set() for s in want}
        ds = self.ws.segments._memberships()
        if ds is None or not want:
            return out
        t = ds.to_table(
            columns=["segment", "profile_id"],
            filter=pads.field("status").isin(list(MEMBER_STATUSES))
            & pads.field("segment").isin(list(want)),
        )
        for s in want:
            sel = t.filter(pc.equal(t.column("segment"), s)).column("profile_id")
            out[s] = set(sel.to_pylist())
        return out

    # ------------------------------------------------------------------ identities
    def resolve_id(self, pid: int) -> int:
        """Follow retired ids to the surviving profile."""
        seen = 0
        while pid in self.redirect and seen < 64:
            pid = self.redirect[pid]
            seen += 1
        return pid

    def normalize(self, ns: Namespace, raw: Any) -> str | None:
        """The canonical value of an identity, or None (empty, invalid or blocked)."""
        if raw is None:
            return None
        v = normalize_value(ns.normalizer, str(raw), self.region)
        if v is None:
            return None
        if (
            v.lower() in self._blocked
            or f"{ns.name}:{v}" in self._blocked_scoped
            or (ns.name == "phone" and _BLOCKED_PHONE.fullmatch(v))
        ):
            self.stats.blocked_values += 1
            return None
        return v

    def lookup(self, ns: str, value: str) -> int | None:
        """The profile of a normalized identity."""
        pid = self.index.get(f"{ns}{_SEP}{value}")
        return None if pid is None else self.resolve_id(pid)

    def identities_of(self, pid: int) -> list[tuple[str, str]]:
        """Every identity of a profile (graph plus streamed)."""
        have = self.members_base.get(pid)
        if have is not None:
            return have
        out: list[tuple[str, str]] = []
        if self._ids_by_pid is not None:
            i = int(np.searchsorted(self._ids_pids, pid))
            if i < len(self._ids_pids) and self._ids_pids[i] == pid:
                a, b = int(self._ids_offsets[i]), int(self._ids_offsets[i + 1])
                part = self._ids_by_pid.slice(a, b - a)
                out = list(
                    zip(
                        part.column("namespace").to_pylist(),
                        part.column("value").to_pylist(),
                        strict=True,
                    )
                )
        self.members_base[pid] = out
        return out

    def row_identities(self, plan: DatasetPlan, item: Mapping[str, Any]) -> list[tuple[str, str]]:
        """A row's normalized identities, highest priority first, blocked values dropped."""
        out = []
        for f, ns in plan.identities:
            v = self.normalize(ns, item.get(f))
            if v is not None and (ns.name, v) not in out:
                out.append((ns.name, v))
        return out

    def attach(self, plan: DatasetPlan, ids: list[tuple[str, str]]) -> tuple[int | None, list[int]]:
        """The profile a row belongs to, after linking its identities; plus retired ids."""
        if not ids:
            self.stats.not_attributable += 1
            return None, []
        # the owner: a record's primary identity, else the highest-priority known identity
        anchor = ids[0]
        if plan.cls is SchemaClass.PROFILE and plan.primary is not None:
            prim_ns = dict(plan.identities)[plan.primary].name
            anchor = next((x for x in ids if x[0] == prim_ns), ids[0])
        known = {x: self.lookup(*x) for x in ids}
        owner = known.get(anchor)
        if owner is None:
            owner = next((p for p in known.values() if p is not None), None)
        if owner is None:
            owner = self.next_provisional
            self.next_provisional += 1
            self.stats.new_profiles += 1
            self.members_base[owner] = []
        retired: list[int] = []
        for x in ids:
            p = known[x]
            owner = self.resolve_id(owner)
            if p == owner:
                continue
            if p is None:
                if self._fits(owner, [x]):
                    self._add_identity(owner, x)
                continue
            other = self.identities_of(p)
            if self._fits(owner, other):
                survivor, gone = (owner, p) if owner < p else (p, owner)
                self._merge(survivor, gone)
                retired.append(gone)
                owner = survivor
        return self.resolve_id(owner), retired

    def _fits(self, pid: int, new: list[tuple[str, str]]) -> bool:
        """Whether identities may join a profile (unique namespaces, the cap)."""
        have = self.identities_of(pid)
        uniq = {ns: v for ns, v in have if self.namespaces[ns].unique}
        for ns, v in new:
            if self.namespaces[ns].unique and uniq.get(ns, v) != v:
                self.stats.links_cut_unique += 1
                return False
        if len(have) + len(new) > self.cap:
            self.stats.links_cut_cap += 1
            return False
        return True

    def _add_identity(self, pid: int, x: tuple[str, str]) -> None:
        self.identities_of(pid).append(x)
        self.index[_key(x)] = pid
        self.stats.new_identities += 1

    def _merge(self, survivor: int, gone: int) -> None:
        mine = self.identities_of(survivor)
        for x in self.identities_of(gone):
            self.index[_key(x)] = survivor
            mine.append(x)
        self.members_base[gone] = []
        self.redirect[gone] = survivor
        evs = self.events.pop(gone, [])
        for e in evs:
            e["profile_id"] = survivor
            self._insert_event(survivor, e)
        d = self.delta.pop(gone, None)
        base_gone = self.base_attributes(gone)
        mine_d = self.delta.setdefault(survivor, ProfileDelta())
        cur = self.attributes(survivor)
        for k, v in {**base_gone, **(d.attributes if d else {})}.items():
            if cur.get(k) is None and v is not None:
                mine_d.attributes[k] = v
        self.stats.merges += 1

    # ------------------------------------------------------------------ profiles
    def _row(self, pid: int) -> int:
        if self._profiles is None or pid >= len(self._pos) or pid < 0:
            return -1
        return int(self._pos[pid])

    def base_attributes(self, pid: int, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The profile's attributes (or the ``names`` columns of its row) as the last profile
        build left them."""
        i = self._row(pid)
        if i < 0:
            return {}
        cols = self._cols
        return {
            k: cols[k][i].as_py()
            for k in (self.attr_names if names is None else names)
            if k in cols
        }

    def attributes(self, pid: int, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The profile's attributes now (build plus streamed changes); only ``names`` when
        given (what a caller needs: reading fewer columns is faster)."""
        want = self.attr_names if names is None else list(names)
        attrs = self.base_attributes(pid, want)
        for k in want:
            attrs.setdefault(k, None)
        d = self.delta.get(pid)
        if d is not None:
            attrs.update(
                d.attributes
                if names is None
                else {k: v for k, v in d.attributes.items() if k in attrs}
            )
        return attrs

    def sources(self, pid: int) -> dict[str, str]:
        """The dataset each attribute value came from."""
        row = self.base_attributes(pid, ["sources"])
        out = {k: v for k, v in (row.get("sources") or {}).items() if v is not None}
        d = self.delta.get(pid)
        if d is not None:
            out.update(d.sources)
        return out

    def apply_record(self, pid: int, plan: DatasetPlan, item: Mapping[str, Any]) -> list[str]:
        """Merge a record's attributes into the profile by the merge policy; changed names."""
        d = self.delta.setdefault(pid, ProfileDelta())
        ts = item.get("updated_at")
        ts = ts if isinstance(ts, dt.datetime) else None
        cur_attrs = self.attributes(pid)
        cur_src = self.sources(pid)
        base_ts = self.base_attributes(pid, ["updated_at"]).get("updated_at")
        order = list(self.policy.get("datasets") or [])
        changed = []
        for k in plan.attributes:
            v = item.get(k)
            if v is None:
                continue
            if self.policy.get("type") == "dataset_precedence":
                src = cur_src.get(k)
                rank = order.index(plan.name) if plan.name in order else len(order)
                cur_rank = order.index(src) if src in order else len(order)
                if cur_attrs.get(k) is not None and rank > cur_rank:
                    continue
            else:
                last = d.updated_at.get(k, base_ts)
                if (
                    cur_attrs.get(k) is not None
                    and ts is not None
                    and last is not None
                    and ts < last
                ):
                    continue
            if cur_attrs.get(k) != v:
                changed.append(k)
            d.attributes[k] = v
            d.sources[k] = plan.name
            if ts is not None:
                d.updated_at[k] = ts
        return changed

    # ------------------------------------------------------------------ events
    def _add_event(self, pid: int, e: dict[str, Any]) -> bool:
        key = (e.get("dataset"), e.get("event_id") or _fingerprint(e))
        if key in self.event_keys:
            return False
        self.event_keys.add(key)
        self._insert_event(pid, e)
        return True

    def _insert_event(self, pid: int, e: dict[str, Any]) -> None:
        lst = self.events.setdefault(pid, [])
        if not lst or lst[-1]["timestamp"] <= e["timestamp"]:
            lst.append(e)
        else:
            keys = [x["timestamp"] for x in lst]
            lst.insert(bisect.bisect_right(keys, e["timestamp"]), e)

    def add_event(self, pid: int, plan: DatasetPlan, item: Mapping[str, Any]) -> bool:
        """Keep a streamed event for the profile's evaluation; False when already held."""
        e = {k: item.get(k) for k in plan.fields}
        e.update(
            profile_id=pid,
            dataset=plan.name,
            channel=plan.channel,
            timestamp=item["timestamp"],
            event_type=item.get("event_type"),
        )
        return self._add_event(pid, e)

    def prune(self, now: dt.datetime) -> int:
        """Forget events older than the lookback; how many."""
        since = now - self.lookback
        gone = 0
        for pid in list(self.events):
            lst = self.events[pid]
            if lst and lst[0]["timestamp"] <= since:
                keep = [e for e in lst if e["timestamp"] > since]
                gone += len(lst) - len(keep)
                for e in lst:
                    if e["timestamp"] <= since:
                        self.event_keys.discard(
                            (e.get("dataset"), e.get("event_id") or _fingerprint(e))
                        )
                if keep:
                    self.events[pid] = keep
                else:
                    del self.events[pid]
        return gone


def _key(x: tuple[str, str]) -> str:
    return f"{x[0]}{_SEP}{x[1]}"


def _fingerprint(e: Mapping[str, Any]) -> str:
    return repr(sorted((k, str(v)) for k, v in e.items() if k not in ("profile_id", "channel")))


__all__ = [
    "PERSONALIZATION_FORBIDDEN",
    "PROVISIONAL_BASE",
    "DatasetPlan",
    "IdentityStats",
    "OnlineState",
    "ProfileDelta",
]
