"""Leaderboard: submissions checked as untrusted input, four outputs rendered from files, never ranked across protocols."""
from __future__ import annotations

import copy
import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from javisbench.cli import main

REPO = Path(__file__).resolve().parent.parent
REPORTED = REPO / "leaderboard" / "reported"
OUTPUTS = ("README.md", "leaderboard.csv", "leaderboard.tex", "index.html")


# ---------------------------------------------------------------------------------------------
# submissions built from the metric table and the protocol (independent of the evaluation pipeline)
# ---------------------------------------------------------------------------------------------
def weightless() -> list[str]:
    """Metrics that need no weight file (scored by any install): their provenance is the encoder alone."""
    from javisbench.suite import METRICS

    return [k for k, m in METRICS.items() if not m.weights and m.kind == "sample"]


def make_submission(name: str = "model A", values: dict[str, tuple[float, float, float]] | None = None,
                    protocol: str = "javisbench-official", bench: str = "synthav_demo", family: str | None = None,
                    categories: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """A valid results dict: ``values`` metric -> (value, ci_low, ci_high) scored, every other metric skipped."""
    from javisbench.protocol import PROTOCOLS
    from javisbench.results import SCHEMA_VERSION
    from javisbench.suite import METRICS

    p = PROTOCOLS[protocol]
    if values is None:
        values = {k: (0.5, 0.4, 0.6) for k in weightless()}
    from javisbench.encoders import encoder_class

    encoders = {e: {"fingerprint": f"{e}@1[]", "weights_sha256": {wf.name: wf.sha256 or "ab" * 32
                                                                  for wf in encoder_class(e).weight_files}}
                for k in values for e in METRICS[k].encoders}
    per_category: dict[str, Any] = {}
    for cat, shift in (categories or {"natural": {}, "urban": {}}).items():
        per_category.setdefault("event_scenario", {})[cat] = {
            k: {"value": v + shift.get(k, 0.0), "ci_low": None, "ci_high": None, "n": 2, "n_failed": 0, "flags": []}
            for k, (v, _lo, _hi) in values.items()}
    model: dict[str, Any] = {"name": name}
    if family:
        model["family"] = family
    return {
        "schema_version": SCHEMA_VERSION, "javisbench_version": "0.1.0", "git_commit": "0" * 40,
        "created": "2026-01-01T00:00:00+00:00",
        "protocol": {"name": p.name, "version": p.version, "fingerprint": p.fingerprint, "values": p.values()},
        "bench": {"name": bench, "kind": "csv", "path": "bench.csv", "manifest_sha256": "cd" * 32, "n_rows": 4,
                  "taxonomy": {"name": "javisbench", "version": "1.0"}},
        "reference": None, "model": model, "encoders": encoders, "unofficial_weights": {},
        "libraries": {"numpy": "2.0.0", "torch": "2.5.0"}, "seed": 0, "device": "cpu",
        "metrics": {k: {"title": m.title, "kind": m.kind, "higher_is_better": m.higher_is_better, "official": m.official,
                        "encoders": list(m.encoders)} for k, m in METRICS.items()},
        "sample_ids": ["s0", "s1", "s2", "s3"],
        "overall": {k: {"value": v, "ci_low": lo, "ci_high": hi, "n": 4, "n_failed": 0} for k, (v, lo, hi) in values.items()},
        "per_category": per_category, "per_subcategory": {},
        "per_sample": {f"s{i}": {k: v for k, (v, _lo, _hi) in values.items()} for i in range(4)},
        "failures": {}, "warnings": {},
        "skipped": {k: f"skipped: {k} needs weights that are not here" for k in METRICS if k not in values},
        "timing": {"total_s": 1.0},
    }


def write(obj: Any, path: Path) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} if folder.exists() else {}


def add(path: Path, board: Path, *extra: str) -> int:
    return main(["leaderboard", "add", str(path), "--out", str(board), *extra])


def build(board: Path, *extra: str) -> int:
    return main(["leaderboard", "build", "--out", str(board), "--no-reported", *extra])


@pytest.fixture()
def board(tmp_path: Path) -> Path:
    """A board holding one accepted entry."""
    b = tmp_path / "board"
    assert add(write(make_submission("base model", family="T2AV"), tmp_path / "base.json"), b) == 0
    return b


# ---------------------------------------------------------------------------------------------
# refused submissions: every reason listed, nothing written
# ---------------------------------------------------------------------------------------------
def _set(d: dict, path: str, value: Any) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[k]
    if value is _DEL:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


_DEL = object()
_SCORED = "overall.{w0}.value"


def _official_skipped() -> str:
    from javisbench.suite import METRICS

    return next(k for k, m in METRICS.items() if m.official and m.weights)


def _weighted_metric() -> str:
    from javisbench.suite import METRICS

    return next(k for k, m in METRICS.items() if m.weights and m.kind == "sample")


BAD_EDITS = {
    # name: (edits on a valid submission, expected text in the refusal)
    "string-for-number": ([("overall.{w0}.value", "0.5")], 'overall.{w0}.value: expected a finite number or null, got string "0.5"'),
    "string-n-rows": ([("bench.n_rows", "4")], "bench.n_rows: expected a non-negative integer"),
    "category-cell-string": ([("per_category.event_scenario.natural.{w0}.ci_low", "low")], "per_category.event_scenario.natural.{w0}.ci_low"),
    "per-sample-string": ([("per_sample.s1.{w0}", [1])], "per_sample.s1.{w0}: expected a finite number or null, got list"),
    "name-not-string": ([("model.name", 7)], "model.name: expected a non-empty name, got integer 7"),
    "no-bench": ([("bench", _DEL)], "bench: missing"),
    "schema-major": ([("schema_version", "2.0")], "schema_version: 2.0 has major version 2"),
    "unknown-bench": ([("bench.name", "my-private-bench")], "bench.name: 'my-private-bench' is not a bench this board ranks"),
    "unknown-protocol": ([("protocol.name", "my-protocol")], "protocol.name: 'my-protocol' is not a protocol of this javisbench"),
    "protocol-values-edited": ([("protocol.values.seed", 7)], "protocol.values: differ from javisbench-official"),
    "official-not-skipped": ([("skipped.{off}", _DEL)], "official metric {off} is neither scored nor skipped with a reason"),
    "empty-skip-reason": ([("skipped.{off}", " ")], "skipped.{off}: expected a reason"),
    "no-encoder": ([("encoders", {})], "missing (provenance of {w0})"),
    "no-libraries": ([("libraries", {})], "libraries: missing library versions"),
    "no-version": ([("javisbench_version", _DEL)], "javisbench_version: missing"),
    "direction-flipped": ([("metrics.{w0}.higher_is_better", None)], "metrics.{w0}.higher_is_better: expected true or false"),
    "bad-weights-hash": ([("encoders.{enc}.weights_sha256", {"x.pt": "not-a-hash"})], "weights_sha256.x.pt: expected 64 lowercase hex"),
    "hostile-link": ([("model.link", "javascript:alert(1)")], "model.link: expected an http:// or https:// URL"),
    "control-char-name": ([("model.name", "a\nb")], "model.name: control characters"),
}


def _fmt(s: str) -> str:
    from javisbench.suite import METRICS

    w0 = weightless()[0]
    return s.format(w0=w0, off=_official_skipped(), enc=METRICS[w0].encoders[0])


@pytest.mark.parametrize("case", sorted(BAD_EDITS))
def test_bad_submission_refused_with_reason_and_board_unchanged(case: str, board: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    edits, expected = BAD_EDITS[case]
    sub = make_submission("new model")
    for path, value in edits:
        _set(sub, _fmt(path), value)
    before = snapshot(board)
    assert add(write(sub, tmp_path / "sub.json"), board) == 2
    err = capsys.readouterr().err
    assert "sub.json: refused" in err and _fmt(expected) in err, err
    assert snapshot(board) == before


def test_an_official_metric_that_failed_on_every_sample_is_accounted_for(board: Path, tmp_path: Path) -> None:
    from javisbench.suite import METRICS

    off = next(k for k in weightless() if METRICS[k].official)
    sub = make_submission("all failed")
    sub["overall"][off] = {"value": None, "ci_low": None, "ci_high": None, "n": 0, "n_failed": 4}
    assert add(write(sub, tmp_path / "f.json"), board) == 2            # no failure recorded: no reason
    sub["failures"] = {f"s{i}": {"decode": "truncated file"} for i in range(4)}
    assert add(write(sub, tmp_path / "f.json"), board) == 0
    assert build(board) == 0
    row = next(ln for ln in (board / "README.md").read_text().splitlines() if "all failed" in ln)
    assert "failed" in _md_cells(row)


def test_weights_hash_missing_for_a_scored_metric(board: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from javisbench.suite import METRICS

    k = _weighted_metric()
    sub = make_submission("weighted", values={**{w: (0.5, 0.4, 0.6) for w in weightless()}, k: (0.3, 0.2, 0.4)})
    for e in METRICS[k].encoders:
        sub["encoders"][e]["weights_sha256"] = {}
    before = snapshot(board)
    assert add(write(sub, tmp_path / "w.json"), board) == 2
    assert f"{k} was scored with weights whose sha256 is not recorded" in capsys.readouterr().err
    assert snapshot(board) == before
    # with the hashes it is accepted
    assert add(write(make_submission("weighted", values={k: (0.3, 0.2, 0.4), **{w: (0.5, 0.4, 0.6) for w in weightless()}}),
                     tmp_path / "w2.json"), board) == 0


def test_scores_from_other_weights_are_refused(board: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from javisbench.encoders import encoder_class
    from javisbench.suite import METRICS

    # a metric whose weight file has a published sha256: another file's hash is refused
    k, enc, wf = next((k, e, wf) for k, m in METRICS.items() for e in m.encoders
                      for wf in encoder_class(e).weight_files if wf.sha256)
    sub = make_submission("other weights", values={k: (0.3, 0.2, 0.4)})
    sub["encoders"][enc]["weights_sha256"][wf.name] = "0" * 64
    sub["unofficial_weights"] = {f"{enc}:{wf.name}": "has sha256 000..., not the official file's"}
    before = snapshot(board)
    assert add(write(sub, tmp_path / "o.json"), board) == 2
    err = capsys.readouterr().err
    assert f"encoders.{enc}.weights_sha256.{wf.name}: 000000000000... is not the official file's {wf.sha256[:12]}" in err
    assert f"unofficial_weights.{enc}:{wf.name}" in err and "refused, 2 problem(s)" in err
    assert snapshot(board) == before


@pytest.mark.parametrize("body,expected", [
    (b"{not json", "not JSON: Expecting property name"),
    (b'{"schema_version": "1.1", "seed": NaN}', "not JSON: NaN is not a JSON number"),
    (b"\xff\xfe{}", "not JSON: not UTF-8"),
    (b'{"a": 1, "a": 2}', "repeated key(s) in one object: 'a'"),
    (b"[1, 2]", "expected a JSON object"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
])
def test_unreadable_submissions(body: bytes, expected: str, board: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    before = snapshot(board)
    (tmp_path / "bad.json").write_bytes(body)
    assert add(tmp_path / "bad.json", board) == 2
    assert expected in capsys.readouterr().err
    assert snapshot(board) == before


def test_oversized_submission_is_refused_unread(board: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from javisbench.leaderboard import MAX_BYTES

    sub = make_submission("big")
    sub["model"]["notes"] = "x" * MAX_BYTES                 # valid JSON, only too large
    before = snapshot(board)
    assert add(write(sub, tmp_path / "big.json"), board) == 2
    assert "the limit is 5,242,880 (5 MB)" in capsys.readouterr().err
    assert snapshot(board) == before


def test_every_problem_is_listed_at_once(board: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sub = make_submission("several")
    w0 = weightless()[0]
    sub["overall"][w0]["value"] = "high"
    sub["bench"]["n_rows"] = -1
    sub["libraries"] = {"numpy": 2}
    assert add(write(sub, tmp_path / "s.json"), board, "--link", "ftp://x", "--family", "T2X") == 2
    err = capsys.readouterr().err
    assert "refused, 5 problem(s)" in err
    for text in (f"overall.{w0}.value", "bench.n_rows", "libraries.numpy", "--link", "--family"):
        assert text in err


def test_existing_entry_needs_replace(board: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    before = snapshot(board)
    again = make_submission("base model", values={w: (0.7, 0.6, 0.8) for w in weightless()})
    assert add(write(again, tmp_path / "again.json"), board) == 2
    assert "an entry for model 'base model' on bench synthav_demo under protocol javisbench-official v" in capsys.readouterr().err
    assert snapshot(board) == before
    assert add(tmp_path / "again.json", board, "--replace") == 0
    files = sorted((board / "results").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["overall"][weightless()[0]]["value"] == 0.7
    # the same model under another protocol is another entry
    other = make_submission("base model", protocol="javisbench-fixed")
    assert add(write(other, tmp_path / "fixed.json"), board) == 0
    assert len(list((board / "results").glob("*.json"))) == 2


def test_several_files_all_or_nothing(board: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = write(make_submission("good one"), tmp_path / "good.json")
    bad = make_submission("bad one")
    bad["bench"]["name"] = "elsewhere"
    twin = write(make_submission("good one"), tmp_path / "twin.json")
    before = snapshot(board)
    assert main(["leaderboard", "add", str(good), str(write(bad, tmp_path / "bad.json")), str(twin), "--out", str(board)]) == 2
    err = capsys.readouterr().err
    assert "bad.json: refused" in err and "'elsewhere' is not a bench" in err
    assert "twin.json: refused" in err and "good.json in the same command is also model 'good one'" in err
    assert snapshot(board) == before
    assert main(["leaderboard", "add", str(good), "--out", str(board)]) == 0
    assert len(list((board / "results").glob("*.json"))) == 2


def test_names_that_slug_alike_keep_both_entries(tmp_path: Path) -> None:
    b = tmp_path / "board"
    for i, name in enumerate(("Team A/model v1", "Team A model v1", "team-a-model-v1")):
        assert add(write(make_submission(name), tmp_path / f"{i}.json"), b) == 0
    files = sorted((b / "results").glob("*.json"))
    assert len(files) == 3 and len({f.name for f in files}) == 3
    assert {json.loads(f.read_text())["model"]["name"] for f in files} == {"Team A/model v1", "Team A model v1", "team-a-model-v1"}
    assert all(re.fullmatch(r"[a-z0-9._-]+__[a-z0-9._-]+__[a-z0-9._-]+-[0-9a-f]{12}\.json", f.name) for f in files)
    assert build(b) == 0
    readme = (b / "README.md").read_text()
    assert "Team A/model v1" in readme and "Team A model v1" in readme and "team\\-a" not in readme


def test_cli_name_link_family_override(tmp_path: Path) -> None:
    b = tmp_path / "board"
    assert add(write(make_submission("from file"), tmp_path / "s.json"), b, "--name", "Shown Name",
               "--link", "https://example.org/p?a=1&b=(2)", "--family", "t2v+v2a") == 0
    (entry,) = (b / "results").glob("*.json")
    d = json.loads(entry.read_text())
    assert d["model"] == {"name": "Shown Name", "link": "https://example.org/p?a=1&b=(2)", "family": "T2V+V2A"}
    import hashlib

    assert d["leaderboard"]["submitted_sha256"] == hashlib.sha256((tmp_path / "s.json").read_bytes()).hexdigest()
    assert build(b) == 0
    readme = (b / "README.md").read_text()
    assert "[Shown Name](https://example.org/p?a=1&b=%282%29)" in readme
    html = (b / "index.html").read_text()
    assert '<a href="https://example.org/p?a=1&amp;b=(2)" rel="nofollow noopener noreferrer">Shown Name</a>' in html


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------
class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: D102
        self.tags.append(tag)
        self.attrs += attrs
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:  # noqa: D102
        self._in_script = False

    def handle_data(self, data: str) -> None:  # noqa: D102
        (self.scripts if self._in_script else self.text).append(data)


def _parse_html(text: str) -> _Html:
    h = _Html()
    h.feed(text)
    h.close()
    return h


def _md_cells(line: str, plain: bool = True) -> list[str]:
    """Cells of a Markdown table line, split on pipes that are not backslash-escaped; ``plain``: as displayed
    (backslash escapes and entities resolved)."""
    import html

    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
    return [html.unescape(re.sub(r"\\(.)", r"\1", c)) for c in cells] if plain else cells


def _tex_cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)&", line.rstrip().removesuffix(r"\\"))]


HOSTILE = {"script": "<script>alert(1)</script>", "pipe": "A | B", "tex": r"\textbf{x} 100% $y$ #1 a_b ~ ^",
           "csv": "=cmd()", "md": "**bold** [l](http://x) `c`"}


def test_hostile_names_render_inert_in_all_four_outputs(tmp_path: Path) -> None:
    b = tmp_path / "board"
    for key, name in HOSTILE.items():
        assert add(write(make_submission(name), tmp_path / f"{key}.json"), b) == 0
    assert build(b) == 0
    # HTML: the only script is the page's own; every name is text, never markup
    html = (b / "index.html").read_text()
    h = _parse_html(html)
    assert h.tags.count("script") == 1 and "alert" not in "".join(h.scripts)
    assert not [a for a in h.attrs if a[0].startswith("on")]
    text = "".join(h.text)
    for name in HOSTILE.values():
        assert name in text
    assert "<script>alert" not in html
    # Markdown: same column count on every row of the table; names come back after unescaping
    md = (b / "README.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len({len(_md_cells(r, plain=False)) for r in rows}) == 1
    assert "<script>" not in md and "**bold**" not in md
    names = {_md_cells(r)[1] for r in rows[2:]}
    assert names == set(HOSTILE.values())
    # LaTeX: no command from a name survives; same column count on every row
    tex = (b / "leaderboard.tex").read_text()
    assert r"\textbf{x}" not in tex and r"\textbackslash{}textbf\{x\} 100\% \$y\$ \#1 a\_b \textasciitilde{} \textasciicircum{}" in tex
    body = [ln for ln in tex.splitlines() if ln.endswith(r"\\")]
    assert len({len(_tex_cells(r)) for r in body}) == 1 and len(body) == 1 + len(HOSTILE)
    for ln in body + [ln for ln in tex.splitlines() if ln.startswith(r"\caption")]:
        bare = re.sub(r"\\[{}%]", "", ln)            # braces balance and no comment starts inside a row
        assert bare.count("{") == bare.count("}") and "%" not in bare, ln
    bare = re.sub(r"\\[{}]", "", "\n".join(ln for ln in tex.splitlines() if not ln.startswith("%")))
    assert bare.count("{") == bare.count("}")
    # CSV: parsed by the csv module, the formula is text
    rows_csv = list(csv.reader(io.StringIO((b / "leaderboard.csv").read_text())))
    header = rows_csv[0]
    assert len({len(r) for r in rows_csv}) == 1
    models = {r[header.index("model")] for r in rows_csv[1:]}
    assert "'=cmd()" in models and "=cmd()" not in models
    assert models - {"'=cmd()"} == set(HOSTILE.values()) - {"=cmd()"}


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def test_page_is_well_formed_and_self_contained(tmp_path: Path) -> None:
    b = tmp_path / "board"
    assert add(write(make_submission("m", family="T2AV"), tmp_path / "m.json"), b, "--link", "https://example.org/m") == 0
    assert main(["leaderboard", "build", "--out", str(b), "--reported-dir", str(REPORTED)]) == 0
    html = (b / "index.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    stack: list[str] = []
    errors: list[str] = []
    refs: list[tuple[str, str, str]] = []

    class Check(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: D102
            refs.extend((tag, k, v) for k, v in attrs if k in ("src", "href", "srcset", "data", "action", "poster"))
            if tag not in VOID:
                stack.append(tag)

        def handle_endtag(self, tag: str) -> None:  # noqa: D102
            if not stack or stack[-1] != tag:
                errors.append(f"</{tag}> closes {stack[-1] if stack else 'nothing'}")
            else:
                stack.pop()

    c = Check(convert_charrefs=True)
    c.feed(html)
    c.close()
    assert not errors and not stack, (errors[:3], stack)
    # nothing is loaded from elsewhere: no src at all, links only to sections, the sibling outputs and entry links
    assert not [r for r in refs if r[1] != "href" or r[0] != "a"], refs
    hrefs = {r[2] for r in refs}
    assert hrefs - {"#measured", "#reported", *OUTPUTS} == {"https://example.org/m"}
    style = html[html.index("<style>"): html.index("</style>")]
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    assert html.count("<script") == 1 and "<script>" in html           # one inline script, no src
    from javisbench.leaderboard import load_reported

    # one radar chart per model: the measured entry and every row of every published table
    assert html.count("<svg") == 1 + sum(len(load_reported(f).rows) for f in REPORTED.glob("*.yaml"))


def _latex_ready() -> bool:
    import shutil
    import subprocess

    if not (shutil.which("pdflatex") and shutil.which("kpsewhich")):
        return False
    found = subprocess.run(["kpsewhich", "booktabs.sty", "graphicx.sty"], capture_output=True, text=True, check=False)
    return len(found.stdout.split()) == 2


@pytest.mark.skipif(not _latex_ready(), reason="pdflatex with booktabs not found: install it to compile the LaTeX "
                    "output (Debian: apt-get install -y texlive-latex-base texlive-latex-recommended)")
def test_latex_output_compiles_with_hostile_names(tmp_path: Path) -> None:
    import subprocess

    b = tmp_path / "board"
    for key, name in HOSTILE.items():
        assert add(write(make_submission(name), tmp_path / f"{key}.json"), b) == 0
    assert main(["leaderboard", "build", "--out", str(b), "--reported-dir", str(REPORTED)]) == 0
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage[T1]{fontenc}\n"
                                      "\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\begin{document}\n"
                                      f"\\input{{{(b / 'leaderboard.tex').as_posix()}}}\n\\end{{document}}\n")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout[-2000:]
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and (tmp_path / "doc.pdf").stat().st_size > 10000
    assert "Overfull" not in log                  # wide tables are shrunk to the line width


def test_build_is_byte_identical(tmp_path: Path) -> None:
    b = tmp_path / "board"
    for i, name in enumerate(("m1", "m2", "m3")):
        vals = {w: (0.1 * (i + 1), 0.1 * (i + 1) - 0.05, 0.1 * (i + 1) + 0.05) for w in weightless()}
        assert add(write(make_submission(name, values=vals, family=("T2AV", "T2V+V2A", None)[i]), tmp_path / f"{i}.json"), b) == 0
    assert main(["leaderboard", "build", "--out", str(b), "--reported-dir", str(REPORTED)]) == 0
    first = {n: (b / n).read_bytes() for n in OUTPUTS}
    mtimes = {n: (b / n).stat().st_mtime_ns for n in OUTPUTS}
    assert main(["leaderboard", "build", "--out", str(b), "--reported-dir", str(REPORTED)]) == 0
    assert {n: (b / n).read_bytes() for n in OUTPUTS} == first
    assert {n: (b / n).stat().st_mtime_ns for n in OUTPUTS} == mtimes      # unchanged files are not rewritten
    other = tmp_path / "copy"
    import shutil

    shutil.copytree(b / "results", other / "results")
    assert main(["leaderboard", "build", "--out", str(other), "--reported-dir", str(REPORTED)]) == 0
    assert {n: (other / n).read_bytes() for n in OUTPUTS} == first         # no path or time in the output


def test_groups_families_and_never_ranks_across_protocols(tmp_path: Path) -> None:
    b = tmp_path / "board"
    w0 = weightless()[0]
    subs = [("A2V one", "T2A+A2V", "javisbench-official", 0.30), ("joint", "T2AV", "javisbench-official", 0.90),
            ("V2A one", "T2V+V2A", "javisbench-official", 0.50), ("fixed run", "T2AV", "javisbench-fixed", 0.10)]
    for i, (name, fam, proto, v) in enumerate(subs):
        assert add(write(make_submission(name, values={w0: (v, v - 0.01, v + 0.01)}, family=fam, protocol=proto),
                         tmp_path / f"{i}.json"), b) == 0
    assert build(b) == 0
    md = (b / "README.md").read_text()
    sections = md.split("\n## ")[1:]
    assert len(sections) == 2
    official = next(s for s in sections if "javisbench-official" in s)
    fixed = next(s for s in sections if "javisbench-fixed" in s)
    rows = [_md_cells(ln) for ln in official.splitlines() if ln.startswith("| T")]
    assert [r[:2] for r in rows] == [["T2A+A2V", "A2V one"], ["T2V+V2A", "V2A one"], ["T2AV", "joint"]]
    head = _md_cells(next(ln for ln in official.splitlines() if ln.startswith("| family")))
    from javisbench.suite import METRICS

    col = head.index(f"{w0} {METRICS[w0].arrow}")
    best = "joint" if METRICS[w0].higher_is_better else "A2V one"
    assert [r[1] for r in rows if r[col].startswith("**")] == [best]
    assert "fixed run" not in official and "fixed run" in fixed
    assert "**" not in fixed                                   # alone in its group: nothing to rank


def test_overlapping_intervals_tie(tmp_path: Path) -> None:
    from javisbench.leaderboard.board import rank_cells

    # higher is better: a and b overlap (tie for first), c is clearly below both, d has no interval
    vals = [(0.50, 0.45, 0.55), (0.48, 0.40, 0.52), (0.30, 0.25, 0.35), (0.30, None, None), (None, None, None)]
    assert rank_cells(vals, True) == [(1, True), (1, True), (3, True), (3, True), (None, False)]
    assert rank_cells(vals, False)[2:4] == [(1, True), (1, True)]
    # without intervals: only equal values tie
    assert rank_cells([(1.0, None, None), (2.0, None, None), (2.0, None, None)], True) == [(3, False), (1, True), (1, True)]
    # rendered: both tied entries bold, the CSV says tied
    b = tmp_path / "board"
    w0 = weightless()[0]
    for i, (v, lo, hi) in enumerate(vals[:3]):
        assert add(write(make_submission(f"m{i}", values={w0: (v, lo, hi)}), tmp_path / f"{i}.json"), b) == 0
    assert build(b) == 0
    rows = list(csv.DictReader(io.StringIO((b / "leaderboard.csv").read_text())))
    ranks = {r["model"]: (r["rank"], r["tied"]) for r in rows if r["category"] == "overall"}
    from javisbench.suite import METRICS

    if METRICS[w0].higher_is_better:
        assert ranks == {"m0": ("1", "yes"), "m1": ("1", "yes"), "m2": ("3", "")}
    md = (b / "README.md").read_text()
    assert md.count("**") == 2 * sum(1 for r in ranks.values() if r[0] == "1")


def test_bad_entry_on_the_board_fails_the_build_by_name(board: Path, capsys: pytest.CaptureFixture) -> None:
    (entry,) = (board / "results").glob("*.json")
    d = json.loads(entry.read_text())
    d["overall"][weightless()[0]]["value"] = "0.5"
    entry.write_text(json.dumps(d))
    before = snapshot(board)
    assert build(board) == 2
    err = capsys.readouterr().err
    assert entry.name in err and "expected a finite number" in err
    assert snapshot(board) == before


def test_build_refuses_an_empty_folder(tmp_path: Path) -> None:
    assert main(["leaderboard", "build", "--results-dir", str(tmp_path), "--out", str(tmp_path / "x")]) == 2


def test_build_out_is_a_folder(board: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["leaderboard", "build", "--results-dir", str(board / "results"), "--out", str(board / "README.md")]) == 2
    assert "expected the board folder" in capsys.readouterr().err
    assert not (board / "README.md").exists()


def test_demo_results_are_accepted_end_to_end(tmp_path: Path) -> None:
    """Real results files from `javisbench demo` pass the checks as they are."""
    from javisbench.demo import run_demo

    run_demo(tmp_path / "demo", n_clips=3, weights_dir=tmp_path / "no-weights")
    b = tmp_path / "board"
    for f, fam in (("clean.json", "T2AV"), ("frozen_video.json", "T2A+A2V")):
        assert add(tmp_path / "demo" / "results" / f, b, "--family", fam) == 0
    assert build(b) == 0
    md = (b / "README.md").read_text()
    assert "| T2A+A2V | frozen video |" in md and "| T2AV | clean |" in md


# ---------------------------------------------------------------------------------------------
# published (reported) tables
# ---------------------------------------------------------------------------------------------
def test_every_published_table_loads_and_keeps_the_printed_digits() -> None:
    from javisbench.leaderboard import load_reported

    tables = [load_reported(f) for f in sorted(REPORTED.glob("*.yaml"))]
    assert {t.bench for t in tables} == {"JavisBench", "landscape", "aist++", "AVSync15", "VGGSound-SS"}
    t2 = next(t for t in tables if t.source.startswith("JavisDiT (") and "Table 2" in t.source)
    assert len(t2.rows) == 7 and t2.higher_is_better["fvd"] is False and t2.higher_is_better["javis_score"] is True
    foley = next(r for r in t2.rows if r[1] == "FoleyCrafter")
    assert foley[t2.columns.index("cavp_score")] == "0.800"         # as printed, trailing zero kept


# JavisDiT++ (arXiv 2602.19163), Table 1, as printed in the paper (method, size, FVD, FAD, TV-IB, TA-IB, CLIP,
# CLAP, AV-IB, AVHScore, JavisScore, DeSync, runtime); "-": not reported
PAPER_JAVISDITPP_T1 = """
TempoTkn 1.3B 539.8 - 0.084 - 0.205 - 0.139 0.122 0.103 1.532 20s
TPoS 1.0B 839.7 - 0.201 - 0.229 - 0.124 0.129 0.095 1.493 19s
ReWaS 0.6B - 9.4 - 0.123 - 0.280 0.110 0.104 0.079 1.071 17s
See&Hear 0.4B - 7.6 - 0.129 - 0.263 0.160 0.143 0.112 1.099 25s
FoleyCrafter 1.2B - 9.1 - 0.149 - 0.383 0.193 0.186 0.151 0.952 16s
MMAudio 0.1B - 6.1 - 0.160 - 0.407 0.198 0.182 0.150 0.849 15s
MM-Diffusion 0.4B 2311.9 27.5 0.080 0.014 0.181 0.079 0.119 0.109 0.070 0.875 9s
JavisDiT 3.1B 204.1 7.2 0.263 0.143 0.302 0.391 0.197 0.179 0.154 1.039 30s
UniVerse-1 6.4B 194.2 8.7 0.272 0.111 0.309 0.245 0.104 0.098 0.077 0.929 13s
JavisDiT++ 2.1B 141.5 5.5 0.282 0.164 0.316 0.424 0.198 0.184 0.159 0.832 10s
"""
PAPER_METRICS = ["fvd", "fad", "ib_tv", "ib_ta", "clip_score", "clap_score", "ib_av", "avh_score", "javis_score", "desync"]


def _paper_rows() -> dict[str, dict[str, str]]:
    out = {}
    for line in PAPER_JAVISDITPP_T1.strip().splitlines():
        method, size, *vals, runtime = line.split()
        out[method] = {"size": size, "runtime": runtime, **dict(zip(PAPER_METRICS, vals))}
    return out


def test_javisditpp_table1_reproduces_the_printed_numbers_in_every_output(tmp_path: Path) -> None:
    b = tmp_path / "board"
    assert main(["leaderboard", "build", "--results-dir", str(tmp_path / "none"), "--out", str(b),
                 "--reported-dir", str(REPORTED)]) == 0
    paper = _paper_rows()
    unmark = lambda s: re.sub(r"^\*\*(.*)\*\*$|^<u>(.*)</u>$", lambda m: m.group(1) or m.group(2), s)  # noqa: E731
    # Markdown
    md = (b / "README.md").read_text()
    sec = md.split("### JavisBench — JavisDiT++ (arXiv 2602.19163), Table 1")[1].split("\n### ")[0]
    lines = [ln for ln in sec.splitlines() if ln.startswith("|")]
    head = [h.split(" ")[0] for h in _md_cells(lines[0])]
    got = {}
    for ln in lines[2:]:
        cells = dict(zip(head, (unmark(c) for c in _md_cells(ln))))
        got[cells["method"]] = {k: cells[k] for k in ("size", "runtime", *PAPER_METRICS)}
    assert got == paper
    # CSV
    rows = [r for r in csv.DictReader(io.StringIO((b / "leaderboard.csv").read_text()))
            if r["table"] == "JavisDiT++ (arXiv 2602.19163), Table 1"]
    assert {r["section"] for r in rows} == {"reported"}
    got_csv = {(r["model"], r["metric"]): r["value"] or "-" for r in rows}
    assert got_csv == {(m, k): v[k] for m, v in paper.items() for k in PAPER_METRICS}
    # LaTeX
    tex = (b / "leaderboard.tex").read_text()
    tsec = tex.split("JavisDiT++ (arXiv 2602.19163), Table 1 (reported")[1].split(r"\end{table}")[0]
    body = [_tex_cells(ln) for ln in tsec.splitlines() if ln.endswith(r"\\")]
    untex = lambda s: re.sub(r"^\\(?:textbf|underline)\{(.*)\}$", r"\1", s).replace(r"\&", "&")  # noqa: E731
    got_tex = {untex(r[1]): [untex(c) for c in r[2:]] for r in body[1:]}
    assert got_tex == {m: [v["size"], v["runtime"], *(v[k] for k in PAPER_METRICS)] for m, v in paper.items()}
    # HTML: the table's cells as text
    html = (b / "index.html").read_text()
    hsec = html.split("JavisDiT++ (arXiv 2602.19163), Table 1</h3>")[1].split("</table>")[0]
    texts = []
    for tr in re.findall(r"<tr data-i=\"\d+\">(.*?)</tr>", hsec):
        cells = [re.sub(r"<sup.*?</sup>|<[^>]+>", "", td) for td in re.findall(r"<td.*?</td>", tr)]
        texts.append([c.replace("&amp;", "&") for c in cells])
    assert {t[1]: t[2:] for t in texts} == {m: [v["size"], v["runtime"], *(v[k] for k in PAPER_METRICS)]
                                           for m, v in paper.items()}


def test_reported_tables_render_apart_and_rank_within_themselves(tmp_path: Path) -> None:
    b = tmp_path / "board"
    assert add(write(make_submission("clean"), tmp_path / "c.json"), b) == 0
    assert main(["leaderboard", "build", "--out", str(b), "--reported-dir", str(REPORTED)]) == 0
    text = (b / "README.md").read_text()
    measured, reported = text.split("## Reported in papers")
    assert "clean" in measured and "JavisDiT" not in measured        # never ranked with measured rows
    sec = reported.split("### JavisBench — JavisDiT (arXiv 2503.23377), Table 2")[1].split("###")[0]
    rows = {_md_cells(ln)[1]: _md_cells(ln) for ln in sec.splitlines() if ln.startswith("| T")}
    head = _md_cells(next(ln for ln in sec.splitlines() if ln.startswith("| family")))
    col = {h: i for i, h in enumerate(head)}
    assert rows["JavisDiT"][col["fvd ↓"]] == "**203.2**"         # lowest FVD
    assert rows["FoleyCrafter"][col["ib_av ↑"]] == "**0.204**"   # highest AV-IB
    assert rows["JavisDiT"][col["ib_av ↑"]] == "<u>0.201</u>"    # second
    assert rows["MM-Diffusion"][col["fvd ↓"]] == "2311.9"
    assert rows["ReWaS"][col["fvd ↓"]] == "-"
    assert reported.count("### JavisBench — ") == 2               # the two papers' tables stay apart
    csv_rows = list(csv.DictReader(io.StringIO((b / "leaderboard.csv").read_text())))
    assert {r["section"] for r in csv_rows if r["model"] == "clean"} == {"measured"}
    assert main(["leaderboard", "build", "--out", str(b), "--no-reported"]) == 0
    assert "Reported in papers" not in (b / "README.md").read_text()


def test_committed_leaderboard_is_generated(tmp_path: Path) -> None:
    out = tmp_path / "lb"
    assert main(["leaderboard", "build", "--results-dir", str(REPO / "leaderboard" / "results"), "--out", str(out),
                 "--reported-dir", str(REPORTED)]) == 0
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (REPO / "leaderboard" / name).read_bytes(), name


@pytest.mark.parametrize("body,match", [
    ("source: s\nbench: b\ncolumns: [method, fvd]\nrows:\n  - ['x', '1.0', '2.0']\n", "row 1: expected 2 values"),
    ("source: s\nbench: b\ncolumns: [method, zzz]\nrows:\n  - ['x', '1.0']\n", "'zzz' is neither a javisbench metric"),
    ("source: s\nbench: b\ncolumns: [method, fvd]\nrows:\n  - ['x', 'abc']\n", "row 1: fvd must be a number"),
    ("source: s\nbench: b\ncolumns: [method, zzz]\ndirections: {zzz: up}\nrows:\n  - ['x', '1']\n", "must be 'higher' or 'lower'"),
    ("bench: b\ncolumns: [method, fvd]\nrows:\n  - ['x', '1']\n", "missing source"),
])
def test_bad_published_tables_name_file_and_row(tmp_path: Path, capsys: pytest.CaptureFixture, body: str, match: str) -> None:
    rep = tmp_path / "reported"
    rep.mkdir()
    (rep / "t.yaml").write_text(body)
    rc = main(["leaderboard", "build", "--results-dir", str(tmp_path / "results"), "--out", str(tmp_path / "x"),
               "--reported-dir", str(rep)])
    err = capsys.readouterr().err
    assert rc == 2 and "t.yaml" in err and match in err
