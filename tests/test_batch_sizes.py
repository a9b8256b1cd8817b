"""--batch-size: a default and per-encoder overrides, parsed, validated and applied where the
encoders are built (each encoder's forward passes see batches of its own size)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from javisbench.cli import build_parser
from javisbench.config import EvalConfig, parse_batch_sizes
from javisbench.encoders.base import Encoder
from javisbench.evaluate import evaluate, load_encoders, plan_run

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_parse_tokens_mapping_and_int() -> None:
    assert parse_batch_sizes(["8", "synchformer=2", "i3d=16"]) == (8, {"i3d": 16, "synchformer": 2})
    assert parse_batch_sizes("synchformer=2") == (8, {"synchformer": 2})          # default kept
    assert parse_batch_sizes("4 clap=1,clip=3") == (4, {"clap": 1, "clip": 3})
    assert parse_batch_sizes({"default": 2, "i3d": 5}) == (2, {"i3d": 5})
    assert parse_batch_sizes(6) == (6, {})
    assert parse_batch_sizes(["i3d=3", "i3d=7"]) == (8, {"i3d": 7})               # the last one wins


@pytest.mark.parametrize("spec, msg", [
    (["0"], "--batch-size 0: expected a positive integer, got '0'"),
    (["x"], "--batch-size x: expected a positive integer"),
    (["i3d=-1"], "--batch-size i3d=-1: expected a positive integer"),
    (["i3d=1.5"], "--batch-size i3d=1.5: expected a positive integer"),
    (["syncformer=2"], "unknown encoder 'syncformer'; expected one of audiobox, audioclip"),
    (True, "--batch-size: expected a positive integer or ENCODER=N"),
])
def test_parse_errors_name_the_token(spec: object, msg: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_batch_sizes(spec)
    assert msg in str(e.value)


def test_config_normalises_every_form() -> None:
    base = dict(samples_dir=Path("s"), bench=Path("b.csv"))
    c = EvalConfig(**base, batch_size=["4", "synchformer=2"])
    assert (c.batch_size, c.batch_sizes) == (4, {"synchformer": 2})
    assert c.batch_size_for("synchformer") == 2 and c.batch_size_for("i3d") == 4
    c = EvalConfig(**base, batch_size=3, batch_sizes={"clap": 1})
    assert (c.batch_size, c.batch_sizes) == (3, {"clap": 1})
    c = EvalConfig(**base)
    assert (c.batch_size, c.batch_sizes, c.batch_size_for("i3d")) == (8, {}, 8)
    with pytest.raises(ValueError, match="--batch-size: expected a positive integer, got 0"):
        EvalConfig(**base, batch_size=0)
    with pytest.raises(ValueError, match="unknown encoder 'nope'"):
        EvalConfig(**base, batch_sizes={"nope": 2})


def test_cli_accepts_a_default_and_overrides() -> None:
    p = build_parser()
    a = p.parse_args(["evaluate", "s", "--bench", "b.csv", "--out", "o.json", "--batch-size", "8", "synchformer=2",
                      "i3d=16"])
    c = EvalConfig(samples_dir=Path("s"), bench=Path("b.csv"), batch_size=a.batch_size)
    assert (c.batch_size, c.batch_sizes) == (8, {"i3d": 16, "synchformer": 2})
    a = p.parse_args(["evaluate", "s", "--bench", "b.csv", "--out", "o.json"])
    assert EvalConfig(samples_dir=Path("s"), bench=Path("b.csv"), batch_size=a.batch_size).batch_size == 8


class _Counter(Encoder):
    """Records the size of every batch its encode() receives."""

    version = "batch-size-test"
    outputs = {"logits": "(2,)"}
    sizes: list[int]

    def load(self, weights_dir: Path) -> None:
        pass

    def prepare(self, clip, text, audio_text):  # noqa: ANN001, ANN201
        return {"x": clip.frames[:1, :2, :2, 0].astype(np.float32).reshape(-1)[:2]}

    def encode(self, batch):  # noqa: ANN001, ANN201
        type(self).sizes.append(len(batch))
        return [{"logits": b["x"]} for b in batch]


class _I3D(_Counter):
    id = "i3d"
    sizes: list[int] = []


class _Clip(_Counter):
    id = "clip"
    outputs = {"image_features": "(T, 2)", "text_features": "(2,)"}
    sizes: list[int] = []

    def encode(self, batch):  # noqa: ANN001, ANN201
        type(self).sizes.append(len(batch))
        return [{"image_features": b["x"][None] + 1.0, "text_features": b["x"] + 1.0} for b in batch]


def _samples(tmp_path: Path, n: int) -> tuple[Path, Path]:
    samples = tmp_path / "s"
    samples.mkdir()
    names = [f"clip_{i:02d}" for i in range(4)] + ["edge_short2s"]
    for i in range(n):
        shutil.copy(GOLDEN / "inputs" / f"{names[i]}.mp4", samples / f"sample_{i:04d}.mp4")
        shutil.copy(GOLDEN / "inputs" / f"{names[i]}.wav", samples / f"sample_{i:04d}.wav")
    bench = tmp_path / "b.csv"
    bench.write_text("text,path\n" + "".join(f"prompt {i},x{i}.mp4\n" for i in range(n)))
    return samples, bench


def test_each_encoder_runs_at_its_own_batch_size(tmp_path: Path) -> None:
    samples, bench = _samples(tmp_path, 5)
    cfg = EvalConfig(samples_dir=samples, bench=bench, out=None, metrics=["fvd", "clip_score"], cache_dir=tmp_path / "c",
                     weights_dir=tmp_path / "w", progress=False, workers=1, batch_size=["3", "clip=2"])
    run, _ = plan_run(cfg)
    encs, _ = load_encoders(run, {"i3d": _I3D, "clip": _Clip})
    assert (encs["i3d"].batch_size, encs["clip"].batch_size) == (3, 2)
    _I3D.sizes, _Clip.sizes = [], []
    evaluate(cfg, encoders={"i3d": _I3D, "clip": _Clip})
    # 5 clips: full batches as they fill, the remainder flushed at the end
    assert _I3D.sizes == [3, 2]
    assert _Clip.sizes == [2, 2, 1]
