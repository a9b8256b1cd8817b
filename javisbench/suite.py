"""The metric table: every metric declared as data.

A metric names the encoder features it reads (``reads``: ``encoder:feature``, each a declared
output of that encoder), its kind (``sample``: one value per sample,
averaged; ``set``: one value for a set of samples against reference features, recomputed per
category), its direction and the protocol quirks it applies.  The pipeline, the breakdown, the
report and the leaderboard read this table; nothing else hard-codes a metric name.  A new
encoder joins by adding entries here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal, Optional

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.protocol import Protocol

Feats = dict[str, dict[str, np.ndarray]]           # encoder id -> feature name -> array
SampleFn = Callable[[Feats, "Protocol"], float]
SetFn = Callable[[np.ndarray, np.ndarray, "Protocol"], float]
OrderedFn = Callable[[list[Optional[Feats]], "Protocol"], np.ndarray]
InfFn = Callable[[np.ndarray, np.ndarray, "Protocol"], "tuple[float, bool]"]


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    encoders: tuple[str, ...]
    kind: Literal["sample", "set"]
    higher_is_better: bool
    description: str
    official: bool = True                   # one of the 16 keys of the original tool
    needs_text: bool = False                # reads the prompt (not available on unconditional benches)
    sample_fn: SampleFn | None = None
    set_feature: tuple[str, str] | None = None    # (encoder id, feature name) for set metrics
    set_fn: SetFn | None = None
    resample_fn: SetFn | None = None         # the same statistic, fast, for bootstrap resamples
    inf_fn: InfFn | None = None              # set metrics: (value at n = inf, reliable) from the same features
    ordered_fn: OrderedFn | None = None      # per-sample values that depend on the sample order
    quirks: tuple[str, ...] = field(default_factory=tuple)
    reads: tuple[str, ...] = field(default_factory=tuple)     # "encoder:feature" it reads (set metrics: set_feature)
    in_default: bool = True                  # False: computed only when named (the in-domain "@synthav" keys)

    @property
    def features(self) -> tuple[tuple[str, str], ...]:
        """``(encoder id, feature name)`` pairs the metric reads."""
        pairs = [tuple(r.split(":", 1)) for r in self.reads]
        if self.set_feature is not None and self.set_feature not in pairs:
            pairs.append(self.set_feature)
        return tuple(pairs)  # type: ignore[return-value]

    @property
    def weights(self) -> tuple[str, ...]:
        """The weight files of the metric's encoders (official names), from the encoder registry."""
        from javisbench.encoders import encoder_class

        return tuple(wf.name for e in self.encoders for wf in encoder_class(e).weight_files)

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


# ---------------------------------------------------------------------------------------------
# metric functions on stored features
# ---------------------------------------------------------------------------------------------
def _cos(a: np.ndarray, b: np.ndarray) -> float:
    from metrics.similarity import cosine

    return float(cosine(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()))


def _fd(fake: np.ndarray, real: np.ndarray, p: "Protocol") -> float:
    from metrics.frechet import fd

    return float(fd(fake, real, variant=p.fd_variant))


def _fad(fake: np.ndarray, real: np.ndarray, p: "Protocol") -> float:
    return _fd(fake, real, p) * p.fad_scale


def _fd_fast(fake: np.ndarray, real: np.ndarray, p: "Protocol") -> float:
    from metrics.frechet import frechet_distance_fast

    return float(frechet_distance_fast(fake, real))


def _fad_fast(fake: np.ndarray, real: np.ndarray, p: "Protocol") -> float:
    return _fd_fast(fake, real, p) * p.fad_scale


def _kvd_fast(fake: np.ndarray, real: np.ndarray, p: "Protocol") -> float:
    from metrics import kernel

    if p.kvd_variant == "official-centred-single":
        return float(kernel.kvd_official(fake, real))
    return float(kernel.mmd2_unbiased(fake, real))


def _kvd(fake: np.ndarray, real: np.ndarray, p: "Protocol") -> float:
    from metrics import kernel

    if p.kvd_variant == "official-centred-single":
        return float(kernel.kvd_official(fake, real))
    mean, _std = kernel.kvd_subsets(fake, real, n_subsets=p.kvd_subsets, subset_size=p.kvd_subset_size, seed=p.seed)
    return float(mean)


# size-corrected set metrics: the value extrapolated to an infinite set (metrics.size_correction),
# computed on the exact float64 form (no float32 SVD cut-off), reported beside the protocol value
def _fd_inf(fake: np.ndarray, real: np.ndarray, p: "Protocol") -> tuple[float, bool]:
    from metrics.frechet import frechet_distance_inf

    r = frechet_distance_inf(fake, real, seed=p.seed)
    return r.value, r.reliable


def _fad_inf(fake: np.ndarray, real: np.ndarray, p: "Protocol") -> tuple[float, bool]:
    v, ok = _fd_inf(fake, real, p)
    return v * p.fad_scale, ok


def _kvd_inf(fake: np.ndarray, real: np.ndarray, p: "Protocol") -> tuple[float, bool]:
    from metrics import kernel

    if p.kvd_variant == "official-centred-single":
        r = kernel.kvd_official_inf(fake, real, seed=p.seed)
        return r.value, r.reliable
    # the unbiased MMD² estimate has no finite-set bias: on all rows it is already the n = inf value
    return float(kernel.mmd2_unbiased(fake, real)), True


def _clip_score(f: Feats, p: "Protocol") -> float:
    from metrics.similarity import mean_cosine_to

    c = f["clip"]
    return float(mean_cosine_to(c["image_features"], c["text_features"]))


def _cavp(f: Feats) -> float:
    from metrics.similarity import mean_rowwise_cosine

    return float(mean_rowwise_cosine(f["cavp"]["video_feats"], f["cavp"]["spec_feats"]))


def _avh(f: Feats, p: "Protocol") -> float:
    from metrics.avh import avh_score

    ib = f["imagebind-avh"]
    return float(avh_score(ib["frames"], ib["audio"]))


def _javis(f: Feats, p: "Protocol") -> float:
    from metrics.avh import javis_score

    ib = f["imagebind-avh"]
    idx = np.rint(ib["window_frame_idx"]).astype(np.int64)
    # the original's k = int(0.4 N) can be 0 for very short windows (it then returns NaN); the fixed
    # protocol uses at least one frame
    return float(javis_score(ib["frames"], ib["window_audio"], idx, topk=p.javis_topk, clamp_k=p.javis_clamp_k))


def _av_align(f: Feats, p: "Protocol") -> float:
    from metrics.av_align import av_align_score

    a = f["avalign"]
    return float(av_align_score(a["audio_peaks"], a["video_peaks"], float(a["rates"][0]),
                                tolerance_frames=p.av_align_tolerance_frames))


def _av_lag(f: Feats, p: "Protocol") -> float:
    from metrics.lag import av_lag

    a = f["avalign"]
    v_rate, a_rate = (float(x) for x in a["rates"])
    return abs(av_lag(a["flow"], v_rate, a["onset_env"], a_rate))


def _desync(all_feats: list[Optional[Feats]], p: "Protocol") -> np.ndarray:
    from metrics.desync import assign_group_offsets

    offsets, groups = [], []
    for f in all_feats:
        if f is None:
            continue
        g = np.abs(np.asarray(f["synchformer"]["group_offsets"], np.float64).ravel())   # signed seconds
        offsets.extend(g.tolist())
        groups.append(len(g))
    per_sample = assign_group_offsets(np.asarray(offsets), groups, official_bug=not p.desync_fix_group_assignment)
    out = np.full(len(all_feats), np.nan)
    it = iter(np.asarray(per_sample, np.float64))
    for i, f in enumerate(all_feats):
        if f is not None:
            out[i] = next(it)
    return out


METRICS: dict[str, Metric] = {}


def _add(m: Metric) -> None:
    METRICS[m.key] = m


_add(Metric("fvd", "FVD", ("i3d",), "set", False, "Fréchet distance of I3D Kinetics-400 logits (16 frames over the clip) to the reference set",
            set_feature=("i3d", "logits"), set_fn=_fd, resample_fn=_fd_fast, inf_fn=_fd_inf,
            quirks=("frames remapped to [127,255] before I3D", "float32 SVD square root")))
_add(Metric("kvd", "KVD", ("i3d",), "set", False, "polynomial-kernel MMD² of I3D logits to the reference set",
            set_feature=("i3d", "logits"), set_fn=_kvd, resample_fn=_kvd_fast, inf_fn=_kvd_inf,
            quirks=("per-set mean-centred features", "one full-set estimate")))
_add(Metric("fad", "FAD", ("audioclip",), "set", False, "Fréchet distance of AudioCLIP audio embeddings (first 4 s, 16 kHz) ×1e4",
            set_feature=("audioclip", "embedding"), set_fn=_fad, resample_fn=_fad_fast, inf_fn=_fad_inf,
            quirks=("×1e4", "16 kHz float audio into a 44.1 kHz int16-scale model")))
_add(Metric("fd_clap", "FD (CLAP audio)", ("clap",), "set", False,
            "Fréchet distance of CLAP HTSAT audio embeddings (unit norm, 48 kHz, ≤10 s) to the reference set; not scaled",
            official=False, set_feature=("clap", "audio_embeds"), set_fn=_fd, resample_fn=_fd_fast, inf_fn=_fd_inf))
_add(Metric("visual_quality", "Visual quality", ("videoreward",), "sample", True,
            "VideoReward VQ logit (raw, as the original reports it)", needs_text=True,
            sample_fn=lambda f, p: float(f["videoreward"]["raw"][0]), quirks=("raw logits, not VideoReward's normalised scores",), reads=("videoreward:raw",)))
_add(Metric("motion_quality", "Motion quality", ("videoreward",), "sample", True,
            "VideoReward MQ logit (raw, as the original reports it)", needs_text=True,
            sample_fn=lambda f, p: float(f["videoreward"]["raw"][1]), quirks=("raw logits, not VideoReward's normalised scores",), reads=("videoreward:raw",)))
_add(Metric("visual_quality_norm", "Visual quality (normalised)", ("videoreward",), "sample", True,
            "VideoReward VQ normalised with the checkpoint's mean/std, as VideoReward publishes it", official=False,
            needs_text=True, sample_fn=lambda f, p: float(f["videoreward"]["normalized"][0]), reads=("videoreward:normalized",)))
_add(Metric("motion_quality_norm", "Motion quality (normalised)", ("videoreward",), "sample", True,
            "VideoReward MQ normalised with the checkpoint's mean/std, as VideoReward publishes it", official=False,
            needs_text=True, sample_fn=lambda f, p: float(f["videoreward"]["normalized"][1]), reads=("videoreward:normalized",)))
_add(Metric("audio_quality", "Audio quality", ("audiobox",), "sample", True,
            "Audiobox-Aesthetics: mean of CE, CU, PC, PQ (first 4 s; 10 s windows)",
            sample_fn=lambda f, p: float(np.mean(np.asarray(f["audiobox"]["axes"], np.float64))),
            quirks=("wrong-axis resampler for non-16 kHz audio", "zero padding counted as valid audio"), reads=("audiobox:axes",)))
_add(Metric("ib_tv", "ImageBind text-video", ("imagebind",), "sample", True, "cosine of ImageBind text (video prompt) and video embeddings",
            needs_text=True, sample_fn=lambda f, p: _cos(f["imagebind"]["text_video"], f["imagebind"]["video"]), reads=("imagebind:text_video", "imagebind:video")))
_add(Metric("ib_ta", "ImageBind text-audio", ("imagebind",), "sample", True, "cosine of ImageBind text (audio prompt) and audio embeddings",
            needs_text=True, sample_fn=lambda f, p: _cos(f["imagebind"]["text_audio"], f["imagebind"]["audio"]),
            quirks=("kaldi fbank on the left channel only",), reads=("imagebind:text_audio", "imagebind:audio")))
_add(Metric("ib_av", "ImageBind audio-video", ("imagebind",), "sample", True, "cosine of ImageBind audio and video embeddings",
            sample_fn=lambda f, p: _cos(f["imagebind"]["audio"], f["imagebind"]["video"]), reads=("imagebind:audio", "imagebind:video")))
_add(Metric("avh_score", "AVHScore", ("imagebind-avh",), "sample", True, "mean over every frame of cos(ImageBind frame, whole-clip audio)",
            sample_fn=_avh, reads=("imagebind-avh:frames", "imagebind-avh:audio")))
_add(Metric("javis_score", "JavisScore", ("imagebind-avh",), "sample", True,
            "mean over 2 s windows of the bottom-40% frame-audio ImageBind cosines",
            sample_fn=_javis, quirks=("window drift when fps·0.5 s is not an integer",), reads=("imagebind-avh:frames", "imagebind-avh:window_audio", "imagebind-avh:window_frame_idx")))
_add(Metric("clip_score", "CLIP score", ("clip",), "sample", True, "mean over 48 frames of cos(CLIP ViT-B/32 frame, video prompt)",
            needs_text=True, sample_fn=_clip_score, quirks=("CLIP sees BGR frames",), reads=("clip:image_features", "clip:text_features")))
_add(Metric("clap_score", "CLAP score", ("clap",), "sample", True, "cos(CLAP text (audio prompt), CLAP audio), HTSAT unfused",
            needs_text=True, sample_fn=lambda f, p: _cos(f["clap"]["text_embeds"], f["clap"]["audio_embeds"]),
            quirks=("clips ≤10 s zero-padded (padding=True overrides repeat-pad)",), reads=("clap:text_embeds", "clap:audio_embeds")))
_add(Metric("cavp_score", "CAVP score", ("cavp",), "sample", True,
            "mean over 4 steps per second of cos(CAVP video, CAVP spectrogram), Diff-Foley stage 1",
            sample_fn=lambda f, p: _cavp(f),
            quirks=("duration floored to whole seconds", "lossy x264 re-encode at 4 fps", "40-frame chunks",
                    "the original scores a failure 0.0; here it is a recorded failure"), reads=("cavp:video_feats", "cavp:spec_feats")))
_add(Metric("av_align", "AV-Align", ("avalign",), "sample", True,
            "IoU of audio onsets and optical-flow peaks (±1 frame); no weights",
            sample_fn=lambda f, p: _av_align(f, p),
            quirks=("±1 frame, strict; IoU-style denominator",), reads=("avalign:audio_peaks", "avalign:video_peaks", "avalign:rates")))
_add(Metric("av_lag", "AV lag (weight-free)", ("avalign",), "sample", False,
            "|lag| in seconds maximising the cross-correlation of flow and onset curves (±1 s); no weights",
            official=False, sample_fn=_av_lag, reads=("avalign:flow", "avalign:onset_env", "avalign:rates")))
_add(Metric("desync", "DeSync", ("synchformer",), "sample", False, "mean |audio-video offset| predicted by Synchformer, seconds",
            ordered_fn=_desync,
            quirks=("first group wrap-padded to 14 segments", "group/sample reshape bug for clips over 4.8 s"), reads=("synchformer:group_offsets",)))


# ---------------------------------------------------------------------------------------------
# in-domain metrics: the same metric functions on the SynthAV-trained encoders (javisbench.indomain).
# Keys end in "@synthav"; official=False: never printed or ranked as the official metric.
# ---------------------------------------------------------------------------------------------
def _avh_indomain(f: Feats, p: "Protocol") -> float:
    from metrics.avh import avh_score

    s = f["synthav-av"]
    return float(avh_score(s["frames"], s["avh_audio"]))


def _javis_indomain(f: Feats, p: "Protocol") -> float:
    from metrics.avh import javis_score

    s = f["synthav-av"]
    idx = np.rint(s["window_frame_idx"]).astype(np.int64)
    return float(javis_score(s["frames"], s["window_audio"], idx, topk=p.javis_topk, clamp_k=p.javis_clamp_k))


def _desync_indomain(all_feats: list[Optional[Feats]], p: "Protocol") -> np.ndarray:
    from metrics.desync import assign_group_offsets

    groups = [None if f is None else np.abs(np.asarray(f["synthav-sync"]["group_offsets"], np.float64).ravel())
              for f in all_feats]
    kept = [g for g in groups if g is not None]
    per_sample = iter(np.asarray(assign_group_offsets(np.concatenate(kept) if kept else np.zeros(0),
                                                      [len(g) for g in kept], official_bug=False), np.float64))
    return np.array([np.nan if g is None else next(per_sample) for g in groups])


_SYN = "in-domain (SynthAV-trained, not official): "
_add(Metric("fvd@synthav", "FVD@synthav", ("synthav-av",), "set", False,
            _SYN + "Fréchet distance of synthav-av video embeddings to the reference set", official=False, in_default=False,
            set_feature=("synthav-av", "video"), set_fn=_fd, resample_fn=_fd_fast, inf_fn=_fd_inf))
_add(Metric("kvd@synthav", "KVD@synthav", ("synthav-av",), "set", False,
            _SYN + "polynomial-kernel MMD² of synthav-av video embeddings to the reference set", official=False, in_default=False,
            set_feature=("synthav-av", "video"), set_fn=_kvd, resample_fn=_kvd_fast, inf_fn=_kvd_inf))
_add(Metric("fad@synthav", "FAD@synthav", ("synthav-av",), "set", False,
            _SYN + "Fréchet distance of synthav-av audio embeddings to the reference set (not scaled)", official=False, in_default=False,
            set_feature=("synthav-av", "audio"), set_fn=_fd, resample_fn=_fd_fast, inf_fn=_fd_inf))
_add(Metric("ib_tv@synthav", "Text-video@synthav", ("synthav-text", "synthav-av"), "sample", True,
            _SYN + "cosine of the synthav-text prompt and synthav-av video embeddings", official=False, in_default=False, needs_text=True,
            sample_fn=lambda f, p: _cos(f["synthav-text"]["text_video"], f["synthav-av"]["video"]),
            reads=("synthav-text:text_video", "synthav-av:video")))
_add(Metric("ib_ta@synthav", "Text-audio@synthav", ("synthav-text", "synthav-av"), "sample", True,
            _SYN + "cosine of the synthav-text audio prompt and synthav-av audio embeddings", official=False, in_default=False,
            needs_text=True, sample_fn=lambda f, p: _cos(f["synthav-text"]["text_audio"], f["synthav-av"]["audio"]),
            reads=("synthav-text:text_audio", "synthav-av:audio")))
_add(Metric("ib_av@synthav", "Audio-video@synthav", ("synthav-av",), "sample", True,
            _SYN + "cosine of synthav-av audio and video embeddings", official=False, in_default=False,
            sample_fn=lambda f, p: _cos(f["synthav-av"]["audio"], f["synthav-av"]["video"]),
            reads=("synthav-av:audio", "synthav-av:video")))
_add(Metric("avh_score@synthav", "AVHScore@synthav", ("synthav-av",), "sample", True,
            _SYN + "mean over frames of cos(time-aware frame, whole-clip audio) (8 fps)", official=False, in_default=False,
            sample_fn=_avh_indomain, reads=("synthav-av:frames", "synthav-av:avh_audio")))
_add(Metric("javis_score@synthav", "JavisScore@synthav", ("synthav-av",), "sample", True,
            _SYN + "mean over 2 s windows of the bottom-40% time-aware frame-audio cosines (8 fps)", official=False, in_default=False,
            sample_fn=_javis_indomain,
            reads=("synthav-av:frames", "synthav-av:window_audio", "synthav-av:window_frame_idx")))
_add(Metric("desync@synthav", "DeSync@synthav", ("synthav-sync",), "sample", False,
            _SYN + "|audio-video offset| predicted by the SynthAV offset classifier (−2…2 s, 0.2 s classes), seconds",
            official=False, in_default=False, ordered_fn=_desync_indomain, reads=("synthav-sync:group_offsets",)))

#: the in-domain keys, in table order
INDOMAIN_METRICS: tuple[str, ...] = tuple(k for k in METRICS if k.endswith("@synthav"))


def get_metric(key: str) -> Metric:
    from javisbench.names import unknown_name

    try:
        return METRICS[key]
    except KeyError:
        raise unknown_name("metric", key, METRICS) from None


def select_metrics(keys: list[str] | None) -> list[Metric]:
    """``None`` or ``["all"]``: every default metric (the in-domain ``@synthav`` keys are not among
    them); otherwise the named ones, validated.  ``@synthav`` names every in-domain key."""
    if not keys or keys == ["all"]:
        return [m for m in METRICS.values() if m.in_default]
    out: list[Metric] = []
    for k in keys:
        for part in k.split(","):
            part = part.strip()
            names = INDOMAIN_METRICS if part in ("@synthav", "synthav") else (part,) if part else ()
            for name in names:
                if METRICS.get(name) not in out:
                    out.append(get_metric(name))
    return out
