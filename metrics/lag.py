"""A weight-free audio-video lag estimate (an extra metric, not one of the 16 official keys).

The visual event curve is the per-frame optical-flow magnitude (what AV-Align computes anyway);
the audio event curve is the onset-strength envelope.  Both are resampled to a common 100 Hz
grid, standardised, and cross-correlated over lags within ``±max_lag_s``; the lag of the peak is
the estimate.  Positive lag: the audio comes late.  ``|lag|`` is a DeSync-like score in seconds
that needs no model, useful as an in-domain check on synthetic clips whose events are sharp.
"""
from __future__ import annotations

import numpy as np

GRID_HZ = 100.0
FLAT_FLOW = 1e-3   # pixels


def _on_grid(curve: np.ndarray, rate: float, duration: float) -> np.ndarray:
    t = np.arange(curve.size) / rate
    grid = np.arange(0.0, duration, 1.0 / GRID_HZ)
    return np.interp(grid, t, curve)


def av_lag(video_curve: np.ndarray, video_rate: float, audio_curve: np.ndarray, audio_rate: float,
           max_lag_s: float = 1.0) -> float:
    """Lag (seconds) maximising the normalised cross-correlation of the two event curves.

    ``c(l) = mean_t z_v(t) z_a(t + l)`` over the overlap, for ``|l| <= max_lag_s`` on a 100 Hz
    grid, where ``z`` are the standardised curves; returns ``argmax_l c(l)``.

    Raises:
        ValueError: a curve is flat (a frozen video or silent audio has no events to align) or
            the clip is shorter than twice ``max_lag_s``.

    Example:
        >>> v = np.zeros(100); v[[20, 50, 80]] = 1.0                 # 25 fps, events at 0.8/2.0/3.2 s
        >>> a = np.zeros(400); a[[105, 225, 345]] = 1.0              # 100 Hz, each 0.25 s later
        >>> round(av_lag(v, 25.0, a, 100.0), 2)
        0.25
    """
    v = np.asarray(video_curve, np.float64).ravel()
    a = np.asarray(audio_curve, np.float64).ravel()
    duration = min(v.size / video_rate, a.size / audio_rate)
    if duration < 2 * max_lag_s:
        raise ValueError(f"clip of {duration:.2f} s is too short for a ±{max_lag_s} s lag search (need {2 * max_lag_s} s)")
    gv, ga = _on_grid(v, video_rate, duration), _on_grid(a, audio_rate, duration)
    # "flat" allows for codec noise: below a thousandth of a pixel of mean flow there is no motion
    if not np.ptp(gv) > FLAT_FLOW:
        raise ValueError("the video has no motion events (flat flow curve): lag undefined")
    if not ga.std() > 0:
        raise ValueError("the audio has no onsets (flat onset curve): lag undefined")
    zv, za = (gv - gv.mean()) / gv.std(), (ga - ga.mean()) / ga.std()
    n = zv.size
    max_l = int(round(max_lag_s * GRID_HZ))
    best, best_c = 0, -np.inf
    for lag in range(-max_l, max_l + 1):
        if lag >= 0:
            c = float(np.dot(zv[: n - lag], za[lag:])) / (n - lag)
        else:
            c = float(np.dot(zv[-lag:], za[: n + lag])) / (n + lag)
        if c > best_c:
            best, best_c = lag, c
    return best / GRID_HZ
