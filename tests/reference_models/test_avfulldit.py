"""AVFullDiT (reconstructed from the abstract): AVSyncRoPE, AVFull-Attention, presets, training, sampling."""
from __future__ import annotations

import pytest
import torch

from reference_models.avfulldit import (RECONSTRUCTED, AVFullDiT, avfull_attention_layer, avsync_position_ids)
from reference_models.interface import GenerationRequest


pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = dict(dim=32, heads=2, depth=2, text_dim=32, text_depth=1, text_heads=2)


def _small(**kw) -> AVFullDiT:
    torch.manual_seed(0)
    return AVFullDiT(preset="small", **{**SMALL, **kw})


def _activate(m: AVFullDiT) -> AVFullDiT:
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1 and p.abs().max() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return m


def _batch(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(4)
    return {"video": torch.rand(b, 4, 3, 16, 16, generator=g) * 2 - 1, "mel": torch.randn(b, 32, 64, generator=g),
            "caption": ["a red ball bounces"] * b}


def _req(seed: int = 3, **kw) -> GenerationRequest:
    base = dict(prompts=["a red ball", "a bird"], duration_s=0.5, fps=8.0, height=16, width=16, num_steps=3, seed=seed)
    base.update(kw)
    return GenerationRequest(**base)


def test_labelled_reconstructed() -> None:
    m = AVFullDiT.from_preset("tiny", device="meta")
    assert "reconstructed from the abstract" in AVFullDiT.reconstructed
    assert m.config()["provenance"] == RECONSTRUCTED
    import reference_models.avfulldit as mod
    assert "Reconstructed from the abstract" in (mod.__doc__ or "")


def test_avsync_rope_ids() -> None:
    """Shared clock on axis 0; audio ids never coincide with video ids on axes 1-2."""
    vid, aud = avsync_position_ids((4, 2, 3), (8, 4), 0.25, 0.125, "seconds_fractional")
    assert vid.shape == (24, 3) and aud.shape == (32, 3)
    assert aud[::4, 0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]      # audio step k at k*0.125 s = k/2 frames
    assert aud[:4, 1].tolist() == [2, 3, 4, 5] and set(aud[:, 2].tolist()) == {3.0}
    video_hw = {tuple(r) for r in vid[:, 1:].tolist()}
    assert not video_hw & {tuple(r) for r in aud[:, 1:].tolist()}
    _, aud_i = avsync_position_ids((4, 2, 3), (8, 4), 0.25, 0.125, "video_frame_units_integer")
    assert aud_i[::4, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]            # the frame holding the step's centre
    # the clock is physical: the same seconds give the same id for both modalities
    vid2, aud2 = avsync_position_ids((8, 1, 1), (8, 1), 0.5, 0.5, "seconds_fractional")
    assert torch.equal(vid2[:, 0], aud2[:, 0])


def test_avfull_attention_is_one_softmax_over_both_streams() -> None:
    """Against a direct float64 computation: per-tower q/k/v/o, RoPE, one softmax over Nv+Na."""
    m = _activate(_small()).double()
    bv, ba = m.video_diffusion.blocks[0], m.audio_diffusion.blocks[0]
    g = torch.Generator().manual_seed(1)
    xv, xa = torch.randn(1, 6, 32, generator=g, dtype=torch.float64), torch.randn(1, 5, 32, generator=g, dtype=torch.float64)
    e0v, e0a = torch.randn(1, 6, 32, generator=g, dtype=torch.float64), torch.randn(1, 6, 32, generator=g, dtype=torch.float64)
    cv, ca = torch.randn(1, 3, 32, generator=g, dtype=torch.float64), torch.randn(1, 4, 32, generator=g, dtype=torch.float64)
    av, aa = torch.rand(6, 8, generator=g, dtype=torch.float64) * 3, torch.rand(5, 8, generator=g, dtype=torch.float64) * 3
    ov, oa = avfull_attention_layer(bv, ba, xv, xa, e0v, e0a, av, aa, cv, ca)

    def rot(x, ang):                                        # x (N, h, d), adjacent pairs
        x0, x1 = x[..., 0::2], x[..., 1::2]
        c, s = torch.cos(ang)[:, None], torch.sin(ang)[:, None]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).flatten(-2)

    def streams(b, x, e0, ang):
        mm = (b.modulation + e0).chunk(6, dim=1)
        h = b.norm1(x) * (1 + mm[1]) + mm[0]
        sa = b.self_attn
        q = rot(sa.norm_q(sa.q(h))[0].view(-1, 2, 16), ang)
        k = rot(sa.norm_k(sa.k(h))[0].view(-1, 2, 16), ang)
        return mm, q, k, sa.v(h)[0].view(-1, 2, 16)

    mv, qv, kv, vv = streams(bv, xv, e0v, av)
    ma, qa, ka, va = streams(ba, xa, e0a, aa)
    q, k, v = torch.cat([qv, qa]), torch.cat([kv, ka]), torch.cat([vv, va])
    o = torch.stack([torch.softmax(q[:, h] @ k[:, h].T / 4.0, -1) @ v[:, h] for h in range(2)], 1).flatten(1)
    rv = xv + bv.self_attn.o(o[None, :6]) * mv[2]
    ra = xa + ba.self_attn.o(o[None, 6:]) * ma[2]
    rv = rv + bv.cross_attn(bv.norm3(rv), cv)
    ra = ra + ba.cross_attn(ba.norm3(ra), ca)
    rv = rv + bv.ffn(bv.norm2(rv) * (1 + mv[4]) + mv[3]) * mv[5]
    ra = ra + ba.ffn(ba.norm2(ra) * (1 + ma[4]) + ma[3]) * ma[5]
    torch.testing.assert_close(ov, rv, rtol=0, atol=1e-10)
    torch.testing.assert_close(oa, ra, rtol=0, atol=1e-10)


def test_coupling_and_t2v_only_counterpart() -> None:
    m = _activate(_small())
    v, a = torch.randn(1, 4, 3, 16, 16), torch.randn(1, 32, 64)
    t = torch.tensor([0.5])
    cv, ca = m.context("video", ["x"]), m.context("audio", ["x"])
    with torch.no_grad():
        joint = m(v, a, t, t, cv, ca)["video"]
        joint2 = m(v, a + 1.0, t, t, cv, ca)["video"]
        alone = m(v, a, t, t, cv, ca, bridges=False)["video"]
        alone2 = m(v, a + 1.0, t, t, cv, ca, bridges=False)["video"]
    assert (joint - joint2).abs().max() > 1e-6                 # audio reaches video through AVFull-Attention
    torch.testing.assert_close(alone, alone2, rtol=0, atol=0)   # towers alone: no coupling
    solo = AVFullDiT(preset="x", **{**SMALL, "t2v_only": True})
    full_video_keys = {k for k in _small().state_dict() if k.startswith(("video_diffusion.", "video_text_encoder."))}
    assert set(solo.state_dict()) == full_video_keys            # the same video tower, audio removed
    out = solo.generate(_req(3))
    assert out.video.shape == (2, 4, 3, 16, 16) and float(out.audio.abs().max()) == 0.0
    with pytest.raises(ValueError, match="T2V-only"):
        solo(v, a, t, t, cv, None)


def test_presets() -> None:
    matched = AVFullDiT.from_preset("tiny-matched", device="meta").parameter_count()
    assert abs(matched - 2_000_000) <= 0.15 * 2_000_000
    tiny = AVFullDiT.from_preset("tiny", device="meta")
    assert tiny.cfg.joint_layers() == list(range(6)) and len(tiny.dual_dit_blocks) == 0   # no new attention weights
    assert _small(joint_every=2, depth=4).cfg.joint_layers() == [1, 3]


def test_training_and_generation() -> None:
    m = _small()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    batch, losses = _batch(), []
    for step in range(50):
        torch.manual_seed(99)
        out = m.training_step(batch, step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.6 * losses[0], losses
    a, b = m.generate(_req(3)), m.generate(_req(3))
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)
    assert a.video.shape == (2, 4, 3, 16, 16) and a.audio.shape == (2, 8000)
    assert not torch.equal(a.video, m.generate(_req(4)).video)


@pytest.mark.parametrize("fusion", ["avfull", "dca", "bi_ca", "joint_attn", "rs_mma", "frame_local_ca", "none"])
def test_fusion_is_a_config_field(fusion: str) -> None:
    m = _small(fusion=fusion)
    out = m.training_step(_batch(), 0)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and m.config()["fusion"] == fusion
