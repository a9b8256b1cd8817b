"""AV-Align's flow threshold (the authors' later rule: video peaks below 0.1 px/frame are ignored).

The JavisBench original counts every strict local maximum of the flow trajectory, so a frozen
video whose frames differ only by codec noise still gets "motion peaks" and can outscore the real
clip.  The pair here is a SynthAV clip with its real motion and the same clip with its first frame
shown for the whole duration, both through H.264 (so the frozen frames differ by codec noise).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metrics.av_align import TEMPOTOKENS_FLOW_THRESHOLD, av_align, flow_trajectory, video_peaks


def test_threshold_rule() -> None:
    t = np.array([0.0, 0.05, 0.0, 0.1, 0.0, 0.3, 0.2, 0.2, 0.0])
    assert video_peaks(t, 1.0).tolist() == [1.0, 3.0, 5.0]
    assert video_peaks(t, 1.0, flow_threshold=0.1).tolist() == [3.0, 5.0]       # >= threshold is kept (as the source)
    assert video_peaks(t, 1.0, flow_threshold=0.11).tolist() == [5.0]
    assert video_peaks(t, 1.0, flow_threshold=0.0).tolist() == video_peaks(t, 1.0).tolist()
    assert TEMPOTOKENS_FLOW_THRESHOLD == 0.1
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="flow_threshold"):
            video_peaks(t, 1.0, flow_threshold=bad)


def _decode(path: Path) -> np.ndarray:
    av = pytest.importorskip("av")
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def clip_pair(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int, int]]:
    """(motion frames, frozen frames, audio, fps, sr) of two SynthAV clips, both decoded from H.264."""
    pytest.importorskip("av")
    from reference_models.synthav import make_synth_clip, stratified_labels, write_mp4

    d = tmp_path_factory.mktemp("frozen")
    out = []
    for seed in (1, 2):
        c = make_synth_clip(stratified_labels(5, seed)[seed], seed, fps=24, height=96, width=128)
        motion = _decode(write_mp4(d / f"motion{seed}.mp4", c.frames, c.fps))
        frozen = _decode(write_mp4(d / f"frozen{seed}.mp4", np.repeat(c.frames[:1], len(c.frames), axis=0), c.fps))
        out.append((motion, frozen, c.audio, c.fps, c.sr))
    return out


def test_frozen_video_scores_below_real_motion_under_threshold(clip_pair: list) -> None:
    for motion, frozen, wav, fps, sr in clip_pair:
        assert motion.shape == frozen.shape
        # the frozen copy is not bit-frozen: the encoder's noise makes its frames differ ...
        assert any(not np.array_equal(frozen[i], frozen[0]) for i in range(1, len(frozen)))
        t_frozen, t_motion = flow_trajectory(frozen), flow_trajectory(motion)
        # ... by far less than a tenth of a pixel of mean flow, while the real clip moves more
        assert 0 < t_frozen.max() < TEMPOTOKENS_FLOW_THRESHOLD <= t_motion.max()
        # the original rule counts the noise wiggles as motion peaks; the threshold removes all of them
        assert video_peaks(t_frozen, fps).size > 0
        assert video_peaks(t_frozen, fps, flow_threshold=TEMPOTOKENS_FLOW_THRESHOLD).size == 0
        frozen_score = av_align(frozen, fps, wav, sr, flow_threshold=TEMPOTOKENS_FLOW_THRESHOLD)
        motion_score = av_align(motion, fps, wav, sr, flow_threshold=TEMPOTOKENS_FLOW_THRESHOLD)
        assert frozen_score == 0.0
        assert motion_score > 0.05           # measured 0.143 and 0.290 (the original rule: 0.030 and 0.290)
