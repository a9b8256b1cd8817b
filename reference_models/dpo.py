"""AV-DPO preference-pair mining: the ranking rule of JavisDiT++'s DPO data preparation.

Original: JavisVerse/JavisDiT ``tools/datasets/process_dpo.py::rank_dpo_pair``. For every prompt
there are several candidates (N generations and, by default, the ground truth). Each candidate has
per-sample reward metrics, grouped into three dimensions:

* ``video``: visual quality, motion quality, ImageBind text-video;
* ``audio``: audio quality, ImageBind text-audio;
* ``audio_video``: ImageBind audio-video, DeSync (lower is better).

The rule:

1. z-normalise every metric over the **whole table** (all prompts; sample std, ddof = 1);
2. negate the lower-is-better metrics (after normalising, as the original);
3. score each dimension per candidate: the mean of its metrics (``"micro"``), or the mean of the
   metrics' ranks over the table (``"macro"``);
4. per prompt, candidate i dominates j when it is higher in **every** dimension; prompts without
   a dominating pair are skipped; among several dominating pairs the one with the largest summed
   margin wins (the first in row-major order on ties).

The rewards are passed in — a table of rows or a callable — so this module needs no metric code;
the suite's CLI feeds it its own per-sample metrics. Pure Python + numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np

__all__ = ["ORIGINAL_GROUPS", "ORIGINAL_LOWER_IS_BETTER", "PreferencePair", "rank_pairs", "score_candidates",
           "write_pair_bench"]

#: the original's reward groups (column names of its metric table)
ORIGINAL_GROUPS: dict[str, tuple[str, ...]] = {
    "video": ("visual_quality", "motion_quality", "ib_tv"),
    "audio": ("audio_quality", "ib_ta"),
    "audio_video": ("ib_av", "desync_scores"),
}
ORIGINAL_LOWER_IS_BETTER: frozenset[str] = frozenset({"desync_scores"})


@dataclass(frozen=True)
class PreferencePair:
    """One mined pair: ``chosen`` and ``rejected`` are candidate ids of the same ``prompt``;
    ``scores_*`` the per-dimension scores (after normalisation), ``margin`` their summed difference."""

    prompt: str
    chosen: Any
    rejected: Any
    scores_chosen: dict[str, float]
    scores_rejected: dict[str, float]
    margin: float


def score_candidates(candidates: Iterable[Mapping[str, Any]], reward: Callable[[Mapping[str, Any]], Mapping[str, float]]
                     ) -> list[dict[str, Any]]:
    """Rows ``{**candidate, **reward(candidate)}``: the metric table :func:`rank_pairs` reads."""
    return [{**c, **dict(reward(c))} for c in candidates]


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1 = smallest), ties share their mean rank (pandas ``rank()``)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def rank_pairs(table: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[str]] = ORIGINAL_GROUPS,
               lower_is_better: Iterable[str] = ORIGINAL_LOWER_IS_BETTER, prompt_key: str = "prompt",
               id_key: str = "id", normalize: bool = True, mode: Literal["micro", "macro"] = "micro",
               include: Callable[[Mapping[str, Any]], bool] | None = None) -> list[PreferencePair]:
    """Mine Pareto-dominant (chosen, rejected) pairs, at most one per prompt.

    Args:
        table: one row per candidate with ``prompt_key``, ``id_key`` and every metric of ``groups``.
        groups: dimension -> metric names; lower_is_better: metrics whose sign is flipped.
        normalize: z-normalise each metric over the table first (the original does).
        mode: ``"micro"`` (mean of the normalised metrics) or ``"macro"`` (mean of their ranks).
        include: keep only rows for which it is True, applied **after** normalisation (the
            original's ``del_gt`` drops the ground truth this way).
    Returns:
        pairs in the order prompts first appear in ``table``.
    Raises:
        ValueError: a row lacks a metric, a metric is not finite, or a group is empty.
    """
    if not groups or any(len(ms) == 0 for ms in groups.values()):
        raise ValueError(f"reward groups must be non-empty, got {dict(groups)}")
    if mode not in ("micro", "macro"):
        raise ValueError(f"mode must be 'micro' or 'macro', got {mode!r}")
    metrics = sorted({m for ms in groups.values() for m in ms})
    rows = list(table)
    values: dict[str, np.ndarray] = {}
    for m in metrics:
        col = []
        for i, r in enumerate(rows):
            if m not in r:
                raise ValueError(f"reward table row {i} ({r.get(id_key)!r}) lacks metric {m!r}; expected {metrics}")
            col.append(float(r[m]))
        x = np.asarray(col, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"reward metric {m!r} has non-finite values")
        if normalize:
            sd = x.std(ddof=1) if len(x) > 1 else 0.0
            x = (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)
        if m in set(lower_is_better):
            x = -x
        values[m] = x
    dims = list(groups)
    score = np.zeros((len(rows), len(dims)))
    for d, name in enumerate(dims):
        cols = [values[m] if mode == "micro" else _ranks(values[m]) for m in groups[name]]
        score[:, d] = np.mean(cols, axis=0)
    keep = [i for i, r in enumerate(rows) if include is None or include(r)]
    by_prompt: dict[str, list[int]] = {}
    for i in keep:
        by_prompt.setdefault(str(rows[i][prompt_key]), []).append(i)
    pairs = []
    for prompt, idx in by_prompt.items():
        g = score[idx]                                               # (n, dims)
        dom = (g[:, None, :] > g[None, :, :]).all(axis=-1)           # dom[i, j]: i beats j everywhere
        if not dom.any():
            continue
        cand = np.argwhere(dom)
        diffs = (g[cand[:, 0]] - g[cand[:, 1]]).sum(axis=1)
        ci, ri = cand[int(diffs.argmax())]
        a, b = idx[int(ci)], idx[int(ri)]
        pairs.append(PreferencePair(prompt, rows[a][id_key], rows[b][id_key],
                                    {d: float(score[a, k]) for k, d in enumerate(dims)},
                                    {d: float(score[b, k]) for k, d in enumerate(dims)}, float(diffs.max())))
    return pairs


# ------------------------------------------------------------------------------ pair benches on disk

MANIFEST_COLUMNS = ("text", "audio_text", "path", "audio_path", "cat0_ind", "cat1_ind", "cat2_ind", "cat3_ind",
                    "cat4_ind", "video_text")


def write_pair_bench(pairs: Sequence[PreferencePair], clips: Mapping[Any, Mapping[str, Any]],
                     out_dir: str | Path) -> Path:
    """Write mined pairs as two row-aligned benches in ``out_dir``.

    ``manifest.csv`` holds the chosen clips (so ``out_dir`` is a bench the trainer reads),
    ``rejected.csv`` the rejected ones in the same row order, ``pairs.json`` the pairs with their
    dimension scores. ``clips[id]`` gives ``text``, ``audio_text``, ``video_text``, ``labels`` (5 ints)
    and the ``video`` / ``audio`` file paths of each candidate; paths are written relative to
    ``out_dir``. Train on it with ``javisbench train javisdit++ --stage dpo --init SFT_CKPT
    --data OUT_DIR --option dpo_rejected=OUT_DIR/rejected.csv``.
    """
    import csv
    import json
    import os

    if not pairs:
        raise ValueError("no preference pairs to write (no candidate dominated another in every reward group)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def row(cid: Any) -> list[str]:
        c = clips[cid]
        rel = lambda p: os.path.relpath(Path(p).resolve(), out.resolve()) if p else ""  # noqa: E731
        labels = list(c.get("labels", (-1,) * 5))
        return [c["text"], c.get("audio_text") or c["text"], rel(c["video"]), rel(c.get("audio")),
                *["" if int(v) < 0 else str(int(v)) for v in labels], c.get("video_text") or c["text"]]

    for name, pick in (("manifest.csv", "chosen"), ("rejected.csv", "rejected")):
        with open(out / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(MANIFEST_COLUMNS)
            for p in pairs:
                w.writerow(row(getattr(p, pick)))
    (out / "pairs.json").write_text(json.dumps([{"prompt": p.prompt, "chosen": str(p.chosen), "rejected": str(p.rejected),
                                                 "scores_chosen": p.scores_chosen, "scores_rejected": p.scores_rejected,
                                                 "margin": p.margin} for p in pairs], indent=1) + "\n", encoding="utf-8")
    return out
