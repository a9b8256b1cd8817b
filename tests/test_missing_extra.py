"""A missing optional dependency skips exactly the metrics of the encoder that needs it, with the
command that installs it: never a traceback that stops the run."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

import javisbench
from javisbench.encoders.base import Encoder
from javisbench.golden import write_golden_weights

GOLDEN = Path(__file__).resolve().parent / "golden"


class NeedsTransformersAtLoad(Encoder):
    id = "clap"
    version = "test-1"

    def load(self, weights_dir: Path) -> None:
        import transformers  # noqa: F401

    def prepare(self, clip, text, audio_text):  # noqa: ANN001, ANN201
        return {}

    def encode(self, batch):  # noqa: ANN001, ANN201
        return [{} for _ in batch]


class NeedsImageBindAtPrepare(NeedsTransformersAtLoad):
    id = "imagebind"

    def load(self, weights_dir: Path) -> None:
        return None

    def prepare(self, clip, text, audio_text):  # noqa: ANN001, ANN201
        from imagebind.models import imagebind_model  # noqa: F401

        return {}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "bench.csv").write_text("text\nA red square and a blue disc\nColourful shapes\n")
    for i, n in enumerate(["clip_00", "clip_01"]):
        for ext in ("mp4", "wav"):
            shutil.copy(GOLDEN / "inputs" / f"{n}.{ext}", tmp_path / f"sample_{i:04d}.{ext}")
    return tmp_path


def _eval(folder: Path, metrics: list[str], **kw) -> javisbench.Results:  # noqa: ANN003
    return javisbench.evaluate(folder, bench=folder / "bench.csv", metrics=metrics, progress="none", workers=1,
                               cache_dir=folder / "cache", weights_dir=kw.pop("weights_dir", folder / "w"), **kw)


def test_missing_at_load_and_at_prepare(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setitem(sys.modules, "imagebind", None)
    monkeypatch.setitem(sys.modules, "imagebind.models", None)
    r = _eval(folder, ["clap_score", "ib_av", "av_align"],
              encoders={"clap": NeedsTransformersAtLoad, "imagebind": NeedsImageBindAtPrepare})
    assert set(r.overall) == {"av_align"} and r.overall["av_align"]["n"] == 2      # the rest of the run goes on
    assert set(r.skipped) == {"clap_score", "ib_av"}
    assert "'transformers'" in r.skipped["clap_score"] and "pip install 'javisbench[clap]'" in r.skipped["clap_score"]
    assert "pip install --no-deps imagebind-unofficial" in r.skipped["ib_av"]
    assert r.failures == {}                                     # a missing package is not a sample's failure


def test_missing_open_clip_with_real_weights(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = write_golden_weights(GOLDEN, folder / "weights", ["clip"])
    for name in [m for m in sys.modules if m == "open_clip" or m.startswith("open_clip.")] + ["open_clip", "open_clip.model",
                                                                                            "open_clip.tokenizer"]:
        monkeypatch.setitem(sys.modules, name, None)
    r = _eval(folder, ["clip_score", "av_align"], weights_dir=weights)
    assert set(r.overall) == {"av_align"}
    assert "'open_clip'" in r.skipped["clip_score"] and "pip install 'javisbench[clip]'" in r.skipped["clip_score"]
