"""BridgeDiT: DCA bridge parity with the original block, bridge fusions, the two-tower generator."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from javisbench.golden import fill_value
from reference_models.blocks.bridges import CrossDiTBlockAdaLN, FrameLocalCrossAttention, RSMMABridge
from reference_models.blocks.fusion import FUSIONS, FusionContext, build_fusion
from reference_models.blocks.rope import inv_freq, seconds_position_ids

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "arch" / "bridgedit"


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------
# parity: guankaisi/BridgeDiT CrossDiTBlockAdaLN with the golden fill
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def golden() -> dict:
    with np.load(GOLDEN / "io.npz") as z:
        io = {k: z[k] for k in z.files}
    return {"io": io, "config": json.loads((GOLDEN / "config.json").read_text()),
            "keys": json.loads((GOLDEN / "keys.json").read_text()), "seed": int((GOLDEN / "seed.txt").read_text())}


def _angles(cos: np.ndarray, sin: np.ndarray) -> torch.Tensor:
    """The fixture's interleaved (S, D) cos/sin tables -> (S, D/2) angles."""
    return torch.from_numpy(np.arctan2(sin[:, ::2], cos[:, ::2]).astype(np.float64))


def _block(golden: dict, flag: str) -> CrossDiTBlockAdaLN:
    c = golden["config"]
    m = CrossDiTBlockAdaLN(c["num_input_channels_1"], c["num_input_channels_2"], c["num_qk_channels"],
                           c["num_v_channels"], c["num_heads"], c["t_emb_dim_1"], c["t_emb_dim_2"], flag=flag,
                           mlp_ratio=c["mlp_ratio"])
    assert [k for k, _ in golden["keys"]] == list(m.state_dict()), "parameter names/order differ from the original"
    m.load_state_dict({k: torch.from_numpy(fill_value(k, s, golden["seed"])) for k, s in golden["keys"]}, strict=True)
    return m.eval()


@pytest.mark.parametrize("flag", ["bicross", "a2v", "v2a"])
@pytest.mark.parametrize("rope", [True, False])
def test_dca_parity_with_original(golden: dict, flag: str, rope: bool) -> None:
    io = golden["io"]
    m = _block(golden, flag)
    args = [torch.from_numpy(io[k]) for k in ("x1", "x2", "emb1", "emb2")]
    a1 = _angles(io["rope1_cos"], io["rope1_sin"]) if rope else None
    a2 = _angles(io["rope2_cos"], io["rope2_sin"]) if rope else None
    with torch.no_grad():
        o1, o2 = m(*args, a1, a2)
    tag = flag if rope else f"{flag}_norope"
    assert np.abs(o1.numpy() - io[f"{tag}_out1"]).max() <= 1e-4
    assert np.abs(o2.numpy() - io[f"{tag}_out2"]).max() <= 1e-4
    # non-trivial: the block changes its inputs by O(1)
    assert np.abs(io[f"{tag}_out1"] - io["x1"]).max() > 0.1


def test_flags_and_rope_change_the_result(golden: dict) -> None:
    """The fixtures discriminate: each flag's output differs from the others' beyond tolerance."""
    io = golden["io"]
    outs = {f: io[f"{f}_out2"] for f in ("bicross", "a2v", "v2a")}
    assert np.abs(outs["bicross"] - outs["a2v"]).max() > 1e-2      # audio side: V->A vs audio self-attn
    assert np.abs(io["bicross_out1"] - io["v2a_out1"]).max() > 1e-2  # video side: A->V vs video self-attn
    assert np.abs(io["bicross_out1"] - io["bicross_norope_out1"]).max() > 1e-2


def test_seconds_rope_reproduces_fixture_tables(golden: dict) -> None:
    """The fixture's RoPE is seconds on a shared clock: 10 video latent frames of 4 tokens at 0.4 s,
    24 audio tokens at 6 Hz, theta 1e4, interleaved pairs; the shared helpers give the same tables."""
    io = golden["io"]
    d = golden["config"]["num_qk_channels"] // golden["config"]["num_heads"]
    for pos, cos, sin in ((seconds_position_ids(10, 0.4, 4), io["rope1_cos"], io["rope1_sin"]),
                          (seconds_position_ids(24, 1 / 6, 1), io["rope2_cos"], io["rope2_sin"])):
        ang = torch.outer(pos, inv_freq(d)).numpy()
        assert np.abs(np.cos(ang).repeat(2, axis=1) - cos).max() < 1e-6
        assert np.abs(np.sin(ang).repeat(2, axis=1) - sin).max() < 1e-6


def test_paper_size_bridges_count() -> None:
    """The released config: 4 bridge blocks, widths 1536, 12 heads, t-emb 1536. The original
    CrossDiTBlockAdaLN at that size (built on the meta device) has 84,980,736 parameters."""
    with torch.device("meta"):
        m = CrossDiTBlockAdaLN(1536, 1536, 1536, 1536, 12, 1536, 1536, flag="bicross")
        add = CrossDiTBlockAdaLN(1536, 1536, 1536, 1536, 12, 1536, 1536, flag="add")
    assert sum(p.numel() for p in m.parameters()) == 84_980_736
    assert sum(p.numel() for p in add.parameters()) == 61_372_416   # the original AddFusionDiTBlockAdaLN


# ---------------------------------------------------------------------------------------------
# the other bridge fusions
# ---------------------------------------------------------------------------------------------
def test_registry_has_every_bridge_type() -> None:
    assert {"bi_ca", "dca", "joint_attn", "rs_mma", "frame_local_ca", "none"} <= set(FUSIONS)


@pytest.mark.parametrize("name", ["dca", "rs_mma", "frame_local_ca"])
def test_bridges_start_as_identity_and_learn(name: str) -> None:
    torch.manual_seed(0)
    f = build_fusion(name, 32, 24, 4)
    xv, xa = torch.randn(2, 8 * 3, 32), torch.randn(2, 8 * 2, 24)
    ctx = FusionContext(t_v=torch.randn(2, 32), t_a=torch.randn(2, 24), grid_v=(8, 3), grid_a=(8, 2))
    ov, oa = f(xv, xa, ctx)
    assert torch.equal(ov, xv) and torch.equal(oa, xa)
    (ov.square().sum() + oa.square().sum()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in f.parameters())


def test_full_attn_double_scale_quirk() -> None:
    """flag full_attn: 'original' uses softmax(q·kᵀ/d) (q pre-scaled by 1/√d, then the kernel's own
    1/√d), 'fixed' uses 1/√d; both checked against a direct computation over the concatenation."""
    torch.manual_seed(0)
    for mode, denom in (("original", 8.0), ("fixed", 8.0 ** 0.5)):
        blk = CrossDiTBlockAdaLN(16, 12, 16, 16, 2, flag="full_attn", full_attn_scale=mode, init="none")
        att = blk.attn
        x1, x2 = torch.randn(1, 5, 16), torch.randn(1, 3, 12)
        q = torch.cat([att._heads(att.q_proj_1(x1)), att._heads(att.q_proj_2(x2))], 2)
        k = torch.cat([att._heads(att.k_proj_1(x1)), att._heads(att.k_proj_2(x2))], 2)
        v = torch.cat([att._heads(att.v_proj_1(x1)), att._heads(att.v_proj_2(x2))], 2)
        o = att._merge(torch.softmax(q @ k.transpose(-1, -2) / denom, -1) @ v)
        o1, o2 = att(x1, x2)
        torch.testing.assert_close(o1, att.o_proj_1(o[:, :5]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(o2, att.o_proj_2(o[:, 5:]), rtol=1e-5, atol=1e-6)


def _naive_frame_local(f: FrameLocalCrossAttention, xv: torch.Tensor, xa: torch.Tensor, frames: int) -> torch.Tensor:
    b, nv, c = xv.shape
    s_tok, chunk = nv // frames, xa.shape[1] // frames
    q = f.q(f.norm_q(xv))
    ha = f.norm_kv(xa)
    k, v = f.k(ha), f.v(ha)
    out = torch.zeros_like(q)
    h, d = f.num_heads, f.head_dim
    for i in range(nv):
        fr = i // s_tok
        for hh in range(h):
            qi = q[:, i, hh * d:(hh + 1) * d]                                        # (B, d)
            kk = k[:, fr * chunk:(fr + 1) * chunk, hh * d:(hh + 1) * d]             # (B, A, d)
            vv = v[:, fr * chunk:(fr + 1) * chunk, hh * d:(hh + 1) * d]
            w = torch.softmax((kk @ qi[..., None])[..., 0] / d ** 0.5, -1)          # (B, A)
            out[:, i, hh * d:(hh + 1) * d] = (w[..., None] * vv).sum(1)
    return xv + f.o(out)


def test_frame_local_ca_matches_loops() -> None:
    torch.manual_seed(1)
    f = FrameLocalCrossAttention(16, 12, 2).double()
    torch.nn.init.normal_(f.o.weight)
    xv, xa = torch.randn(2, 4 * 3, 16, dtype=torch.float64), torch.randn(2, 4 * 5, 12, dtype=torch.float64)
    ov, oa = f(xv, xa, FusionContext(grid_v=(4, 3)))
    torch.testing.assert_close(ov, _naive_frame_local(f, xv, xa, 4), rtol=0, atol=1e-12)
    assert torch.equal(oa, xa)


def test_rs_mma_bridge_window_locality() -> None:
    """Window 1, shift 0: the video tokens of frame f change only with audio chunk f."""
    torch.manual_seed(2)
    f = RSMMABridge(16, 12, 2, window=1, window_shift=False)
    torch.nn.init.normal_(f.video_proj_out.weight)
    xv, xa = torch.randn(1, 4 * 3, 16), torch.randn(1, 4 * 5, 12)
    ctx = FusionContext(grid_v=(4, 3))
    ov, _ = f(xv, xa, ctx)
    xa2 = xa.clone()
    xa2[:, 5:10] = torch.randn(1, 5, 12)                    # audio chunk of frame 1
    ov2, _ = f(xv, xa2, ctx)
    changed = (ov2 - ov).abs().amax(-1)[0]                  # per video token
    assert torch.all(changed[3:6] > 1e-3) and torch.all(changed[:3] == 0) and torch.all(changed[6:] == 0)
    g = RSMMABridge(16, 12, 2, window=2, window_shift=True)
    assert {g.draw_shift(4) for _ in range(100)} == {0, 1, 2}


# ---------------------------------------------------------------------------------------------
# the two-tower generator (a reduced clip: 0.5 s, 4 frames of 16x16, 32 mel frames)
# ---------------------------------------------------------------------------------------------
from reference_models.bridgedit import BridgeDiT, caption_pairs  # noqa: E402
from reference_models.interface import GenerationRequest  # noqa: E402

SMALL = dict(dim_video=32, dim_audio=32, heads_video=2, heads_audio=2, depth_video=2, depth_audio=2, text_dim=32,
             text_depth=1, text_heads=2, video_bridge_points=(0,), audio_bridge_points=(0,), bridge_heads=2)


def _small(**kw) -> BridgeDiT:
    torch.manual_seed(0)
    return BridgeDiT(preset="small", **{**SMALL, **kw})


def _batch(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(4)
    return {"video": torch.rand(b, 4, 3, 16, 16, generator=g) * 2 - 1, "mel": torch.randn(b, 32, 64, generator=g),
            "caption": ["a red ball bounces, knocks"] * b, "caption_video": ["a red ball bounces"] * b,
            "caption_audio": ["two knocks"] * b}


def _req(seed: int = 3, **kw) -> GenerationRequest:
    base = dict(prompts=["a red ball bounces, knocks", "a bird sings"], duration_s=0.5, fps=8.0, height=16, width=16,
                num_steps=3, seed=seed)
    base.update(kw)
    return GenerationRequest(**base)


def _activate(m: BridgeDiT) -> BridgeDiT:
    """Untrained towers have zero heads and identity bridges: give every zero weight a value."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1 and p.abs().max() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return m


def test_presets_and_counts() -> None:
    tiny = BridgeDiT.from_preset("tiny", device="meta")
    assert len(tiny.dual_dit_blocks) == 2 and tiny.v_segments == [(0, 2), (2, 4), (4, 6)]
    matched = BridgeDiT.from_preset("tiny-matched", device="meta").parameter_count()
    assert abs(matched - 2_000_000) <= 0.15 * 2_000_000
    # the released layout: bridges after video layers 3,7,11,15 of 30 and audio 2,5,8,11 of 24
    with torch.device("meta"):
        m = BridgeDiT(preset="x", **{**SMALL, "depth_video": 30, "depth_audio": 24,
                                     "video_bridge_points": (3, 7, 11, 15), "audio_bridge_points": (2, 5, 8, 11)})
    assert m.v_segments == [(0, 4), (4, 8), (8, 12), (12, 16), (16, 30)]
    assert m.a_segments == [(0, 3), (3, 6), (6, 9), (9, 12), (12, 24)]
    with pytest.raises(ValueError, match="bridge points"):
        BridgeDiT(preset="x", **{**SMALL, "video_bridge_points": (0, 1)})


def test_shapes_backward_and_loss_falls() -> None:
    m = _small()
    out = m.training_step(_batch(), 0)
    assert set(out) >= {"loss", "loss_video", "loss_audio"}
    out["loss"].backward()
    m.zero_grad()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    batch, losses = _batch(), []
    for step in range(50):
        torch.manual_seed(99)                                   # the same t, noise and dropout each step
        out = m.training_step(batch, step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.6 * losses[0], losses
    # the zero-initialised bridge outputs have started to learn
    assert m.dual_dit_blocks[0].attn.o_proj_1.weight.abs().max() > 0
    assert m.dual_dit_blocks[0].attn.o_proj_2.weight.abs().max() > 0


def test_objectives() -> None:
    """mixed: audio is the cosine v-parameterisation; rf: both towers use the flow."""
    m = _small()
    x0, eps, t = torch.randn(3, 32, 64), torch.randn(3, 32, 64), torch.tensor([0.0, 0.5, 1.0])
    xt, target = m.noisy("audio", x0, eps, t)
    a, s = torch.cos(t * torch.pi / 2)[:, None, None], torch.sin(t * torch.pi / 2)[:, None, None]
    torch.testing.assert_close(xt, a * x0 + s * eps)
    torch.testing.assert_close(target, a * eps - s * x0)
    # the DDIM step with the exact v recovers x at the next time exactly
    x_next = m.step("audio", xt[1:2], target[1:2], 0.5, 0.2)
    torch.testing.assert_close(x_next, math_cos(0.2) * x0[1:2] + math_sin(0.2) * eps[1:2], rtol=1e-5, atol=1e-5)
    rf = _small(objective="rf")
    xt, target = rf.noisy("audio", x0, eps, t)
    torch.testing.assert_close(target, eps - x0)


def math_cos(t: float) -> float:
    return float(np.cos(t * np.pi / 2))


def math_sin(t: float) -> float:
    return float(np.sin(t * np.pi / 2))


def test_generation_is_seeded_and_shaped() -> None:
    m = _activate(_small())
    a, b, c = m.generate(_req(3)), m.generate(_req(3)), m.generate(_req(4))
    assert a.video.shape == (2, 4, 3, 16, 16) and a.audio.shape == (2, 8000) and a.mel.shape == (2, 32, 64)
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)
    assert not torch.equal(a.video, c.video)
    assert a.extras["nfe"] == 6                                 # 3 steps x (conditional + one null pass)
    one = m.generate(_req(3, guidance=1.0))
    assert one.extras["nfe"] == 3


def test_disentangled_captions_reach_their_tower() -> None:
    """Without bridges, changing only the audio caption changes the audio and leaves the video."""
    m = _activate(_small(bridge="none"))
    base = m.generate(_req(3, video_prompts=["a red ball", "a bird"], audio_prompts=["knocks", "song"]))
    other = m.generate(_req(3, video_prompts=["a red ball", "a bird"], audio_prompts=["a loud engine", "rain"]))
    assert torch.equal(base.video, other.video)
    assert not torch.equal(base.mel, other.mel)
    bridged = _activate(_small())
    b1 = bridged.generate(_req(3, video_prompts=["a red ball", "a bird"], audio_prompts=["knocks", "song"]))
    b2 = bridged.generate(_req(3, video_prompts=["a red ball", "a bird"], audio_prompts=["a loud engine", "rain"]))
    assert not torch.equal(b1.video, b2.video)                  # the DCA bridges carry audio into video


def test_caption_fallback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    v, a, fb = caption_pairs(["joint a", "joint b"], None, ["sound a", ""])
    assert v == ["joint a", "joint b"] and a == ["sound a", "joint b"] and fb
    v, a, fb = caption_pairs(["j"], ["seen"], ["heard"])
    assert (v, a, fb) == (["seen"], ["heard"], False)
    m = _small()
    with caplog.at_level("INFO", logger="reference_models.bridgedit"):
        out = m.generate(_req(3, guidance=1.0, num_steps=1))
    assert out.extras["caption_fallback"] is True
    assert any("joint caption" in r.getMessage() for r in caplog.records)


def test_x_conditional_modes() -> None:
    m = _activate(_small(x_cond_prob=1.0))
    cond = torch.rand(2, 4, 3, 16, 16)
    out = m.generate(_req(3, condition={"video": cond}))
    torch.testing.assert_close(out.video, cond, rtol=0, atol=1e-6)
    free = m.generate(_req(3))
    assert not torch.equal(out.mel, free.mel)
    wave = torch.rand(2, 8000) * 2 - 1
    a2v = m.generate(_req(3, condition={"audio": wave}))
    torch.testing.assert_close(a2v.audio, wave)
    torch.manual_seed(0)
    losses = m.training_step(_batch(), 0)                         # x_cond_prob=1: one modality is clean
    assert float(losses["loss_video"]) == 0.0 or float(losses["loss_audio"]) == 0.0


def test_stages_freeze_per_recipe() -> None:
    m = _small(depth_video=4, depth_audio=4, video_bridge_points=(1,), audio_bridge_points=(1,), tower_train_num=1)
    m.set_stage("bridge")
    train = {n.split(".")[0] + "." + n.split(".")[1] + ("." + n.split(".")[2] if n.split(".")[1] == "blocks" else "")
             for n, p in m.named_parameters() if p.requires_grad}
    assert "dual_dit_blocks.0" in train
    assert "video_diffusion.blocks.0" in train and "video_diffusion.blocks.3" not in train
    assert not any(n.startswith("video_text_encoder") for n in train)
    m2 = _small(depth_video=4, depth_audio=4, video_bridge_points=(1,), audio_bridge_points=(1,), tower_train_num=1,
                trainable_tower_blocks="last")
    m2.set_stage("bridge")
    assert m2.video_diffusion.blocks[3].ffn[0].weight.requires_grad
    assert not m2.video_diffusion.blocks[0].ffn[0].weight.requires_grad
    m2.set_stage("towers")
    assert not any(p.requires_grad for p in m2.dual_dit_blocks.parameters())
    out = m2.training_step(_batch(), 0)
    out["loss"].backward()
    assert all(p.grad is None for p in m2.dual_dit_blocks.parameters())


@pytest.mark.parametrize("bridge,extra", [("dca", {"dca_flag": "a2v"}), ("dca", {"dca_flag": "v2a"}),
                                          ("dca", {"dca_flag": "full_attn"}), ("dca", {"dca_flag": "add"}),
                                          ("bi_ca", {}), ("joint_attn", {}), ("rs_mma", {"rs_mma_window": 2}),
                                          ("frame_local_ca", {}), ("additive", {}), ("none", {})])
def test_bridge_type_is_a_config_field(bridge: str, extra: dict) -> None:
    m = _small(bridge=bridge, **extra)
    out = m.training_step(_batch(), 0)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert m.config()["bridge"] == bridge
    assert (len(list(m.dual_dit_blocks.parameters())) > 0) == (bridge != "none")


def test_bridge_rope_modes_differ() -> None:
    m = _activate(_small())
    args = (torch.randn(1, 4, 3, 16, 16), torch.randn(1, 32, 64), torch.tensor([0.5]), torch.tensor([0.5]),
            m.context("video", ["a"]), m.context("audio", ["a"]))
    with torch.no_grad():
        outs = {r: m(*args, rope_mode=r)["audio"] for r in ("index", "seconds", "none")}
    assert (outs["index"] - outs["seconds"]).abs().max() > 1e-5
    assert (outs["index"] - outs["none"]).abs().max() > 1e-5
    pv, pa = m.bridge_angles((2, 2, 2), (4, 4), torch.device("cpu"), "seconds")
    # seconds: video latent frame k at k*0.25 s, audio step k at k*0.125 s (first frequency: angle = time)
    assert pv[:, 0].tolist() == [0, 0, 0, 0, 0.25, 0.25, 0.25, 0.25]
    assert pa[::4, 0].tolist() == [0, 0.125, 0.25, 0.375]


def test_bridge_init_options_start_as_identity() -> None:
    for init in ("identity", "zero_adaln"):
        torch.manual_seed(0)
        blk = CrossDiTBlockAdaLN(16, 12, 16, 16, 2, flag="bicross", init=init)
        x1, x2 = torch.randn(2, 5, 16), torch.randn(2, 3, 12)
        o1, o2 = blk(x1, x2, torch.randn(2, 16), torch.randn(2, 12))
        assert torch.equal(o1, x1) and torch.equal(o2, x2)
    z = CrossDiTBlockAdaLN(16, 12, 16, 16, 2, init="zero_adaln")
    assert z.attn.o_proj_1.weight.abs().max() > 0 and z.adaln_modulation_1[1].weight.abs().max() == 0
    with pytest.raises(ValueError, match="bridge init"):
        CrossDiTBlockAdaLN(16, 12, 16, 16, 2, init="zeros")
    m = _small(bridge_init="zero_adaln")
    assert m.dual_dit_blocks[0].adaln_modulation_2[1].weight.abs().max() == 0
