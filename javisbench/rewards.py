"""Per-sample rewards for AV-DPO (the original's ``av-reward`` mode) and preference-pair ranking.

``javisbench rewards SAMPLES --bench B --out rewards.csv`` scores every candidate clip with the
reward metrics of JavisDiT++'s DPO data preparation and writes one CSV row per candidate:

* ``prompt_id`` (the manifest row the candidate answers), ``candidate``, ``sample_id``, ``text``,
  ``video``, ``audio``;
* the rewards ``visual_quality``, ``motion_quality``, ``audio_quality``, ``ib_tv``, ``ib_ta``,
  ``ib_av`` and ``neg_desync`` (= −DeSync, so that higher is better everywhere);
* the group z-scores ``z_video``, ``z_audio``, ``z_audio_video``: each reward z-normalised over
  the whole table (sample std, ddof 1), then averaged within its group (video: visual and motion
  quality, ib_tv; audio: audio quality, ib_ta; audio-video: ib_av, −DeSync).

A reward whose encoder cannot run (weights or package missing) is left out with the reason; the
groups use the rewards that exist.

Candidates (several per prompt): files ``sample_{i:04d}_{k}.mp4`` (+ ``.wav``) in the samples
folder are candidate ``k`` of manifest row ``i``; or a ``candidate`` column in the manifest makes
every row a candidate of the prompt in its ``text`` (and ``audio_text``) column, read from
``sample_{j:04d}.mp4`` as usual; otherwise each row is a single candidate ``0``.

``javisbench rank-pairs rewards.csv --out pairs.jsonl`` applies the original's ranking rule
(:func:`reference_models.dpo.rank_pairs`): per prompt, among candidates, the pair where the chosen
one is higher than the rejected one in **every** group, with the largest summed margin; prompts
without such a pair give none.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

#: reward column -> (metric key, sign)
REWARDS: dict[str, tuple[str, float]] = {
    "visual_quality": ("visual_quality", 1.0), "motion_quality": ("motion_quality", 1.0),
    "audio_quality": ("audio_quality", 1.0), "ib_tv": ("ib_tv", 1.0), "ib_ta": ("ib_ta", 1.0),
    "ib_av": ("ib_av", 1.0), "neg_desync": ("desync", -1.0),
}
#: the original's reward groups (``process_dpo.py``), DeSync as −DeSync
GROUPS: dict[str, tuple[str, ...]] = {
    "video": ("visual_quality", "motion_quality", "ib_tv"),
    "audio": ("audio_quality", "ib_ta"),
    "audio_video": ("ib_av", "neg_desync"),
}
ID_COLUMNS = ("prompt_id", "candidate", "sample_id", "text", "video", "audio")
_CAND_RE = re.compile(r"sample_(\d{4,})_([A-Za-z0-9-]+)\.mp4$")


def zscore(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` with the sample std (ddof 1); zeros when the std is 0 or n < 2.

    Example:
        >>> zscore(np.array([1.0, 2.0, 3.0])).tolist()
        [-1.0, 0.0, 1.0]
    """
    x = np.asarray(x, np.float64)
    sd = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def group_scores(table: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, np.ndarray]:
    """``z_<group>`` per row: the mean over the group's present ``columns`` of each column
    z-normalised over the rows (the scores :func:`reference_models.dpo.rank_pairs` compares)."""
    z = {c: zscore(np.array([float(r[c]) for r in table])) for c in columns}
    out = {}
    for g, cols in GROUPS.items():
        have = [c for c in cols if c in z]
        if have:
            out[f"z_{g}"] = np.mean([z[c] for c in have], axis=0)
    return out


# ---------------------------------------------------------------------------------------------
# candidates
# ---------------------------------------------------------------------------------------------
def _candidate_manifest(bench: Path, samples: Path, tmp: Path) -> tuple[Path, list[dict[str, str]]] | None:
    """A manifest with one row per ``sample_{i:04d}_{k}.mp4`` candidate (``pred_video_path`` set),
    and per row its prompt row and candidate; None when the folder holds no such files."""
    from javisbench.manifest import load_manifest

    found: dict[int, list[tuple[str, Path]]] = {}
    for p in sorted(samples.iterdir()):
        m = _CAND_RE.match(p.name)
        if m:
            found.setdefault(int(m.group(1)), []).append((m.group(2), p))
    if not found:
        return None
    man = load_manifest(bench)
    beyond = sorted(i for i in found if i >= len(man.rows))
    if beyond:
        raise ValueError(f"{samples}: candidate files for row {beyond[0]} but {bench} has {len(man.rows)} rows "
                         f"(expected sample_{{i:04d}}_{{k}}.mp4 with i < {len(man.rows)})")
    cols = [c for c in man.columns if c not in ("id", "pred_video_path", "pred_audio_path")]
    out_rows, meta = [], []
    for r in man.rows:
        for k, video in sorted(found.get(r.index, []), key=lambda t: (len(t[0]), t[0])):
            wav = video.with_suffix(".wav")
            out_rows.append([r.raw[c] for c in cols] + [str(video.resolve()), str(wav.resolve()) if wav.exists() else ""])
            meta.append({"prompt_id": r.sample_id, "candidate": k, "text": r.text, "video": str(video),
                         "audio": str(wav) if wav.exists() else ""})
    path = tmp / f"{man.name}-candidates.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols + ["pred_video_path", "pred_audio_path"])
        w.writerows(out_rows)
    return path, meta


def compute_rewards(samples: str | os.PathLike, bench: str | os.PathLike, encoders: Mapping[str, Any] | None = None,
                    **options: Any) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
    """Reward rows (see the module doc), skipped rewards (column -> reason) and failed candidates
    (sample id -> reason).  ``options`` go to :func:`javisbench.api.evaluate`."""
    from javisbench.api import evaluate
    from javisbench.manifest import load_manifest

    samples, bench = Path(samples), Path(bench)
    if not samples.is_dir():
        raise ValueError(f"samples folder {samples} does not exist")
    metrics = sorted({m for m, _ in REWARDS.values()})
    with tempfile.TemporaryDirectory(prefix="javisbench-rewards-") as tmp:
        cand = _candidate_manifest(bench, samples, Path(tmp))
        if cand is not None:
            man_path, meta = cand
            r = evaluate(None, bench=man_path, metrics=metrics, encoders=encoders, **options)
        else:
            man = load_manifest(bench)
            r = evaluate(samples, bench=bench, metrics=metrics, encoders=encoders, **options)
            by_text = "candidate" in man.columns
            first: dict[tuple[str, str], str] = {}
            meta = []
            for row in man.rows:
                pid = first.setdefault((row.text, row.audio_text), row.sample_id) if by_text else row.sample_id
                wav = samples / f"{row.sample_id}.wav"
                meta.append({"prompt_id": pid, "candidate": row.raw.get("candidate", "0").strip() if by_text else "0",
                             "text": row.text, "video": str(samples / f"{row.sample_id}.mp4"),
                             "audio": str(wav) if wav.exists() else ""})
    skipped = {c: r.skipped[m] for c, (m, _) in REWARDS.items() if m in r.skipped}
    present = [c for c, (m, _) in REWARDS.items() if m not in r.skipped]
    rows, failed = [], {}
    for sid, info in zip(r.sample_ids, meta):
        row: dict[str, Any] = {"sample_id": sid, **info}
        vals = r.per_sample.get(sid, {})
        for c in present:
            m, sign = REWARDS[c]
            v = vals.get(m)
            row[c] = float("nan") if v is None else sign * float(v)
        if any(not math.isfinite(row[c]) for c in present):
            failed[sid] = "; ".join(f"{st}: {msg}" for st, msg in r.failures.get(sid, {}).items()) or "no value"
        rows.append(row)
    ok = [row for row in rows if row["sample_id"] not in failed]
    if ok and present:
        for g, z in group_scores(ok, present).items():
            for row, v in zip(ok, z):
                row[g] = float(v)
    return rows, skipped, failed


def write_rewards(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """The rewards CSV (atomic): id columns, reward columns, z columns; empty cells for NaN."""
    from javisbench.files import atomic_open

    present = [c for c in REWARDS if any(c in r for r in rows)]
    zs = [f"z_{g}" for g in GROUPS if any(f"z_{g}" in r for r in rows)]
    cols = [*ID_COLUMNS, *present, *zs]

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if not math.isfinite(v) else repr(v)
        return "" if v is None else str(v)

    with atomic_open(path, "w", suffix=".csv") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([cell(r.get(c)) for c in cols])
    return Path(path)


# ---------------------------------------------------------------------------------------------
# pairs
# ---------------------------------------------------------------------------------------------
def read_rewards(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a rewards CSV (reward columns as floats, NaN where empty) and the reward columns.

    Raises:
        ValueError: no such file, no ``prompt_id`` / ``sample_id`` column, no reward column, or a
            value that is not a number (naming the line and column).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"rewards file {path} does not exist (write one with `javisbench rewards`)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for need in ("prompt_id", "sample_id"):
            if need not in cols:
                raise ValueError(f"{path}: no {need!r} column; got {cols} (expected a `javisbench rewards` CSV)")
        present = [c for c in REWARDS if c in cols]
        if not present:
            raise ValueError(f"{path}: no reward column; expected some of {', '.join(REWARDS)}")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row: dict[str, Any] = dict(raw)
            for c in present:
                v = (raw.get(c) or "").strip()
                try:
                    row[c] = float(v) if v else float("nan")
                except ValueError:
                    raise ValueError(f"{path} line {line}: {c} = {v!r} is not a number") from None
            rows.append(row)
    return rows, present


def rank_reward_pairs(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], mode: str = "micro"
                      ) -> tuple[list[dict[str, Any]], list[str]]:
    """Chosen/rejected pairs (JSON-ready dicts, prompt order) and the sample ids left out because
    a reward is missing.  The rule is :func:`reference_models.dpo.rank_pairs` on the groups of
    :data:`GROUPS` restricted to ``columns`` (all higher-is-better: DeSync is stored negated)."""
    from reference_models.dpo import rank_pairs

    complete = [r for r in rows if all(math.isfinite(float(r[c])) for c in columns)]
    left_out = [str(r["sample_id"]) for r in rows if r not in complete]
    groups = {g: tuple(c for c in cols if c in columns) for g, cols in GROUPS.items()}
    groups = {g: cols for g, cols in groups.items() if cols}
    by_id = {str(r["sample_id"]): r for r in complete}
    pairs = rank_pairs(complete, groups=groups, lower_is_better=(), prompt_key="prompt_id", id_key="sample_id",
                       mode=mode)  # type: ignore[arg-type]
    out = []
    for p in pairs:
        c, rj = by_id[str(p.chosen)], by_id[str(p.rejected)]
        out.append({"prompt_id": p.prompt, "text": c.get("text", ""), "chosen": p.chosen, "rejected": p.rejected,
                    "chosen_candidate": c.get("candidate"), "rejected_candidate": rj.get("candidate"),
                    "chosen_video": c.get("video"), "rejected_video": rj.get("video"),
                    "chosen_audio": c.get("audio"), "rejected_audio": rj.get("audio"),
                    "scores_chosen": p.scores_chosen, "scores_rejected": p.scores_rejected, "margin": p.margin})
    return out, left_out


def write_pairs(pairs: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """One JSON object per line (atomic)."""
    from javisbench.files import atomic_open

    with atomic_open(path, "w", suffix=".jsonl") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False, sort_keys=False) + "\n")
    return Path(path)


def main_rewards(samples: str, bench: str, out: str, progress: str = "auto", **options: Any) -> int:
    rows, skipped, failed = compute_rewards(samples, bench, progress=progress, **options)
    for c, why in skipped.items():
        print(f"{c}: {why}", file=sys.stderr)
    if len(skipped) == len(REWARDS):
        raise ValueError("no reward could be computed (every reward metric was skipped; reasons above)")
    for sid, why in failed.items():
        print(f"{sid}: no reward ({why})", file=sys.stderr)
    write_rewards(rows, out)
    n_prompts = len({r["prompt_id"] for r in rows})
    print(f"wrote {out}: {len(rows)} candidates of {n_prompts} prompts, rewards "
          f"{', '.join(c for c in REWARDS if c not in skipped)}")
    return 0


def main_rank_pairs(rewards: str, out: str, mode: str = "micro") -> int:
    rows, cols = read_rewards(rewards)
    pairs, left_out = rank_reward_pairs(rows, cols, mode=mode)
    for sid in left_out:
        print(f"{sid}: left out (a reward is missing)", file=sys.stderr)
    write_pairs(pairs, out)
    n_prompts = len({r["prompt_id"] for r in rows})
    print(f"wrote {out}: {len(pairs)} pairs from {n_prompts} prompts (groups on {', '.join(cols)}; mode {mode})")
    return 0
