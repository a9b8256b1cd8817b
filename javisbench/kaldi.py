"""Kaldi-compatible log mel filterbank features ("fbank"), in torch.

Written from Kaldi's definition of ``compute-fbank-feats`` (``feature-window.cc``,
``mel-computations.cc``) with the conventions of ``torchaudio.compliance.kaldi.fbank``, which
is what ImageBind's audio preprocessing calls (torchaudio itself is not a dependency here).
Per frame of ``frame_length`` ms taken every ``frame_shift`` ms:

1. optional dither (Gaussian noise times ``dither``), then per-frame DC removal;
2. pre-emphasis ``y[j] = x[j] - p * x[j-1]`` with ``x[-1] := x[0]``;
3. a window (``hanning``/``hamming``/``povey``/``rectangular``/``blackman``, symmetric);
4. zero padding to the FFT size (next power of two), power spectrum ``|rfft|^2``;
5. triangular mel filters on ``mel(f) = 1127 ln(1 + f/700)``, equally spaced between
   ``low_freq`` and ``high_freq`` (``<= 0`` means relative to Nyquist);
6. ``log(max(energy, eps))`` with ``eps`` the float32 machine epsilon.

Output shape ``(num_frames, num_mel_bins)`` (+1 energy column with ``use_energy``), float32.
``num_frames = 1 + (L - window) // shift`` with ``snip_edges`` (Kaldi's default), else
``(L + shift // 2) // shift`` with reflected edges.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import torch

WindowType = Literal["hanning", "hamming", "povey", "rectangular", "blackman"]

# Kaldi floors energies at the machine epsilon of float (torchaudio: torch.finfo(torch.float).eps).
EPSILON = float(torch.finfo(torch.float32).eps)
MILLISECONDS_TO_SECONDS = 0.001


def mel_scale(freq: torch.Tensor | float) -> torch.Tensor | float:
    """Kaldi's mel scale: ``1127 ln(1 + f / 700)``."""
    if isinstance(freq, torch.Tensor):
        return 1127.0 * (1.0 + freq / 700.0).log()
    return 1127.0 * math.log(1.0 + freq / 700.0)


def window_properties(sample_frequency: float, frame_length: float, frame_shift: float,
                      round_to_power_of_two: bool) -> tuple[int, int, int]:
    """``(window_shift, window_size, padded_window_size)`` in samples.

    Example:
        >>> window_properties(16000, 25, 10, True)
        (160, 400, 512)
    """
    shift = int(sample_frequency * frame_shift * MILLISECONDS_TO_SECONDS)
    size = int(sample_frequency * frame_length * MILLISECONDS_TO_SECONDS)
    padded = 1 << (size - 1).bit_length() if round_to_power_of_two else size
    return shift, size, padded


@lru_cache(maxsize=16)
def _mel_banks_cached(num_bins: int, padded_window_size: int, sample_frequency: float,
                      low_freq: float, high_freq: float) -> torch.Tensor:
    if num_bins <= 3:
        raise ValueError(f"num_mel_bins must be > 3, got {num_bins}")
    if padded_window_size % 2:
        raise ValueError(f"the FFT size must be even, got {padded_window_size}")
    num_fft_bins = padded_window_size // 2
    nyquist = 0.5 * sample_frequency
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(
            f"mel band edges must satisfy 0 <= low_freq < high_freq <= nyquist ({nyquist} Hz); "
            f"got low_freq={low_freq}, high_freq={high_freq}"
        )
    fft_bin_width = sample_frequency / padded_window_size
    mel_low = mel_scale(low_freq)
    mel_high = mel_scale(high_freq)
    mel_delta = (mel_high - mel_low) / (num_bins + 1)            # python float (double)
    b = torch.arange(num_bins).unsqueeze(1)                       # (num_bins, 1)
    left = mel_low + b * mel_delta                                # float32, as Kaldi/torchaudio
    center = mel_low + (b + 1.0) * mel_delta
    right = mel_low + (b + 2.0) * mel_delta
    mel = mel_scale(fft_bin_width * torch.arange(num_fft_bins)).unsqueeze(0)   # (1, num_fft_bins)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)         # (num_bins, num_fft_bins)
    # The Nyquist bin gets weight 0: the filters are defined on the first N/2 FFT bins only.
    return torch.nn.functional.pad(banks, (0, 1), mode="constant", value=0.0)


def mel_banks(num_bins: int, padded_window_size: int, sample_frequency: float,
              low_freq: float, high_freq: float) -> torch.Tensor:
    """Triangular mel filters, float32 ``(num_bins, padded_window_size // 2 + 1)``.

    Filter ``b`` rises from mel ``m_lo + b*d`` to ``m_lo + (b+1)*d`` and falls to
    ``m_lo + (b+2)*d``, with ``d = (m_hi - m_lo) / (num_bins + 1)``, evaluated at the FFT bin
    centres ``k * fs / N``; the Nyquist column is zero.
    """
    return _mel_banks_cached(int(num_bins), int(padded_window_size), float(sample_frequency),
                             float(low_freq), float(high_freq)).clone()


def feature_window(window_type: WindowType, size: int, blackman_coeff: float = 0.42,
                   dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The symmetric analysis window of ``size`` samples.

    ``hanning``: ``0.5 - 0.5 cos(2 pi n / (size-1))``; ``povey``: hanning to the power 0.85 (Kaldi's
    default); ``hamming``: ``0.54 - 0.46 cos(...)``; ``blackman``: ``c - 0.5 cos(a n) + (0.5-c) cos(2 a n)``.
    """
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False, dtype=dtype, device=device)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=dtype, device=device)
    if window_type == "povey":
        return torch.hann_window(size, periodic=False, dtype=dtype, device=device).pow(0.85)
    if window_type == "rectangular":
        return torch.ones(size, dtype=dtype, device=device)
    if window_type == "blackman":
        a = 2 * math.pi / (size - 1)
        n = torch.arange(size, dtype=dtype, device=device)
        return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    raise ValueError(f"unknown window_type {window_type!r}; expected hanning, hamming, povey, rectangular or blackman")


def _frames(x: torch.Tensor, size: int, shift: int, snip_edges: bool) -> torch.Tensor:
    """Frames of a batch of signals ``(B, L) -> (B, T, size)``."""
    n = x.shape[-1]
    if snip_edges:
        if n < size:
            return x.new_empty((x.shape[0], 0, size))
        count = 1 + (n - size) // shift
        return x.unfold(-1, size, shift)[:, :count]
    # Kaldi without snip_edges: frame i is centred on i*shift + shift/2, and samples outside
    # [0, n) are mirrored (-1 -> 0, n -> n-1).
    count = (n + shift // 2) // shift
    start = torch.arange(count, device=x.device) * shift + (shift // 2 - size // 2)
    idx = start.unsqueeze(1) + torch.arange(size, device=x.device)          # (T, size)
    idx = torch.where(idx < 0, -idx - 1, idx)
    idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
    if count and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"signal of {n} samples is too short to mirror a {size}-sample window")
    return x[:, idx]


def fbank_batch(
    signals: torch.Tensor,
    *,
    sample_frequency: float = 16000.0,
    num_mel_bins: int = 128,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    window_type: WindowType = "hanning",
    blackman_coeff: float = 0.42,
    dither: float = 0.0,
    generator: torch.Generator | None = None,
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    use_energy: bool = False,
    raw_energy: bool = True,
    energy_floor: float = 1.0,
    htk_compat: bool = True,
    use_log_fbank: bool = True,
    use_power: bool = True,
    subtract_mean: bool = False,
) -> torch.Tensor:
    """Kaldi fbank of a batch of equally long mono signals: ``(B, L) -> (B, T, num_mel_bins[+1])``.

    The arithmetic runs in the signals' floating dtype (float32 for ImageBind), on their device.
    See ``fbank`` for the parameters (Kaldi's names and defaults).
    """
    if signals.ndim != 2:
        raise ValueError(f"fbank_batch expects signals shaped (B, L); got {tuple(signals.shape)}")
    if not signals.is_floating_point():
        raise ValueError(f"fbank expects a floating-point waveform; got {signals.dtype}")
    if sample_frequency <= 0:
        raise ValueError(f"sample_frequency must be > 0, got {sample_frequency}")
    if not 0.0 <= preemphasis <= 1.0:
        raise ValueError(f"preemphasis must be in [0, 1], got {preemphasis}")
    shift, size, padded = window_properties(sample_frequency, frame_length, frame_shift, round_to_power_of_two)
    if shift <= 0 or size < 2:
        raise ValueError(f"frame_shift {frame_shift} ms / frame_length {frame_length} ms give "
                         f"{shift}/{size} samples at {sample_frequency} Hz; need shift >= 1 and length >= 2")
    n = signals.shape[-1]
    if n < size:
        raise ValueError(f"waveform has {n} samples; a {frame_length} ms frame needs at least {size} "
                         f"samples at {sample_frequency} Hz")
    dtype, device = signals.dtype, signals.device
    eps = torch.tensor(EPSILON, dtype=dtype, device=device)

    x = _frames(signals, size, shift, snip_edges)                          # (B, T, size)
    if dither != 0.0:
        x = x + dither * torch.randn(x.shape, generator=generator, dtype=dtype, device=device)
    if remove_dc_offset:
        x = x - x.mean(dim=-1, keepdim=True)
    if use_energy and raw_energy:
        log_energy = torch.maximum(x.pow(2).sum(-1), eps).log()           # (B, T)
    if preemphasis != 0.0:
        prev = torch.cat([x[..., :1], x[..., :-1]], dim=-1)              # x[-1] := x[0]
        x = x - preemphasis * prev
    x = x * feature_window(window_type, size, blackman_coeff, dtype=dtype, device=device)
    if padded != size:
        x = torch.nn.functional.pad(x, (0, padded - size), mode="constant", value=0.0)
    if use_energy and not raw_energy:
        log_energy = torch.maximum(x.pow(2).sum(-1), eps).log()
    if use_energy and energy_floor > 0.0:
        log_energy = torch.maximum(log_energy, torch.tensor(math.log(energy_floor), dtype=dtype, device=device))

    spectrum = torch.fft.rfft(x).abs()                                    # (B, T, padded/2 + 1)
    if use_power:
        spectrum = spectrum.pow(2.0)
    banks = mel_banks(num_mel_bins, padded, sample_frequency, low_freq, high_freq).to(device=device, dtype=dtype)
    feats = torch.matmul(spectrum, banks.T)                               # (B, T, num_mel_bins)
    if use_log_fbank:
        feats = torch.maximum(feats, eps).log()
    if use_energy:
        e = log_energy.unsqueeze(-1)
        # HTK puts the energy last, Kaldi first.
        feats = torch.cat([feats, e], dim=-1) if htk_compat else torch.cat([e, feats], dim=-1)
    if subtract_mean:
        feats = feats - feats.mean(dim=1, keepdim=True)
    return feats


def fbank(
    waveform: torch.Tensor,
    *,
    sample_frequency: float = 16000.0,
    num_mel_bins: int = 128,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    window_type: WindowType = "hanning",
    blackman_coeff: float = 0.42,
    channel: int = -1,
    dither: float = 0.0,
    generator: torch.Generator | None = None,
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    use_energy: bool = False,
    raw_energy: bool = True,
    energy_floor: float = 1.0,
    htk_compat: bool = True,
    use_log_fbank: bool = True,
    use_power: bool = True,
    subtract_mean: bool = False,
    min_duration: float = 0.0,
) -> torch.Tensor:
    """Kaldi log mel filterbank of one channel: ``(C, L) -> (T, num_mel_bins)`` float.

    Parameters keep Kaldi's meaning (as ``torchaudio.compliance.kaldi.fbank``; ``preemphasis``
    is its ``preemphasis_coefficient``). The defaults are the ImageBind call
    (``num_mel_bins=128, window_type="hanning", htk_compat=True, dither=0``: 25 ms frames of
    400 samples, FFT 512, every 10 ms at 16 kHz); Kaldi's own defaults differ only in
    ``num_mel_bins=23, window_type="povey", htk_compat=False`` (and ``dither=1``).
    ``channel=-1`` means channel 0, as in Kaldi.

    Args:
        waveform: ``(C, L)`` (or ``(L,)``) floating-point samples, any scale.
        min_duration: a signal shorter than this many seconds gives an empty ``(0,)`` tensor.
        generator: random source of the dither noise (only used when ``dither != 0``).

    Returns:
        ``(T, num_mel_bins)`` features (``+1`` energy column with ``use_energy``: last with
        ``htk_compat``, first otherwise).

    Raises:
        ValueError: bad parameters, or a signal shorter than one frame.

    Example:
        >>> import torch
        >>> fbank(torch.zeros(1, 16000), num_mel_bins=128, window_type="hanning").shape
        torch.Size([98, 128])
    """
    if waveform.ndim == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 2:
        raise ValueError(f"fbank expects a waveform shaped (C, L); got {tuple(waveform.shape)}")
    channel = max(channel, 0)
    if channel >= waveform.shape[0]:
        raise ValueError(f"channel {channel} requested from a waveform with {waveform.shape[0]} channel(s)")
    signal = waveform[channel]
    if signal.shape[0] < min_duration * sample_frequency:
        return torch.empty(0, dtype=waveform.dtype, device=waveform.device)
    return fbank_batch(
        signal.unsqueeze(0), sample_frequency=sample_frequency, num_mel_bins=num_mel_bins,
        frame_length=frame_length, frame_shift=frame_shift, window_type=window_type,
        blackman_coeff=blackman_coeff, dither=dither, generator=generator,
        preemphasis=preemphasis, remove_dc_offset=remove_dc_offset,
        round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges, low_freq=low_freq,
        high_freq=high_freq, use_energy=use_energy, raw_energy=raw_energy, energy_floor=energy_floor,
        htk_compat=htk_compat, use_log_fbank=use_log_fbank, use_power=use_power,
        subtract_mean=subtract_mean,
    )[0]
