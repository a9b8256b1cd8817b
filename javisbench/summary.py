"""The end-of-run summary: what failed, what warned, why, and the exit code it means.

Printed under the results table by ``javisbench evaluate``.  Failed and warned samples are
grouped by reason (the message with sample ids, paths and numbers taken out), each reason with
its count and its first few sample ids; the full lists are in the results file (``failures``,
``warnings``, ``skipped``).  When failures look systematic a hint says what to check:

* most samples missing their file while the folder holds other video files: the naming pattern;
* most decodes shorter than their container declares: truncated uploads or copies;
* every sample failing at the same encoder stage: the encoder, not the samples.

Exit codes (:data:`EXIT_CODES`): 0 when every requested metric has a value and no sample failed;
3 when samples failed or metrics were skipped (results still written); 2 for a usage or input
error before any work; 4 when an output could not be written after the work; 1 for an
unexpected internal error; 130 when interrupted.  ``strict`` makes any warning count as a
failure; ``allow_failures`` keeps 0 for pipelines that expect some.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_WRITE = 4
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "every requested metric has a value and no sample failed",
    EXIT_INTERNAL: "unexpected internal error (run again with --debug for the traceback)",
    EXIT_USAGE: "usage or input error, found before any work (nothing written)",
    EXIT_INCOMPLETE: "samples failed or metrics were skipped (or, with --strict, something warned); "
                     "results written and the summary lists why",
    EXIT_WRITE: "an output could not be written after the work (e.g. disk full); features stay in the store",
    EXIT_INTERRUPTED: "interrupted; finished features stay in the store, run the same command to resume",
}

#: a reason covering at least this share of the samples (and 2 of them) is called systematic
SYSTEMATIC_SHARE = 0.5
INCOMPLETE_MARKERS = ("truncated file?", "frames the container declares", "incomplete decode")


def exit_codes_help() -> str:
    """The exit codes as ``javisbench evaluate --help`` lists them."""
    return "exit codes:\n" + "\n".join(f"  {k:<4}{v}" for k, v in EXIT_CODES.items())


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_PATH = re.compile(r"(?:[A-Za-z]:)?[^\s'\"(),;]*[/\\][^\s'\"(),;]*")
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def reason_key(stage: str, message: str, sample_id: str = "") -> str:
    """The message with what varies per sample (its id, paths, quoted names, numbers) taken out."""
    m = message.replace(sample_id, "<id>") if sample_id else message
    m = _PATH.sub("<path>", m)
    m = _QUOTED.sub("<name>", m)
    m = _NUMBER.sub("N", m)
    m = re.sub(r"\s+", " ", m).strip()
    return f"{stage}|{m}"


def _short(msg: str, limit: int = 160) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


@dataclass
class Group:
    stage: str
    example: str                 # the first sample's message
    ids: list[str] = field(default_factory=list)


@dataclass
class Summary:
    """What the run left undone, and the exit code it means."""

    n_samples: int
    failed: "OrderedDict[str, Group]"          # reason -> group
    warned: "OrderedDict[str, Group]"
    n_failed: int
    n_warned: int
    missing_metrics: dict[str, str]            # metric -> why it has no value
    notes: list[str]                           # run-level warnings (extra files, unofficial weights, ...)
    hints: list[str]
    exit_code: int

    @property
    def clean(self) -> bool:
        return not (self.n_failed or self.missing_metrics)


def _group(entries: Iterable[tuple[str, str, str]]) -> "OrderedDict[str, Group]":
    groups: "OrderedDict[str, Group]" = OrderedDict()
    for sid, stage, msg in entries:
        key = reason_key(stage, msg, sid)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(stage, msg)
        if sid not in g.ids:
            g.ids.append(sid)
    return OrderedDict(sorted(groups.items(), key=lambda kv: -len(kv[1].ids)))


def extra_files(samples_dir: str | Path | None, sample_ids: Iterable[str]) -> list[str]:
    """Files named like samples (``sample_NNNN.mp4`` / ``.wav``) in ``samples_dir`` whose id is not
    a scored row: the sign of a wrong manifest (``javisbench validate`` flags the same)."""
    if samples_dir is None or not Path(samples_dir).is_dir():
        return []
    ids = set(sample_ids)
    pat = re.compile(r"^(sample_\d+)\.(mp4|wav)$")
    return sorted(p.name for p in Path(samples_dir).iterdir() if (m := pat.match(p.name)) and m.group(1) not in ids)


def _naming_hint(samples_dir: Path | None, missing: list[str], n_samples: int, all_ids: Iterable[str]) -> str | None:
    if samples_dir is None or not Path(samples_dir).is_dir():
        return None
    ids = set(all_ids) | set(missing)
    videos = sorted(p.name for p in Path(samples_dir).iterdir() if p.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm")
                    and p.stem not in ids)
    expected = ", ".join(f"{s}.mp4" for s in missing[:2])
    if not videos:
        return (f"hint: {len(missing)} of {n_samples} samples have no video file and {samples_dir} holds no other "
                f"video file: wrong samples folder? (expected {expected}, ...)")
    return (f"hint: {len(missing)} of {n_samples} samples have no video file, but {samples_dir} holds "
            f"{len(videos)} other video file(s) ({', '.join(videos[:3])}{', ...' if len(videos) > 3 else ''}): "
            f"the files must be named after the manifest rows ({expected}, ...: 'sample_' and the row index "
            f"zero-padded to 4 digits); rename them or fix the manifest")


def summarize(results: dict[str, Any], *, samples_dir: str | Path | None = None, full_selection: bool = True,
              strict: bool = False, allow_failures: bool = False) -> Summary:
    """The summary of a results dict.  ``full_selection``: every manifest row was asked for (no
    ``--limit``/``--where``/``--subset``), so sample files beyond the rows are worth a warning."""
    ids = list(results.get("sample_ids") or [])
    n = len(ids) or int((results.get("bench") or {}).get("n_rows") or 0)
    fails = results.get("failures") or {}
    warns = results.get("warnings") or {}
    failed = _group((sid, stage, msg) for sid, stages in fails.items() for stage, msg in stages.items())
    warned = _group((sid, "warning", msg) for sid, msgs in warns.items() for msg in msgs)
    overall = results.get("overall") or {}
    skipped = results.get("skipped") or {}
    missing: dict[str, str] = {}
    for key in results.get("metrics") or {}:
        cell = overall.get(key)
        if key in skipped:
            missing[key] = skipped[key]
        elif cell is None or cell.get("value") is None:
            missing[key] = "no value (every sample failed for it)"
    notes: list[str] = []
    if full_selection and samples_dir is not None and (results.get("bench") or {}).get("kind", "csv") == "csv":
        extra = extra_files(samples_dir, ids)
        if extra:
            notes.append(f"{len(extra)} sample file(s) in {samples_dir} match no manifest row (e.g. {extra[0]}): "
                         "wrong manifest? (`javisbench validate` lists them; --limit N scores the first N rows on purpose)")
    for k, why in (results.get("unofficial_weights") or {}).items():
        notes.append(f"unofficial weights {k}: {why}")
    hints = _hints(results, fails, warns, n, samples_dir)
    n_failed = len(fails)
    n_warned = len(warns)
    incomplete = bool(n_failed or missing) or (strict and bool(warns or notes))
    code = EXIT_INCOMPLETE if incomplete and not allow_failures else EXIT_OK
    return Summary(n, failed, warned, n_failed, n_warned, missing, notes, hints, code)


def _hints(results: dict[str, Any], fails: dict[str, dict[str, str]], warns: dict[str, list[str]], n: int,
           samples_dir: str | Path | None) -> list[str]:
    hints: list[str] = []
    if n <= 0:
        return hints
    big = lambda k: k >= 2 and k >= SYSTEMATIC_SHARE * n  # noqa: E731
    missing = [sid for sid, st in fails.items() if "missing video file" in st.get("input", "")]
    if big(len(missing)):
        h = _naming_hint(Path(samples_dir) if samples_dir else None, missing, n, results.get("sample_ids") or ())
        if h:
            hints.append(h)
    short = [sid for sid in set(fails) | set(warns)
             if any(mk in m for mk in INCOMPLETE_MARKERS
                    for m in list((fails.get(sid) or {}).values()) + list(warns.get(sid) or []))]
    if big(len(short)):
        hints.append(f"hint: {len(short)} of {n} clips decode shorter than their container declares: truncated "
                     "uploads or copies? compare the file sizes with the originals and copy them again")
    stages: dict[str, int] = {}
    for st in fails.values():
        for stage in st:
            if stage.startswith(("encode:", "prepare:")):
                stages[stage] = stages.get(stage, 0) + 1
    for stage, k in sorted(stages.items()):
        if k == n and n >= 2:
            hints.append(f"hint: every sample failed at {stage}: the encoder (its weights, its device), not the "
                         "samples, is the likely cause; run again with --debug for details")
    return hints


def render(s: Summary, out: str | Path | None = None, max_ids: int = 3, max_reasons: int = 8) -> str:
    """The lines printed under the results table."""
    def where(key: str) -> str:
        return f" (full list: {out}, under \"{key}\")" if out else ""

    lines: list[str] = []
    if s.missing_metrics:
        parts = [f"{k} ({'skipped' if why.startswith(('skipped', 'failed')) else 'no sample scored'})"
                 for k, why in s.missing_metrics.items()]
        lines.append(f"metrics without a value: {len(parts)}: {', '.join(parts)}"
                     + (where("skipped") if any(p.endswith("(skipped)") for p in parts) else ""))
    for title, groups, count, key in (("failed", s.failed, s.n_failed, "failures"),
                                      ("warned", s.warned, s.n_warned, "warnings")):
        if not groups:
            continue
        lines.append(f"{title} samples: {count} of {s.n_samples}" + where(key))
        for i, g in enumerate(groups.values()):
            if i == max_reasons:
                lines.append(f"  ... {len(groups) - max_reasons} more reason(s) in the results file")
                break
            shown = ", ".join(g.ids[:max_ids]) + (f", ... ({len(g.ids)} in all)" if len(g.ids) > max_ids else "")
            stage = "" if g.stage == "warning" else f"[{g.stage}] "
            lines.append(f"  {len(g.ids)} x {stage}{_short(g.example)}  -- {shown}")
    for note in s.notes:
        lines.append(f"warning: {_short(note, 300)}")
    lines.extend(s.hints)
    return "\n".join(lines)
