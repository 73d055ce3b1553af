"""Stable profile id assignment (keep, merge, split, new) on hand-made cases."""

from __future__ import annotations

import numpy as np

from workbench.identity.stable import assign_profile_ids


def a(x):  # type: ignore[no-untyped-def]
    return np.array(x, dtype=np.int64)


def test_first_build_numbers_clusters_in_order_of_first_identity() -> None:
    r = assign_profile_ids(a([5, 5, 2, 9, 2]), a([-1] * 5))
    assert r.profile_id.tolist() == [1, 1, 2, 3, 2]
    assert (r.new, r.split, len(r.retired)) == (3, 0, 0)


def test_unchanged_clusters_keep_their_ids() -> None:
    r = assign_profile_ids(a([0, 0, 1]), a([7, 7, 3]), max_prev=7)
    assert r.profile_id.tolist() == [7, 7, 3]
    assert r.new == 0 and len(r.retired) == 0


def test_merge_keeps_the_older_id() -> None:
    r = assign_profile_ids(a([0, 0, 0, 1]), a([4, 9, -1, -1]), max_prev=9)
    assert r.profile_id.tolist() == [4, 4, 4, 10]
    assert r.retired.tolist() == [9] and r.survivor.tolist() == [4]
    assert r.new == 1


def test_split_largest_part_keeps_the_id_and_ids_are_never_reused() -> None:
    r = assign_profile_ids(a([0, 0, 1]), a([6, 6, 6]), max_prev=12)
    assert r.profile_id.tolist() == [6, 6, 13]
    assert r.split == 1 and r.new == 0


def test_tie_goes_to_the_smallest_label() -> None:
    r = assign_profile_ids(a([3, 8]), a([5, 5]), max_prev=5)
    assert r.profile_id.tolist() == [5, 6]


def _rules(labels: list[int], prev: list[int], max_prev: int) -> tuple[list[int], dict[int, int]]:
    """The module's rules in plain Python, one identity at a time (the reference)."""
    from collections import Counter

    members: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        members.setdefault(lab, []).append(i)
    holders: dict[int, Counter[int]] = {}
    for i, p in enumerate(prev):
        if p >= 0:
            holders.setdefault(p, Counter())[labels[i]] += 1
    claims: dict[int, list[int]] = {}
    for p, c in holders.items():  # most identities, ties: smallest label
        best = min(c, key=lambda lab: (-c[lab], lab))
        claims.setdefault(best, []).append(p)
    pid = {lab: min(ps) for lab, ps in claims.items()}
    retired = {p: pid[lab] for lab, ps in claims.items() for p in ps if p != pid[lab]}
    nxt = max([max_prev, *prev, 0]) + 1
    for lab in sorted(members, key=lambda lab: members[lab][0]):
        if lab not in pid:
            pid[lab], nxt = nxt, nxt + 1
    return [pid[lab] for lab in labels], retired


def test_random_cases_follow_the_rules() -> None:
    """The linear-time common case and the counting of contested ids together give what the
    rules say, on random merges, splits and moves."""
    rng = np.random.default_rng(7)
    for _ in range(2000):
        n = int(rng.integers(0, 40))
        labels = rng.integers(0, n // 2 + 1, n) * int(rng.integers(1, 4))
        prev = rng.integers(-1, n // 3 + 2, n)
        if rng.random() < 0.3:  # mostly unchanged: the common case
            prev = np.where(rng.random(n) < 0.9, labels + 1, prev)
        max_prev = int(rng.integers(0, 50))
        r = assign_profile_ids(labels, prev, max_prev)
        want, retired = _rules(labels.tolist(), prev.tolist(), max_prev)
        assert r.profile_id.tolist() == want, (labels, prev)
        assert dict(zip(r.retired.tolist(), r.survivor.tolist(), strict=True)) == retired
