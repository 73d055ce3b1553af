"""The sample brand end to end: every file ingests, and the quarantine holds exactly the
rows the generator broke on purpose (same row, same field), and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import Workspace
from workbench.sample import SampleManifest, generate
from workbench.sample.brand import SAMPLE_DATASETS, ingest, register


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleManifest]:
    d = tmp_path_factory.mktemp("sample")
    return d, generate(d, persons=3000, seed=7)


@pytest.fixture(scope="module")
def loaded(sample, tmp_path_factory):  # type: ignore[no-untyped-def]
    d, _ = sample
    ws = Workspace.create(tmp_path_factory.mktemp("w") / "ws")
    register(ws)
    results = ingest(ws, d)
    yield ws, results
    ws.close()


def test_every_sample_file_is_ingested(loaded, sample) -> None:  # type: ignore[no-untyped-def]
    _, results = loaded
    _, manifest = sample
    files = [f for d in SAMPLE_DATASETS for f in d.files]
    assert [Path(r.batch.source).name for r in results] == files
    for r in results:
        b = r.batch
        m = manifest.file(Path(b.source).name)
        assert b.status == "success"
        assert b.rows_read == m.rows
        assert b.rows_read == b.rows_accepted + b.rows_rejected
        assert b.rows_rejected == len(m.malformed)


def test_quarantine_is_exactly_the_broken_rows(loaded, sample) -> None:  # type: ignore[no-untyped-def]
    ws, results = loaded
    _, manifest = sample
    for r in results:
        b = r.batch
        m = manifest.file(Path(b.source).name)
        expected = {(x.row, x.field) for x in m.malformed}
        q = ws.datasets.quarantine(b.dataset, b.id).to_pylist()
        got = {(x["row"], x["field"]) for x in q}
        assert got == expected, (
            f"{m.name}: extra {sorted(got - expected)[:5]}, missing {sorted(expected - got)[:5]}"
        )
        assert len(q) == len(expected)  # one defect per broken row


def test_normalized_identities_in_the_lake(loaded) -> None:  # type: ignore[no-untyped-def]
    ws, _ = loaded
    t = ws.sql(
        "SELECT count(*) FILTER (WHERE email <> lower(trim(email))) AS bad_email, "
        "count(*) FILTER (WHERE phone IS NOT NULL AND NOT regexp_full_match(phone, '\\+[1-9][0-9]{6,14}')) AS bad_phone, "
        "count(*) FILTER (WHERE phone IS NOT NULL) AS phones, count(*) AS n FROM crm_customers"
    ).to_pylist()[0]
    assert t["bad_email"] == 0 and t["bad_phone"] == 0
    assert t["phones"] > 0.8 * t["n"]
    # the same person's phone, written in different formats, lands as one E.164 value
    dup = ws.sql(
        "SELECT count(*) AS n FROM (SELECT phone FROM crm_customers WHERE _batch_id = 1 AND phone IS NOT NULL GROUP BY phone HAVING count(DISTINCT crm_id) > 1)"
    )
    assert dup.column("n").to_pylist() == [0]
