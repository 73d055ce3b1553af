"""Stable profile ids across builds, vectorized.

Rules, for every new cluster (label) given the profile id each identity had before:

* an old id goes to the new cluster holding most of its identities (ties: smallest label);
* a cluster claiming several old ids keeps the oldest (smallest) and the others retire,
  pointing to it (a merge);
* a cluster claiming none gets a new id: ``split`` when some of its identities had an old
  id (that went elsewhere), ``new`` otherwise; new ids are numbered in the order of each
  cluster's first identity, after the largest id ever given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Assignment:
    """Profile id per identity, and what changed."""

    profile_id: np.ndarray  # int64 per identity
    retired: np.ndarray  # old ids merged away
    survivor: np.ndarray  # the id each retired id now points to
    new: int
    split: int


def assign_profile_ids(labels: np.ndarray, prev_pid: np.ndarray, max_prev: int = 0) -> Assignment:
    """Assign ids to clusters.

    Args:
        labels: cluster label per identity (any non-negative ints).
        prev_pid: the identity's profile id in the previous build, ``-1`` when new.
        max_prev: the largest profile id ever given (new ids start after it).
    """
    n = len(labels)
    ulabels, first_idx, inv = _dense(labels)
    nl = len(ulabels)
    had = prev_pid >= 0
    pl, pp = inv[had], prev_pid[had]
    kept = np.full(nl, -1, dtype=np.int64)
    label_had_old = np.zeros(nl, dtype=bool)
    label_had_old[pl] = True
    retired = survivor = np.zeros(0, dtype=np.int64)
    if len(pp):
        # the common case, in linear time: a label whose identities all had one old id that
        # no other label holds keeps it. Only the rest (labels holding several old ids, old
        # ids spread over several labels) go through the counting below; every identity of
        # such a label or id is in it, so its counts are complete.
        big = np.iinfo(np.int64).max
        lab_lo, lab_hi = np.full(nl, big, dtype=np.int64), np.full(nl, -1, dtype=np.int64)
        np.minimum.at(lab_lo, pl, pp)
        np.maximum.at(lab_hi, pl, pp)
        top = int(pp.max()) + 1
        pid_lo, pid_hi = np.full(top, big, dtype=np.int64), np.full(top, -1, dtype=np.int64)
        np.minimum.at(pid_lo, pp, pl)
        np.maximum.at(pid_hi, pp, pl)
        mixed = (lab_lo != lab_hi)[pl] | (pid_lo != pid_hi)[pp]
        clean = label_had_old & (lab_lo == lab_hi)
        clean[clean] = pid_lo[lab_lo[clean]] == pid_hi[lab_lo[clean]]
        kept[clean] = lab_lo[clean]
        if mixed.any():
            retired, survivor = _contested(pl[mixed], pp[mixed], nl, kept)
    fresh = np.flatnonzero(kept < 0)
    fresh = fresh[np.argsort(first_idx[fresh], kind="stable")]
    start = max(int(max_prev), int(prev_pid.max()) if n and had.any() else 0)
    kept[fresh] = start + 1 + np.arange(len(fresh), dtype=np.int64)
    split = int(label_had_old[fresh].sum())
    return Assignment(kept[inv], retired, survivor, len(fresh) - split, split)


def _contested(
    pl: np.ndarray, pp: np.ndarray, nl: int, kept: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and old ids that do not pair up one to one: each old id goes to the label
    holding most of its identities (ties: smallest label), each label keeps the smallest
    id it claims (set in ``kept``), the others retire. Returns (retired, survivor)."""
    key = pp.astype(np.int64) * nl + pl  # one int64 per (old id, label) pair
    ukey, counts = np.unique(key, return_counts=True)
    pid_of_pair, lab_of_pair = ukey // nl, ukey % nl
    order = np.lexsort((lab_of_pair, -counts, pid_of_pair))
    pid_s, lab_s = pid_of_pair[order], lab_of_pair[order]
    firsts = np.r_[True, pid_s[1:] != pid_s[:-1]]
    claim_pid, claim_lab = pid_s[firsts], lab_s[firsts]
    o2 = np.lexsort((claim_pid, claim_lab))
    cl, cp = claim_lab[o2], claim_pid[o2]
    f2 = np.r_[True, cl[1:] != cl[:-1]]
    kept[cl[f2]] = cp[f2]
    retired_mask = kept[claim_lab] != claim_pid
    return claim_pid[retired_mask], kept[claim_lab[retired_mask]]


def _dense(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(labels, return_index=True, return_inverse=True)``, in linear time when
    the labels are small non-negative integers (the clustering's are below 2n)."""
    n = len(labels)
    top = int(labels.max()) + 1 if n else 0
    if not n or int(labels.min()) < 0 or top > 4 * n + 1024:
        return np.unique(labels, return_index=True, return_inverse=True)
    present = np.zeros(top, dtype=bool)
    present[labels] = True
    ulabels = np.flatnonzero(present)
    remap = np.cumsum(present, dtype=np.int64) - 1
    inv = remap[labels]
    first_idx = np.full(len(ulabels), n, dtype=np.int64)
    np.minimum.at(first_idx, inv, np.arange(n, dtype=np.int64))
    return ulabels.astype(labels.dtype, copy=False), first_idx, inv


__all__ = ["Assignment", "assign_profile_ids"]
