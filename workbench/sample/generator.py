"""The synthetic brand: a US retailer with stores and a web shop, with ground truth.

:func:`generate` writes the brand's source files (CRM, loyalty, in-store orders, web events,
email engagement) into a folder, plus ``truth/`` (the true person behind every row, kept apart
from the data) and ``manifest.json`` (row counts, every malformed row with its field and
defect, and the trap counts). Everything is vectorized (numpy + pyarrow compute, no Python loop
per row or person) and deterministic: the same arguments give byte-identical data files.

Every time is relative to ``as_of``, never the wall clock.

Formats the ingestion has to know:

* CSV files: UTF-8, comma separated, one header row, ``\\n`` line ends, no quoting (no value
  contains a comma, a quote or a line break). Read every column as a string: postal codes and
  phones have leading zeros or look like numbers. A missing value is an empty field.
* Dates are ``YYYY-MM-DD``; timestamps are ISO-8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``; booleans are
  ``true``/``false``; ``total`` is a decimal with two places.
* ``web_events.parquet`` is typed (``timestamp[us, tz=UTC]``, ``float64`` amount, strings).
* ``email_engagement.jsonl``: one JSON object per line with string values only.
"""

from __future__ import annotations

import json
import logging
import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workbench.errors import ConfigError

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.1.0"
"""Bumped whenever the same seed would produce different files."""

DEFAULT_AS_OF = datetime(2026, 12, 1, tzinfo=UTC)
"""The default evaluation time of the sample: every timestamp lies before it."""

MAX_PERSONS = 5_000_000
"""Upper bound on ``persons`` (string columns must stay below Arrow's 2 GiB per array)."""

DAY = 86_400
WINDOW_DAYS = 400
_CHUNK = 500_000  # rows per write chunk

# --- rates -------------------------------------------------------------------------------------

SHARED_DEVICE_PERSONS = 0.03  # persons in 2-person households sharing one ECID
SHARED_EMAIL_PERSONS = 0.005  # persons in 2-person households sharing one email
JUNK_EMAIL_PERSONS = 0.002
LOYALTY_RATE = 0.60
PHONE_RATE = 0.90  # US/CA persons with a phone; GB/FR/DE persons always have one
ONLINE_RATE = 0.90
LOGIN_RATE = 0.60  # of all persons
UPDATE_RATE = 0.05
LATE_RATE = 0.01
POS_PER_PERSON = 1.5
EMAIL_EVENTS_PER_PERSON = 1.5
MALFORMED_RATE = 0.005  # CRM files, loyalty, POS
MALFORMED_EVENT_RATE = 0.0005  # web events, email engagement

# --- vocabularies ------------------------------------------------------------------------------

COUNTRIES = ("US", "CA", "GB", "FR", "DE")
_COUNTRY_P = (0.97, 0.01, 0.008, 0.006, 0.006)
_US, _CA, _GB, _FR, _DE = range(5)

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Christopher", "Karen", "Charles", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony",
    "Sandra", "Mark", "Margaret", "Donald", "Ashley", "Steven", "Kimberly", "Andrew", "Emily",
    "Paul", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda", "Brian",
    "Melissa", "George", "Deborah", "Timothy", "Stephanie", "Ronald", "Rebecca", "Jason", "Laura",
    "Edward", "Sharon", "Jeffrey", "Cynthia", "Ryan", "Kathleen", "Jacob", "Amy", "Gary",
    "Angela", "Nicholas", "Shirley", "Eric", "Anna", "Jonathan", "Brenda", "Stephen", "Pamela",
    "Larry", "Emma", "Justin", "Nicole", "Scott", "Helen", "Brandon", "Samantha", "Benjamin",
    "Katherine", "Samuel", "Christine", "Gregory", "Debra", "Alexander", "Rachel", "Patrick",
    "Carolyn", "Frank", "Janet", "Raymond", "Maria", "Jack", "Olivia", "Dennis", "Heather",
    "Jerry", "Diane", "Tyler", "Julie", "Aaron", "Joyce", "José", "Victoria", "Adam", "Ana",
    "Luis", "Sofia", "Carlos", "Camila", "Juan", "Valentina", "Wei", "Mei", "Hiroshi", "Yuki",
    "Priya", "Arjun", "Fatima", "Omar", "Zoë", "Chloé", "François", "Jürgen", "Siobhán", "Renée",
    "Noah", "Liam", "Mia", "Ava", "Ethan", "Isabella", "Lucas", "Harper",
)  # fmt: skip

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price",
    "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jiménez",
    "O'Brien", "Müller", "Schmidt", "Dubois", "Lefèvre", "Chen", "Wang", "Tanaka", "Kowalski",
    "Smith-Jones", "McAllister", "Nuñez",
)  # fmt: skip

# (country, city, weight, postal): postal is (lo, hi) for numeric codes (5 digits, zero padded)
# or a tuple of outward codes for GB/CA (an inward part is appended).
CITIES: tuple[tuple[int, str, float, tuple[Any, ...]], ...] = (
    (_US, "New York", 8.3, (10001, 10292)),
    (_US, "Los Angeles", 3.9, (90001, 90089)),
    (_US, "Chicago", 2.7, (60601, 60661)),
    (_US, "Houston", 2.3, (77001, 77099)),
    (_US, "Phoenix", 1.6, (85001, 85054)),
    (_US, "Philadelphia", 1.6, (19102, 19154)),
    (_US, "San Antonio", 1.5, (78201, 78266)),
    (_US, "San Diego", 1.4, (92101, 92199)),
    (_US, "Dallas", 1.3, (75201, 75398)),
    (_US, "San Jose", 1.0, (95110, 95196)),
    (_US, "Austin", 1.0, (78701, 78759)),
    (_US, "Jacksonville", 0.95, (32099, 32277)),
    (_US, "Columbus", 0.9, (43085, 43240)),
    (_US, "Charlotte", 0.9, (28201, 28299)),
    (_US, "San Francisco", 0.87, (94102, 94188)),
    (_US, "Seattle", 0.75, (98101, 98199)),
    (_US, "Denver", 0.72, (80201, 80299)),
    (_US, "Washington", 0.7, (20001, 20599)),
    (_US, "Boston", 0.69, (2108, 2137)),
    (_US, "Nashville", 0.69, (37201, 37250)),
    (_US, "Portland", 0.65, (97201, 97299)),
    (_US, "Las Vegas", 0.65, (89101, 89199)),
    (_US, "Detroit", 0.64, (48201, 48288)),
    (_US, "Atlanta", 0.5, (30301, 30399)),
    (_US, "Miami", 0.45, (33101, 33299)),
    (_US, "Minneapolis", 0.43, (55401, 55488)),
    (_US, "New Orleans", 0.38, (70112, 70195)),
    (_US, "St. Louis", 0.3, (63101, 63199)),
    (_CA, "Toronto", 3.0, ("M5V", "M4C", "M6G", "M5A")),
    (_CA, "Montreal", 2.0, ("H2X", "H3B", "H2T")),
    (_CA, "Vancouver", 1.5, ("V6B", "V5K", "V6K")),
    (_CA, "Calgary", 1.0, ("T2P", "T3A")),
    (_CA, "Ottawa", 0.8, ("K1P", "K2P")),
    (_GB, "London", 5.0, ("SW1A", "EC1A", "W1D", "N1", "E14", "SE1")),
    (_GB, "Manchester", 1.2, ("M1", "M4", "M20")),
    (_GB, "Birmingham", 1.1, ("B1", "B5")),
    (_GB, "Edinburgh", 0.6, ("EH1", "EH3")),
    (_GB, "Bristol", 0.5, ("BS1", "BS8")),
    (_FR, "Paris", 4.0, (75001, 75020)),
    (_FR, "Lyon", 1.0, (69001, 69009)),
    (_FR, "Marseille", 1.0, (13001, 13016)),
    (_FR, "Toulouse", 0.6, (31000, 31500)),
    (_FR, "Nice", 0.5, (6000, 6300)),
    (_FR, "Bordeaux", 0.4, (33000, 33800)),
    (_DE, "Berlin", 3.6, (10115, 14199)),
    (_DE, "Hamburg", 1.8, (20095, 22769)),
    (_DE, "München", 1.5, (80331, 81929)),
    (_DE, "Köln", 1.1, (50667, 51149)),
    (_DE, "Frankfurt am Main", 0.8, (60306, 60599)),
)

US_AREA_CODES = (
    212, 646, 718, 917, 347, 213, 310, 323, 818, 312, 773, 713, 832, 602, 480, 215, 267, 210,
    619, 858, 214, 972, 408, 512, 904, 415, 614, 704, 206, 303, 202, 617, 615, 503, 702, 305,
    404, 612, 313, 504,
)  # fmt: skip
CA_AREA_CODES = (416, 647, 604, 778, 514, 438, 403, 613)
# Central-office codes 200-999 without N11 service codes, 555 and a few special ones.
_EXCHANGES = np.array(
    [x for x in range(200, 1000) if x % 100 != 11 and x not in (555, 950, 958, 959, 976)],
    dtype=np.int64,
)

_EMAIL_DOMAINS: dict[int, tuple[tuple[str, float], ...]] = {
    _US: (
        ("gmail.com", 0.40), ("yahoo.com", 0.14), ("outlook.com", 0.10), ("hotmail.com", 0.08),
        ("icloud.com", 0.10), ("aol.com", 0.04), ("comcast.net", 0.05), ("att.net", 0.04),
        ("proton.me", 0.05),
    ),
    _CA: (("gmail.com", 0.5), ("outlook.com", 0.2), ("sympatico.ca", 0.15), ("shaw.ca", 0.15)),
    _GB: (("gmail.com", 0.45), ("btinternet.com", 0.2), ("outlook.com", 0.15), ("sky.com", 0.1),
          ("yahoo.co.uk", 0.1)),
    _FR: (("gmail.com", 0.4), ("orange.fr", 0.25), ("free.fr", 0.2), ("laposte.net", 0.15)),
    _DE: (("gmail.com", 0.3), ("web.de", 0.3), ("gmx.de", 0.3), ("t-online.de", 0.1)),
}  # fmt: skip
SHARED_EMAIL_DOMAINS = ("example.net", "example.com", "example.org")
JUNK_EMAILS = ("test@test.com", "none@none.com", "noemail@example.com")

STORE_COUNT = 50
SKU_COUNT = 2_000
PAGES = (
    ("/", 0.25), ("/c/women", 0.1), ("/c/men", 0.08), ("/c/kids", 0.05), ("/c/home", 0.06),
    ("/c/shoes", 0.07), ("/c/accessories", 0.05), ("/c/sale", 0.1), ("/c/new-arrivals", 0.06),
    ("/search", 0.08), ("/stores", 0.03), ("/help/returns", 0.02), ("/help/shipping", 0.02),
    ("/account", 0.02), ("/blog/style-guide", 0.01),
)  # fmt: skip
WEB_EVENT_TYPES = ("login", "page_view", "product_view", "add_to_cart", "purchase")
EMAIL_EVENT_TYPES = ("open", "click", "unsubscribe")
TIERS = ("bronze", "silver", "gold", "platinum")
_TIER_POINTS = (2_500, 10_000, 25_000)

# --- defects -----------------------------------------------------------------------------------

BAD_DATE = "bad_date"
BROKEN_EMAIL = "broken_email"
BROKEN_PHONE = "broken_phone"
NEGATIVE_TOTAL = "negative_total"
MISSING_ID = "missing_id"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
DEFECTS = (BAD_DATE, BROKEN_EMAIL, BROKEN_PHONE, NEGATIVE_TOTAL, MISSING_ID, UNKNOWN_EVENT_TYPE)

BAD_DATES = ("2023-02-30", "13/45/2020", "yesterday")
BAD_TIMESTAMPS = ("2023-02-30T10:15:00Z", "13/45/2020", "yesterday")
BROKEN_PHONES = ("12345", "call me", "000")
UNKNOWN_WEB_EVENT_TYPES = ("add to cart", "bounce", "pageview")
UNKNOWN_EMAIL_EVENT_TYPES = ("bounce", "opened", "forward")

_EMAIL_KINDS = ("personal", "shared", "junk")
_PERSONAL, _SHARED, _JUNK = range(3)
_N_EMAIL_VARIANTS = 7
_N_PHONE_FORMATS = 7
_PHONE_FORMAT_P = (0.3, 0.25, 0.08, 0.12, 0.1, 0.05, 0.1)

CRM_COLUMNS = (
    "crm_id", "email", "phone", "first_name", "last_name", "birth_date", "city", "country",
    "postal_code", "loyalty_id", "consent_email", "consent_sms", "consent_ads", "updated_at",
)  # fmt: skip
LOYALTY_COLUMNS = ("loyalty_id", "email", "tier", "points", "enrolled_at", "updated_at")
POS_COLUMNS = (
    "order_id",
    "timestamp",
    "loyalty_id",
    "email",
    "phone",
    "store_id",
    "total",
    "items",
)
WEB_COLUMNS = ("event_id", "timestamp", "event_type", "ecid", "crm_id", "page", "sku", "amount")
EMAIL_COLUMNS = ("email", "timestamp", "event_type", "campaign_id")

_STREAMS = ("people", "crm", "updates", "loyalty", "pos", "web", "email")


# =============================================================================================
# manifest
# =============================================================================================


@dataclass(frozen=True)
class MalformedRow:
    """One malformed row of a data file.

    Attributes:
        row: 1-based record number in the file (the CSV header is not counted).
        field: the column holding the defect.
        defect: one of :data:`DEFECTS`.
    """

    row: int
    field: str
    defect: str


@dataclass(frozen=True)
class SampleFile:
    """One data file of the sample.

    Attributes:
        name: file name inside the output folder, e.g. ``crm_customers.csv``.
        dataset: the dataset it feeds (the file stem).
        format: ``csv``, ``parquet`` or ``jsonl``.
        rows: number of records (header not counted).
        truth: path of its truth file, relative to the output folder.
        malformed: every malformed row, sorted by row.
    """

    name: str
    dataset: str
    format: str
    rows: int
    truth: str
    malformed: tuple[MalformedRow, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of this entry."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "format": self.format,
            "rows": self.rows,
            "truth": self.truth,
            "malformed": [
                {"row": m.row, "field": m.field, "defect": m.defect} for m in self.malformed
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleFile:
        """Build an entry from its JSON form."""
        return cls(
            name=data["name"],
            dataset=data.get("dataset", Path(data["name"]).stem),
            format=data["format"],
            rows=int(data["rows"]),
            truth=data.get("truth", f"truth/{Path(data['name']).stem}.parquet"),
            malformed=tuple(
                MalformedRow(int(m["row"]), m["field"], m["defect"]) for m in data["malformed"]
            ),
        )


@dataclass(frozen=True)
class TrapCounts:
    """How many of each planted trap the sample holds.

    Attributes:
        shared_device_households: 2-person households sharing one ECID (both log in on it).
        shared_email_households: 2-person households whose CRM rows carry the same email.
        junk_email_rows: rows of ``crm_customers.csv`` whose email is a junk address.
        anonymous_orders: POS orders with no loyalty id, email or phone.
        late_arriving_rows: rows of ``crm_customers_updates.csv`` older than the person's row
            in ``crm_customers.csv``.
        international_phones: persons with a non-NANP phone (GB, FR, DE).
    """

    shared_device_households: int
    shared_email_households: int
    junk_email_rows: int
    anonymous_orders: int
    late_arriving_rows: int
    international_phones: int


@dataclass(frozen=True)
class SampleManifest:
    """What :func:`generate` wrote: the arguments, the files and the planted traps.

    Attributes:
        seed: the random seed.
        persons: the number of persons.
        as_of: the evaluation time (tz-aware UTC) every timestamp precedes.
        generator_version: :data:`GENERATOR_VERSION` of the writer.
        files: the data files, in generation order.
        traps: the trap counts.
    """

    seed: int
    persons: int
    as_of: datetime
    generator_version: str
    files: tuple[SampleFile, ...]
    traps: TrapCounts

    def file(self, name: str) -> SampleFile:
        """Return the entry of one file by its name or its dataset (file stem).

        Raises:
            KeyError: no such file.
        """
        for f in self.files:
            if name in (f.name, f.dataset):
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (what ``manifest.json`` holds)."""
        return {
            "generator": "workbench.sample",
            "generator_version": self.generator_version,
            "seed": self.seed,
            "persons": self.persons,
            "as_of": _iso(self.as_of),
            "files": [f.to_dict() for f in self.files],
            "traps": {
                "shared_device_households": self.traps.shared_device_households,
                "shared_email_households": self.traps.shared_email_households,
                "junk_email_rows": self.traps.junk_email_rows,
                "anonymous_orders": self.traps.anonymous_orders,
                "late_arriving_rows": self.traps.late_arriving_rows,
                "international_phones": self.traps.international_phones,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleManifest:
        """Build a manifest from its JSON form."""
        return cls(
            seed=int(data["seed"]),
            persons=int(data["persons"]),
            as_of=datetime.fromisoformat(data["as_of"].replace("Z", "+00:00")),
            generator_version=data["generator_version"],
            files=tuple(SampleFile.from_dict(f) for f in data["files"]),
            traps=TrapCounts(**{k: int(v) for k, v in data["traps"].items()}),
        )

    @classmethod
    def load(cls, path: str | Path) -> SampleManifest:
        """Read ``manifest.json``; ``path`` is the file or the sample folder holding it.

        Raises:
            ConfigError: the file is missing or is not a sample manifest.
        """
        p = Path(path)
        if p.is_dir():
            p = p / "manifest.json"
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            return cls.from_dict(data)
        except FileNotFoundError as exc:
            raise ConfigError(f"{p}: no sample manifest there") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{p}: not a sample manifest ({exc})") from exc

    def write(self, path: str | Path) -> None:
        """Write ``manifest.json`` (``path`` is the file or the sample folder)."""
        p = Path(path)
        if p.is_dir():
            p = p / "manifest.json"
        tmp = p.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        tmp.replace(p)


# =============================================================================================
# small vectorized helpers
# =============================================================================================


def _iso(ts: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of an aware datetime."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _slug(name: str) -> str:
    """ASCII lower-case letters of a name, for email addresses (``Müller`` -> ``muller``)."""
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in ascii_.lower() if "a" <= ch <= "z")


def _str(values: np.ndarray) -> pa.Array:
    """Decimal strings of an integer array."""
    return pc.cast(pa.array(values), pa.string())


def _pad(values: np.ndarray, width: int) -> pa.Array:
    """Zero-padded decimal strings of a non-negative integer array."""
    return pc.utf8_lpad(_str(values), width, "0")


def _join(*parts: pa.Array | str) -> pa.Array:
    """Concatenate string arrays and literals element-wise."""
    return pc.binary_join_element_wise(*parts, "")


def _take(vocab: pa.Array | Sequence[str], idx: np.ndarray) -> pa.Array:
    """``vocab[idx]`` as a string array."""
    if not isinstance(vocab, pa.Array):
        vocab = pa.array(list(vocab), pa.string())
    return pc.take(vocab, pa.array(np.asarray(idx, dtype=np.int64)))


def _put(base: pa.Array, idx: np.ndarray, values: pa.Array) -> pa.Array:
    """Return ``base`` with ``base[idx[i]] = values[i]`` (idx unique)."""
    if len(idx) == 0:
        return base
    order = np.argsort(idx, kind="stable")
    mask = np.zeros(len(base), dtype=bool)
    mask[idx] = True
    return pc.replace_with_mask(base, pa.array(mask), pc.take(values, pa.array(order)))


def _concat(arrays: Sequence[pa.Array]) -> pa.Array:
    """One string array of the given arrays, one after the other."""
    return pa.concat_arrays([a.cast(pa.string()) for a in arrays])


def _pick(rng: np.random.Generator, items: Sequence[Any], p: Sequence[float], n: int) -> np.ndarray:
    """``n`` indices into ``items`` drawn with weights ``p``."""
    w = np.asarray(p, dtype=np.float64)
    return rng.choice(len(items), size=n, p=w / w.sum())


def _bool_str(flags: np.ndarray) -> pa.Array:
    """``true``/``false`` strings."""
    return _take(("false", "true"), flags.astype(np.int64))


def _duplicated(values: pa.Array) -> np.ndarray:
    """True for every value that already occurred earlier in the array."""
    codes = pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False)
    _, first = np.unique(codes, return_index=True)
    dup = np.ones(len(codes), dtype=bool)
    dup[first] = False
    return dup


def _segments(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given sizes: (group of each element, position within its group)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    group = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    starts = np.cumsum(sizes) - sizes
    pos = np.arange(int(sizes.sum()), dtype=np.int64) - starts[group]
    return group, pos


def _weights(rng: np.random.Generator, n: int, shape: float) -> np.ndarray:
    """Heavy-tailed activity weights with mean 1."""
    return rng.gamma(shape, 1.0 / shape, size=n)


def _n_malformed(rows: int, rate: float, kinds: int) -> int:
    """How many rows of a file get a defect (at least one per kind once a file has 100s)."""
    if rows == 0:
        return 0
    return min(rows, max(round(rows * rate), min(kinds, rows // 100)))


class _Clock:
    """Formats epoch seconds as dates and ISO timestamps through small vocabularies."""

    def __init__(self, as_of: datetime) -> None:
        self.as_of_s = math.floor(as_of.timestamp())
        self.as_of_day = self.as_of_s // DAY
        h, rest = np.divmod(np.arange(DAY, dtype=np.int64), 3600)
        m, s = np.divmod(rest, 60)
        self._times = _join(_pad(h, 2), ":", _pad(m, 2), ":", _pad(s, 2))

    def dates(self, days: np.ndarray) -> pa.Array:
        """``YYYY-MM-DD`` of epoch days."""
        days = np.asarray(days, dtype=np.int64)
        if len(days) == 0:
            return pa.array([], pa.string())
        lo, hi = int(days.min()), int(days.max())
        vocab = pc.cast(pa.array(np.arange(lo, hi + 1, dtype=np.int32), pa.date32()), pa.string())
        return _take(vocab, days - lo)

    def timestamps(self, secs: np.ndarray) -> pa.Array:
        """``YYYY-MM-DDTHH:MM:SSZ`` of epoch seconds."""
        secs = np.asarray(secs, dtype=np.int64)
        day, sod = np.divmod(secs, DAY)
        return _join(self.dates(day), "T", _take(self._times, sod), "Z")


def _write_text(path: Path, header: str | None, parts: Sequence[pa.Array | str], sep: str) -> int:
    """Write one line per row: the parts joined by ``sep``; returns the row count."""
    arrays = [p for p in parts if isinstance(p, pa.Array)]
    rows = len(arrays[0])
    with open(path, "wb") as fh:
        if header is not None:
            fh.write(header.encode("utf-8") + b"\n")
        for start in range(0, rows, _CHUNK):
            stop = min(rows, start + _CHUNK)
            sliced = [p.slice(start, stop - start) if isinstance(p, pa.Array) else p for p in parts]
            lines = pc.binary_join_element_wise(pc.binary_join_element_wise(*sliced, sep), "", "\n")
            if lines.null_count:
                raise AssertionError(f"{path.name}: a null value reached the text writer")
            offsets = np.frombuffer(
                lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4
            )
            data = lines.buffers()[2]
            if data is not None:
                fh.write(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
    return rows


def _write_truth(path: Path, person_idx: np.ndarray) -> None:
    """``row`` (1-based) and ``person_id`` (null where ``person_idx`` < 0)."""
    person_idx = np.asarray(person_idx, dtype=np.int64)
    table = pa.table(
        {
            "row": pa.array(np.arange(1, len(person_idx) + 1, dtype=np.int64)),
            "person_id": pa.array(person_idx + 1, mask=person_idx < 0),
        }
    )
    pq.write_table(table, path, compression="zstd")


# =============================================================================================
# persons
# =============================================================================================


@dataclass
class _People:
    """Everything known about the persons (index ``i`` is person_id ``i + 1``)."""

    n: int
    household: np.ndarray
    country: np.ndarray
    city: np.ndarray
    postal: pa.Array
    first: np.ndarray
    last: np.ndarray
    birth_day: np.ndarray
    email_kind: np.ndarray
    email: pa.Array  # canonical (lower-case, no spaces)
    email_local: pa.Array
    email_domain: pa.Array
    email_variants: pa.Array  # _N_EMAIL_VARIANTS * n
    has_phone: np.ndarray
    intl_phone: np.ndarray
    phone_e164: pa.Array  # "" where none
    phone_variants: pa.Array  # _N_PHONE_FORMATS * n, "" where none
    has_loyalty: np.ndarray
    loyalty_num: np.ndarray
    loyalty_id: pa.Array  # "" where none
    crm_num: np.ndarray
    crm_id: pa.Array
    consent: np.ndarray  # (n, 3) bool: email, sms, ads
    crm_updated: np.ndarray
    sd_a: np.ndarray
    sd_b: np.ndarray
    se_a: np.ndarray
    se_b: np.ndarray
    first_slug: pa.Array  # ASCII slug per FIRST_NAMES entry (for email addresses)
    last_slug: pa.Array
    updated: np.ndarray  # persons with a row in the updates file
    is_late: np.ndarray  # per person: their update row is a stale, late-arriving one

    def emails(self, rng: np.random.Generator, person: np.ndarray, vary: float) -> pa.Array:
        """The persons' emails, a share ``vary`` of them re-cased or padded with spaces."""
        k = len(person)
        variant = np.where(rng.random(k) < vary, rng.integers(1, _N_EMAIL_VARIANTS, size=k), 0)
        return _take(self.email_variants, variant * self.n + person)

    def phones(self, rng: np.random.Generator, person: np.ndarray) -> pa.Array:
        """The persons' phones, each row in a randomly chosen format ("" where none)."""
        fmt = _pick(rng, range(_N_PHONE_FORMATS), _PHONE_FORMAT_P, len(person))
        return _take(self.phone_variants, fmt * self.n + person)

    def broken_emails(self, rng: np.random.Generator, person: np.ndarray) -> pa.Array:
        """One broken email per person: ``x@``, ``first last@d``, ``@d`` or ``x@@d``."""
        local = _take(self.email_local, person)
        domain = _take(self.email_domain, person)
        first = _take(self.first_slug, self.first[person])
        last = _take(self.last_slug, self.last[person])
        forms = [
            _join(local, "@"),
            _join(first, " ", last, "@", domain),
            _join("@", domain),
            _join(local, "@@", domain),
        ]
        pick = rng.integers(len(forms), size=len(person))
        return _take(_concat(forms), pick * len(person) + np.arange(len(person)))


def _postal(rng: np.random.Generator, city: np.ndarray) -> pa.Array:
    """A postal code for each city index."""
    n = len(city)
    lo = np.array([c[3][0] if isinstance(c[3][0], int) else 0 for c in CITIES], dtype=np.int64)
    hi = np.array([c[3][1] if isinstance(c[3][0], int) else 0 for c in CITIES], dtype=np.int64)
    code = lo[city] + np.floor(rng.random(n) * (hi[city] - lo[city] + 1)).astype(np.int64)
    postal = _pad(code, 5)
    outward_vocab: list[str] = []
    start = np.zeros(len(CITIES), dtype=np.int64)
    count = np.zeros(len(CITIES), dtype=np.int64)
    for i, c in enumerate(CITIES):
        if isinstance(c[3][0], str):
            start[i], count[i] = len(outward_vocab), len(c[3])
            outward_vocab.extend(c[3])
    alpha = count[city] > 0
    idx = np.flatnonzero(alpha)
    if len(idx):
        ci = city[idx]
        out = _take(outward_vocab, start[ci] + rng.integers(0, 1 << 30, size=len(idx)) % count[ci])
        digit = _str(rng.integers(0, 10, size=len(idx)))
        gb_letters = "ABDEFGHJLNPQRSTUWXYZ"
        ca_letters = "ABCEGHJKLMNPRSTVWXYZ"
        gb = _join(
            out, " ", digit, _take(list(gb_letters), rng.integers(20, size=len(idx))),
            _take(list(gb_letters), rng.integers(20, size=len(idx))),
        )  # fmt: skip
        ca = _join(
            out, " ", digit, _take(list(ca_letters), rng.integers(20, size=len(idx))),
            _str(rng.integers(0, 10, size=len(idx))),
        )  # fmt: skip
        country = np.array([c[0] for c in CITIES])[ci]
        postal = _put(postal, idx, pc.if_else(pa.array(country == _CA), ca, gb))
    return postal


def _make_people(rng: np.random.Generator, n: int, clock: _Clock) -> _People:
    """Draw the persons: households, addresses, names, emails, phones, ids, consent."""
    ids = np.arange(n, dtype=np.int64)
    perm = rng.permutation(n)
    n_sd = round(n * SHARED_DEVICE_PERSONS / 2)
    n_se = round(n * SHARED_EMAIL_PERSONS / 2)
    n_junk = round(n * JUNK_EMAIL_PERSONS)
    if 2 * (n_sd + n_se) + n_junk > n:
        n_sd = n_se = n_junk = 0
    sd_a, sd_b = perm[0 : 2 * n_sd : 2], perm[1 : 2 * n_sd : 2]
    off = 2 * n_sd
    se_a, se_b = perm[off : off + 2 * n_se : 2], perm[off + 1 : off + 2 * n_se : 2]
    off += 2 * n_se
    junk = perm[off : off + n_junk]

    # The second member of a household copies address and last name from the first.
    src = ids.copy()
    src[sd_b], src[se_b] = sd_a, se_a
    household = src + 1

    country = _pick(rng, COUNTRIES, _COUNTRY_P, n)[src]
    city = np.zeros(n, dtype=np.int64)
    for c in range(len(COUNTRIES)):
        members = np.flatnonzero(country == c)
        options = [i for i, cc in enumerate(CITIES) if cc[0] == c]
        w = [CITIES[i][2] for i in options]
        city[members] = np.asarray(options)[_pick(rng, options, w, len(members))]
    city = city[src]
    postal = _take(_postal(rng, city), src)

    first = rng.integers(len(FIRST_NAMES), size=n)
    last = rng.integers(len(LAST_NAMES), size=n)[src]
    birth_day = clock.as_of_day - rng.integers(18 * 365 + 5, 85 * 365, size=n)
    first_slug = pa.array([_slug(x) for x in FIRST_NAMES])
    last_slug = pa.array([_slug(x) for x in LAST_NAMES])

    # --- emails: personal ones are unique after normalization ---
    fs, ls = _take(first_slug, first), _take(last_slug, last)
    fi = pc.utf8_slice_codeunits(fs, 0, 1)
    bases = [
        _join(fs, ".", ls), _join(fs, ls), _join(fi, ".", ls), _join(fs, "_", ls),
        _join(ls, ".", fs), fs,
    ]  # fmt: skip
    fmt = _pick(rng, bases, (0.35, 0.2, 0.15, 0.1, 0.1, 0.1), n)
    base = _take(_concat(bases), fmt * n + ids)
    digits = _pick(rng, range(5), (0.3, 0.1, 0.3, 0.15, 0.15), n)
    suffix = _number_suffix(rng, digits)
    dom_names = [d for c in range(len(COUNTRIES)) for d, _ in _EMAIL_DOMAINS[c]]
    dom_offset = np.cumsum([0] + [len(_EMAIL_DOMAINS[c]) for c in range(len(COUNTRIES))])
    junk_local, junk_domain = zip(*(e.split("@") for e in JUNK_EMAILS), strict=True)
    dom_vocab = pa.array(dom_names + list(SHARED_EMAIL_DOMAINS) + list(junk_domain))
    domain_idx = np.zeros(n, dtype=np.int64)
    for c in range(len(COUNTRIES)):
        members = np.flatnonzero(country == c)
        w = [p for _, p in _EMAIL_DOMAINS[c]]
        domain_idx[members] = dom_offset[c] + _pick(rng, w, w, len(members))
    domain = _take(dom_vocab, domain_idx)
    local = _join(base, suffix)
    email = _join(local, "@", domain)
    for extra in range(8):
        dup = np.flatnonzero(_duplicated(email))
        if len(dup) == 0:
            break
        more = _number_suffix(rng, np.full(len(dup), 4 + extra))
        if extra == 7:  # cannot collide: 11 digits, unique per person, longer than any other
            more = _join("9", _pad(dup, 10))
        local = _put(local, dup, _join(_take(base, dup), more))
        email = _put(email, dup, _join(_take(local, dup), "@", _take(domain, dup)))

    # shared households and junk addresses replace the personal address
    kind = np.zeros(n, dtype=np.int8)
    kind[se_a] = kind[se_b] = _SHARED
    kind[junk] = _JUNK
    hh_local = _join("the.", _take(last_slug, last[se_a]), "s", _str(np.arange(1, n_se + 1)))
    hh_domain = len(dom_names) + rng.integers(len(SHARED_EMAIL_DOMAINS), size=n_se)
    domain_idx[se_a] = domain_idx[se_b] = hh_domain
    junk_pick = rng.integers(len(JUNK_EMAILS), size=n_junk)
    domain_idx[junk] = len(dom_names) + len(SHARED_EMAIL_DOMAINS) + junk_pick
    src_local = ids.copy()
    src_local[se_a] = src_local[se_b] = n + np.arange(n_se)
    src_local[junk] = n + n_se + junk_pick
    local = _take(_concat([local, hh_local, pa.array(junk_local)]), src_local)
    domain = _take(dom_vocab, domain_idx)
    email = _join(local, "@", domain)
    title = pc.utf8_title(email)
    email_variants = _concat(
        [
            email, pc.utf8_upper(email), title, pc.utf8_capitalize(email), _join(" ", email),
            _join(email, "  "), _join(" ", title, " "),
        ]
    )  # fmt: skip

    # --- phones: unique per person ---
    intl = np.isin(country, (_GB, _FR, _DE))
    has_phone = (rng.random(n) < PHONE_RATE) | intl
    nanp = np.flatnonzero(has_phone & ~intl)
    area = np.zeros(len(nanp), dtype=np.int64)
    exch = np.zeros(len(nanp), dtype=np.int64)
    line = np.zeros(len(nanp), dtype=np.int64)
    space = len(_EXCHANGES) * 10_000
    for c, codes in ((_US, US_AREA_CODES), (_CA, CA_AREA_CODES)):
        members = np.flatnonzero(country[nanp] == c)
        u = rng.choice(len(codes) * space, size=len(members), replace=False)
        area[members] = np.asarray(codes)[u // space]
        exch[members] = _EXCHANGES[(u // 10_000) % len(_EXCHANGES)]
        line[members] = u % 10_000
    a, x, ln = _str(area), _str(exch), _pad(line, 4)
    variants = [
        _join("(", a, ") ", x, "-", ln), _join(a, "-", x, "-", ln), _join(a, ".", x, ".", ln),
        _join(a, x, ln), _join("+1 ", a, " ", x, " ", ln), _join("1-", a, "-", x, "-", ln),
        _join("+1", a, x, ln),
    ]  # fmt: skip
    intl_idx = np.flatnonzero(intl)
    spaced, compact = _intl_phones(rng, country[intl_idx])
    # person -> position in [NANP numbers, international numbers, ""]
    src = np.full(n, len(nanp) + len(intl_idx), dtype=np.int64)
    src[nanp] = np.arange(len(nanp))
    src[intl_idx] = len(nanp) + np.arange(len(intl_idx))
    blank = pa.array([""])
    e164 = _take(_concat([variants[6], compact, blank]), src)
    phone_variants = _concat(
        [
            _take(_concat([v, spaced if f % 2 == 0 else compact, blank]), src)
            for f, v in enumerate(variants)
        ]
    )

    # --- loyalty, CRM ids, consent ---
    has_loyalty = rng.random(n) < LOYALTY_RATE
    members = np.flatnonzero(has_loyalty)
    loyalty_num = np.zeros(n, dtype=np.int64)
    loyalty_num[members] = rng.permutation(len(members)) + 1
    width = max(7, len(str(len(members))))
    loyalty_id = pc.if_else(pa.array(has_loyalty), _join("L", _pad(loyalty_num, width)), "")
    crm_num = rng.permutation(n) + 1
    crm_id = _join("C", _pad(crm_num, max(8, len(str(n)))))
    consent = rng.random((n, 3)) < np.array([0.65, 0.35, 0.55])
    crm_updated = clock.as_of_s - rng.integers(30 * DAY, 3 * 365 * DAY, size=n)
    # persons with a row in the updates file: first the later changes, then the stale rows
    updated = rng.permutation(n)[: round(n * UPDATE_RATE) + round(n * LATE_RATE)]
    is_late = np.zeros(n, dtype=bool)
    is_late[updated[round(n * UPDATE_RATE) :]] = True

    return _People(
        n=n, household=household, country=country, city=city, postal=postal, first=first,
        last=last, birth_day=birth_day, email_kind=kind, email=email, email_local=local,
        email_domain=domain, email_variants=email_variants, has_phone=has_phone,
        intl_phone=intl, phone_e164=e164, phone_variants=phone_variants,
        has_loyalty=has_loyalty, loyalty_num=loyalty_num, loyalty_id=loyalty_id,
        crm_num=crm_num, crm_id=crm_id, consent=consent, crm_updated=crm_updated,
        sd_a=sd_a, sd_b=sd_b, se_a=se_a, se_b=se_b, first_slug=first_slug, last_slug=last_slug,
        updated=updated, is_late=is_late,
    )  # fmt: skip


def _number_suffix(rng: np.random.Generator, digits: np.ndarray) -> pa.Array:
    """Random numbers with the given digit counts as strings ("" for 0 digits)."""
    digits = np.asarray(digits, dtype=np.int64)
    lo = np.where(digits > 0, 10 ** np.maximum(digits - 1, 0), 0)
    hi = 10**digits
    value = lo + np.floor(rng.random(len(digits)) * (hi - lo)).astype(np.int64)
    return pc.if_else(pa.array(digits == 0), "", _str(value))


def _intl_phones(rng: np.random.Generator, country: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Unique GB/FR/DE numbers for the given countries: (spaced, E.164) strings."""
    k = len(country)
    spaced = _take(pa.array([""]), np.zeros(k, dtype=np.int64))
    compact = spaced
    for c, first, size in ((_GB, 70_000_000, 20_000_000), (_FR, 610_000_000, 29_000_000),
                           (_DE, 20_000_000, 80_000_000)):  # fmt: skip
        members = np.flatnonzero(country == c)
        sub = _str(first + rng.choice(size, size=len(members), replace=False))

        def cut(a: int, b: int, sub: pa.Array = sub) -> pa.Array:
            return pc.utf8_slice_codeunits(sub, a, b)

        if c == _GB:  # London: +44 20 7946 0123
            sp, co = _join("+44 20 ", cut(0, 4), " ", cut(4, 8)), _join("+4420", sub)
        elif c == _FR:  # mobile: +33 6 12 34 56 78
            sp = _join(
                "+33 ", cut(0, 1), " ", cut(1, 3), " ", cut(3, 5), " ", cut(5, 7), " ", cut(7, 9)
            )
            co = _join("+33", sub)
        else:  # Berlin: +49 30 90182012
            sp, co = _join("+49 30 ", sub), _join("+4930", sub)
        spaced, compact = _put(spaced, members, sp), _put(compact, members, co)
    return spaced, compact


# =============================================================================================
# malformed rows
# =============================================================================================


@dataclass(frozen=True)
class _DefectSpec:
    defect: str
    fields: tuple[str, ...]
    eligible: np.ndarray | None = None


def _choose_defects(
    rng: np.random.Generator,
    n_rows: int,
    specs: Sequence[_DefectSpec],
    rate: float,
    exclude: np.ndarray | None = None,
) -> list[tuple[np.ndarray, str, str]]:
    """Pick a share ``rate`` of the rows, spread evenly over ``specs``, one defect per row.

    Returns (sorted row indices, field, defect) groups.
    """
    total = _n_malformed(n_rows, rate, len(specs))
    taken = np.zeros(n_rows, dtype=bool) if exclude is None else exclude.copy()
    found: list[tuple[np.ndarray, str, str]] = []
    for k, spec in enumerate(specs):
        want = total // len(specs) + (k < total % len(specs))
        ok = ~taken if spec.eligible is None else spec.eligible & ~taken
        pool = np.flatnonzero(ok)
        want = min(want, len(pool))
        if want == 0:
            continue
        rows = np.sort(rng.choice(pool, size=want, replace=False))
        taken[rows] = True
        which = rng.integers(len(spec.fields), size=want)
        for fi, name in enumerate(spec.fields):
            r = rows[which == fi]
            if len(r):
                found.append((r, name, spec.defect))
    return found


def _malformed_list(found: Sequence[tuple[np.ndarray, str, str]]) -> tuple[MalformedRow, ...]:
    out = [MalformedRow(int(r) + 1, name, defect) for rows, name, defect in found for r in rows]
    return tuple(sorted(out, key=lambda m: m.row))


def _inject(
    rng: np.random.Generator,
    columns: dict[str, pa.Array],
    specs: Sequence[_DefectSpec],
    rate: float,
    person: np.ndarray,
    people: _People,
    *,
    timestamp_fields: Sequence[str] = (),
    unknown_types: Sequence[str] = (),
    exclude: np.ndarray | None = None,
) -> tuple[MalformedRow, ...]:
    """Give a share ``rate`` of the rows exactly one defect each, spread over ``specs``.

    ``columns`` (string arrays) are replaced in place; ``person`` is each row's person index.
    Returns the malformed rows sorted by row.
    """
    found = _choose_defects(rng, len(person), specs, rate, exclude)
    for r, name, defect in found:
        if defect == BAD_DATE:
            bad = BAD_TIMESTAMPS if name in timestamp_fields else BAD_DATES
            values = _take(bad, rng.integers(len(bad), size=len(r)))
        elif defect == BROKEN_EMAIL:
            values = people.broken_emails(rng, person[r])
        elif defect == BROKEN_PHONE:
            values = _take(BROKEN_PHONES, rng.integers(len(BROKEN_PHONES), size=len(r)))
        elif defect == NEGATIVE_TOTAL:
            values = _join("-", _take(columns[name], r))
        elif defect == MISSING_ID:
            values = _take(pa.array([""]), np.zeros(len(r), dtype=np.int64))
        elif defect == UNKNOWN_EVENT_TYPE:
            values = _take(unknown_types, rng.integers(len(unknown_types), size=len(r)))
        else:  # pragma: no cover - specs are internal
            raise AssertionError(defect)
        columns[name] = _put(columns[name], r, values)
    return _malformed_list(found)


# =============================================================================================
# files
# =============================================================================================


@dataclass
class _Written:
    file: SampleFile
    person: np.ndarray  # person index per row, -1 for none


def _crm_columns(
    rng: np.random.Generator,
    people: _People,
    clock: _Clock,
    person: np.ndarray,
    city: np.ndarray,
    postal: pa.Array,
    consent: np.ndarray,
    updated: np.ndarray,
) -> dict[str, pa.Array]:
    """The CRM columns for rows of the given persons with the given changeable values."""
    return {
        "crm_id": _take(people.crm_id, person),
        "email": people.emails(rng, person, 0.15),
        "phone": people.phones(rng, person),
        "first_name": _take(FIRST_NAMES, people.first[person]),
        "last_name": _take(LAST_NAMES, people.last[person]),
        "birth_date": clock.dates(people.birth_day[person]),
        "city": _take([c[1] for c in CITIES], city),
        "country": _take(COUNTRIES, people.country[person]),
        "postal_code": postal,
        "loyalty_id": _take(people.loyalty_id, person),
        "consent_email": _bool_str(consent[:, 0]),
        "consent_sms": _bool_str(consent[:, 1]),
        "consent_ads": _bool_str(consent[:, 2]),
        "updated_at": clock.timestamps(updated),
    }


def _crm_specs() -> list[_DefectSpec]:
    """The defects of the CRM files."""
    return [
        _DefectSpec(BAD_DATE, ("birth_date", "updated_at")),
        _DefectSpec(BROKEN_EMAIL, ("email",)),
        _DefectSpec(BROKEN_PHONE, ("phone",)),
        _DefectSpec(MISSING_ID, ("crm_id",)),
    ]


def _write_csv(out: Path, name: str, names: Sequence[str], columns: dict[str, pa.Array]) -> int:
    """Write ``out/name`` with a header row; returns the row count."""
    return _write_text(out / name, ",".join(names), [columns[c] for c in names], ",")


def _crm_base(rng: np.random.Generator, people: _People, clock: _Clock, out: Path) -> _Written:
    """``crm_customers.csv``: one row per person, sorted by crm_id."""
    person = np.argsort(people.crm_num)
    cols = _crm_columns(
        rng, people, clock, person, people.city[person], _take(people.postal, person),
        people.consent[person], people.crm_updated[person],
    )  # fmt: skip
    # the row a late-arriving record must lose against stays clean
    bad = _inject(
        rng, cols, _crm_specs(), MALFORMED_RATE, person, people,
        timestamp_fields=("updated_at",), exclude=people.is_late[person],
    )  # fmt: skip
    rows = _write_csv(out, "crm_customers.csv", CRM_COLUMNS, cols)
    return _Written(SampleFile("crm_customers.csv", "crm_customers", "csv", rows,
                               "truth/crm_customers.parquet", bad), person)  # fmt: skip


def _crm_updates(
    rng: np.random.Generator, people: _People, clock: _Clock, out: Path
) -> tuple[_Written, int]:
    """``crm_customers_updates.csv``: later changes, plus stale (late-arriving) rows.

    Returns the file and the number of late-arriving rows.
    """
    person = people.updated
    late = people.is_late[person]
    k = len(person)
    # each row changes the city (and postal code) or flips one consent flag
    city = people.city[person].copy()
    consent = people.consent[person].copy()
    moves = rng.random(k) < 0.5
    country_of_city = np.array([c[0] for c in CITIES])
    start = np.array([np.flatnonzero(country_of_city == c)[0] for c in range(len(COUNTRIES))])
    count = np.bincount(country_of_city, minlength=len(COUNTRIES))
    cc = people.country[person]
    step = 1 + rng.integers(0, 1 << 30, size=k) % np.maximum(count[cc] - 1, 1)
    new_city = start[cc] + (city - start[cc] + step) % count[cc]
    city = np.where(moves, new_city, city)
    postal = pc.if_else(pa.array(moves), _postal(rng, city), _take(people.postal, person))
    flip = rng.integers(3, size=k)
    consent[np.flatnonzero(~moves), flip[~moves]] ^= True
    base = people.crm_updated[person]
    later = base + 3600 + np.floor(rng.random(k) * (clock.as_of_s - 7200 - base)).astype(np.int64)
    older = base - rng.integers(DAY, 365 * DAY, size=k)
    updated = np.where(late, older, later)
    order = rng.permutation(k)
    person, city, consent, updated, late = (
        person[order],
        city[order],
        consent[order],
        updated[order],
        late[order],
    )
    postal = _take(postal, order)
    cols = _crm_columns(rng, people, clock, person, city, postal, consent, updated)
    bad = _inject(
        rng, cols, _crm_specs(), MALFORMED_RATE, person, people,
        timestamp_fields=("updated_at",), exclude=late,
    )  # fmt: skip
    rows = _write_csv(out, "crm_customers_updates.csv", CRM_COLUMNS, cols)
    f = SampleFile("crm_customers_updates.csv", "crm_customers_updates", "csv", rows,
                   "truth/crm_customers_updates.parquet", bad)  # fmt: skip
    return _Written(f, person), int(late.sum())


def _loyalty(rng: np.random.Generator, people: _People, clock: _Clock, out: Path) -> _Written:
    """``loyalty_members.csv``: one row per member, sorted by loyalty_id."""
    members = np.flatnonzero(people.has_loyalty)
    person = members[np.argsort(people.loyalty_num[members])]
    k = len(person)
    points = np.floor(rng.gamma(1.1, 6_000.0, size=k)).astype(np.int64)
    tier = np.searchsorted(np.asarray(_TIER_POINTS), points, side="right")
    enrolled = clock.as_of_day - rng.integers(1, 8 * 365, size=k)
    start = enrolled * DAY + 9 * 3600
    updated = start + np.floor(rng.random(k) * (clock.as_of_s - 60 - start)).astype(np.int64)
    cols = {
        "loyalty_id": _take(people.loyalty_id, person),
        "email": people.emails(rng, person, 0.30),
        "tier": _take(TIERS, tier),
        "points": _str(points),
        "enrolled_at": clock.dates(enrolled),
        "updated_at": clock.timestamps(updated),
    }
    specs = [
        _DefectSpec(BAD_DATE, ("enrolled_at", "updated_at")),
        _DefectSpec(BROKEN_EMAIL, ("email",)),
        _DefectSpec(MISSING_ID, ("loyalty_id",)),
    ]
    bad = _inject(
        rng, cols, specs, MALFORMED_RATE, person, people, timestamp_fields=("updated_at",)
    )
    rows = _write_csv(out, "loyalty_members.csv", LOYALTY_COLUMNS, cols)
    return _Written(SampleFile("loyalty_members.csv", "loyalty_members", "csv", rows,
                               "truth/loyalty_members.parquet", bad), person)  # fmt: skip


# identification mix of POS orders: (uses loyalty, uses email, uses phone), share
_POS_MIX = (
    ((True, False, False), 0.45), ((False, True, False), 0.15), ((False, False, True), 0.10),
    ((True, True, False), 0.04), ((True, False, True), 0.03), ((False, True, True), 0.03),
    ((False, False, False), 0.20),
)  # fmt: skip


def _pos(rng: np.random.Generator, people: _People, clock: _Clock, out: Path) -> _Written:
    """``pos_orders.csv``: in-store orders over the window, sorted by timestamp."""
    m = round(people.n * POS_PER_PERSON)
    cat = _pick(rng, _POS_MIX, [p for _, p in _POS_MIX], m)
    anon = len(_POS_MIX) - 1
    person = np.full(m, -1, dtype=np.int64)
    weight = _weights(rng, people.n, 0.8)
    has = (people.has_loyalty, people.email_kind == _PERSONAL, people.has_phone)
    for c, (uses, _) in enumerate(_POS_MIX[:-1]):
        rows = np.flatnonzero(cat == c)
        ok = np.ones(people.n, dtype=bool)
        for flag, have in zip(uses, has, strict=True):
            if flag:
                ok &= have
        pool = np.flatnonzero(ok)
        if len(pool) == 0:
            cat[rows] = anon
            continue
        w = weight[pool]
        person[rows] = rng.choice(pool, size=len(rows), p=w / w.sum())
    uses = np.array([u for u, _ in _POS_MIX], dtype=bool)[cat]
    day = rng.integers(2, WINDOW_DAYS + 2, size=m)
    ts = clock.as_of_s - day * DAY + 14 * 3600 + rng.integers(0, 12 * 3600, size=m)
    order = np.argsort(ts, kind="stable")
    ts, person, uses = ts[order], person[order], uses[order]
    who = np.maximum(person, 0)
    items = 1 + np.minimum(rng.poisson(1.6, size=m), 29)
    cents = np.maximum(np.rint(items * rng.lognormal(3.0, 0.6, size=m) * 100), 99).astype(np.int64)
    store_w = 1.0 / (np.arange(STORE_COUNT) + 3.0)
    store = _pick(rng, range(STORE_COUNT), store_w, m) + 1
    empty = _take(pa.array([""]), np.zeros(m, dtype=np.int64))
    cols = {
        "order_id": _join("PO", _pad(np.arange(1, m + 1), max(9, len(str(m))))),
        "timestamp": clock.timestamps(ts),
        "loyalty_id": pc.if_else(pa.array(uses[:, 0]), _take(people.loyalty_id, who), empty),
        "email": pc.if_else(pa.array(uses[:, 1]), people.emails(rng, who, 0.25), empty),
        "phone": pc.if_else(pa.array(uses[:, 2]), people.phones(rng, who), empty),
        "store_id": _join("S", _pad(store, 3)),
        "total": _join(_str(cents // 100), ".", _pad(cents % 100, 2)),
        "items": _str(items),
    }
    specs = [
        _DefectSpec(BAD_DATE, ("timestamp",)),
        _DefectSpec(BROKEN_EMAIL, ("email",), uses[:, 1]),
        _DefectSpec(BROKEN_PHONE, ("phone",), uses[:, 2]),
        _DefectSpec(NEGATIVE_TOTAL, ("total",)),
    ]
    bad = _inject(rng, cols, specs, MALFORMED_RATE, who, people, timestamp_fields=("timestamp",))
    rows = _write_csv(out, "pos_orders.csv", POS_COLUMNS, cols)
    return _Written(SampleFile("pos_orders.csv", "pos_orders", "csv", rows,
                               "truth/pos_orders.parquet", bad), person)  # fmt: skip


@dataclass
class _Online:
    ecid: pa.Array  # one string per ECID
    pair_person: np.ndarray  # (person, ecid) ownership pairs, sorted by person
    pair_ecid: np.ndarray
    logs_in: np.ndarray  # per person


def _ecid_strings(rng: np.random.Generator, k: int) -> pa.Array:
    """``k`` distinct 38-digit cookie ids."""
    hi = rng.integers(10**18, 9 * 10**18, size=k, dtype=np.int64)
    lo = rng.integers(0, 10**19, size=k, dtype=np.uint64)
    ecid = _join(_str(hi), _pad(lo, 19))
    for _ in range(8):
        dup = np.flatnonzero(_duplicated(ecid))
        if len(dup) == 0:
            return ecid
        fresh = _join(_str(rng.integers(10**18, 9 * 10**18, size=len(dup))), _take(ecid, dup))
        ecid = _put(ecid, dup, pc.utf8_slice_codeunits(fresh, 0, 38))
    raise AssertionError("could not draw distinct ECIDs")  # pragma: no cover


def _web(
    rng: np.random.Generator, people: _People, clock: _Clock, out: Path
) -> tuple[_Written, _Online]:
    """``web_events.parquet``: sessions on ECIDs, some logged in, sorted by timestamp.

    A logged-in session starts with a ``login`` event and all its events carry the crm_id;
    shared-device households have one ECID that both members log in on.
    """
    n = people.n
    sd = np.concatenate([people.sd_a, people.sd_b])
    is_sd = np.zeros(n, dtype=bool)
    is_sd[sd] = True
    p_online = max(0.0, (ONLINE_RATE * n - len(sd)) / max(n - len(sd), 1))
    online = (rng.random(n) < p_online) | is_sd
    rest = online & ~is_sd
    p_login = min(1.0, max(0.0, (LOGIN_RATE * n - len(sd)) / max(int(rest.sum()), 1)))
    logs_in = (online & (rng.random(n) < p_login)) | is_sd

    # ECIDs: personal ones, then one shared per shared-device household
    n_ecid = np.where(online, 1 + _pick(rng, range(3), (0.6, 0.3, 0.1), n), 0)
    n_personal = n_ecid - is_sd
    owner, rank = _segments(n_personal)
    n_sd = len(people.sd_a)
    e_personal = len(owner)
    owner_a = np.concatenate([owner, people.sd_a])
    owner_b = np.concatenate([np.full(e_personal, -1), people.sd_b])
    login_ecid = np.concatenate(
        [
            logs_in[owner] & (((rank == 0) & ~is_sd[owner]) | (rng.random(e_personal) < 0.5)),
            np.ones(n_sd, dtype=bool),
        ]
    )
    n_e = len(owner_a)
    ecid = _ecid_strings(rng, n_e)

    # sessions
    act = _weights(rng, n, 0.6)
    lam = 0.15
    sessions = np.concatenate(
        [
            1 + np.minimum(rng.poisson(lam * act[owner]), 60),
            2 + np.minimum(rng.poisson(lam * (act[people.sd_a] + act[people.sd_b])), 60),
        ]
    )
    s_ecid, s_rank = _segments(sessions)
    shared = s_ecid >= e_personal
    s_person = owner_a[s_ecid].copy()
    use_b = shared & ((s_rank == 1) | ((s_rank > 1) & (rng.random(len(s_ecid)) < 0.5)))
    s_person[use_b] = owner_b[s_ecid[use_b]]
    forced = np.where(shared, s_rank < 2, s_rank == 0)
    logged = login_ecid[s_ecid] & (forced | (rng.random(len(s_ecid)) < 0.6))
    n_s = len(s_ecid)
    # sessions start up to 6 h before as_of (a session lasts under 6 h), so the last day
    # has web activity for 24-hour (streaming) segments
    start = clock.as_of_s - rng.integers(6 * 3600, WINDOW_DAYS * DAY, size=n_s)
    n_login = logged.astype(np.int64)
    n_pv = 1 + np.minimum(rng.poisson(1.0, size=n_s), 10)
    n_pd = np.minimum(rng.poisson(1.4, size=n_s), 10)
    n_ac = rng.binomial(n_pd, 0.3)
    n_pu = ((n_ac > 0) & (rng.random(n_s) < 0.4)).astype(np.int64)
    size = n_login + n_pv + n_pd + n_ac + n_pu

    # events, in session order: [login] page_view+ product_view* add_to_cart* [purchase]
    ev_s, pos = _segments(size)
    t1 = n_login[ev_s]
    t2 = t1 + n_pv[ev_s]
    t3 = t2 + n_pd[ev_s]
    t4 = t3 + n_ac[ev_s]
    etype = (pos >= t1).astype(np.int8) + (pos >= t2) + (pos >= t3) + (pos >= t4)
    n_ev = len(ev_s)
    gap = (5 + np.minimum(rng.exponential(40.0, size=n_ev), 600)).astype(np.int64)
    gap[pos == 0] = 0
    cum = np.cumsum(gap)
    first = np.cumsum(size) - size
    ts_us = (start[ev_s] + cum - cum[first[ev_s]]) * 1_000_000 + rng.integers(
        0, 1_000_000, size=n_ev
    )
    popularity = 1.0 / (np.arange(SKU_COUNT) + 10.0) ** 0.9
    sku = np.full(n_ev, -1, dtype=np.int64)
    prod = etype == 2
    sku[prod] = _pick(rng, range(SKU_COUNT), popularity, int(prod.sum()))
    cart = np.flatnonzero(etype == 3)
    sku[cart] = sku[cart - n_pd[ev_s[cart]]]
    buy = np.flatnonzero(etype == 4)
    sku[buy] = sku[buy - n_ac[ev_s[buy]] - n_pd[ev_s[buy]]]
    price_cents = np.floor(rng.lognormal(3.3, 0.7, size=SKU_COUNT)).astype(np.int64) * 100 + 99
    amount = np.full(n_ev, np.nan)
    amount[buy] = np.round(price_cents[sku[buy]] * rng.integers(1, 4, size=len(buy)) / 100, 2)
    pages, page_w = zip(*PAGES, strict=True)
    special = len(pages)  # then login, cart, checkout, then one page per SKU
    page = np.select([etype == 0, etype == 3], [special, special + 1], special + 2)
    page[etype == 1] = _pick(rng, pages, page_w, int((etype == 1).sum()))
    page[prod] = special + 3 + sku[prod]
    ev_person = s_person[ev_s]
    ev_logged = logged[ev_s]
    ev_ecid = s_ecid[ev_s]

    order = np.argsort(ts_us, kind="stable")
    ts_us, etype, sku, amount, page, ev_person, ev_logged, ev_ecid = (
        a[order] for a in (ts_us, etype, sku, amount, page, ev_person, ev_logged, ev_ecid)
    )

    sku_vocab = _join("SKU-", _str(np.arange(10_001, 10_001 + SKU_COUNT)))
    page_vocab = _concat(
        [
            pa.array(list(pages)),
            pa.array(["/account/login", "/cart", "/checkout/confirmation"]),
            _join("/products/", sku_vocab),
        ]
    )
    specs = [
        _DefectSpec(MISSING_ID, ("ecid",)),
        _DefectSpec(UNKNOWN_EVENT_TYPE, ("event_type",), etype == 1),
    ]
    found = _choose_defects(rng, n_ev, specs, MALFORMED_EVENT_RATE)
    no_ecid = np.zeros(n_ev, dtype=bool)
    etype = etype.astype(np.int64)
    for rows, _, defect in found:
        if defect == MISSING_ID:
            no_ecid[rows] = True
        else:
            unknown = rng.integers(len(UNKNOWN_WEB_EVENT_TYPES), size=len(rows))
            etype[rows] = len(WEB_EVENT_TYPES) + unknown
    bad = _malformed_list(found)
    table = pa.table(
        {
            "event_id": _join("E", _pad(np.arange(1, n_ev + 1), max(10, len(str(n_ev))))),
            "timestamp": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
            "event_type": _take(WEB_EVENT_TYPES + UNKNOWN_WEB_EVENT_TYPES, etype),
            "ecid": pc.take(ecid, pa.array(ev_ecid, mask=no_ecid)),
            "crm_id": pc.take(people.crm_id, pa.array(ev_person, mask=~ev_logged)),
            "page": _take(page_vocab, page),
            "sku": pc.take(sku_vocab, pa.array(sku, mask=sku < 0)),
            "amount": pa.array(amount, mask=np.isnan(amount)),
        }
    )
    pq.write_table(
        table,
        out / "web_events.parquet",
        compression="zstd",
        row_group_size=1 << 20,
        use_dictionary=["event_type", "crm_id", "page", "sku"],
    )
    f = SampleFile("web_events.parquet", "web_events", "parquet", n_ev,
                   "truth/web_events.parquet", bad)  # fmt: skip

    pair_person = np.concatenate([owner_a, people.sd_b])
    pair_ecid = np.concatenate([np.arange(n_e), np.arange(e_personal, n_e)])
    by = np.lexsort((pair_ecid, pair_person))
    online_info = _Online(ecid, pair_person[by], pair_ecid[by], logs_in)
    return _Written(f, ev_person), online_info


def _campaigns(clock: _Clock) -> tuple[np.ndarray, pa.Array]:
    """Campaign send times (every 3.5 days over the window) and their ids."""
    first = clock.as_of_s - WINDOW_DAYS * DAY
    send = first + (np.arange(int((WINDOW_DAYS - 2) / 3.5)) * 3.5 * DAY).astype(np.int64)
    send = (send // DAY) * DAY + 15 * 3600
    years = pc.year(pa.array(send * 1000, pa.timestamp("ms"))).to_numpy()
    number = np.zeros(len(send), dtype=np.int64)
    for y in np.unique(years):
        members = np.flatnonzero(years == y)
        number[members] = np.arange(1, len(members) + 1)
    ids = _join("CMP-", _str(years), "-", _pad(number, 3))
    return send, ids


def _email(rng: np.random.Generator, people: _People, clock: _Clock, out: Path) -> _Written:
    """``email_engagement.jsonl``: campaign engagement of consenting persons, by timestamp."""
    eligible = np.flatnonzero(people.consent[:, 0] & (people.email_kind == _PERSONAL))
    m = round(people.n * EMAIL_EVENTS_PER_PERSON) if len(eligible) else 0
    w = _weights(rng, people.n, 0.7)[eligible]
    person = rng.choice(eligible, size=m, p=w / w.sum()) if m else np.zeros(0, dtype=np.int64)
    send, campaign_ids = _campaigns(clock)
    campaign = rng.integers(len(send), size=m)
    delay = np.minimum(rng.exponential(8 * 3600.0, size=m), 14 * DAY).astype(np.int64)
    ts = np.minimum(send[campaign] + 60 + delay, clock.as_of_s - 1)
    etype = _pick(rng, EMAIL_EVENT_TYPES, (0.72, 0.26, 0.02), m)
    unsub = np.flatnonzero(etype == 2)
    _, first = np.unique(person[unsub], return_index=True)
    again = np.ones(len(unsub), dtype=bool)
    again[first] = False
    etype[unsub[again]] = 0  # at most one unsubscribe per person
    order = np.argsort(ts, kind="stable")
    person, ts, etype, campaign = person[order], ts[order], etype[order], campaign[order]
    cols = {
        "email": people.emails(rng, person, 0.30),
        "timestamp": clock.timestamps(ts),
        "event_type": _take(EMAIL_EVENT_TYPES, etype),
        "campaign_id": _take(campaign_ids, campaign),
    }
    specs = [
        _DefectSpec(BAD_DATE, ("timestamp",)),
        _DefectSpec(BROKEN_EMAIL, ("email",)),
        _DefectSpec(UNKNOWN_EVENT_TYPE, ("event_type",)),
    ]
    bad = _inject(
        rng, cols, specs, MALFORMED_EVENT_RATE, person, people,
        timestamp_fields=("timestamp",), unknown_types=UNKNOWN_EMAIL_EVENT_TYPES,
    )  # fmt: skip
    parts: list[pa.Array | str] = []
    for i, name in enumerate(EMAIL_COLUMNS):
        parts += ["{" if i == 0 else ", ", f'"{name}": "', cols[name], '"']
    parts.append("}")
    _write_text(out / "email_engagement.jsonl", None, parts, "")
    return _Written(SampleFile("email_engagement.jsonl", "email_engagement", "jsonl", m,
                               "truth/email_engagement.parquet", bad), person)  # fmt: skip


def _write_persons(truth: Path, people: _People, online: _Online) -> None:
    """``truth/persons.parquet`` and ``truth/households.parquet``."""
    n = people.n
    counts = np.bincount(online.pair_person, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    ecids = pa.ListArray.from_arrays(pa.array(offsets), _take(online.ecid, online.pair_ecid))
    persons = pa.table(
        {
            "person_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "household_id": pa.array(people.household),
            "crm_id": people.crm_id,
            "loyalty_id": pc.if_else(
                pa.array(people.has_loyalty), people.loyalty_id, pa.scalar(None, pa.string())
            ),
            "email_normalized": people.email,
            "email_kind": _take(_EMAIL_KINDS, people.email_kind),
            "phone_e164": pc.if_else(
                pa.array(people.has_phone), people.phone_e164, pa.scalar(None, pa.string())
            ),
            "country": _take(COUNTRIES, people.country),
            "ecids": ecids,
            "logs_in": pa.array(online.logs_in),
        }
    )
    pq.write_table(persons, truth / "persons.parquet", compression="zstd")
    # households with a planted trap
    n_sd, n_se = len(people.sd_a), len(people.se_a)
    shared_ecid_of_a = _shared_ecids(people, online)
    households = pa.table(
        {
            "household_id": pa.array(
                np.concatenate([people.sd_a, people.se_a]).astype(np.int64) + 1
            ),
            "trap": _take(("shared_device", "shared_email"), np.repeat([0, 1], [n_sd, n_se])),
            "person_id_a": pa.array(np.concatenate([people.sd_a, people.se_a]) + 1),
            "person_id_b": pa.array(np.concatenate([people.sd_b, people.se_b]) + 1),
            "shared_value": _concat([shared_ecid_of_a, _take(people.email, people.se_a)]),
        }
    )
    pq.write_table(households, truth / "households.parquet", compression="zstd")


def _shared_ecids(people: _People, online: _Online) -> pa.Array:
    """The shared ECID of each shared-device household (the last ECIDs of the table)."""
    n_e = len(online.ecid)
    n_sd = len(people.sd_a)
    return online.ecid.slice(n_e - n_sd, n_sd)


# =============================================================================================
# entry point
# =============================================================================================


def _check_args(out: str | Path, persons: int, seed: int, as_of: datetime) -> Path:
    """Validate the arguments of :func:`generate`; returns the output folder."""
    if isinstance(persons, bool) or not isinstance(persons, int | np.integer):
        raise ConfigError(f"persons must be an integer, got {persons!r}")
    if persons < 1:
        raise ConfigError(f"persons must be at least 1, got {persons}")
    if persons > MAX_PERSONS:
        raise ConfigError(f"persons must be at most {MAX_PERSONS:,}, got {persons:,}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(as_of, datetime) or as_of.tzinfo is None:
        raise ConfigError(f"as_of must be a timezone-aware datetime, got {as_of!r}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder")
    return path


def generate(
    out: str | Path,
    persons: int = 10_000,
    seed: int = 42,
    as_of: datetime = DEFAULT_AS_OF,
    progress: Callable[[str], None] | None = None,
) -> SampleManifest:
    """Write the sample brand into ``out`` and return its manifest.

    Files: ``crm_customers.csv``, ``crm_customers_updates.csv``, ``loyalty_members.csv``,
    ``pos_orders.csv``, ``web_events.parquet``, ``email_engagement.jsonl``, ``truth/`` (one
    ``<stem>.parquet`` per data file with ``row`` and ``person_id``, plus ``persons.parquet``
    and ``households.parquet``) and ``manifest.json``. Existing files of those names are
    replaced.

    Args:
        out: the folder to write (created if missing).
        persons: the number of persons (1 to :data:`MAX_PERSONS`).
        seed: the random seed; the same arguments give byte-identical data files.
        as_of: the evaluation time (timezone-aware); every timestamp lies before it.
        progress: called with a short message after each step.

    Returns:
        The manifest, also written to ``out/manifest.json``.

    Raises:
        ConfigError: an argument is invalid.
    """
    path = _check_args(out, persons, seed, as_of)
    persons, seed = int(persons), int(seed)
    as_of = as_of.astimezone(UTC)
    path.mkdir(parents=True, exist_ok=True)
    truth = path / "truth"
    truth.mkdir(exist_ok=True)
    clock = _Clock(as_of)
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    rngs = {
        name: np.random.Generator(np.random.PCG64(child))
        for name, child in zip(_STREAMS, children, strict=True)
    }

    def step(message: str) -> None:
        log.info("sample: %s", message)
        if progress is not None:
            progress(message)

    log.info("sample: generating %d persons (seed %d, as_of %s) into %s",
             persons, seed, _iso(as_of), path)  # fmt: skip
    people = _make_people(rngs["people"], persons, clock)
    step(f"persons: {persons:,}")
    written: list[_Written] = []
    crm = _crm_base(rngs["crm"], people, clock, path)
    written.append(crm)
    step(f"crm_customers.csv: {crm.file.rows:,} rows")
    updates, n_late = _crm_updates(rngs["updates"], people, clock, path)
    written.append(updates)
    step(f"crm_customers_updates.csv: {updates.file.rows:,} rows")
    for name, make in (("loyalty", _loyalty), ("pos", _pos)):
        w = make(rngs[name], people, clock, path)
        written.append(w)
        step(f"{w.file.name}: {w.file.rows:,} rows")
    web, online = _web(rngs["web"], people, clock, path)
    written.append(web)
    step(f"web_events.parquet: {web.file.rows:,} rows")
    email = _email(rngs["email"], people, clock, path)
    written.append(email)
    step(f"email_engagement.jsonl: {email.file.rows:,} rows")

    for w in written:
        _write_truth(path / w.file.truth, w.person)
    _write_persons(truth, people, online)
    step("truth written")

    crm_bad_email = np.array(
        [m.row - 1 for m in crm.file.malformed if m.field == "email"], dtype=np.int64
    )
    junk_rows = people.email_kind[crm.person] == _JUNK
    junk_rows[crm_bad_email] = False
    pos = written[3]
    traps = TrapCounts(
        shared_device_households=len(people.sd_a),
        shared_email_households=len(people.se_a),
        junk_email_rows=int(junk_rows.sum()),
        anonymous_orders=int((pos.person < 0).sum()),
        late_arriving_rows=n_late,
        international_phones=int(people.intl_phone.sum()),
    )
    manifest = SampleManifest(
        seed=seed,
        persons=persons,
        as_of=as_of,
        generator_version=GENERATOR_VERSION,
        files=tuple(w.file for w in written),
        traps=traps,
    )
    manifest.write(path)
    step("manifest.json written")
    return manifest
