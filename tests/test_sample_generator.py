"""Tests of the synthetic brand generator (workbench.sample)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow.parquet as pq
import pytest

from workbench.errors import ConfigError
from workbench.sample import DEFAULT_AS_OF, SampleManifest, generate

PERSONS = 2_000
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
DATA_FILES = (
    "crm_customers.csv",
    "crm_customers_updates.csv",
    "loyalty_members.csv",
    "pos_orders.csv",
    "web_events.parquet",
    "email_engagement.jsonl",
)
JUNK = {"test@test.com", "none@none.com", "noemail@example.com"}


# --------------------------------------------------------------------------------------------
# fixtures and readers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleManifest]:
    out = tmp_path_factory.mktemp("sample") / "brand"
    messages: list[str] = []
    manifest = generate(out, persons=PERSONS, seed=42, progress=messages.append)
    assert messages and messages[-1] == "manifest.json written"
    return out, manifest


def read(out: Path, name: str) -> pd.DataFrame:
    """A data file as strings ("" for empty CSV fields; typed for Parquet)."""
    path = out / name
    if name.endswith(".csv"):
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    if name.endswith(".jsonl"):
        return pd.read_json(path, lines=True, dtype=False)
    return pq.read_table(path).to_pandas()


def truth(out: Path, name: str) -> pd.DataFrame:
    return pq.read_table(out / "truth" / f"{Path(name).stem}.parquet").to_pandas()


def persons(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "truth" / "persons.parquet").to_pandas()


def norm_email(v: str) -> str:
    return v.strip().lower()


def e164(v: str) -> str | None:
    """E.164 of a possible phone number, else None."""
    try:
        num = phonenumbers.parse(v, "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def bad_dates(values: pd.Series, fmt: str) -> pd.Series:
    return pd.to_datetime(values, format=fmt, errors="coerce").isna()


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------------------------
# defect detection, independent of the generator
# --------------------------------------------------------------------------------------------

DATE, TS = "%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ"


def detect(name: str, df: pd.DataFrame) -> set[tuple[int, str, str]]:
    """Every (row, field, defect) that a strict validator finds in a data file."""
    found: set[tuple[int, str, str]] = set()

    def add(mask: pd.Series | np.ndarray, fld: str, defect: str) -> None:
        for i in np.flatnonzero(np.asarray(mask)):
            found.add((int(i) + 1, fld, defect))

    def emails(col: pd.Series, optional: bool) -> np.ndarray:
        bad = ~col.map(lambda v: bool(EMAIL_RE.match(norm_email(v))))
        return np.asarray(bad & ((col != "") if optional else True))

    def phones(col: pd.Series) -> np.ndarray:
        return np.asarray((col != "") & col.map(lambda v: e164(v) is None))

    if name.startswith("crm_customers"):
        add(df.crm_id == "", "crm_id", "missing_id")
        add(emails(df.email, optional=False), "email", "broken_email")
        add(phones(df.phone), "phone", "broken_phone")
        add(bad_dates(df.birth_date, DATE), "birth_date", "bad_date")
        add(bad_dates(df.updated_at, TS), "updated_at", "bad_date")
    elif name == "loyalty_members.csv":
        add(df.loyalty_id == "", "loyalty_id", "missing_id")
        add(emails(df.email, optional=False), "email", "broken_email")
        add(bad_dates(df.enrolled_at, DATE), "enrolled_at", "bad_date")
        add(bad_dates(df.updated_at, TS), "updated_at", "bad_date")
    elif name == "pos_orders.csv":
        add(bad_dates(df.timestamp, TS), "timestamp", "bad_date")
        add(emails(df.email, optional=True), "email", "broken_email")
        add(phones(df.phone), "phone", "broken_phone")
        add(df.total.astype(float) < 0, "total", "negative_total")
    elif name == "web_events.parquet":
        add(df.ecid.isna() | (df.ecid == ""), "ecid", "missing_id")
        known = {"page_view", "product_view", "add_to_cart", "purchase", "login"}
        add(~df.event_type.isin(known), "event_type", "unknown_event_type")
    elif name == "email_engagement.jsonl":
        add(bad_dates(df.timestamp, TS), "timestamp", "bad_date")
        add(emails(df.email, optional=False), "email", "broken_email")
        add(~df.event_type.isin({"open", "click", "unsubscribe"}), "event_type",
            "unknown_event_type")  # fmt: skip
    return found


def clean_mask(manifest: SampleManifest, name: str, rows: int) -> np.ndarray:
    ok = np.ones(rows, dtype=bool)
    for m in manifest.file(name).malformed:
        ok[m.row - 1] = False
    return ok


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


def test_deterministic(sample: tuple[Path, SampleManifest], tmp_path: Path) -> None:
    out, _ = sample
    again = generate(tmp_path / "again", persons=PERSONS, seed=42)
    assert hashes(out) == hashes(tmp_path / "again")
    assert again.to_dict() == SampleManifest.load(out).to_dict()
    other = generate(tmp_path / "other", persons=PERSONS, seed=7)
    h_other = hashes(tmp_path / "other")
    h_out = hashes(out)
    for name in DATA_FILES:
        assert h_other[name] != h_out[name], name
    assert other.seed == 7


def test_manifest_round_trip(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    loaded = SampleManifest.load(out)
    assert loaded == manifest
    assert SampleManifest.load(out / "manifest.json") == manifest
    data = json.loads((out / "manifest.json").read_text())
    assert data["seed"] == 42 and data["persons"] == PERSONS
    assert data["as_of"] == "2026-12-01T00:00:00Z"
    assert manifest.as_of == DEFAULT_AS_OF
    assert [f["name"] for f in data["files"]] == list(DATA_FILES)
    assert set(data["traps"]) == {
        "shared_device_households", "shared_email_households", "junk_email_rows",
        "anonymous_orders", "late_arriving_rows", "international_phones",
    }  # fmt: skip


def test_row_counts_and_truth_alignment(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    for name in DATA_FILES:
        df = read(out, name)
        t = truth(out, name)
        rows = manifest.file(name).rows
        assert len(df) == rows == len(t), name
        assert t["row"].tolist() == list(range(1, rows + 1)), name
        if name.endswith(".csv"):
            with open(out / name, encoding="utf-8") as fh:
                assert sum(1 for _ in fh) == rows + 1
    assert manifest.file("crm_customers").rows == PERSONS
    assert 1.3 < manifest.file("pos_orders").rows / PERSONS < 1.7
    assert 6.0 < manifest.file("web_events").rows / PERSONS < 8.0
    assert 1.3 < manifest.file("email_engagement").rows / PERSONS < 1.7
    assert 0.55 < manifest.file("loyalty_members").rows / PERSONS < 0.65


def test_truth_matches_identities(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    p = persons(out).set_index("person_id")
    assert len(p) == PERSONS
    for name, id_col, p_col in (
        ("crm_customers.csv", "crm_id", "crm_id"),
        ("crm_customers_updates.csv", "crm_id", "crm_id"),
        ("loyalty_members.csv", "loyalty_id", "loyalty_id"),
    ):
        df, t = read(out, name), truth(out, name)
        ok = clean_mask(manifest, name, len(df))
        assert (df[id_col][ok].to_numpy() == p.loc[t.person_id[ok], p_col].to_numpy()).all()
    # emails everywhere normalize to the person's email
    for name in ("crm_customers.csv", "loyalty_members.csv", "pos_orders.csv",
                 "email_engagement.jsonl"):  # fmt: skip
        df, t = read(out, name), truth(out, name)
        ok = clean_mask(manifest, name, len(df)) & (df.email != "").to_numpy()
        got = df.email[ok].map(norm_email).to_numpy()
        assert (got == p.loc[t.person_id[ok], "email_normalized"].to_numpy()).all(), name
    # web: crm_id only on logged-in events and always the person's; ECID is the person's
    web, t = read(out, "web_events.parquet"), truth(out, "web_events.parquet")
    assert t.person_id.notna().all()
    logged = web.crm_id.notna().to_numpy()
    assert (web.crm_id[logged].to_numpy() == p.loc[t.person_id[logged], "crm_id"].to_numpy()).all()
    ok = web.ecid.notna().to_numpy()
    owned = {(pid, e) for pid, es in p.ecids.items() for e in es}
    assert all((pid, e) in owned for pid, e in zip(t.person_id[ok], web.ecid[ok], strict=True))
    assert (web.event_type[web.event_type == "login"].index.isin(web.index[logged])).all()


def test_every_person_has_one_crm_row(sample: tuple[Path, SampleManifest]) -> None:
    out, _ = sample
    t = truth(out, "crm_customers.csv")
    assert sorted(t.person_id) == list(range(1, PERSONS + 1))
    for name in DATA_FILES:
        ids = truth(out, name).person_id.dropna()
        assert ids.between(1, PERSONS).all(), name
    df = read(out, "crm_customers.csv")
    ids = df.crm_id[df.crm_id != ""]
    assert ids.is_unique and ids.str.fullmatch(r"C\d{8}").all()


def test_malformed_rows_are_exact(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    seen: set[str] = set()
    for name in DATA_FILES:
        f = manifest.file(name)
        listed = {(m.row, m.field, m.defect) for m in f.malformed}
        assert len(listed) == len({m.row for m in f.malformed}), f"{name}: one defect per row"
        assert listed == detect(name, read(out, name)), name
        rate = 0.005 if name.endswith(".csv") else 0.0005
        assert len(listed) <= max(round(f.rows * rate), 10), name
        if f.rows >= 1000:
            assert listed, name
        seen |= {m.defect for m in f.malformed}
    assert seen == {"bad_date", "broken_email", "broken_phone", "negative_total", "missing_id",
                    "unknown_event_type"}  # fmt: skip


def test_emails_normalize_to_valid_unique_addresses(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    crm, t = read(out, "crm_customers.csv"), truth(out, "crm_customers.csv")
    ok = clean_mask(manifest, "crm_customers.csv", len(crm))
    normalized = crm.email[ok].map(norm_email)
    assert normalized.map(lambda v: bool(EMAIL_RE.match(v))).all()
    messy = (crm.email[ok] != normalized).mean()
    assert 0.10 < messy < 0.20
    assert (crm.email[ok] != crm.email[ok].str.strip()).any()
    # unique per person except the shared-email households and the junk addresses
    owners = pd.DataFrame({"email": normalized, "pid": t.person_id[ok]})
    per_email = owners.groupby("email").pid.nunique()
    shared = set(per_email[per_email > 1].index)
    p = persons(out)
    allowed = set(p.email_normalized[p.email_kind != "personal"])
    assert shared <= allowed
    assert p.email_normalized[p.email_kind == "personal"].is_unique
    assert set(p.email_normalized[p.email_kind == "junk"]) <= JUNK
    assert manifest.traps.junk_email_rows == normalized.isin(JUNK).sum() > 0


def test_phones_possible_and_unique_per_person(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    p = persons(out).set_index("person_id")
    pairs: set[tuple[int, str]] = set()
    formats: set[str] = set()
    for name in ("crm_customers.csv", "crm_customers_updates.csv", "pos_orders.csv"):
        df, t = read(out, name), truth(out, name)
        ok = clean_mask(manifest, name, len(df)) & (df.phone != "").to_numpy()
        for pid, value in zip(t.person_id[ok], df.phone[ok], strict=True):
            norm = e164(value)
            assert norm is not None, value
            pairs.add((int(pid), norm))
            formats.add(re.sub(r"\d", "9", value))
    by_person = pd.DataFrame(sorted(pairs), columns=["pid", "phone"])
    assert by_person.pid.is_unique, "a person with two different phones"
    assert by_person.phone.is_unique, "a phone shared by two persons"
    assert (by_person.phone.to_numpy() == p.loc[by_person.pid, "phone_e164"].to_numpy()).all()
    for shape in ("(999) 999-9999", "999-999-9999", "999.999.9999", "9999999999",
                  "+9 999 999 9999", "9-999-999-9999", "+99999999999"):  # fmt: skip
        assert shape in formats, shape
    intl = p.phone_e164.dropna()
    intl = intl[~intl.str.startswith("+1")]
    assert len(intl) == manifest.traps.international_phones > 0
    assert set(intl.str[:3]) <= {"+44", "+33", "+49"}
    assert all(phonenumbers.is_possible_number(phonenumbers.parse(v)) for v in intl)
    # stricter than needed: every number is even a valid one for its country
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(v)) for v in p.phone_e164.dropna())


def test_shared_device_households(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    hh = pq.read_table(out / "truth" / "households.parquet").to_pandas()
    sd = hh[hh.trap == "shared_device"]
    assert len(sd) == manifest.traps.shared_device_households > 0
    p = persons(out).set_index("person_id")
    web = read(out, "web_events.parquet")
    crm_by_ecid = web[web.crm_id.notna()].groupby("ecid").crm_id.agg(set)
    both = 0
    for row in sd.itertuples():
        wanted = {p.crm_id[row.person_id_a], p.crm_id[row.person_id_b]}
        assert row.shared_value in p.ecids[row.person_id_a]
        assert row.shared_value in p.ecids[row.person_id_b]
        both += wanted <= crm_by_ecid.get(row.shared_value, set())
    assert both >= 0.9 * len(sd)
    # no other ECID carries two persons
    t = truth(out, "web_events.parquet")
    per_ecid = pd.DataFrame({"ecid": web.ecid, "pid": t.person_id}).dropna().groupby("ecid")
    multi = per_ecid.pid.nunique()
    assert set(multi[multi > 1].index) <= set(sd.shared_value)
    assert (crm_by_ecid.map(len) > 1).sum() == both


def test_shared_email_households(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    hh = pq.read_table(out / "truth" / "households.parquet").to_pandas()
    se = hh[hh.trap == "shared_email"]
    assert len(se) == manifest.traps.shared_email_households > 0
    crm, t = read(out, "crm_customers.csv"), truth(out, "crm_customers.csv")
    email_of = dict(zip(t.person_id, crm.email.map(norm_email), strict=True))
    crm_of = dict(zip(t.person_id, crm.crm_id, strict=True))
    for row in se.itertuples():
        assert row.shared_value.startswith("the.")
        a, b = email_of[row.person_id_a], email_of[row.person_id_b]
        assert row.shared_value in (a, b)
        assert crm_of[row.person_id_a] != crm_of[row.person_id_b]


def test_anonymous_orders(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    pos, t = read(out, "pos_orders.csv"), truth(out, "pos_orders.csv")
    anon = (pos.loyalty_id == "") & (pos.email == "") & (pos.phone == "")
    assert (anon.to_numpy() == t.person_id.isna().to_numpy()).all()
    assert manifest.traps.anonymous_orders == anon.sum()
    assert 0.17 < anon.mean() < 0.23
    only_loyalty = (pos.loyalty_id != "") & (pos.email == "") & (pos.phone == "")
    assert 0.40 < only_loyalty.mean() < 0.50
    assert set(pos.store_id) <= {f"S{i:03d}" for i in range(1, 51)}
    ok = clean_mask(manifest, "pos_orders.csv", len(pos))
    assert pos.total[ok].str.fullmatch(r"\d+\.\d\d").all()
    assert (pos["items"].astype(int) >= 1).all()


def test_late_arriving_updates(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    base, tb = read(out, "crm_customers.csv"), truth(out, "crm_customers.csv")
    upd, tu = read(out, "crm_customers_updates.csv"), truth(out, "crm_customers_updates.csv")
    ok_b = clean_mask(manifest, "crm_customers.csv", len(base))
    ok_u = clean_mask(manifest, "crm_customers_updates.csv", len(upd))
    when = dict(zip(tb.person_id[ok_b], base.updated_at[ok_b], strict=True))
    row_of = dict(zip(tb.person_id[ok_b], base.index[ok_b], strict=True))
    older = newer = 0
    for i in np.flatnonzero(ok_u):
        pid = tu.person_id[i]
        if pid not in when:
            continue
        older += upd.updated_at[i] < when[pid]
        newer += upd.updated_at[i] > when[pid]
        cols = ["city", "consent_email", "consent_sms", "consent_ads"]
        assert (upd.loc[i, cols] != base.loc[row_of[pid], cols]).any()
    assert older == manifest.traps.late_arriving_rows > 0
    assert newer > 3 * older
    assert 0.05 < len(upd) / PERSONS < 0.07


def test_web_events_shape(sample: tuple[Path, SampleManifest]) -> None:
    out, _ = sample
    table = pq.read_table(out / "web_events.parquet")
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("amount").type) == "double"
    web = table.to_pandas()
    assert web.timestamp.is_monotonic_increasing
    assert web.timestamp.max() < pd.Timestamp(DEFAULT_AS_OF)
    assert web.event_id.is_unique
    counts = web.event_type.value_counts()
    assert counts["purchase"] < counts["add_to_cart"] < counts["product_view"]
    with_sku = web.event_type.isin({"product_view", "add_to_cart", "purchase"})
    assert web.sku[with_sku].notna().all() and web.sku[~with_sku].isna().all()
    assert web.amount[web.event_type == "purchase"].gt(0).all()
    assert web.amount[web.event_type != "purchase"].isna().all()
    assert web.ecid.dropna().str.fullmatch(r"\d{38}").all()
    p = persons(out)
    online = p.ecids.map(len) > 0
    assert 0.85 < online.mean() < 0.95
    assert p.ecids.map(len).max() <= 3
    t = truth(out, "web_events.parquet")
    logged_in = set(t.person_id[web.crm_id.notna()])
    assert 0.55 < len(logged_in) / PERSONS < 0.65


def test_times_relative_to_as_of(tmp_path: Path) -> None:
    as_of = datetime(2024, 3, 1, 12, tzinfo=UTC)
    m = generate(tmp_path / "s", persons=300, seed=1, as_of=as_of)
    assert m.as_of == as_of
    pos = read(tmp_path / "s", "pos_orders.csv")
    ok = clean_mask(m, "pos_orders.csv", len(pos))
    ts = pd.to_datetime(pos.timestamp[ok], format=TS, utc=True)
    assert ts.max() < pd.Timestamp(as_of)
    assert ts.min() > pd.Timestamp(as_of) - pd.Timedelta(days=402)
    web = read(tmp_path / "s", "web_events.parquet")
    assert web.timestamp.max() < pd.Timestamp(as_of)
    em = read(tmp_path / "s", "email_engagement.jsonl")
    ok = clean_mask(m, "email_engagement.jsonl", len(em))
    assert pd.to_datetime(em.timestamp[ok], format=TS, utc=True).max() < pd.Timestamp(as_of)


def test_tiny_sample(tmp_path: Path) -> None:
    m = generate(tmp_path / "one", persons=1, seed=3)
    assert m.file("crm_customers").rows == 1
    assert len(persons(tmp_path / "one")) == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda out: generate(out, persons=0),
        lambda out: generate(out, persons=-5),
        lambda out: generate(out, persons=True),
        lambda out: generate(out, persons=10, seed=-1),
        lambda out: generate(out, persons=10, as_of=datetime(2026, 1, 1)),
    ],
)
def test_bad_arguments(tmp_path: Path, call: Callable[[Path], object]) -> None:
    with pytest.raises(ConfigError):
        call(tmp_path / "x")


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError):
        generate(f, persons=10)
    with pytest.raises(ConfigError):
        SampleManifest.load(tmp_path / "nothing")


@pytest.mark.slow
def test_speed_200k(tmp_path: Path) -> None:
    start = time.perf_counter()
    m = generate(tmp_path / "big", persons=200_000, seed=5)
    elapsed = time.perf_counter() - start
    assert m.file("crm_customers").rows == 200_000
    assert elapsed < 30, f"200,000 persons took {elapsed:.1f} s"
