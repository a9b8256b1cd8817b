"""Shared RoPE / attention / fusion blocks: parity with the original JavisDiT code and properties."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from javisbench.golden import fill_value, fixture_seed
from reference_models.blocks import rope
from reference_models.blocks.attention import Attention, MultiHeadCrossAttention, STDiT3Block, WanSelfAttention
from reference_models.blocks.fusion import (FUSIONS, BiMultiHeadAttention, CrossModalityBiAttentionBlock,
                                            FusionContext, JointAttentionFusion, build_fusion)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "arch"
BICA = GOLDEN / "javisdit"
TAROPE = GOLDEN / "javisdit-pp"


# ------------------------------------------------------------------------------------------ Bi-CA


def _bica(impl: str = "sdpa", mask_mode: str = "or") -> BiMultiHeadAttention:
    cfg = json.loads((BICA / "config.json").read_text())
    m = BiMultiHeadAttention(cfg["m1_dim"], cfg["m2_dim"], cfg["embed_dim"], cfg["num_heads"],
                             attn_implementation=impl, mask_mode=mask_mode)  # type: ignore[arg-type]
    keys = json.loads((BICA / "keys.json").read_text())
    seed = fixture_seed(BICA)
    m.load_state_dict({k: torch.from_numpy(fill_value(k, s, seed)) for k, s in keys}, strict=True)
    return m.eval()


def _io() -> dict[str, torch.Tensor]:
    z = np.load(BICA / "io.npz")
    return {k: torch.from_numpy(z[k]) for k in z.files}


def test_bica_parameter_names_and_order_match_the_original() -> None:
    cfg = json.loads((BICA / "config.json").read_text())
    keys = json.loads((BICA / "keys.json").read_text())
    m = BiMultiHeadAttention(cfg["m1_dim"], cfg["m2_dim"], cfg["embed_dim"], cfg["num_heads"])
    assert [[k, list(v.shape)] for k, v in m.state_dict().items()] == [[k, s] for k, s in keys]


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_bica_reproduces_the_original_outputs(impl: str) -> None:
    io = _io()
    with torch.no_grad():
        o1, o2 = _bica(impl)(io["x1"], io["x2"])
    assert (o1 - io[f"{impl}_out1"]).abs().max().item() <= 1e-4
    assert (o2 - io[f"{impl}_out2"]).abs().max().item() <= 1e-4


def test_bica_or_mask_reproduces_the_original_no_op() -> None:
    io = _io()
    assert not bool(io["mask2"].all()), "the fixture must pad some audio tokens"
    with torch.no_grad():
        o1, o2 = _bica("sdpa", "or")(io["x1"], io["x2"], None, io["mask2"])
    assert (o1 - io["sdpa_mask_out1"]).abs().max().item() <= 1e-4
    assert (o2 - io["sdpa_mask_out2"]).abs().max().item() <= 1e-4


def test_bica_key_mask_hides_padded_audio_and_or_mask_does_not() -> None:
    io = _io()
    x2b = io["x2"].clone()
    pad = ~io["mask2"]
    x2b[pad] = x2b[pad] + 5.0 * torch.randn_like(x2b[pad])  # change only padded audio tokens
    with torch.no_grad():
        key = _bica("sdpa", "key")
        a1, _ = key(io["x1"], io["x2"], None, io["mask2"])
        b1, _ = key(io["x1"], x2b, None, io["mask2"])
        orm = _bica("sdpa", "or")
        c1, _ = orm(io["x1"], io["x2"], None, io["mask2"])
        d1, _ = orm(io["x1"], x2b, None, io["mask2"])
    assert (a1 - b1).abs().max().item() < 1e-5          # video never sees padded audio
    assert (c1 - d1).abs().max().item() > 1e-2          # the original's OR mask lets it through


def test_bica_eager_with_mask_raises_like_the_original() -> None:
    io = _io()
    with pytest.raises(NotImplementedError, match="eager"):
        _bica("eager")(io["x1"], io["x2"], None, io["mask2"])


def test_bica_block_starts_as_identity() -> None:
    torch.manual_seed(0)
    blk = CrossModalityBiAttentionBlock(48, 40, 32, 4)
    xv, xa = torch.randn(2, 30, 48), torch.randn(2, 18, 40)
    ov, oa = blk(xv, xa)
    assert torch.equal(ov, xv) and torch.equal(oa, xa)
    assert [k for k in blk.state_dict() if "gamma" in k] == ["gamma_m1", "gamma_m2"]


# ---------------------------------------------------------------------------------------- TA-RoPE


def _cases() -> list[dict]:
    return json.loads((TAROPE / "cases.json").read_text())


@pytest.mark.parametrize("i", range(3))
def test_ta_rope_interleaved_order_ids_and_angles_match_the_original(i: int) -> None:
    c = _cases()[i]
    z = np.load(TAROPE / "io.npz")
    _, _, Tv, H, W = c["video"]
    _, _, Ta, M = c["audio"]
    types, pos = rope.interleave_audio_video(Tv, H, W, Ta, M, c["a_ms"], c["v_ms"], pe_type=c["pe"],
                                             special_tokens=c["special"])
    assert np.array_equal(types.numpy(), z[f"case{i}_token_types"])
    assert np.array_equal(pos.numpy(), z[f"case{i}_position_ids"])
    assert len(types) == c["n_tokens"]
    assert list(rope.band_dims_3d(c["head_dim"])) == c["axes_dims"]
    ang = rope.wrap_angles(rope.rope_angles(pos, c["axes_dims"])).numpy()
    diff = (ang - z[f"case{i}_angles"] + np.pi) % (2 * np.pi) - np.pi   # compare on the circle
    assert np.abs(diff).max() <= 1e-4


def test_ta_rope_concatenated_ids_equal_the_interleaved_ones_per_modality() -> None:
    c = _cases()[0]
    _, _, Tv, H, W = c["video"]
    _, _, Ta, M = c["audio"]
    types, pos = rope.interleave_audio_video(Tv, H, W, Ta, M, c["a_ms"], c["v_ms"])
    assert torch.equal(pos[types == rope.TOKEN_VIDEO], rope.video_position_ids(Tv, H, W).double())
    assert torch.equal(pos[types == rope.TOKEN_AUDIO], rope.audio_position_ids(Ta, M, Tv, H, W))


def test_special_tokens_raise_in_the_original_path_and_work_when_fixed() -> None:
    with pytest.raises(TypeError, match="original"):
        rope.interleave_audio_video(4, 2, 2, 12, 2, 80.0, 250.0, special_tokens=True)
    types, pos = rope.interleave_audio_video(4, 2, 2, 12, 2, 80.0, 250.0, special_tokens=True,
                                             special_token_path="fixed")
    soa, eoa = types == rope.TOKEN_SOA, types == rope.TOKEN_EOA
    assert int(soa.sum()) == int(eoa.sum()) == 4
    assert pos[soa].tolist() == [[i, i, 0] for i in range(4)]
    assert pos[eoa].tolist() == [[i, i, 1] for i in range(4)]
    assert int((types == rope.TOKEN_AUDIO).sum()) == 24


def test_audio_past_the_last_frame_raises_or_is_trimmed() -> None:
    # 20 steps of 80 ms = 1.6 s of audio against 4 frames of 250 ms = 1 s of video
    with pytest.raises(ValueError, match="past the last"):
        rope.interleave_audio_video(4, 2, 2, 20, 2, 80.0, 250.0)
    types, pos = rope.interleave_audio_video(4, 2, 2, 20, 2, 80.0, 250.0, overflow="trim")
    stamps = np.linspace(0, 19 * 80 / 250, 20)
    kept = int((stamps <= 4).sum())
    assert int((types == rope.TOKEN_AUDIO).sum()) == kept * 2
    assert pos[types == rope.TOKEN_AUDIO][:, 1].max().item() == 2 + kept - 1   # H offset + last kept step


def test_time_maps_on_the_tiny_grid() -> None:
    code = rope.audio_time_map(32, 16, "code_ceil_linspace").tolist()
    assert code[:7] == [0, 1, 1, 2, 2, 3, 3] and code[-3:] == [15, 15, 15]
    paper = rope.audio_time_map(32, 16, "paper_round").tolist()
    assert paper[:10] == [0, 0, 1, 2, 2, 2, 3, 4, 4, 4] and paper[-1] == 15   # unclamped it would be 16
    phys = rope.audio_time_map(32, 16, "physical", 0.125, 0.25).tolist()
    assert phys == [k // 2 for k in range(32)]
    with pytest.raises(ValueError, match="time map"):
        rope.audio_time_map(32, 16, "nearest")  # type: ignore[arg-type]


def test_audio_position_types() -> None:
    v = rope.audio_position_ids(4, 2, 4, 3, 5, "vanilla")
    assert v[:, 0].tolist() == v[:, 1].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    off = rope.audio_position_ids(4, 2, 4, 3, 5, "interleave_offset")
    assert off[:, 1].min().item() == 3 and off[:, 2].min().item() == 5      # past the video's H and W
    inter = rope.audio_position_ids(4, 2, 4, 3, 5, "interpolate")
    assert inter[:, 0].tolist() == inter[:, 1].tolist()
    with pytest.raises(ValueError, match="audio position type"):
        rope.audio_position_ids(4, 2, 4, 3, 5, "offset")  # type: ignore[arg-type]


def test_band_split_is_wans() -> None:
    assert rope.band_dims_3d(128) == (44, 42, 42)
    assert rope.band_dims_3d(24) == (8, 8, 8)
    assert rope.band_dims_3d(16) == (8, 4, 4)


def test_apply_rope_equals_complex_multiplication_and_is_relative() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 8, dtype=torch.float64)          # (B, N, heads, D), seq axis 1
    ang = rope.rope_angles(torch.tensor([[0, 1, 2], [1, 0, 3], [2, 2, 2], [3, 1, 0], [4, 4, 1]]), (4, 2, 2))
    ref = torch.view_as_real(torch.view_as_complex(x.reshape(2, 5, 3, 4, 2))
                             * torch.polar(torch.ones_like(ang), ang)[None, :, None]).flatten(3)
    out = rope.apply_rope(x, ang, seq_dim=1)
    assert torch.allclose(out, ref, atol=1e-12)
    # q·k after rotation depends on the position difference only
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    def dot(p: float, s: float) -> float:
        a = rope.rope_angles_1d(torch.tensor([p, s]), 8)
        r = rope.apply_rope(torch.stack([q, k]), a, seq_dim=0)
        return float(r[0] @ r[1])
    assert abs(dot(3.0, 1.0) - dot(10.0, 8.0)) < 1e-9
    assert abs(dot(3.0, 1.0) - dot(3.0, 2.0)) > 1e-6


def test_seconds_position_ids_share_a_clock() -> None:
    v = rope.seconds_position_ids(4, 0.25, tokens_per_step=2, rate=4.0)
    a = rope.seconds_position_ids(8, 0.125, rate=4.0)
    assert v.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert a.tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]


# -------------------------------------------------------------------------------------- attention


def _naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keymask: torch.Tensor | None = None) -> torch.Tensor:
    s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if keymask is not None:
        s = s.masked_fill(~keymask[:, None, None, :], float("-inf"))
    return torch.softmax(s, -1) @ v


def test_self_and_cross_attention_match_a_naive_softmax() -> None:
    torch.manual_seed(1)
    att = Attention(16, 4, qk_norm=False)
    x = torch.randn(2, 7, 16)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    q, k, v = att.qkv(x).view(2, 7, 3, 4, 4).permute(2, 0, 3, 1, 4)
    ref = att.proj(_naive_attention(q, k, v, mask).transpose(1, 2).reshape(2, 7, 16))
    assert torch.allclose(att(x, mask), ref, atol=1e-5)
    ca = MultiHeadCrossAttention(16, 4)
    y = torch.randn(2, 5, 16)
    ymask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    q = ca.q_linear(x).view(2, 7, 4, 4).transpose(1, 2)
    k, v = ca.kv_linear(y).view(2, 5, 2, 4, 4).permute(2, 0, 3, 1, 4)
    ref = ca.proj(_naive_attention(q, k, v, ymask).transpose(1, 2).reshape(2, 7, 16))
    assert torch.allclose(ca(x, y, ymask), ref, atol=1e-5)


def test_temporal_block_attends_along_time_only() -> None:
    torch.manual_seed(2)
    T, S, C = 5, 3, 16
    blk = STDiT3Block(C, 4, temporal=True).eval()
    x, y, t = torch.randn(1, T * S, C), torch.randn(1, 4, C), torch.randn(1, 6 * C)
    base = blk(x, y, t, T=T, S=S)
    x2 = x.view(1, T, S, C).clone()
    x2[0, 2, 1] += 3.0 * torch.randn(C)                  # perturb one (step, location) token
    out = blk(x2.view(1, T * S, C), y, t, T=T, S=S).view(1, T, S, C)
    changed = (out - base.view(1, T, S, C)).abs().amax(-1)[0] > 1e-6
    # self-attention mixes only location 1; text cross-attention is per token
    assert changed[:, 1].all() and not changed[:, [0, 2]].any()


def test_wan_self_attention_with_rope_matches_naive() -> None:
    torch.manual_seed(3)
    att = WanSelfAttention(24, 2, qk_norm=False)
    x = torch.randn(1, 6, 24)
    ang = rope.rope_angles(rope.video_position_ids(2, 3, 1).double(), rope.band_dims_3d(12))
    q = rope.apply_rope(att.q(x).view(1, 6, 2, 12), ang, 1).transpose(1, 2)
    k = rope.apply_rope(att.k(x).view(1, 6, 2, 12), ang, 1).transpose(1, 2)
    v = att.v(x).view(1, 6, 2, 12).transpose(1, 2)
    ref = att.o(_naive_attention(q, k, v).transpose(1, 2).reshape(1, 6, 24))
    assert torch.allclose(att(x, ang), ref, atol=1e-5)


# ----------------------------------------------------------------------------------------- fusion


@pytest.mark.parametrize("name", ["bi_ca", "joint_attn", "a2v", "v2a", "additive", "none"])
def test_every_fusion_starts_as_identity_and_learns(name: str) -> None:
    torch.manual_seed(4)
    f = build_fusion(name, 32, 24, 4)
    xv, xa = torch.randn(2, 12, 32), torch.randn(2, 8, 24)
    ctx = FusionContext(grid_v=(3, 4), grid_a=(4, 2))
    ov, oa = f(xv, xa, ctx)
    assert torch.equal(ov, xv) and torch.equal(oa, xa)
    if name == "none":
        return
    with torch.no_grad():
        for n, p in f.named_parameters():
            if "gamma" in n:
                p.fill_(1.0)
    ov, oa = f(xv, xa, ctx)
    moved_v, moved_a = not torch.allclose(ov, xv), not torch.allclose(oa, xa)
    assert (moved_v, moved_a) == {"a2v": (True, False), "v2a": (False, True)}.get(name, (True, True))
    (ov.sum() + oa.sum()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in f.parameters())


def test_cross_modal_information_flows_through_fusion() -> None:
    torch.manual_seed(5)
    for name in ("bi_ca", "joint_attn", "a2v", "additive"):
        f = build_fusion(name, 32, 24, 4)
        with torch.no_grad():
            for n, p in f.named_parameters():
                if "gamma" in n:
                    p.fill_(1.0)
        xv, xa = torch.randn(1, 12, 32), torch.randn(1, 8, 24)
        ov1, _ = f(xv, xa)
        ov2, _ = f(xv, xa + torch.randn_like(xa))
        assert not torch.allclose(ov1, ov2), name   # video output depends on the audio stream


def test_joint_attention_is_one_softmax_over_both_streams() -> None:
    torch.manual_seed(6)
    f = JointAttentionFusion(32, 24, 4, qk_norm=False)
    with torch.no_grad():
        f.gamma_v.fill_(1.0)
        f.gamma_a.fill_(1.0)
    xv, xa = torch.randn(1, 6, 32), torch.randn(1, 5, 24)
    qkv_v = f.v_qkv(f.v_norm(xv)).view(1, 6, 3, 4, 6).permute(2, 0, 3, 1, 4)
    qkv_a = f.a_qkv(f.a_norm(xa)).view(1, 5, 3, 4, 6).permute(2, 0, 3, 1, 4)
    q, k, v = (torch.cat([qkv_v[i], qkv_a[i]], 2) for i in range(3))
    o = _naive_attention(q, k, v).transpose(1, 2).reshape(1, 11, 24)
    ov, oa = f(xv, xa)
    assert torch.allclose(ov, xv + f.v_proj(o[:, :6]), atol=1e-5)
    assert torch.allclose(oa, xa + f.a_proj(o[:, 6:]), atol=1e-5)


def test_fusion_registry_names_and_errors() -> None:
    assert {"bi_ca", "joint_attn", "a2v", "v2a", "additive", "none"} <= set(FUSIONS)
    with pytest.raises(KeyError, match="Did you mean: bi_ca"):
        build_fusion("bi-ca", 32, 24, 4)
    bica = build_fusion("bi_ca", 64, 64, 4)
    assert bica.cross_attn.embed_dim == 32 and bica.cross_attn.num_heads == 2   # min(Cv,Ca)/2, heads/2
