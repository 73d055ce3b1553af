"""Identity normalizers, vectorized.

Each normalizer exists twice, with one meaning: as a SQL expression for DuckDB (used on
whole columns during ingestion) and as a Python function for a single value (lookups such
as ``profile show --identity email:Ana.Lima@Example.com``). Tests check the two agree.

Phones: the common North-American shapes are normalized in SQL (the fast path); every
other value goes through Google's ``phonenumbers`` library, once per *distinct* value.
A phone is accepted when ``phonenumbers`` finds it a possible number (right length for
its country) and is written in E.164.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Iterable

import phonenumbers
import pyarrow as pa

from workbench.lake.sql import lit
from workbench.schema.namespaces import Normalizer

log = logging.getLogger(__name__)

#: A practical address syntax (RFC 5322 dot-atom local part, dotted domain with a TLD).
EMAIL_PATTERN = (
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_EMAIL_RE = re.compile(EMAIL_PATTERN)
SHA256_PATTERN = r"[0-9a-f]{64}"
_SHA_RE = re.compile(SHA256_PATTERN)

#: Regions of the North American Numbering Plan, where the SQL fast path applies to
#: numbers written without a country code.
NANP_REGIONS = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])
# separators phonenumbers ignores, stripped before the fast-path shapes are matched
_PHONE_SEPARATORS = r"[\s().\-/]"
_NANP10 = r"[2-9][0-9]{2}[2-9][0-9]{6}"
_PLUS1_NANP10 = r"\+1" + _NANP10
_NANP_ANY = r"(\+?1)?" + _NANP10


# --------------------------------------------------------------------------- SQL
def sql_clean(expr: str) -> str:
    """Trim; empty text becomes NULL."""
    return f"NULLIF(trim(CAST({expr} AS VARCHAR)), '')"


def sql_email(expr: str) -> str:
    """Normalized email or NULL when the syntax is wrong (expr must already be cleaned)."""
    low = f"lower({expr})"
    return f"CASE WHEN regexp_full_match({low}, {lit(EMAIL_PATTERN)}) THEN {low} END"


def sql_sha256(expr: str) -> str:
    """Lower-case 64-hex digest or NULL."""
    low = f"lower({expr})"
    return f"CASE WHEN regexp_full_match({low}, {lit(SHA256_PATTERN)}) THEN {low} END"


def sql_lower(expr: str) -> str:
    """Lower-case."""
    return f"lower({expr})"


def _international_pattern() -> str:
    """``+CC`` and a national number of a possible length, for the country codes where that
    text alone decides the E.164 form (no national prefix other than ``0`` to strip, and
    the national number does not start with ``0``). Built from phonenumbers' own metadata.
    """
    from phonenumbers import PhoneMetadata
    from phonenumbers.phonenumberutil import region_code_for_country_code

    arms = []
    for cc in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        if cc == 1:
            continue  # NANP has its own arm
        md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region_code_for_country_code(cc))
        if md is None or md.national_prefix_for_parsing not in (None, "0"):
            continue
        if md.national_prefix not in (None, "0") or md.national_prefix_transform_rule:
            continue
        lengths = sorted(set(md.general_desc.possible_length or ()))
        if not lengths or lengths[0] < 2:
            continue
        alts = "|".join(f"[0-9]{{{n - 1}}}" for n in lengths)
        arms.append(f"{cc}[1-9](?:{alts})")
    return r"\+(?:" + "|".join(arms) + ")"


_INTL = _international_pattern()


def sql_phone_fast(expr: str, region: str) -> str:
    """E.164 for the common shapes, NULL for everything else (those go to ``phonenumbers``).

    Shapes: ``+1`` and ten NANP digits anywhere; with a North-American default region also
    ten NANP digits alone or after a ``1`` (trunk prefix); ``+CC`` numbers of the countries
    :func:`_international_pattern` lists. Separators are ignored.
    """
    d = f"regexp_replace({expr}, {lit(_PHONE_SEPARATORS)}, '', 'g')"
    shape = _NANP_ANY if region.upper() in NANP_REGIONS else _PLUS1_NANP10
    return (
        f"CASE WHEN regexp_full_match({d}, {lit(shape)}) THEN '+1' || right({d}, 10) "
        f"WHEN regexp_full_match({d}, {lit(_INTL)}) THEN {d} END"
    )


def sql_phone(expr: str, region: str) -> str:
    """E.164 or NULL: the SQL fast path, then ``wb_phone_e164`` (phonenumbers) for the rest.

    ``wb_phone_e164`` is a vectorized UDF the engine registers; DuckDB evaluates COALESCE
    lazily, so it only ever sees the values the fast path could not normalize.
    """
    slow = f"wb_phone_e164({expr}, {lit(region.upper())})"
    return f"CASE WHEN {expr} IS NOT NULL THEN COALESCE({sql_phone_fast(expr, region)}, {slow}) END"


def sql_normalizer(normalizer: Normalizer, expr: str) -> str:
    """SQL for a text normalizer (phones need :func:`sql_phone_fast` plus the fallback)."""
    if normalizer is Normalizer.EMAIL:
        return sql_email(expr)
    if normalizer is Normalizer.SHA256:
        return sql_sha256(expr)
    if normalizer is Normalizer.LOWER:
        return sql_lower(expr)
    if normalizer is Normalizer.TRIM:
        return expr
    raise ValueError(f"{normalizer} has no plain SQL form")


# --------------------------------------------------------------------------- Python
@functools.lru_cache(maxsize=65536)
def phone_e164(value: str | None, region: str = "US") -> str | None:
    """E.164 form of a phone number, or None when it is not a possible number."""
    if value is None:
        return None
    v = value.strip()
    if not v:
        return None
    try:
        num = phonenumbers.parse(v, region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def phone_e164_many(values: Iterable[str | None], region: str = "US") -> list[str | None]:
    """:func:`phone_e164` over the values the SQL fast path left (the slow path)."""
    return [phone_e164(v, region) for v in values]


def phone_udf(values: pa.Array, regions: pa.Array) -> pa.Array:
    """Arrow UDF ``wb_phone_e164(value, region)`` for DuckDB (sees only fast-path leftovers)."""
    region = regions[0].as_py() if len(regions) else "US"
    return pa.array(phone_e164_many(values.to_pylist(), region or "US"), pa.string())


def normalize_value(normalizer: Normalizer, value: str | None, region: str = "US") -> str | None:
    """Normalize one identity value; None when empty or invalid."""
    if value is None:
        return None
    v = value.strip()
    if not v:
        return None
    if normalizer is Normalizer.EMAIL:
        v = v.lower()
        return v if _EMAIL_RE.fullmatch(v) else None
    if normalizer is Normalizer.PHONE:
        return phone_e164(v, region)
    if normalizer is Normalizer.SHA256:
        v = v.lower()
        return v if _SHA_RE.fullmatch(v) else None
    if normalizer is Normalizer.LOWER:
        return v.lower()
    return v


def sha256_hex(value: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 value (no salt), as ad platforms expect."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


__all__ = [
    "EMAIL_PATTERN",
    "NANP_REGIONS",
    "SHA256_PATTERN",
    "normalize_value",
    "phone_e164",
    "phone_e164_many",
    "phone_udf",
    "sha256_hex",
    "sql_clean",
    "sql_email",
    "sql_normalizer",
    "sql_phone",
    "sql_phone_fast",
    "sql_sha256",
]
