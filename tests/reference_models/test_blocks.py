"""Shared blocks: patchifiers, schedules and samplers, CFG, EMA, text encoder, mel <-> wave."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reference_models.blocks.diffusion import (DDPMSchedule, GuidedVelocity, RectifiedFlow, ddim_sample, ddpm_sample,
                                               euler_sample, flow_shift, sample_timesteps)
from reference_models.blocks.ema import EMA
from reference_models.blocks.melwave import MelSpec, mel_filterbank, round_trip_error
from reference_models.blocks.patch import MelPatchifier, VideoPatchifier
from reference_models.blocks.text import PAD_ID, START_ID, TinyTextEncoder, WordTokenizer


# ---------------------------------------------------------------------------------------------
# patchifiers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("patch", [(2, 8, 8), (1, 4, 4), (4, 2, 8)])
def test_video_patchify_round_trip_and_layout(patch: tuple[int, int, int]) -> None:
    vp = VideoPatchifier(patch)
    x = torch.randn(2, 8, 3, 16, 32)
    tok = vp.patchify(x)
    grid = vp.grid(8, 16, 32)
    assert tok.shape == (2, grid[0] * grid[1] * grid[2], vp.token_dim)
    assert torch.equal(vp.unpatchify(tok, grid), x)
    # naive reference: token (t,h,w) holds the patch's pixels ordered (pt, ph, pw, c)
    pt, ph, pw = patch
    n = 0
    for t in range(grid[0]):
        for h in range(grid[1]):
            for w in range(grid[2]):
                ref = [x[1, t * pt + a, c, h * ph + b, w * pw + d].item()
                       for a in range(pt) for b in range(ph) for d in range(pw) for c in range(3)]
                assert tok[1, n].tolist() == ref
                n += 1


def test_mel_patchify_round_trip_and_errors() -> None:
    mp = MelPatchifier((8, 16))
    m = torch.randn(3, 256, 64)
    tok = mp.patchify(m)
    assert tok.shape == (3, 32 * 4, 128)
    assert torch.equal(mp.unpatchify(tok, (32, 4)), m)
    # token k = (time block k // 4, frequency block k % 4), inner order (pt, pf)
    assert torch.equal(tok[0, 5], m[0, 8:16, 16:32].reshape(-1))
    lat = MelPatchifier((2, 2), channels=8)
    z = torch.randn(2, 8, 50, 16)
    assert torch.equal(lat.unpatchify(lat.patchify(z), lat.grid(50, 16)), z)
    with pytest.raises(ValueError, match="not divisible"):
        mp.patchify(torch.randn(1, 250, 64))
    with pytest.raises(ValueError, match="channels"):
        VideoPatchifier().patchify(torch.randn(1, 2, 4, 8, 8))


# ---------------------------------------------------------------------------------------------
# rectified flow, samplers
# ---------------------------------------------------------------------------------------------
def test_flow_shift_properties() -> None:
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    for s in (0.5, 1.0, 3.0, 5.0):
        u = flow_shift(t, s)
        assert u[0] == 0 and u[-1] == 1 and torch.all(torch.diff(u) > 0)
        # closed-form inverse: t = u / (s − (s − 1)·u)
        assert torch.allclose(u / (s - (s - 1) * u), t, atol=1e-12)
    assert torch.all(flow_shift(t[1:-1], 3.0) > t[1:-1])          # s > 1 pushes toward noise


def test_timestep_sampler_moments() -> None:
    g = torch.Generator().manual_seed(0)
    n = 200_000
    t = sample_timesteps(n, "logit_normal", loc=0.5, scale=0.8, generator=g).double()
    z = torch.log(t / (1 - t))
    # logit(t) ~ N(0.5, 0.8²): mean within 4 standard errors, std within 1 %
    assert abs(z.mean().item() - 0.5) < 4 * 0.8 / math.sqrt(n)
    assert abs(z.std().item() / 0.8 - 1) < 0.01
    u = sample_timesteps(n, "uniform", generator=g).double()
    assert abs(u.mean().item() - 0.5) < 4 * math.sqrt(1 / 12 / n) and abs(u.var().item() - 1 / 12) < 2e-3
    # shifted logit-normal is the shift of the unshifted draw, same generator state
    a = sample_timesteps(1000, "logit_normal", shift=3.0, generator=torch.Generator().manual_seed(1))
    b = flow_shift(sample_timesteps(1000, "logit_normal", generator=torch.Generator().manual_seed(1)), 3.0)
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match="logit_normal"):
        sample_timesteps(3, "beta")


def test_rf_noising_target_is_the_path_derivative() -> None:
    x0, eps = torch.randn(4, 10), torch.randn(4, 10)
    t = torch.rand(4)
    h = 1e-3
    d = (RectifiedFlow.add_noise(x0, eps, t + h) - RectifiedFlow.add_noise(x0, eps, t - h)) / (2 * h)
    assert torch.allclose(d, RectifiedFlow.target(x0, eps), atol=1e-3)
    assert torch.equal(RectifiedFlow.add_noise(x0, eps, torch.zeros(4)), x0)
    assert torch.equal(RectifiedFlow.add_noise(x0, eps, torch.ones(4)), eps)


@pytest.mark.parametrize("steps,shift", [(1, 1.0), (7, 1.0), (25, 5.0)])
def test_euler_is_exact_on_a_linear_flow(steps: int, shift: float) -> None:
    """With the true velocity of a straight path (ε − x0, constant in t), Euler from pure noise
    lands on x0 for any grid."""
    x0 = {"video": torch.randn(2, 5, 3), "audio": torch.randn(2, 7)}
    eps = {k: torch.randn_like(v) for k, v in x0.items()}
    rf = RectifiedFlow(sample_shift=shift)
    grid = rf.timesteps(steps)
    assert grid[0] == 1 and grid[-1] == 0 and len(grid) == steps + 1
    seen = []

    def v(x: dict, t: torch.Tensor) -> dict:
        seen.append(t.clone())
        return {k: eps[k] - x0[k] for k in x}

    out = euler_sample(v, {k: e.clone() for k, e in eps.items()}, grid)
    for k in x0:
        assert torch.allclose(out[k], x0[k], atol=1e-5)
    assert len(seen) == steps and seen[0].shape == (2,)


def test_cfg_combines_per_modality_and_counts_calls() -> None:
    def model(x: dict, t: torch.Tensor, cond: float) -> dict:
        return {"video": x["video"] * 0 + cond, "audio": x["audio"] * 0 + 2 * cond}

    x = {"video": torch.zeros(2, 3), "audio": torch.zeros(2, 4)}
    g = GuidedVelocity(model, 1.0, 0.25, {"video": 3.0, "audio": 5.0})
    out = g(x, torch.ones(2))
    assert torch.allclose(out["video"], torch.full((2, 3), 0.25 + 3.0 * 0.75))
    assert torch.allclose(out["audio"], torch.full((2, 4), 0.5 + 5.0 * 1.5))
    assert g.nfe == 2
    plain = GuidedVelocity(model, 1.0, 0.25, {"video": 1.0, "audio": 1.0})
    assert torch.equal(plain(x, torch.ones(2))["video"], torch.ones(2, 3)) and plain.nfe == 1
    sep = GuidedVelocity(model, 1.0, {"video": 0.5, "audio": 0.0}, {"video": 2.0, "audio": 4.0}, mode="separate")
    out = sep(x, torch.ones(2))
    assert torch.allclose(out["video"], torch.full((2, 3), 0.5 + 2.0 * 0.5))
    assert torch.allclose(out["audio"], torch.full((2, 4), 0.0 + 4.0 * 2.0))
    assert sep.nfe == 3
    with pytest.raises(ValueError, match="separate"):
        GuidedVelocity(model, 1.0, 0.0, {"video": 2.0}, mode="separate")


def test_ddpm_schedule_and_samplers_recover_x0_with_an_oracle() -> None:
    s = DDPMSchedule(1000)
    betas = np.linspace(1e-4, 0.02, 1000)
    assert np.allclose(s.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-12)
    x0 = torch.randn(3, 6, dtype=torch.float64)

    def oracle_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = s.alphas_cumprod[t].reshape(-1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    noise = torch.randn(3, 6, dtype=torch.float64)
    for n in (1, 10, 50):
        out = ddim_sample(oracle_eps, noise.clone(), s, n)
        assert torch.allclose(out, x0, atol=1e-8), n
    out = ddpm_sample(oracle_eps, noise.clone(), DDPMSchedule(50), generator=torch.Generator().manual_seed(0))
    s50 = DDPMSchedule(50)

    def oracle50(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = s50.alphas_cumprod[t].reshape(-1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    out = ddpm_sample(oracle50, noise.clone(), s50, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x0, atol=1e-8)
    # q(x_t | x0) and the posterior mean agree with the textbook formulas at one step
    t = torch.tensor([10, 10, 10])
    xt = s.add_noise(x0, noise, t)
    a = s.alphas_cumprod[10]
    assert torch.allclose(xt, a.sqrt() * x0 + (1 - a).sqrt() * noise)
    assert s.ddim_timesteps(5) == [999, 749, 500, 250, 0]


# ---------------------------------------------------------------------------------------------
# EMA
# ---------------------------------------------------------------------------------------------
def test_ema_closed_form_and_swap() -> None:
    m = torch.nn.Linear(3, 2)
    p0 = {k: v.clone() for k, v in m.state_dict().items()}
    ema = EMA(m, decay=0.9)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    target = {k: v.clone() for k, v in m.state_dict().items()}
    for _ in range(5):
        ema.update(m)
    for k in p0:   # shadow = p + d^k (p0 − p)
        assert torch.allclose(ema.shadow[k], target[k] + 0.9 ** 5 * (p0[k] - target[k]), atol=1e-6)
    with ema.applied(m):
        assert torch.allclose(m.weight, ema.shadow["weight"])
    assert torch.equal(m.weight, target["weight"])
    w = EMA(m, decay=0.999, warmup=True)
    assert w.current_decay() == pytest.approx(0.1)
    with pytest.raises(ValueError):
        EMA(m, decay=1.0)


# ---------------------------------------------------------------------------------------------
# text encoder
# ---------------------------------------------------------------------------------------------
def test_tokenizer_is_deterministic_and_collision_free_on_the_synthav_vocabulary() -> None:
    from reference_models.synthav.captions import vocabulary

    tok = WordTokenizer()
    words = vocabulary()
    ids = [tok.word_id(w) for w in words]
    assert len(set(ids)) == len(words) and min(ids) == 2 and max(ids) == len(words) + 1
    assert tok.word_id("zebra") == WordTokenizer().word_id("zebra") >= 2 + len(words)
    ids, mask = tok(["A red ball bounces twice.", ""])
    assert ids[0, 0] == START_ID and ids[1, 0] == START_ID and ids[1, 1] == PAD_ID
    assert mask.sum(1).tolist() == [7, 1]


def test_text_encoder_masks_padding_and_pools() -> None:
    torch.manual_seed(0)
    enc = TinyTextEncoder(width=32, depth=2, heads=4).eval()
    with torch.no_grad():
        a = enc(["a red ball bounces"])
        b = enc(["a red ball bounces", "camera footage of a kitchen: first a sharp knock, then a chirp"])
    n = int(a.mask.sum())
    assert torch.allclose(a.tokens[0, :n], b.tokens[0, :n], atol=1e-5)      # padding never leaks in
    assert torch.allclose(a.pooled[0], a.tokens[0, :n].mean(0), atol=1e-6)
    assert a.tokens.shape == (1, 64, 32) and a.pooled.shape == (1, 32)


# ---------------------------------------------------------------------------------------------
# mel <-> wave
# ---------------------------------------------------------------------------------------------
def test_mel_filterbank_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=0.0, fmax=8000.0)
    assert np.allclose(mel_filterbank(), ref, atol=1e-7)


def test_log_mel_shape_and_normalisation() -> None:
    spec = MelSpec()
    w = torch.randn(2, 64000) * 0.1
    lm = spec.log_mel(w)
    assert lm.shape == (2, 256, 64)                    # 64 frames/s, 8 per video frame at 8 fps
    # frame k is centred on sample k·hop: a click at sample 250·100 peaks in frame 100
    click = torch.zeros(1, 64000)
    click[0, 25000] = 1.0
    assert int(spec.log_mel(click)[0].sum(1).argmax()) == 100
    m = spec(w)
    assert m.abs().max() <= 4.0
    assert torch.allclose(spec.denormalize(spec.normalize(lm)), lm, atol=1e-5)


def test_mel_wave_round_trip_bound() -> None:
    """The vocoder's measured error on SynthAV audio stays within a fixed bound: the log-mel of the
    reconstruction is within 0.25 (mean |Δ|, natural log; measured 0.12) of the original, a tenth of the
    per-bin spread; onsets survive (the strongest frame-to-frame rise lands on the same frame ±1)."""
    from reference_models.synthav import bench_clips

    clips = bench_clips(6, seed=3, split="val")
    w = torch.from_numpy(np.stack([c.audio for c in clips]))
    err = round_trip_error(w)
    assert err["l1"] < 0.25 and err["l1"] < 0.15 * err["spread"], err
    spec = MelSpec()
    back = spec.to_wave(spec(w), 64000)
    assert back.shape == w.shape and back.abs().max() <= 1
    assert torch.equal(back, spec.to_wave(spec(w), 64000))            # seeded phase: same bytes
    for i in range(len(w)):
        flux_a = torch.diff(spec.log_mel(w[i:i + 1])[0].exp().sum(1))
        flux_b = torch.diff(spec.log_mel(back[i:i + 1])[0].exp().sum(1))
        assert abs(int(flux_a.argmax()) - int(flux_b.argmax())) <= 1
