"""DeSync: grouping of Synchformer segments and aggregation of the predicted offsets.

Synchformer classifies the audio-video offset of a 14-segment group (4.8 s; segments are 16
frames at 25 fps with step 8, and 0.64 s of audio with step 0.32 s) into 21 classes on the grid
``linspace(-2, 2, 21)`` seconds.  The original (spec §4.10):

* splits a clip's S segments into ``ceil(S / 14)`` groups; a first group shorter than 14 (always
  the case at 4 s, S = 11) is padded by appending copies of its own leading segments (11 ->
  0..10, 0, 1, 2); a later incomplete group uses the last 14 segments instead;
* keeps ``|grid[argmax(logits)]|`` per group and averages per sample;
* but builds the per-sample values with a ``reshape(B, -1)`` of a list appended group-major
  within each batch of B samples (bug 8b-19): per-sample values are scrambled when a clip has
  more than one group, while the overall mean is right.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np

# Offset classes of Synchformer, seconds: -2.0, -1.8, ..., 2.0 (float32, as torch.linspace).
OFFSET_GRID: np.ndarray = np.linspace(-2.0, 2.0, 21, dtype=np.float32)
GROUP_SEGMENTS = 14
OFFICIAL_BATCH_SIZE = 8   # the original DeSync DataLoader batch


def n_segments(n: int, seg_len: int, step: int) -> int:
    """Number of segments of ``seg_len`` with hop ``step`` that fit in ``n``: ``(n - seg_len) // step + 1``.

    Example:
        >>> n_segments(100, 16, 8), n_segments(64000, 10240, 5120), n_segments(200, 16, 8)
        (11, 11, 24)
    """
    n, seg_len, step = int(n), int(seg_len), int(step)
    if seg_len < 1 or step < 1:
        raise ValueError(f"seg_len and step must be >= 1, got {seg_len} and {step}")
    if n < seg_len:
        raise ValueError(f"a stream of {n} frames/samples is shorter than one segment of {seg_len}")
    return (n - seg_len) // step + 1


def official_groups(n_segments: int, group: int = GROUP_SEGMENTS) -> list[list[int]]:
    """Segment indices of each Synchformer group, as the original forms them.

    ``ceil(S / group)`` groups; group g covers ``g*group .. g*group + group - 1``.  A first group
    shorter than ``group`` is padded with its own leading segments (cyclically: ``i % S``; for
    ``S >= group / 2`` this is exactly the original's append of segments ``0 .. group-S-1``; shorter
    clips never occur at the official 4 s length); a later incomplete group is replaced by the
    last ``group`` segments.

    Args:
        n_segments: S >= 1.
        group: segments per group (14).

    Returns:
        A list of ``ceil(S / group)`` lists of ``group`` indices each.

    Example:
        >>> official_groups(11)
        [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2]]
        >>> [g[0] for g in official_groups(24)], official_groups(24)[1][-1]
        ([0, 10], 23)
    """
    s, group = int(n_segments), int(group)
    if s < 1 or group < 1:
        raise ValueError(f"need at least one segment and a positive group size, got S={s}, group={group}")
    out: list[list[int]] = []
    for g in range(math.ceil(s / group)):
        start = g * group
        if start + group <= s:
            out.append(list(range(start, start + group)))
        elif g == 0:
            out.append([i % s for i in range(group)])
        else:
            out.append(list(range(s - group, s)))
    return out


def offsets_from_logits(logits: np.ndarray, grid: np.ndarray = OFFSET_GRID) -> np.ndarray:
    """Absolute offsets (s) of each group: ``|grid[argmax(logits, -1)]|``.

    A pure function of the logits' values: ties go to the first (most negative) class, and the
    memory layout of ``logits`` plays no part.  Whatever rounding decides a near-tie happens
    upstream, in the model that produced the logits.

    Args:
        logits: (..., 21) class logits.
        grid: (21,) offset grid.

    Returns:
        (...) float32 absolute offsets.

    Example:
        >>> offsets_from_logits(np.eye(21)[[0, 10, 13]]).astype(float).round(3).tolist()
        [2.0, 0.0, 0.6]
    """
    z = np.asarray(logits)
    g = np.asarray(grid)
    if z.shape[-1] != g.shape[0]:
        raise ValueError(f"logits have {z.shape[-1]} classes, the offset grid has {g.shape[0]}")
    return np.abs(g[np.argmax(z, axis=-1)])


def to_official_order(per_sample: Sequence[np.ndarray], batch_size: int = OFFICIAL_BATCH_SIZE) -> np.ndarray:
    """Flatten per-sample group offsets into the order the original appends them.

    Samples are taken in consecutive batches of ``batch_size``; inside a batch, group-major:
    group 0 of every sample, then group 1 of every sample that has one, and so on.

    Example:
        >>> to_official_order([np.array([1.0, 2.0]), np.array([3.0, 4.0])]).tolist()
        [1.0, 3.0, 2.0, 4.0]
    """
    out: list[float] = []
    rows = [np.asarray(p, np.float64).ravel() for p in per_sample]
    for b0 in range(0, len(rows), int(batch_size)):
        batch = rows[b0:b0 + int(batch_size)]
        for g in range(max((len(r) for r in batch), default=0)):
            out.extend(float(r[g]) for r in batch if g < len(r))
    return np.asarray(out, np.float64)


def _split_sample_major(flat: np.ndarray, groups: list[int]) -> list[np.ndarray]:
    ends = np.cumsum(groups)
    return [flat[e - g:e] for e, g in zip(ends, groups)]


def _split_official(flat: np.ndarray, groups: list[int], batch_size: int) -> list[np.ndarray]:
    """Inverse of :func:`to_official_order`: per-sample group offsets from the official flat order."""
    per: list[list[float]] = [[] for _ in groups]
    pos = 0
    for b0 in range(0, len(groups), batch_size):
        members = list(range(b0, min(b0 + batch_size, len(groups))))
        for g in range(max(groups[i] for i in members)):
            for i in members:
                if g < groups[i]:
                    per[i].append(float(flat[pos]))
                    pos += 1
    return [np.asarray(p, np.float64) for p in per]


def assign_group_offsets(
    group_abs_offsets: np.ndarray,
    groups_per_sample: Sequence[int],
    official_bug: bool,
    order: Literal["sample", "official"] = "sample",
    batch_size: int = OFFICIAL_BATCH_SIZE,
) -> np.ndarray:
    """Per-sample DeSync values from per-group absolute offsets.

    Correct rule (``official_bug=False``): each sample's value is the mean of its own groups.

    Official rule (``official_bug=True``, bug 8b-19): within each batch of ``batch_size``
    consecutive samples (B of them, all with the same G groups, as in the original where every
    clip is padded to the same length), the group-major list ``[o(s0,g0), o(s1,g0), ..., o(s0,g1),
    ...]`` is reshaped to (B, G) row-major and each row is averaged, so sample b receives entries
    ``b*G .. b*G + G - 1`` of that list.  With one group per sample both rules agree.

    Args:
        group_abs_offsets: flat |offset| values of every group of every sample, either
            sample-major (``order="sample"``: all groups of sample 0, then sample 1, ...) or in the
            original's append order (``order="official"``, see :func:`to_official_order`).
        groups_per_sample: number of groups of each sample, in sample order.
        official_bug: reproduce the original's scrambled assignment.
        order: layout of ``group_abs_offsets``.
        batch_size: the original's DeSync batch size (8), which delimits the reshape.

    Returns:
        (N,) float64 per-sample values (means accumulated in float64).

    Raises:
        ValueError: the counts do not add up, a sample has no group, or (official rule) the
            samples of one batch have different numbers of groups.

    Example:
        >>> flat = np.array([0.6, 0.6, 0.2, 0.2])      # group-major: (A,g0) (B,g0) (A,g1) (B,g1)
        >>> assign_group_offsets(flat, [2, 2], official_bug=True, order="official").round(6).tolist()
        [0.6, 0.2]
        >>> assign_group_offsets(flat, [2, 2], official_bug=False, order="official").round(6).tolist()
        [0.4, 0.4]
    """
    flat = np.asarray(group_abs_offsets, np.float64).ravel()
    groups = [int(g) for g in groups_per_sample]
    if any(g < 1 for g in groups):
        raise ValueError(f"every sample needs at least one group, got groups_per_sample={groups}")
    if sum(groups) != flat.size:
        raise ValueError(f"{flat.size} group offsets given, but groups_per_sample adds up to {sum(groups)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    if order == "sample":
        per = _split_sample_major(flat, groups)
    elif order == "official":
        per = _split_official(flat, groups, batch_size)
    else:
        raise ValueError(f"order must be 'sample' or 'official', got {order!r}")
    if not official_bug:
        return np.asarray([p.mean() for p in per], np.float64)

    out = np.empty(len(groups), np.float64)
    for b0 in range(0, len(groups), batch_size):
        members = list(range(b0, min(b0 + batch_size, len(groups))))
        g_set = {groups[i] for i in members}
        if len(g_set) != 1:
            raise ValueError(
                f"official DeSync assignment needs the same number of groups for every sample of a batch; samples "
                f"{members[0]}..{members[-1]} have {sorted(g_set)} (the original pads every clip to max_audio_len_s)"
            )
        g = g_set.pop()
        batch_list = np.asarray([per[i][j] for j in range(g) for i in members], np.float64)  # group-major
        out[members[0]:members[-1] + 1] = batch_list.reshape(len(members), g).mean(axis=1)
    return out
