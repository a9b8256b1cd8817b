"""Reports rendered from a results dict: the text tables and the self-contained HTML file."""
from __future__ import annotations

import copy
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from javisbench import encoders as registry
from javisbench.cli import main
from javisbench.config import EvalConfig
from javisbench.evaluate import evaluate
from javisbench.report import _score_matrix, category_tables, overall_table, write_html
from javisbench.results import write_results

N_CLIPS = 8
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run with every metric requested: av_align and fake-encoder FVD/KVD/FAD scored, the rest skipped,
    and one sample missing (a failure)."""
    from reference_models.synthav import make_clip, write_clip, write_manifest

    root = tmp_path_factory.mktemp("report")
    clips = [make_clip(500 + i, duration=2.0) for i in range(N_CLIPS)]
    manifest = write_manifest(root / "bench.csv", clips)
    for i, c in enumerate(clips):
        write_clip(root / "real", f"sample_{i:04d}", c.frames, c.audio, 24, 16000)
        if i != 3:
            # a little noise so the model differs from the reference set
            noisy = np.clip(c.frames.astype(np.int16) + 12 * (i % 3), 0, 255).astype(np.uint8)
            write_clip(root / "gen", f"sample_{i:04d}", noisy, c.audio, 24, 16000)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.ENCODERS, "i3d", "fakes:FakeI3D")
        mp.setitem(registry.ENCODERS, "audioclip", "fakes:FakeAudio")
        cfg = EvalConfig(samples_dir=root / "gen", bench=manifest, out=root / "r.json", cache_dir=root / "cache",
                         weights_dir=root / "weights", reference_dir=root / "real", model_name="noisy <model> & co",
                         model_meta={"steps": "50"}, progress=False, workers=2, batch_size=4)
        return evaluate(cfg)


class _Checker(HTMLParser):
    """Tag balance, and every external reference the page could load."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: D102
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action") and value is not None:
                self.urls.append(value)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:  # noqa: D102
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:  # noqa: D102
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:  # noqa: D102
        self.text.append(data)


def _check(path: Path) -> _Checker:
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    c = _Checker()
    c.feed(html)
    c.close()
    assert not c.errors, c.errors[:5]
    assert c.stack == [], c.stack
    # self-contained: no scripts, no stylesheets, frames or fonts from elsewhere; images are data URIs
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(c.tags)
    assert all(u.startswith("data:image/png;base64,") for u in c.urls), [u[:40] for u in c.urls]
    style = html[html.index("<style>"): html.index("</style>")]
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    return c


# ---------------------------------------------------------------------------------------------
def test_text_tables_still_render(results: dict) -> None:
    t = overall_table(results)
    assert "av_align ↑" in t and "fvd ↓" in t and "95% interval" in t and "n=∞" in t
    # every interval says what it is: ci for a per-sample mean, spread for a set metric
    line = {ln.split()[0]: ln for ln in t.splitlines() if ln.split() and ln.split()[0] in ("av_align", "fvd")}
    assert line["av_align"].rstrip().split("]")[1].split()[0] == "ci"
    assert line["fvd"].split("]")[1].split()[0] == "spread"
    assert "spread = sampling spread" in t
    assert "imagebind_huge.pth" in t                              # skipped, with the reason
    assert "sample_0003" in t                                     # the failure
    ct = category_tables(results)
    assert "[event_scenario]" in ct and "fvd" in ct
    assert category_tables({**results, "per_category": {}}) == "(no category labels in this bench)"


def test_html_report_is_complete_and_self_contained(results: dict, tmp_path: Path) -> None:
    out = write_html(results, tmp_path / "sub" / "r.html")
    assert out == tmp_path / "sub" / "r.html" and out.is_file()
    html = out.read_text(encoding="utf-8")
    c = _check(out)
    text = " ".join(c.text)
    for key in ("av_align", "fvd", "kvd", "fad"):
        assert key in text
    # one heatmap per aspect and one radar per scored metric, all inline PNGs
    n_img = html.count('src="data:image/png;base64,')
    assert {"av_align", "fvd", "kvd", "fad"} <= set(results["overall"])
    assert n_img == len(results["per_category"]) + len(results["overall"])
    for aspect in results["per_category"]:
        assert f"heatmap of {aspect}" in html
    for skipped_key, reason in results["skipped"].items():
        assert skipped_key in text and reason.split(";")[0] in text
    assert "sample_0003" in text and "input" in text             # failures summary
    assert results["protocol"]["fingerprint"] in text and results["bench"]["manifest_sha256"] in text
    # escaped, never raw: the model name has markup characters
    assert "noisy <model> & co" in text and "noisy <model>" not in html and "noisy &lt;model&gt; &amp; co" in html
    # the images decode as PNGs
    import base64

    first = html.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(first)[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_text_escaping_of_hostile_values(results: dict, tmp_path: Path) -> None:
    r = copy.deepcopy(results)
    r["failures"] = {"sample_0000": {"decode": '<img src="http://evil/x.png"> "quoted" </td></table>'}}
    r["skipped"] = {"clip_score": "<script>alert(1)</script>"}
    r["per_category"]["spatial"]["<b>odd</b>"] = {}
    out = write_html(r, tmp_path / "r.html")
    c = _check(out)
    html = out.read_text(encoding="utf-8")
    assert "<script>" not in html and "http://evil" not in " ".join(c.urls)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;odd&lt;/b&gt;" in html


@pytest.mark.parametrize("case", ["no-categories", "no-metrics", "all-skipped", "bare"])
def test_html_edge_cases(results: dict, tmp_path: Path, case: str) -> None:
    r = copy.deepcopy(results)
    if case == "no-categories":
        r["per_category"] = {}
        r["bench"]["taxonomy"] = None
    elif case == "no-metrics":
        r["overall"], r["metrics"] = {}, {}
        for cats in r["per_category"].values():
            for cat in cats:
                cats[cat] = {}
    elif case == "all-skipped":
        r["skipped"].update({k: "skipped: weights missing" for k in r["overall"]})
        r["overall"], r["per_category"], r["per_sample"] = {}, {}, {}
    else:  # a minimal hand-written results file: only the required sections
        r = {"schema_version": "1.0", "protocol": {"name": "javisbench-official", "version": "1.0", "values": {}},
             "bench": {"name": "b", "n_rows": 0}, "model": {"name": "m"}, "overall": {}}
    out = write_html(r, tmp_path / f"{case}.html")
    c = _check(out)
    text = " ".join(c.text)
    assert "Overall" in text and "Per category" in text
    if case in ("no-categories", "all-skipped", "bare"):
        assert "No category labels in this bench." in text
    if case == "no-metrics":
        assert "No metric produced a value in this run." in text and "No metric values to break down." in text
    if case == "all-skipped":
        assert "fvd" in text and "weights missing" in text
    assert "data:image/png" not in out.read_text() or case == "no-categories"


def test_cells_of_a_run_label_intervals_and_carry_the_size_correction(results: dict) -> None:
    """The pipeline's cells: interval kind on every cell, value_inf and reliable on set-metric cells only."""
    cells = [(k, c) for k, c in results["overall"].items()]
    cells += [(k, c) for cats in results["per_category"].values() for cs in cats.values() for k, c in cs.items()]
    for k, c in cells:
        kind = results["metrics"][k]["kind"]
        assert c["interval"] == ("spread" if kind == "set" else "ci"), k
        assert ("value_inf" in c and "reliable" in c) == (kind == "set"), k
        if kind == "set":
            assert isinstance(c["reliable"], bool)
            assert c["value_inf"] is not None or c["reliable"] is False
    fvd = results["overall"]["fvd"]
    assert fvd["n"] == N_CLIPS - 1 and fvd["value_inf"] is not None and fvd["value_inf"] != fvd["value"]


def _set_results(results: dict) -> dict:
    """A copy whose fvd cells have chosen protocol and size-corrected values: natural reliable, urban not."""
    r = copy.deepcopy(results)
    cats = r["per_category"]["event_scenario"]
    cats["natural"]["fvd"].update(value=9.0, value_inf=2.0, reliable=True, flags=[])
    cats["urban"]["fvd"].update(value=3.0, value_inf=2.5, reliable=False, flags=[])
    return r


def test_category_tables_rank_set_metrics_by_the_size_corrected_value(results: dict) -> None:
    from javisbench.report import ranking_value

    r = _set_results(results)
    text = category_tables(r, ["fvd"])
    block = text.split("[event_scenario]")[1].split("\n\n")[0]
    row = {ln.split()[0]: ln for ln in block.splitlines() if ln.split()}
    assert "fvd (n=∞)" in block
    assert "2.000 (n=" in row["natural"] and "9.000" not in row["natural"]     # corrected, not the protocol value
    assert "3.000~ (n=" in row["urban"]                                          # unreliable: protocol value, marked
    assert "size-corrected values (n=∞)" in text
    assert ranking_value(r["per_category"]["event_scenario"]["natural"]["av_align"]) == \
        (r["per_category"]["event_scenario"]["natural"]["av_align"]["value"], "protocol")


def test_html_category_table_and_heatmap_use_the_size_corrected_value(results: dict, tmp_path: Path) -> None:
    r = _set_results(results)
    html = write_html(r, tmp_path / "r.html").read_text(encoding="utf-8")
    section = html.split("<h3>event_scenario</h3>")[1].split("</table>")[0]
    assert "fvd (n=∞) ↓" in section
    assert 'protocol value 9.0000, size-corrected 2.0000;' in section and ">2.000<" in section
    assert "size-corrected 2.5000 (not reliable)" in section and ">3.000<span class=\"flag\">~</span>" in section
    assert "interval is" in html and "spread" in html
    # the heatmap is drawn from the ranking values: a different chart than from the protocol values
    from javisbench.report import _heatmap

    keys, meta = ["fvd", "av_align"], r["metrics"]
    cats = r["per_category"]["event_scenario"]
    plain = {c: {k: {kk: vv for kk, vv in v.items() if kk not in ("value_inf", "reliable")} for k, v in cs.items()}
             for c, cs in cats.items()}
    assert _heatmap("event_scenario", cats, keys, meta) != _heatmap("event_scenario", plain, keys, meta)


def test_heatmap_scores_are_direction_aware_per_column() -> None:
    v = np.array([[1.0, 10.0, 5.0], [2.0, 20.0, 5.0], [3.0, np.nan, 5.0]])
    s = _score_matrix(v, [True, False, True])
    assert s[:, 0].tolist() == [0.0, 0.5, 1.0]                   # higher is better: the largest scores 1
    assert s[0, 1] == 1.0 and s[1, 1] == 0.0 and np.isnan(s[2, 1])  # lower is better: flipped; NaN kept
    assert s[:, 2].tolist() == [0.5, 0.5, 0.5]                   # one distinct value: neutral


def test_cli_report_html(results: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rj = write_results(results, tmp_path / "r.json")
    assert main(["report", str(rj), "--html", str(tmp_path / "out.html")]) == 0
    printed = capsys.readouterr().out
    assert "HTML report:" in printed and "[event_scenario]" in printed
    _check(tmp_path / "out.html")


def _screenshot(page: Path, png: Path, profile: Path) -> np.ndarray:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           f"--screenshot={png}", "--window-size=1280,6000", page.resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert png.is_file(), "chromium wrote no screenshot"
    from PIL import Image

    return np.asarray(Image.open(png).convert("RGB")).astype(np.int16)


def _heat_colours(img: np.ndarray) -> tuple[float, float]:
    """Fractions of clearly green and clearly red pixels (the heatmaps' RdYlGn cells)."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return float(((g > r + 40) & (g > b + 40)).mean()), float(((r > g + 80) & (r > b + 80)).mean())


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="headless Chromium not found: install it to run this test (Debian/Ubuntu: apt-get install -y "
                           "chromium); .ci/run installs it in CI")
def test_report_renders_in_headless_chromium(results: dict, tmp_path: Path) -> None:
    import re

    page = write_html(results, tmp_path / "r.html")
    img = _screenshot(page, tmp_path / "shot.png", tmp_path / "profile")
    assert img.shape[:2] == (6000, 1280)
    assert img.std() > 20                                          # not blank
    green, red = _heat_colours(img)
    # the same page without its figures: the page's own styles (greys, blue links, small red marks)
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r"<figure>.*?</figure>", "", page.read_text(encoding="utf-8"), flags=re.S), encoding="utf-8")
    g0, r0 = _heat_colours(_screenshot(bare, tmp_path / "bare.png", tmp_path / "profile"))
    assert green > 0.001 and red > 0.001, (green, red)
    assert green > 10 * g0 and red > 3 * r0, (green, g0, red, r0)
