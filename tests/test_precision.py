"""--precision: validated, refused under javisbench-official, part of the model encoders' feature
keys (not the weight-free ones'), and the forward passes really run under autocast."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install 'javisbench[torch]')")

from javisbench.config import EvalConfig  # noqa: E402
from javisbench.encoders import encoder_class  # noqa: E402
from javisbench.encoders.base import Encoder  # noqa: E402
from javisbench.evaluate import check_precision, evaluate  # noqa: E402
from javisbench.protocol import FIXED, OFFICIAL  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_precision_is_validated() -> None:
    assert check_precision("bf16", "javisbench-fixed", "cpu") == "bf16"
    assert check_precision("fp32", "javisbench-official", "cuda") == "fp32"
    with pytest.raises(ValueError, match="javisbench-official keeps the original's precision"):
        check_precision("bf16", "javisbench-official", "cuda")
    with pytest.raises(ValueError, match="fp16 needs --device cuda"):
        check_precision("fp16", "javisbench-fixed", "cpu")
    with pytest.raises(ValueError, match="expected one of fp32, bf16, fp16"):
        check_precision("fp8", "javisbench-fixed", "cuda")


def test_precision_enters_model_encoders_keys_only() -> None:
    bf16 = FIXED.replace(precision="bf16")
    for enc_id in ("i3d", "audioclip", "clip", "clap", "synchformer", "imagebind"):
        cls = encoder_class(enc_id)
        assert cls(FIXED).feature_fingerprint() != cls(bf16).feature_fingerprint(), enc_id
    avalign = encoder_class("avalign")
    assert avalign(FIXED).feature_fingerprint() == avalign(bf16).feature_fingerprint()


class _Recorder(Encoder):
    """A tiny torch 'model' that records whether it ran under CPU autocast, and in which dtype."""

    id = "i3d"
    version = "precision-test"
    outputs = {"logits": "(2,)"}
    seen: list = []

    def load(self, weights_dir: Path) -> None:
        self.lin = torch.nn.Linear(4, 2)

    def prepare(self, clip, text, audio_text):  # noqa: ANN001, ANN201
        return {"x": clip.frames[:1].astype(np.float32).reshape(-1)[:4] / 255.0}

    def encode(self, batch):  # noqa: ANN001, ANN201
        type(self).seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        x = torch.from_numpy(np.stack([b["x"] for b in batch]))
        y = self.lin(x)
        type(self).seen.append(y.dtype)
        return [{"logits": r.float().detach().numpy()} for r in y]


def test_forward_runs_under_autocast_and_the_precision_is_recorded(tmp_path: Path) -> None:
    samples = tmp_path / "s"
    samples.mkdir()
    for i, n in enumerate(["clip_00", "clip_01"]):
        shutil.copy(GOLDEN / "inputs" / f"{n}.mp4", samples / f"sample_{i:04d}.mp4")
        shutil.copy(GOLDEN / "inputs" / f"{n}.wav", samples / f"sample_{i:04d}.wav")
    bench = tmp_path / "b.csv"
    bench.write_text("text,path\na,x.mp4\nb,y.mp4\n")
    for precision, want in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        _Recorder.seen = []
        cfg = EvalConfig(samples_dir=samples, bench=bench, out=tmp_path / f"{precision}.json", metrics=["fvd"],
                         protocol="javisbench-fixed", precision=precision, cache_dir=tmp_path / f"c-{precision}",
                         weights_dir=tmp_path / "w", progress="plain")
        r = evaluate(cfg, encoders={"i3d": _Recorder})
        assert r["protocol"]["values"]["precision"] == precision, r["failures"]
        assert _Recorder.seen, (r["failures"], r["skipped"])
        assert _Recorder.seen[-1] == want
        assert _Recorder.seen[0] == (want if precision == "bf16" else False)
    with pytest.raises(ValueError, match="javisbench-official keeps"):
        evaluate(EvalConfig(samples_dir=samples, bench=bench, out=tmp_path / "o.json", metrics=["fvd"], precision="bf16",
                            cache_dir=tmp_path / "c", weights_dir=tmp_path / "w"), encoders={"i3d": _Recorder})
    assert OFFICIAL.precision == "fp32"
