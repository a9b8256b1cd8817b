"""--progress: tqdm bars with rate and ETA on a terminal, plain lines otherwise, nothing with none."""
from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest

import javisbench
from javisbench.progress import Progress, resolve_mode

GOLDEN = Path(__file__).resolve().parent / "golden" / "inputs"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_modes() -> None:
    pytest.importorskip("tqdm")
    assert resolve_mode("auto", io.StringIO()) == "plain"       # a log file or a CI pipe: no bar
    assert resolve_mode("auto", Tty()) == "bar"
    assert resolve_mode("bar", io.StringIO()) == "bar"          # asked for explicitly
    assert resolve_mode("none", Tty()) == "none" and resolve_mode(False) == "none" and resolve_mode(True, Tty()) == "bar"
    with pytest.raises(ValueError, match="expected one of auto, bar, plain, none"):
        resolve_mode("fancy")


def test_bar_on_a_terminal_has_rate_and_eta() -> None:
    pytest.importorskip("tqdm")
    out = Tty()
    with Progress("samples", 4, "auto", stream=out, unit="clip") as p:
        for _ in range(4):
            p.update()
    text = out.getvalue()
    assert "\r" in text and "4/4" in text and "clip/s" in text and "<" in text     # tqdm: n/total [elapsed<eta, rate]


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    with Progress("reference", 5, "auto", stream=out, every=2, unit="clip") as p:
        for _ in range(5):
            p.update()
    lines = out.getvalue().splitlines()
    assert [ln.split(" (")[0] for ln in lines] == ["[javisbench] reference: 2/5 clips", "[javisbench] reference: 4/5 clips",
                                                   "[javisbench] reference: 5/5 clips"]
    assert all("/s, ETA " in ln for ln in lines) and "\r" not in out.getvalue()


def _run(tmp_path: Path, mode: str, capsys: pytest.CaptureFixture) -> str:
    from fakes import FakeAudio

    d = tmp_path / mode
    d.mkdir()
    (d / "bench.csv").write_text("text\nA clip\nAnother clip\n")
    for i, n in enumerate(["clip_00", "clip_01"]):
        shutil.copy(GOLDEN / f"{n}.mp4", d / f"sample_{i:04d}.mp4")
    javisbench.evaluate(d, bench=d / "bench.csv", metrics=["av_align"], progress=mode, cache_dir=d / "cache",
                        weights_dir=d / "w", workers=1, encoders={"audioclip": FakeAudio})
    return capsys.readouterr().err


def test_pipeline_modes(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    capsys.readouterr()
    err = _run(tmp_path, "plain", capsys)
    assert "[javisbench] samples: 2/2 clips (" in err and "ETA" in err and "\r" not in err
    assert _run(tmp_path, "none", capsys) == ""
    # auto under pytest's captured (non-terminal) stderr: plain lines, no bar
    err = _run(tmp_path, "auto", capsys)
    assert "[javisbench] samples: 2/2 clips (" in err and "\r" not in err
    assert not sys.stderr.isatty()


@pytest.mark.parametrize("name", ["javisbench.progress", "javisbench.download", "javisbench.rewards",
                                  "javisbench.evaluate"])
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    importlib.import_module(name)
    result = doctest.testmod(sys.modules[name], optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
