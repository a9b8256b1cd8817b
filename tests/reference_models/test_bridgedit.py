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


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small kernels: one intra-op thread avoids barrier stalls on a shared 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
