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
