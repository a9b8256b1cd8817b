"""The weight-free lag estimate: recovers imposed shifts, refuses flat curves."""
from __future__ import annotations

import numpy as np
import pytest

from metrics.lag import av_lag


def _curves(shift_s: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    events = np.sort(rng.uniform(0.3, 3.5, size=5))
    v = np.zeros(96)                                   # 24 fps, 4 s
    v[np.round(events * 24).astype(int)] = 1.0
    a = np.zeros(400)                                  # 100 Hz
    idx = np.round((events + shift_s) * 100).astype(int)
    a[idx[idx < 400]] = 1.0
    return v, a


@pytest.mark.parametrize("shift", [0.0, 0.2, 0.5, -0.3])
def test_recovers_imposed_shift(shift: float) -> None:
    v, a = _curves(shift)
    assert av_lag(v, 24.0, a, 100.0) == pytest.approx(shift, abs=0.03)   # within one video frame


def test_grows_with_shift() -> None:
    lags = []
    for s in (0.0, 0.2, 0.6):
        v, a = _curves(s, seed=3)
        lags.append(abs(av_lag(v, 24.0, a, 100.0)))
    assert lags[0] < lags[1] < lags[2]


def test_flat_curves_are_refused() -> None:
    v, a = _curves(0.0)
    with pytest.raises(ValueError, match="no motion"):
        av_lag(np.full(96, 0.5) + 1e-6 * np.arange(96) / 96, 24.0, a, 100.0)
    with pytest.raises(ValueError, match="no onsets"):
        av_lag(v, 24.0, np.zeros(400), 100.0)
    with pytest.raises(ValueError, match="too short"):
        av_lag(v[:24], 24.0, a[:100], 100.0)
