"""Memory is bounded by the batch size and the prefetch depth, not by the number of clips: the
decode pool keeps a fixed number of clips in flight, and prepared inputs live only until their
batch has been encoded."""
from __future__ import annotations

import shutil
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from javisbench.config import EvalConfig
from javisbench.encoders.base import Encoder
from javisbench.evaluate import _ordered_prefetch, evaluate

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_prefetch_keeps_at_most_depth_items_ahead_of_the_consumer() -> None:
    started = 0
    lock = threading.Lock()

    def work(x: int) -> int:
        nonlocal started
        with lock:
            started += 1
        return x * x

    depth = 3
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = []
        for k, y in enumerate(_ordered_prefetch(pool, work, list(range(40)), depth)):
            got.append(y)
            # item k is in the consumer's hands: at most `depth` later items have been submitted
            assert started - (k + 1) <= depth, (k, started)
    assert got == [x * x for x in range(40)]          # order kept


class _Blob:
    """A prepared input whose lifetime is observable (numpy dicts cannot be weak-referenced)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a


class _Tracker(Encoder):
    id = "i3d"
    version = "memory-bound-test"
    outputs = {"logits": "(2,)"}
    live: "weakref.WeakSet[_Blob]" = weakref.WeakSet()
    peak = 0
    lock = threading.Lock()

    def load(self, weights_dir: Path) -> None:
        pass

    def _note(self) -> None:
        with type(self).lock:
            type(self).peak = max(type(self).peak, len(type(self).live))

    def prepare(self, clip, text, audio_text):  # noqa: ANN001, ANN201
        b = _Blob(clip.frames[:4].astype(np.float32))           # a sizeable prepared input
        type(self).live.add(b)
        self._note()
        return {"x": b}

    def encode(self, batch):  # noqa: ANN001, ANN201
        self._note()
        return [{"logits": np.array([float(b["x"].a.mean()), float(len(batch))], np.float32)} for b in batch]


def test_prepared_inputs_alive_at_once_do_not_grow_with_the_clips(tmp_path: Path) -> None:
    n, batch, workers = 14, 2, 1
    samples = tmp_path / "s"
    samples.mkdir()
    for i in range(n):
        src = f"clip_{i % 4:02d}"
        shutil.copy(GOLDEN / "inputs" / f"{src}.mp4", samples / f"sample_{i:04d}.mp4")
        shutil.copy(GOLDEN / "inputs" / f"{src}.wav", samples / f"sample_{i:04d}.wav")
    bench = tmp_path / "b.csv"
    bench.write_text("text,path\n" + "".join(f"p{i},x{i}.mp4\n" for i in range(n)))
    _Tracker.live = weakref.WeakSet()
    _Tracker.peak = 0
    cfg = EvalConfig(samples_dir=samples, bench=bench, out=None, metrics=["fvd"], cache_dir=tmp_path / "c",
                     weights_dir=tmp_path / "w", progress=False, workers=workers, batch_size=batch)
    r = evaluate(cfg, encoders={"i3d": _Tracker})
    assert not r["failures"]
    # the queue (batch), the clips submitted ahead (2 x workers), the one being handed over
    bound = batch + 2 * workers + 1
    assert 0 < _Tracker.peak <= bound < n, (_Tracker.peak, bound)
    assert len(_Tracker.live) == 0        # nothing prepared outlives the run
