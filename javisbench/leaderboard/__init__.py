"""The leaderboard: submissions checked as untrusted input, tables generated from files (never typed by hand).

Layout of a board folder (default ``leaderboard/``)::

    results/*.json    one entry per (model, bench, protocol): a results file `leaderboard add` accepted
    reported/*.yaml   published tables, numbers as printed in the papers (never ranked with measured ones)
    README.md  leaderboard.csv  leaderboard.tex  index.html    written by `leaderboard build`

``add`` refuses a submission with the list of everything wrong with it and leaves the board
byte-unchanged (:mod:`.submission`); entry file names are a slug plus a hash of the entry's
identity, so two entries never share a file.  ``build`` groups entries by bench (name + manifest
sha256) and protocol (name + version + fingerprint) — results from different groups are never
ranked together — ranks each metric with ties where intervals overlap (:mod:`.board`) and writes
the four files (:mod:`.render`, :mod:`.site`).  The same inputs give the same bytes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from javisbench.leaderboard.board import Board, load_board
from javisbench.leaderboard.render import render_csv, render_latex, render_markdown
from javisbench.leaderboard.reported import META_COLUMNS, ReportedTable, load_reported, load_reported_dir
from javisbench.leaderboard.site import render_html
from javisbench.leaderboard.submission import (FAMILIES, MAX_BYTES, SubmissionError, check_policy, check_results,
                                               entry_filename, identity, link_problems, name_problems, parse_json)

__all__ = ["FAMILIES", "MAX_BYTES", "META_COLUMNS", "Board", "ReportedTable", "SubmissionError", "add", "build",
           "check_submission", "load_reported", "OUTPUTS"]

#: the files ``build`` writes into the board folder
OUTPUTS = ("README.md", "leaderboard.csv", "leaderboard.tex", "index.html")


def _atomic_write(path: Path, data: bytes) -> None:
    from javisbench.files import atomic_open

    with atomic_open(path, "wb") as f:
        f.write(data)


def render_all(board: Board) -> dict[str, str]:
    """File name -> text of the four outputs."""
    return {"README.md": render_markdown(board), "leaderboard.csv": render_csv(board),
            "leaderboard.tex": render_latex(board), "index.html": render_html(board)}


def build(results_dir: str | Path | None, out: str | Path, reported_dir: str | Path | None = None) -> list[Path]:
    """Render README.md, leaderboard.csv, leaderboard.tex and index.html into the folder ``out``.

    Every entry under ``results_dir`` is checked (types, schema) before anything is written.

    Raises:
        ValueError: no entries and no published tables; an entry or a published table is malformed.
    """
    reported = load_reported_dir(reported_dir)
    board, files = load_board(results_dir, reported)
    if not files and not reported:
        raise ValueError(f"no results files (*.json) in {results_dir}"
                         + (f" and no published tables (*.yaml) in {reported_dir}" if reported_dir else ""))
    out = Path(out)
    if out.suffix.lower() in (".md", ".csv", ".tex", ".html") or (out.exists() and not out.is_dir()):
        raise ValueError(f"--out {out}: expected the board folder (README.md, leaderboard.csv, leaderboard.tex and "
                         "index.html are written into it), got a file name")
    written = []
    for name, text in render_all(board).items():
        path = out / name
        data = text.encode("utf-8")
        if not (path.is_file() and path.read_bytes() == data):
            _atomic_write(path, data)
        written.append(path)
    return written


def check_submission(path: str | Path, name: str | None = None, link: str | None = None,
                     family: str | None = None) -> tuple[dict[str, Any] | None, list[str], bytes]:
    """``(results with the overrides applied, problems, raw bytes)`` of one submission file.

    ``problems`` lists everything wrong: size, JSON, schema, types, bench, protocol, official
    metrics, provenance, and the ``name``/``link``/``family`` given on the command line.
    """
    from javisbench.results import ResultsError, read_results

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        return None, [f"cannot read the file ({e.strerror})"], b""
    if size > MAX_BYTES:
        return None, [f"file is {size:,} bytes; the limit is {MAX_BYTES:,} (5 MB)"], b""
    raw = path.read_bytes()
    data, problems = parse_json(raw)
    if data is None:
        return None, problems, raw
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        model = data["model"] = dict(data["model"])
        if name is not None:
            bad = name_problems(name, "--name")
            problems += bad
            model["name"] = model.get("name") if bad else name.strip()
        if link is not None:
            bad = link_problems(link, "--link")
            problems += bad
            if not bad:
                model["link"] = link
        if family is not None:
            canon = {f.lower(): f for f in FAMILIES}.get(family.strip().lower())
            if canon is None:
                problems.append(f"--family: expected one of {', '.join(FAMILIES)}, got {family!r}")
            else:
                model["family"] = canon
    structural = check_results(data)
    problems += structural
    if not structural:
        problems += check_policy(data)
        try:
            read_results(path)
        except ResultsError as e:
            problems.append(str(e))
    return data, problems, raw


def _board_identities(results_dir: Path) -> dict[tuple[str, ...], list[Path]]:
    from javisbench.results import read_results

    out: dict[tuple[str, ...], list[Path]] = {}
    for f in sorted(results_dir.glob("*.json")) if results_dir.is_dir() else []:
        data = read_results(f)
        problems = check_results(data)
        if problems:
            raise SubmissionError(f"{f} (already on the board)", problems)
        out.setdefault(identity(data), []).append(f)
    return out


def add(files: str | Path | Sequence[str | Path], results_dir: str | Path, name: str | None = None,
        link: str | None = None, family: str | None = None, replace: bool = False) -> list[Path]:
    """Check submissions and, only when every one is accepted, write them to ``results_dir``.

    An entry exists once per identity (model name, bench + manifest sha256, protocol + version);
    submitting an existing identity is refused unless ``replace``.  The stored file is the
    submission with ``model.name``/``link``/``family`` as given and the sha256 of the bytes
    submitted under ``leaderboard.submitted_sha256``.

    Raises:
        SubmissionError: listing every problem of the first refused file (nothing written).
        ValueError: several files refused (each one's problems listed).
    """
    from javisbench.results import write_json

    paths = [files] if isinstance(files, (str, Path)) else list(files)
    if not paths:
        raise ValueError("leaderboard add: give at least one results file")
    if (name is not None or link is not None) and len(paths) > 1:
        raise ValueError("leaderboard add: --name and --link apply to one results file at a time")
    results_dir = Path(results_dir)
    existing = _board_identities(results_dir)
    errors: list[SubmissionError] = []
    accepted: list[tuple[dict[str, Any], bytes]] = []
    seen: dict[tuple[str, ...], str] = {}
    for p in paths:
        data, problems, raw = check_submission(p, name=name, link=link, family=family)
        if data is not None and not problems:
            ident = identity(data)
            what = f"model {ident[0]!r} on bench {ident[1]} under protocol {ident[3]} v{ident[4]}"
            if ident in existing and not replace:
                problems.append(f"an entry for {what} is already on the board "
                                f"({', '.join(f.name for f in existing[ident])}); pass --replace to replace it")
            taken = [f for fs in existing.values() for f in fs if f.name == entry_filename(data)]
            if taken and ident not in existing:    # a 48-bit hash collision: refuse rather than overwrite
                problems.append(f"the entry file name {entry_filename(data)} is taken by another entry; rename the model")
            if ident in seen:
                problems.append(f"{seen[ident]} in the same command is also {what}")
            seen[ident] = str(p)
        if problems:
            errors.append(SubmissionError(str(p), problems))
        else:
            assert data is not None
            accepted.append((data, raw))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ValueError("\n".join(str(e) for e in errors))
    written = []
    for data, raw in accepted:
        data = dict(data)
        data["leaderboard"] = {"submitted_sha256": hashlib.sha256(raw).hexdigest()}
        dest = results_dir / entry_filename(data)
        write_json(data, dest)
        for old in existing.get(identity(data), []):
            if old != dest:
                old.unlink()
        written.append(dest)
    return written
