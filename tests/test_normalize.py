"""Identity normalizers: the SQL form and the Python form agree, phones match phonenumbers."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.lake.sql import lit
from workbench.schema.namespaces import Normalizer
from workbench.schema.normalize import (
    normalize_value,
    phone_e164,
    sha256_hex,
    sql_clean,
    sql_email,
    sql_phone_fast,
    sql_sha256,
)

con = duckdb.connect()


def sql1(expr: str):  # type: ignore[no-untyped-def]
    return con.execute(f"SELECT {expr}").fetchone()[0]


EMAILS = [
    (" Ana.Lima@Example.COM ", "ana.lima@example.com"),
    ("bob+news@shop.co.uk", "bob+news@shop.co.uk"),
    ("o'neil@x.io", "o'neil@x.io"),
    ("ana.lima@", None),
    ("ana lima@example.com", None),
    ("@example.com", None),
    ("ana.lima@@example.com", None),
    ("ana@example", None),
    ("", None),
    ("   ", None),
]


@pytest.mark.parametrize(("raw", "expected"), EMAILS)
def test_email_sql_and_python_agree(raw: str, expected: str | None) -> None:
    assert normalize_value(Normalizer.EMAIL, raw) == expected
    assert sql1(sql_email(sql_clean(lit(raw)))) == expected


PHONES = [
    "(212) 555-0142",
    "212-555-0142",
    "212.555.0142",
    "2125550142",
    "+1 212 555 0142",
    "1-212-555-0142",
    "+12125550142",
    "+1 (212) 555-0142",
]


@pytest.mark.parametrize("raw", PHONES)
def test_us_phone_formats_normalize_to_e164(raw: str) -> None:
    assert phone_e164(raw, "US") == "+12125550142"
    assert sql1(sql_phone_fast(sql_clean(lit(raw)), "US")) == "+12125550142"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+33 1 42 68 53 00", "US", "+33142685300"),
        ("(212) 555-0142 ext. 5", "US", "+12125550142"),
        ("12345", "US", None),
        ("call me", "US", None),
        ("000", "US", None),
        ("", "US", None),
    ],
)
def test_phone_slow_path(raw: str, region: str, expected: str | None) -> None:
    assert phone_e164(raw, region) == expected
    # the fast path only answers what it is sure of
    fast = sql1(sql_phone_fast(sql_clean(lit(raw)), region))
    assert fast is None or fast == expected


def test_fast_path_only_for_nanp_without_country_code() -> None:
    # a 10-digit number is only read as North American when the default region is NANP
    assert sql1(sql_phone_fast(lit("2125550142"), "GB")) is None
    assert sql1(sql_phone_fast(lit("+12125550142"), "GB")) == "+12125550142"


digits = st.text(alphabet="0123456789", min_size=1, max_size=14)
seps = st.sampled_from(["", " ", "-", ".", "(", ")", "/", "  "])


@st.composite
def phone_texts(draw):  # type: ignore[no-untyped-def]
    prefix = draw(
        st.sampled_from(
            [
                "",
                "+",
                "+1",
                "1",
                "+1 ",
                "1-",
                "+44 ",
                "+33 ",
                "+49",
                "+39 ",
                "+7 ",
                "+52 ",
                "+41 ",
                "+86",
                "+20 ",
                "+972 ",
                "+358 ",
            ]
        )
    )
    parts = draw(st.lists(digits, min_size=1, max_size=4))
    out = prefix
    for p in parts:
        out += draw(seps) + p
    return out


@settings(max_examples=800, deadline=None)
@given(phone_texts(), st.sampled_from(["US", "CA", "GB", "FR"]))
def test_fast_path_agrees_with_phonenumbers(raw: str, region: str) -> None:
    fast = sql1(sql_phone_fast(sql_clean(lit(raw)), region))
    if fast is not None:
        assert fast == phone_e164(raw, region), raw


@pytest.mark.parametrize(
    "raw",
    [
        "+33 6 12 34 56 78",
        "+49 30 90182012",
        "+34 612 345 678",
        "+39 06 1234 5678",
        "+7 912 345 67 89",
        "+41 44 668 18 00",
    ],
)
def test_international_fast_path_matches_phonenumbers(raw: str) -> None:
    fast = sql1(sql_phone_fast(sql_clean(lit(raw)), "US"))
    assert fast is None or fast == phone_e164(raw, "US")


def test_international_fast_path_covers_common_countries() -> None:
    assert sql1(sql_phone_fast(lit("+33 6 12 34 56 78"), "US")) == "+33612345678"
    assert sql1(sql_phone_fast(lit("+49 30 90182012"), "US")) == "+493090182012"


def test_sha256() -> None:
    h = sha256_hex("ana.lima@example.com")
    assert len(h) == 64
    assert sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert normalize_value(Normalizer.SHA256, " " + h.upper() + " ") == h
    assert sql1(sql_sha256(sql_clean(lit(h.upper())))) == h
    assert normalize_value(Normalizer.SHA256, "xyz") is None
    assert sql1(sql_sha256(lit("xyz"))) is None
