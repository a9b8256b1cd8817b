"""MM-Diffusion: parity with the original coupled U-Net, RS-MMA windows, presets, training, sampling."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from javisbench.golden import fill_value
from reference_models.interface import GenerationRequest
from reference_models.mmdiffusion import (CrossAttentionBlock, MMDiffusion, MMDiffusionConfig, MultimodalUNet,
                                          audio_from_unet, audio_to_unet, rs_mma_attention, video_from_unet,
                                          video_to_unet)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "arch" / "mmdiffusion"


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------
# parity with researchmm/MM-Diffusion's MultimodalUNet (golden fill)
# ---------------------------------------------------------------------------------------------
def _golden_unet(shift: bool) -> MultimodalUNet:
    c = json.loads((GOLDEN / "config.json").read_text())
    cfg = MMDiffusionConfig(video_size=c["video_size"], audio_size=c["audio_size"], model_channels=c["model_channels"],
                            video_out_channels=c["video_out_channels"], audio_out_channels=c["audio_out_channels"],
                            num_res_blocks=c["num_res_blocks"], cross_attention_resolutions=c["cross_attention_resolutions"],
                            cross_attention_windows=c["cross_attention_windows"], cross_attention_shift=shift,
                            video_attention_resolutions=c["video_attention_resolutions"],
                            audio_attention_resolutions=c["audio_attention_resolutions"], channel_mult=c["channel_mult"],
                            num_head_channels=c["num_head_channels"], num_heads=1,  # the original's default
                            use_scale_shift_norm=c["use_scale_shift_norm"], resblock_updown=c["resblock_updown"],
                            dropout=c["dropout"])
    model = MultimodalUNet(cfg).eval()
    keys = json.loads((GOLDEN / "keys.json").read_text())
    seed = int((GOLDEN / "seed.txt").read_text())
    assert [k for k, _, _ in keys] == list(model.state_dict()), "state-dict keys differ from the original's (order or names)"
    model.load_state_dict({k: torch.from_numpy(fill_value(k, s, seed)) for k, s, _ in keys}, strict=True)
    return model


@pytest.fixture(scope="module")
def golden_io() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "io.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("variant", ["A", "B"])
def test_unet_parity_with_original(golden_io: dict[str, np.ndarray], variant: str) -> None:
    """A: window shift off; B: shift on, the original's recorded random.randint draws fed in."""
    model = _golden_unet(shift=variant == "B")
    shifts = None
    if variant == "B":
        shifts = [d[2] for d in json.loads((GOLDEN / "shifts.json").read_text())["draws"]]
        # the draws' ranges are [0, F - w] of the blocks in forward order
        ranges = [[0, model.cfg.video_size[0] - b.local_window] for b in model.cross_attention_blocks()]
        assert ranges == [d[:2] for d in json.loads((GOLDEN / "shifts.json").read_text())["draws"]]
    with torch.no_grad():
        ov, oa = model(torch.from_numpy(golden_io["video"]), torch.from_numpy(golden_io["audio"]),
                       torch.from_numpy(golden_io["timesteps"]), shifts=shifts)
    ev, ea = golden_io[f"{variant}_video_out"], golden_io[f"{variant}_audio_out"]
    assert np.abs(ov.numpy() - ev).max() <= 1e-4
    assert np.abs(oa.numpy() - ea).max() <= 1e-4
    # the outputs are far from trivial (the comparison is not of near-zero tensors)
    assert np.abs(ev).max() > 1.0 and np.abs(ea).max() > 1.0


def test_shift_matters_for_parity(golden_io: dict[str, np.ndarray]) -> None:
    """Replaying other shifts than the recorded ones moves the output well past the tolerance."""
    model = _golden_unet(shift=True)
    with torch.no_grad():
        ov, _ = model(torch.from_numpy(golden_io["video"]), torch.from_numpy(golden_io["audio"]),
                      torch.from_numpy(golden_io["timesteps"]), shifts=[0, 0, 0, 0, 0, 0])
    assert np.abs(ov.numpy() - golden_io["B_video_out"]).max() > 1e-2
    with pytest.raises(ValueError, match="fewer recorded shifts"):
        model(torch.from_numpy(golden_io["video"]), torch.from_numpy(golden_io["audio"]),
              torch.from_numpy(golden_io["timesteps"]), shifts=[0, 0])


# ---------------------------------------------------------------------------------------------
# RS-MMA against a naive masked attention
# ---------------------------------------------------------------------------------------------
def _naive_rs_mma(qv, kv, vv, qa, ka, va, frames: int, window: int, shift: int):
    """Full attention with an explicit boolean mask built by loops (float64)."""
    nv, na = qv.shape[-2], qa.shape[-2]
    s_tok, per = nv // frames, na // frames
    mask_va = torch.zeros(nv, na, dtype=torch.bool)
    for i in range(nv):
        f = i // s_tok
        for j in range(window * per):
            mask_va[i, ((f + shift) * per + j) % na] = True
    mask_av = torch.zeros(na, nv, dtype=torch.bool)
    for n in range(na):
        f = min(n // per, frames - 1)  # the remainder joins the last segment
        for j in range(window):
            g = (f + shift + j) % frames
            mask_av[n, g * s_tok:(g + 1) * s_tok] = True
    d = qv.shape[-1]

    def att(q, k, v, m):
        w = (q @ k.transpose(-1, -2)) / d ** 0.5
        w = w.masked_fill(~m, float("-inf")).softmax(-1)
        return w @ v

    return att(qv, ka, va, mask_va), att(qa, kv, vv, mask_av)


@pytest.mark.parametrize("frames,s_tok,n_audio,window,shift", [
    (8, 4, 64, 1, 0), (8, 4, 64, 1, 5), (8, 4, 64, 4, 3), (8, 4, 70, 4, 4),  # 70: remainder of 6 samples
    (6, 2, 30, 6, 0), (5, 3, 17, 2, 2),
])
def test_rs_mma_matches_naive_masked_attention(frames: int, s_tok: int, n_audio: int, window: int, shift: int) -> None:
    g = torch.Generator().manual_seed(frames * 100 + shift)
    qv, kv, vv = (torch.randn(2, 3, frames * s_tok, 8, generator=g, dtype=torch.float64) for _ in range(3))
    qa, ka, va = (torch.randn(2, 3, n_audio, 8, generator=g, dtype=torch.float64) for _ in range(3))
    ov, oa = rs_mma_attention(qv, kv, vv, qa, ka, va, frames, window, shift)
    rv, ra = _naive_rs_mma(qv, kv, vv, qa, ka, va, frames, window, shift)
    torch.testing.assert_close(ov, rv, rtol=0, atol=1e-12)
    torch.testing.assert_close(oa, ra, rtol=0, atol=1e-12)


def test_rs_mma_locality() -> None:
    """Window 1, shift s: frame f's video output depends only on audio segment f+s (mod F)."""
    frames, s_tok, per, shift = 4, 2, 5, 1
    g = torch.Generator().manual_seed(0)
    qv, kv, vv = (torch.randn(1, 1, frames * s_tok, 4, generator=g) for _ in range(3))
    qa, ka, va = (torch.randn(1, 1, frames * per, 4, generator=g) for _ in range(3))
    ov, _ = rs_mma_attention(qv, kv, vv, qa, ka, va, frames, 1, shift)
    va2 = va.clone()
    seg = (0 + shift) % frames
    va2[..., seg * per:(seg + 1) * per, :] += 1.0           # touch only the segment frame 0 reads
    ov2, _ = rs_mma_attention(qv, kv, vv, qa, ka, va2, frames, 1, shift)
    assert (ov2[..., :s_tok, :] - ov[..., :s_tok, :]).abs().min() > 0.5
    torch.testing.assert_close(ov2[..., s_tok:, :], ov[..., s_tok:, :], rtol=0, atol=0)


def test_cross_attention_block_shift_draws() -> None:
    blk = CrossAttentionBlock(32, num_head_channels=16, local_window=3, window_shift=True)
    draws = [blk.draw_shift(8, torch.Generator().manual_seed(i)) for i in range(200)]
    assert min(draws) == 0 and max(draws) == 5                 # U{0..F-w}
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert [blk.draw_shift(8, g1) for _ in range(5)] == [blk.draw_shift(8, g2) for _ in range(5)]
    off = CrossAttentionBlock(32, num_head_channels=16, local_window=3, window_shift=False)
    assert {off.draw_shift(8) for _ in range(20)} == {0}


# ---------------------------------------------------------------------------------------------
# configuration, presets, parameter counts
# ---------------------------------------------------------------------------------------------
def test_config_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        MMDiffusionConfig(model_channels=24)
    with pytest.raises(ValueError, match="resblock_updown=False"):
        MMDiffusionConfig(resblock_updown=False)
    with pytest.raises(ValueError, match="window 9 must lie"):
        MMDiffusionConfig(video_size=(8, 3, 64, 64), cross_attention_windows=(1, 4, 9))
    with pytest.raises(ValueError, match="unknown mm-diffusion preset 'tinyy'; did you mean 'tiny'"):
        MMDiffusion.from_preset("tinyy")


def test_paper_size_matches_original_code() -> None:
    """The released training script's flags (base 128, mult 1,2,3,4, 2 res blocks, 64-channel heads,
    windows 1,4,8, 16x3x64x64 video, 25 600 samples): the original MultimodalUNet, built on the meta
    device, has 133,675,524 parameters in 1046 state-dict entries."""
    model = MMDiffusion.from_preset("paper", device="meta")
    assert sum(p.numel() for p in model.unet.parameters()) == 133_675_524
    assert len(model.unet.state_dict()) == 1046
    assert model.parameter_count() == 133_675_524           # unconditional: nothing beyond the U-Net
    assert model.unet.cfg.has_middle_cross_attention        # windows exactly [1, 4, 8]


def test_tiny_presets() -> None:
    tiny = MMDiffusion.from_preset("tiny", device="meta")
    assert tiny.unet.cfg.video_size == (32, 48, 8, 8) and tiny.unet.cfg.audio_size == (25, 2560)
    # GroupNorm(32): every width a multiple of 32
    assert all(int(m * tiny.unet.cfg.model_channels) % 32 == 0 for m in tiny.unet.cfg.channel_mult)
    # audio samples per video frame stay integers at every RS-MMA level (x4 stride): 80, 20, 5
    per = [tiny.unet.cfg.audio_size[1] // 4 ** lvl / 32 for lvl in range(3)]
    assert per == [80.0, 20.0, 5.0]
    matched = MMDiffusion.from_preset("tiny-matched", device="meta").parameter_count()
    assert abs(matched - 2_000_000) <= 0.15 * 2_000_000


# ---------------------------------------------------------------------------------------------
# front ends, training, sampling (a reduced clip so the tests stay fast)
# ---------------------------------------------------------------------------------------------
SMALL = dict(frames=4, height=8, width=8, fps=8.0, sample_rate=1600, num_samples=800, video_unshuffle=2, audio_fold=5,
             unet=dict(model_channels=32, num_res_blocks=1, channel_mult=(1, 2), cross_attention_resolutions=(2,),
                       cross_attention_windows=(2,), cross_attention_shift=True, video_attention_resolutions=(2,),
                       audio_attention_resolutions=(-1,), num_heads=1, num_head_channels=16))


def test_front_ends_round_trip() -> None:
    v = torch.randn(2, 4, 3, 8, 8)
    assert torch.equal(video_from_unet(video_to_unet(v, 2), 2), v)
    a = torch.randn(2, 800)
    x = audio_to_unet(a, 5)
    assert x.shape == (2, 5, 160) and torch.equal(x[:, 3, 7], a[:, 7 * 5 + 3])
    assert torch.equal(audio_from_unet(x), a)


def _batch(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(3)
    t = torch.linspace(0, 1, 800)
    wave = 0.5 * torch.sin(2 * torch.pi * 40 * t)[None].repeat(b, 1)
    video = torch.rand(b, 4, 3, 8, 8, generator=g) * 2 - 1
    return {"video": video, "wave": wave, "caption": ["a red ball bounces"] * b}


def test_shapes_and_backward() -> None:
    torch.manual_seed(0)
    m = MMDiffusion(preset="small", **SMALL)
    out = m.training_step(_batch(), 0)
    assert set(out) >= {"loss", "loss_video", "loss_audio"} and out["loss"].ndim == 0
    out["loss"].backward()
    assert all(p.grad is not None for p in m.parameters())
    with pytest.raises(ValueError, match=r"expected \(B, 800\)"):
        m.training_step({**_batch(), "wave": torch.zeros(2, 799)}, 0)


def test_loss_falls_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    m = MMDiffusion(preset="small", **SMALL)
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    batch = _batch()
    losses = []
    for step in range(50):
        torch.manual_seed(1234)                              # the same t and noise every step
        out = m.training_step(batch, step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.6 * losses[0], losses


def _request(seed: int, **kw) -> GenerationRequest:
    return GenerationRequest(prompts=["a", "b"], duration_s=0.5, fps=8.0, height=8, width=8, sample_rate=1600,
                             num_steps=3, seed=seed, **kw)


def test_seeded_generation_is_reproducible() -> None:
    torch.manual_seed(0)
    m = MMDiffusion(preset="small", **SMALL)
    m = _randomised(m)
    a, b, c = m.generate(_request(5)), m.generate(_request(5)), m.generate(_request(6))
    assert a.video.shape == (2, 4, 3, 8, 8) and a.audio.shape == (2, 800)
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)
    assert not torch.equal(a.video, c.video)
    assert 0 <= float(a.video.min()) and float(a.video.max()) <= 1 and float(a.audio.abs().max()) <= 1
    assert a.extras["nfe"] == 3
    # the first sample does not depend on what else is in the batch (up to float32 GEMM blocking,
    # amplified by the DDIM x0 = (x_t - sqrt(1-a) eps)/sqrt(a) step: 2e-5 seen, 1e-4 allowed)
    single = m.generate(GenerationRequest(prompts=["a"], duration_s=0.5, fps=8.0, height=8, width=8,
                                          sample_rate=1600, num_steps=3, seed=5))
    torch.testing.assert_close(single.audio[0], a.audio[0], rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="this model makes 4 frames"):
        m.generate(GenerationRequest(prompts=["a"], num_steps=2))


def _randomised(m: MMDiffusion) -> MMDiffusion:
    """Give the zero-initialised output layers weights, so the untrained model's ε is not 0."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1 and p.abs().max() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return m


def test_replacement_conditioning() -> None:
    """Given video, the output video is the condition and the audio differs from unconditional."""
    torch.manual_seed(0)
    m = _randomised(MMDiffusion(preset="small", **SMALL))
    cond = torch.rand(2, 4, 3, 8, 8)
    out = m.generate(_request(5, condition={"video": cond}))
    free = m.generate(_request(5))
    torch.testing.assert_close(out.video, cond, rtol=0, atol=1e-6)
    assert not torch.equal(out.audio, free.audio)
    assert out.extras["conditioned_on"] == ["video"]


def test_text_extension_uses_the_caption() -> None:
    torch.manual_seed(0)
    m = _randomised(MMDiffusion(preset="small", **{**SMALL, "text_cond": "pooled", "guidance": 2.0}))
    r1 = m.generate(_request(5))
    r2 = m.generate(GenerationRequest(prompts=["x", "y"], duration_s=0.5, fps=8.0, height=8, width=8,
                                      sample_rate=1600, num_steps=3, seed=5))
    assert r1.extras["nfe"] == 6                             # CFG: conditional + null pass per step
    assert not torch.equal(r1.audio, r2.audio)
    out = m.training_step(_batch(), 0)
    out["loss"].backward()
    assert m.text_proj.weight.grad is not None


def test_dpm_solver_follows_the_probability_flow_ode() -> None:
    """Data x0 ~ N(mu, s^2): the exact eps(x_t, t) = sigma (x_t - alpha mu) / (alpha^2 s^2 + sigma^2) and the
    probability-flow ODE maps x_T to mu + s (x_T - alpha_T mu) / sqrt(alpha_T^2 s^2 + sigma_T^2).
    DPM-Solver++(2M) gets there with far fewer steps than DDIM (measured max errors: 20 steps 0.092
    vs DDIM 0.271; 50 steps 0.0057 vs 0.110)."""
    from reference_models.blocks.diffusion import DDPMSchedule, ddim_sample
    from reference_models.mmdiffusion import dpm_solver_2m

    sched = DDPMSchedule(1000, "linear")
    mu, s = 0.3, 0.5

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = sched.alphas_cumprod[t.long()].to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))
        a, sig = ab.sqrt(), (1 - ab).sqrt()
        return sig * (x - a * mu) / (a * a * s * s + sig * sig)

    noise = torch.randn(4, 2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ab_t = sched.alphas_cumprod[-1]
    exact = mu + s * (noise - ab_t.sqrt() * mu) / torch.sqrt(ab_t * s * s + (1 - ab_t))

    def err(x: torch.Tensor) -> float:
        return (x - exact).abs().max().item()

    e20, d20 = err(dpm_solver_2m(eps_fn, noise.clone(), sched, 20)), err(ddim_sample(eps_fn, noise.clone(), sched, 20))
    e50 = err(dpm_solver_2m(eps_fn, noise.clone(), sched, 50))
    assert e20 < 0.15 and e20 < 0.5 * d20 and e50 < 0.01, (e20, d20, e50)
    # dict states and NFE
    calls = []
    out = dpm_solver_2m(lambda x, t: (calls.append(1), {k: eps_fn(v, t) for k, v in x.items()})[1],
                        {"video": noise[:, :10].clone(), "audio": noise[:, 10:20].clone()}, sched, 7)
    assert set(out) == {"video", "audio"} and len(calls) == 7


def test_generator_samplers() -> None:
    torch.manual_seed(0)
    m = _randomised(MMDiffusion(preset="small", **{**SMALL, "sampler": "dpm_solver"}))
    out = m.generate(_request(5))
    assert out.extras["sampler"] == "dpm_solver" and out.extras["nfe"] == 3
    assert torch.isfinite(out.video).all() and torch.isfinite(out.audio).all()
    with pytest.raises(ValueError, match="sampler 'euler' unknown"):
        MMDiffusion(preset="small", **{**SMALL, "sampler": "euler"})
