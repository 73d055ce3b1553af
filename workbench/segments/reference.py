"""The straightforward vectorized pandas evaluator of segment definitions.

This is the oracle for the tests and the baseline for the benchmark; the product never uses
it (segments are compiled to SQL by :mod:`workbench.segments.compiler`). It is written from
the semantics stated in :mod:`workbench.segments.model`, independently of the compiler, so
that comparing the two cross-checks the compiler:

* a leaf condition is true or false, never unknown: a comparison with a missing value is
  false (``ne`` and ``not_in`` included); ``exists`` / ``not_exists`` test for a value;
  ``not`` negates the whole child condition;
* events count only up to ``as_of``, inside their window (start exclusive, end inclusive);
  a count or sum over no events is 0, an average, minimum or maximum over no events (or
  over missing values only) is missing, so its comparison is false;
* a sequence holds when an event of ``first`` in the window is followed (or, with
  ``then_absent``, not followed) by an event of ``then`` strictly after it and at most
  ``then_within`` later, up to ``as_of``.

Every condition is one boolean mask over a frame (plus one groupby per event condition);
there is no Python loop per row. Decimal event fields are compared as floats; sums and
averages are rounded to 9 decimal places so that float noise does not decide an exact
comparison the engine makes in decimals.

    from workbench.segments import reference
    members = reference.evaluate(definitions, ["vip_at_risk"], profiles, events, as_of)
"""

from __future__ import annotations

import calendar
import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from workbench.segments.model import (
    All,
    AnyOf,
    Attr,
    Condition,
    Events,
    Filter,
    InSegment,
    Not,
    SegmentDefinition,
    Sequence,
    Window,
    parse_duration,
    relative_time,
)

#: Decimal places kept for sums and averages (see the module docstring).
ROUND_DIGITS = 9

__all__ = ["ROUND_DIGITS", "evaluate", "kind_of"]


# ---------------------------------------------------------------------------- kinds
def kind_of(s: pd.Series) -> str:
    """The kind of a column, inferred from its dtype or its first value.

    Args:
        s: a profile attribute or event field column.

    Returns:
        ``string``, ``number``, ``boolean``, ``date``, ``timestamp`` or ``array``: an aware
        datetime64 column is a timestamp, a naive one (or ``datetime.date`` objects) a date,
        Decimal objects numbers; ``string`` when an object column holds no value at all.
    """
    dtype = s.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "timestamp"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "date"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if not pd.api.types.is_object_dtype(dtype):
        return "string"
    present = s.dropna()
    if present.empty:
        return "string"
    v = present.iloc[0]
    if isinstance(v, bool | np.bool_):
        return "boolean"
    if isinstance(v, dt.datetime):
        return "timestamp"
    if isinstance(v, dt.date):
        return "date"
    if isinstance(v, decimal.Decimal | int | float | np.number):
        return "number"
    if isinstance(v, list | tuple | np.ndarray):
        return "array"
    return "string"


def _bool(mask: Any) -> pd.Series:
    """A plain bool Series, missing (NA) read as False."""
    return pd.Series(mask).fillna(False).astype(bool)


def _numbers(s: pd.Series) -> pd.Series:
    """Float64 values of a numeric column (Decimal objects included), NaN for missing."""
    return pd.to_numeric(s, errors="coerce").astype("float64")


def _as_utc(value: dt.datetime) -> pd.Timestamp:
    """An aware UTC timestamp (naive means UTC)."""
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _timestamps(s: pd.Series) -> pd.Series:
    """Aware UTC timestamps of a timestamp column (naive values mean UTC)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC")
    return pd.to_datetime(s, utc=True)


def _dates(s: pd.Series, kind: str) -> pd.Series:
    """Calendar dates as naive midnight timestamps (a timestamp's UTC calendar date)."""
    if kind == "timestamp":
        return _timestamps(s).dt.tz_localize(None).dt.normalize()
    return pd.to_datetime(s).dt.normalize()


# ---------------------------------------------------------------------------- comparisons
def _compare(base: pd.Series, op: str, rhs: Any) -> pd.Series:
    """``base <op> rhs`` for one scalar ``rhs``; false wherever ``base`` is missing."""
    present = base.notna()
    if op == "eq":
        r = base == rhs
    elif op == "ne":
        r = base != rhs
    elif op == "gt":
        r = base > rhs
    elif op == "gte":
        r = base >= rhs
    elif op == "lt":
        r = base < rhs
    elif op == "lte":
        r = base <= rhs
    else:
        raise ValueError(f"not a scalar comparison: {op}")
    return _bool(r) & present.to_numpy()


def _scalar_ops(base: pd.Series, op: str, value: Any, prep: Any) -> pd.Series:
    """eq / ne / in / not_in / order ops / between over a prepared column.

    ``prep(v)`` turns one given value into ``(column, rhs)`` to compare (dates need the
    column in a form that depends on the value; other kinds return ``(base, v)``).
    """
    if op in ("eq", "ne", "gt", "gte", "lt", "lte"):
        col, rhs = prep(value)
        return _compare(col, op, rhs)
    if op == "between":
        low, high = value
        col_lo, lo = prep(low)
        col_hi, hi = prep(high)
        return _compare(col_lo, "gte", lo) & _compare(col_hi, "lte", hi)
    if op in ("in", "not_in"):
        hit = pd.Series(False, index=base.index)
        for v in value:
            col, rhs = prep(v)
            hit = hit | _compare(col, "eq", rhs)
        if op == "in":
            return hit
        return ~hit & base.notna().to_numpy()
    raise ValueError(f"operator {op} does not apply here")


def _string_ops(s: pd.Series, op: str, value: Any, ci: bool) -> pd.Series:
    base = s.astype("string")
    if ci:
        base = base.str.lower()

    def norm(v: Any) -> str:
        t = str(v)
        return t.lower() if ci else t

    if op == "contains":
        return _bool(base.str.contains(norm(value), regex=False)) & base.notna().to_numpy()
    if op == "starts_with":
        return _bool(base.str.startswith(norm(value))) & base.notna().to_numpy()
    if op == "ends_with":
        return _bool(base.str.endswith(norm(value))) & base.notna().to_numpy()
    return _scalar_ops(base, op, value, lambda v: (base, norm(v)))


def _array_ops(s: pd.Series, op: str, value: Any, ci: bool) -> pd.Series:
    if op != "contains":
        raise ValueError(f"operator {op} does not apply to a list attribute")
    items = s.explode().astype("string")
    want = str(value)
    if ci:
        items = items.str.lower()
        want = want.lower()
    hit = _bool(items == want)
    return hit.groupby(level=0).any().reindex(s.index, fill_value=False)


def _date_operand(
    s: pd.Series, kind: str, v: Any, as_of: pd.Timestamp
) -> tuple[pd.Series, pd.Timestamp]:
    """The column and the value to compare for one date/timestamp value.

    A calendar date compares with calendar dates (a timestamp field's UTC date); an instant
    compares with instants (a date field's UTC midnight).
    """
    rel = relative_time(v)
    if rel is not None:
        t = as_of + rel
        if kind == "date":
            return _dates(s, kind), pd.Timestamp(t.date())
        return _timestamps(s), t
    if isinstance(v, str):
        text = v.strip()
        if "T" in text or " " in text:
            v = dt.datetime.fromisoformat(text)
        else:
            v = dt.date.fromisoformat(text)
    if isinstance(v, dt.datetime):
        rhs = _as_utc(v)
        if kind == "date":
            return _dates(s, kind).dt.tz_localize("UTC"), rhs
        return _timestamps(s), rhs
    if isinstance(v, dt.date):
        return _dates(s, kind), pd.Timestamp(v)
    raise ValueError(f"{v!r} is not a date")


def _shift_year(d: pd.Series, year: int) -> pd.Series:
    """Each date moved to ``year`` (February 29 becomes February 28 in a common year)."""
    month = d.dt.month
    day = d.dt.day
    if not calendar.isleap(year):
        day = day.mask((month == 2) & (day == 29), 28)
    parts = pd.DataFrame({"year": year, "month": month, "day": day}, index=d.index)
    return pd.to_datetime(parts.dropna()).reindex(d.index)


def _date_fn(fn: str, s: pd.Series, kind: str, as_of: pd.Timestamp) -> pd.Series:
    """``age`` / ``days_since`` / ``days_until_anniversary`` as floats (NaN for missing)."""
    d = _dates(s, kind)
    today = pd.Timestamp(as_of.date())
    if fn == "days_since":
        return (today - d).dt.days.astype("float64")
    if fn == "age":
        ymd = d.dt.year * 10000 + d.dt.month * 100 + d.dt.day
        now = today.year * 10000 + today.month * 100 + today.day
        return np.floor((now - ymd) / 10000).astype("float64")
    if fn == "days_until_anniversary":
        this_year = _shift_year(d, today.year)
        next_year = _shift_year(d, today.year + 1)
        a = this_year.mask(this_year < today, next_year)
        return (a - today).dt.days.astype("float64")
    raise ValueError(f"unknown function {fn}")


def _field_mask(
    s: pd.Series,
    op: str,
    value: Any,
    ci: bool,
    as_of: pd.Timestamp,
    fn: str | None = None,
) -> pd.Series:
    """One attribute or event-field comparison over a column (index kept)."""
    if op == "exists":
        return s.notna()
    if op == "not_exists":
        return s.isna()
    kind = kind_of(s)
    if fn is not None:
        base = _date_fn(fn, s, kind, as_of)
        return _scalar_ops(base, op, value, lambda v: (base, float(v)))
    if kind == "string":
        return _string_ops(s, op, value, ci)
    if kind == "array":
        return _array_ops(s, op, value, ci)
    if kind == "number":
        base = _numbers(s)
        return _scalar_ops(base, op, value, lambda v: (base, float(v)))
    if kind == "boolean":
        base = s.astype("boolean")
        return _scalar_ops(base, op, value, lambda v: (base, bool(v)))
    # date / timestamp
    return _scalar_ops(s, op, value, lambda v: _date_operand(s, kind, v, as_of))


# ---------------------------------------------------------------------------- evaluator
class _Evaluator:
    """Evaluates conditions over one profile frame and one event frame at ``as_of``."""

    def __init__(
        self,
        definitions: Mapping[str, SegmentDefinition],
        profiles: pd.DataFrame,
        events: pd.DataFrame,
        as_of: dt.datetime,
    ) -> None:
        self.definitions = definitions
        self.as_of = _as_utc(as_of)
        self.as_of_dt: dt.datetime = self.as_of.to_pydatetime()
        self.profiles = profiles.reset_index(drop=True)
        self.ids = pd.Index(self.profiles["profile_id"].astype("int64"), name="profile_id")
        ev = events.reset_index(drop=True)
        ts = _timestamps(ev["timestamp"])
        keep = (ts <= self.as_of).to_numpy()
        self.events = ev.loc[keep].assign(timestamp=ts[keep]).reset_index(drop=True)
        self.memo: dict[str, pd.Series] = {}
        self.active: list[str] = []

    # -------------------------------------------------------------- helpers
    def _on_profiles(self, mask: pd.Series) -> pd.Series:
        """A profile-frame mask re-indexed by profile id."""
        return pd.Series(mask.to_numpy(dtype=bool), index=self.ids)

    def _per_profile(self, ids: pd.Series) -> pd.Series:
        """True for the profiles whose id is in ``ids``."""
        return pd.Series(self.ids.isin(ids.unique()), index=self.ids)

    def _step_mask(self, types: tuple[str, ...], where: tuple[Filter, ...]) -> pd.Series:
        ev = self.events
        mask = pd.Series(True, index=ev.index)
        if types:
            mask &= ev["event_type"].isin(list(types)).to_numpy()
        for f in where:
            if f.field not in ev.columns:
                raise ValueError(f"no event field {f.field!r}")
            mask &= _field_mask(ev[f.field], f.op, f.value, f.case_insensitive, self.as_of)
        return mask

    def _window_mask(self, w: Window) -> pd.Series:
        ts = self.events["timestamp"]
        start, end = w.bounds(self.as_of_dt)
        mask = ts <= _as_utc(end)
        if start is not None:
            mask &= ts > _as_utc(start)
        return mask

    # -------------------------------------------------------------- conditions
    def condition(self, c: Condition) -> pd.Series:
        """A bool Series indexed by profile id."""
        if isinstance(c, All):
            out = pd.Series(True, index=self.ids)
            for item in c.items:
                out &= self.condition(item)
            return out
        if isinstance(c, AnyOf):
            out = pd.Series(False, index=self.ids)
            for item in c.items:
                out |= self.condition(item)
            return out
        if isinstance(c, Not):
            return ~self.condition(c.item)
        if isinstance(c, InSegment):
            m = self.segment(c.segment)
            return ~m if c.negate else m.copy()
        if isinstance(c, Attr):
            return self._attr(c)
        if isinstance(c, Events):
            return self._events(c)
        if isinstance(c, Sequence):
            return self._sequence(c)
        raise TypeError(f"not a condition: {c!r}")

    def _attr(self, a: Attr) -> pd.Series:
        if a.field not in self.profiles.columns:
            raise ValueError(f"no profile attribute {a.field!r}")
        m = _field_mask(self.profiles[a.field], a.op, a.value, a.case_insensitive, self.as_of, a.fn)
        return self._on_profiles(m)

    def _events(self, e: Events) -> pd.Series:
        ev = self.events
        mask = self._step_mask(e.types, e.where) & self._window_mask(e.window)
        hits = ev.loc[mask.to_numpy()]
        agg = e.aggregate
        if agg.fn == "count":
            measure = hits.groupby("profile_id").size().reindex(self.ids, fill_value=0)
            measure = measure.astype("float64")
        else:
            if agg.field not in ev.columns:
                raise ValueError(f"no event field {agg.field!r}")
            vals = _numbers(hits[agg.field]).groupby(hits["profile_id"])
            if agg.fn == "sum":
                measure = vals.sum().reindex(self.ids, fill_value=0.0).round(ROUND_DIGITS)
            elif agg.fn == "avg":
                measure = vals.mean().reindex(self.ids).round(ROUND_DIGITS)
            elif agg.fn == "min":
                measure = vals.min().reindex(self.ids)
            elif agg.fn == "max":
                measure = vals.max().reindex(self.ids)
            else:
                raise ValueError(f"unknown aggregate {agg.fn}")
        measure = measure.astype("float64")
        return _scalar_ops(measure, agg.op, agg.value, lambda v: (measure, float(v)))

    def _sequence(self, s: Sequence) -> pd.Series:
        ev = self.events
        first = self._step_mask(s.first.types, s.first.where) & self._window_mask(s.window)
        a = ev.loc[first.to_numpy(), ["profile_id", "timestamp"]]
        then = self._step_mask(s.then.types, s.then.where)
        b = ev.loc[then.to_numpy(), ["profile_id", "timestamp"]]
        a = a.sort_values("timestamp", kind="stable").reset_index(drop=True)
        b = b.sort_values("timestamp", kind="stable").rename(columns={"timestamp": "then_ts"})
        b = b.assign(timestamp=b["then_ts"])
        # the first `then` event strictly after each `first` event (same profile)
        nxt = pd.merge_asof(
            a,
            b,
            on="timestamp",
            by="profile_id",
            direction="forward",
            allow_exact_matches=False,
        )
        limit = nxt["timestamp"] + parse_duration(s.then_within)
        followed = _bool(nxt["then_ts"].notna() & (nxt["then_ts"] <= limit))
        ok = ~followed if s.then_absent else followed
        return self._per_profile(nxt.loc[ok.to_numpy(), "profile_id"])

    def segment(self, name: str) -> pd.Series:
        """Membership of a named segment (memoized)."""
        if name in self.memo:
            return self.memo[name]
        if name in self.active:
            raise ValueError(f"segments refer to each other in a cycle: {[*self.active, name]}")
        d = self.definitions.get(name)
        if d is None:
            raise ValueError(f"no segment named {name!r}")
        self.active.append(name)
        try:
            m = self.condition(d.rule)
        finally:
            self.active.pop()
        self.memo[name] = m
        return m


def evaluate(
    definitions: Mapping[str, SegmentDefinition],
    names: list[str],
    profiles: pd.DataFrame,
    events: pd.DataFrame,
    as_of: dt.datetime,
) -> dict[str, set[int]]:
    """The members of segments at ``as_of``, computed in pandas.

    Args:
        definitions: every definition by name (the requested ones and those they refer to).
        names: the segments to evaluate.
        profiles: the unified profiles: ``profile_id`` plus attribute columns.
        events: the event history: ``profile_id``, ``dataset``, ``channel``, ``timestamp``
            (aware UTC), ``event_type`` plus event fields.
        as_of: the evaluation time (naive means UTC).

    Returns:
        For each requested name, the set of member profile ids.

    Raises:
        ValueError: an unknown segment, attribute or field, or an operator that does not
            apply to a column.
    """
    ev = _Evaluator(definitions, profiles, events, as_of)
    out: dict[str, set[int]] = {}
    for name in names:
        m = ev.segment(name)
        out[name] = {int(i) for i in m.index[m.to_numpy()]}
    return out
