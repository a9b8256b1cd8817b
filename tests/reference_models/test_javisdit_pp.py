"""JavisDiT++ reference model: shapes, training, DPO, reproducible sampling, paper-size layout, §5 options."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference_models.blocks import rope
from reference_models.interface import GenerationRequest
from reference_models.javisdit_pp import JavisDiTPP, LoRALinear



pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(B: int = 2, T: int = 8, Tm: int = 64, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.rand(B, T, 3, 32, 32, generator=g) * 2 - 1, "mel": torch.randn(B, Tm, 64, generator=g),
            "caption": ["a red ball bounces twice with knocks", "a bird chirps then a clock ticks"][:B]}


def _model(**kw: object) -> JavisDiTPP:
    torch.manual_seed(0)
    return JavisDiTPP.from_preset("tiny", **kw)


def test_forward_backward_shapes() -> None:
    m = _model()
    b = _batch()
    y, mask = m.encode_text(b["caption"])
    out = m(b["video"], b["mel"], torch.tensor([0.3, 0.8]), m.context(y, mask), num_frames=8)
    assert out["video"].shape == b["video"].shape and out["audio"].shape == b["mel"].shape
    m.train()
    losses = m.training_step(b, 0)
    assert set(losses) >= {"loss", "loss_video", "loss_audio"}
    losses["loss"].backward()
    for name in ("blocks.0.self_attn.q.weight", "blocks.0.audio_ffn.0.weight", "blocks.0.ffn.2.weight",
                 "audio_time_projection.1.weight", "patch_embedding.weight", "text_encoder.token_embedding.weight"):
        g = dict(m.named_parameters())[name].grad
        assert g is not None and torch.isfinite(g).all(), name


def test_audio_and_video_tokens_share_attention_but_not_ffns() -> None:
    m = _model()
    with torch.no_grad():     # open the heads (zero-initialised like the original)
        m.head.head.weight.normal_(0, 0.02)
        m.audio_head.head.weight.normal_(0, 0.02)
    b = _batch(B=1)
    ctx = m.context(*m.encode_text(b["caption"][:1]))
    t = torch.tensor([0.5])
    base = m(b["video"], b["mel"], t, ctx, 8)
    mel2 = b["mel"] + torch.randn_like(b["mel"])
    out = m(b["video"], mel2, t, ctx, 8)
    assert not torch.allclose(base["video"], out["video"])      # audio reaches video through joint attention
    with torch.no_grad():     # the last layer's audio FFN acts on audio tokens only
        m.blocks[-1].audio_ffn[2].bias.add_(1.0)
    changed = m(b["video"], b["mel"], t, ctx, 8)
    assert not torch.allclose(changed["audio"], base["audio"])
    assert torch.equal(changed["video"], base["video"])


def test_loss_falls_on_a_fixed_batch_within_50_steps() -> None:
    m = _model()
    m.train()
    b = _batch()
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=2e-3)
    first = last = 0.0
    for step in range(50):
        torch.manual_seed(123)          # the same t, noise and caption dropout every step: a fixed objective
        loss = m.training_step(b, step)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            first = loss.item()
        last = loss.item()
    assert last < 0.7 * first, (first, last)


def test_seeded_generation_is_bit_reproducible() -> None:
    m = _model()
    req = GenerationRequest(prompts=["a red ball bounces", "rain falls"], duration_s=1.0, num_steps=3, seed=7)
    a, b = m.generate(req), m.generate(req)
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)
    assert a.video.shape == (2, 8, 3, 32, 32) and a.audio.shape == (2, 16000)
    assert a.extras["nfe"] == 6                     # 3 steps × (cond + uncond)
    c = m.generate(GenerationRequest(prompts=["a red ball bounces", "rain falls"], duration_s=1.0, num_steps=3, seed=8))
    assert not torch.equal(a.video, c.video)
    assert 0.0 <= float(a.video.min()) and float(a.video.max()) <= 1.0 and float(a.audio.abs().max()) <= 1.0


def test_paper_size_parameter_counts_match_the_paper() -> None:
    # The paper's counts are in binary units (2^20, 2^30): 2.1 B total, S1 794 M, SFT LoRA 121 M.
    m = JavisDiTPP.from_preset("paper", device="meta")
    assert abs(m.parameter_count() / 2 ** 30 - 2.1) / 2.1 < 0.05
    m.set_stage("audio_pretrain")
    assert abs(m.parameter_count(trainable_only=True) / 2 ** 20 - 794) / 794 < 0.05
    m2 = JavisDiTPP.from_preset("paper", device="meta")
    m2.set_stage("sft")
    assert abs(m2.parameter_count(trainable_only=True) / 2 ** 20 - 121) / 121 < 0.05


def test_paper_size_state_dict_layout_is_the_originals() -> None:
    sd = JavisDiTPP.from_preset("paper", device="meta").state_dict()
    expect = {"patch_embedding.weight": (1536, 16, 1, 2, 2), "audio_patch_embedding.weight": (1536, 8, 2, 2),
              "text_embedding.0.weight": (1536, 4096), "time_embedding.0.weight": (1536, 256),
              "time_projection.1.weight": (9216, 1536), "audio_time_projection.1.weight": (4608, 1536),
              "blocks.29.self_attn.norm_q.weight": (1536,), "blocks.0.norm3.weight": (1536,),
              "blocks.0.cross_attn.o.weight": (1536, 1536), "blocks.0.ffn.0.weight": (8960, 1536),
              "blocks.0.audio_ffn.2.weight": (1536, 8960), "blocks.0.modulation": (1, 6, 1536),
              "blocks.0.audio_modulation.param": (1, 3, 1536), "head.head.weight": (64, 1536),
              "head.modulation": (1, 2, 1536), "audio_head.head.weight": (32, 1536)}
    for k, shape in expect.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(k.startswith("text_encoder") for k in sd)


def test_tiny_presets_sizes() -> None:
    tiny = JavisDiTPP.from_preset("tiny", device="meta").parameter_count()
    matched = JavisDiTPP.from_preset("tiny-matched", device="meta").parameter_count()
    assert 1.2e6 < tiny < 1.8e6                       # spec §1.8: about 1.5 M
    assert abs(matched - 2e6) / 2e6 < 0.15
    with pytest.raises(ValueError, match="did you mean 'tiny'"):
        JavisDiTPP.from_preset("tinny")


def test_ta_rope_options_reach_the_model() -> None:
    m = _model()
    code = m._angles((4, 4, 4), (8, 4), torch.device("cpu"), 4)
    ids = torch.cat([rope.video_position_ids(4, 4, 4).double(), rope.audio_position_ids(8, 4, 4, 4, 4)])
    assert torch.equal(code, rope.rope_angles(ids, (8, 8, 8)))
    paper = _model(ta_time_map="paper_round")._angles((4, 4, 4), (8, 4), torch.device("cpu"), 4)
    assert not torch.equal(code, paper)
    assert torch.equal(code[:64], paper[:64])          # video ids are untouched
    with pytest.raises(ValueError, match="audio_special_token"):
        _model(audio_special_token=True)


def test_timestep_shift_code_rule_trains_shifted_and_samples_unscaled() -> None:
    f = _model().flow(32, 32, 32)
    s = math.sqrt(32 * 32 / 512 ** 2) * math.sqrt(5)
    assert f.train_shift == pytest.approx(5 * s) and f.sample_shift == pytest.approx(s)
    g = _model(timestep_shift="none").flow(32, 32, 32)
    assert g.train_shift == g.sample_shift == 1.0


def test_dual_ffn_off_is_plain_wan() -> None:
    m = _model(dual_ffn=False)
    assert not any("audio_ffn" in k or "audio_modulation" in k for k in m.state_dict())
    b = _batch()
    m.training_step(b, 0)["loss"].backward()


def test_audio_pretrain_trains_only_audio_specific_modules() -> None:
    m = _model()
    m.set_stage("audio_pretrain")
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("audio_", "blocks.")) for n in names)
    assert all(".audio_" in n for n in names if n.startswith("blocks."))
    out = m.training_step(_batch(), 0)
    assert float(out["loss_video"]) == 0.0
    out["loss"].backward()
    assert m.blocks[0].self_attn.q.weight.grad is None


def test_lora_stage_and_checkpoint_round_trip() -> None:
    m = _model(sft_lora_rank=4)
    m.set_stage("sft")
    assert isinstance(m.blocks[0].self_attn.q, LoRALinear)
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    b = _batch()
    ctx = m.context(*m.encode_text(b["caption"]))
    t = torch.tensor([0.4, 0.6])
    before = m(b["video"], b["mel"], t, ctx, 8)["audio"]
    fresh = _model(sft_lora_rank=4)
    fresh.load_state_dict(m.state_dict())             # adapters re-created on load
    after = fresh(b["video"], b["mel"], t, fresh.context(*fresh.encode_text(b["caption"])), 8)["audio"]
    assert torch.allclose(before, after, atol=1e-6)


def _dpo_reference(pw: dict, pl: dict, rw: dict, rl: dict, beta: dict, mode: str, sft: float) -> torch.Tensor:
    """Independent transcription of the two DPO losses (spec §1.2)."""
    m = {k: (pw[k] - pl[k]) - (rw[k] - rl[k]) for k in beta}
    reg = sft * (pw["video"] + pw["audio"])
    if mode == "code":
        return (sum(-F.logsigmoid(-0.5 * beta[k] * m[k]) for k in beta) + reg).mean()
    return (-F.logsigmoid(-0.5 * sum(beta[k] * m[k] for k in beta)) + reg).mean()


@pytest.mark.parametrize("mode", ["code", "paper"])
def test_preference_step_matches_the_formula(mode: str) -> None:
    m = _model(dpo_loss=mode, beta_video=30.0, beta_audio=10.0)
    ref = _model()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.01 * torch.randn_like(p))
        m.head.head.weight.normal_(0, 0.05)
        m.audio_head.head.weight.normal_(0, 0.05)
    win, lose = _batch(seed=1), _batch(seed=2)
    lose["caption"] = win["caption"]
    torch.manual_seed(5)
    out = m.preference_step(win, lose, ref)
    # recompute the four per-sample losses with the same t and noise
    torch.manual_seed(5)
    ctx = m.context(*m.encode_text(win["caption"]))
    t = m.flow(8, 32, 32).sample_t(2)
    noise = {"video": torch.randn_like(win["video"]), "audio": torch.randn_like(win["mel"])}
    def losses(model: JavisDiTPP, batch: dict, c: torch.Tensor) -> dict:
        x0 = {"video": batch["video"], "audio": batch["mel"]}
        with torch.no_grad():
            return model._flow_losses(x0, c, t, noise, model=model, num_frames=8)
    rctx = ref.context(*ref.encode_text(win["caption"]))
    ref_val = _dpo_reference(losses(m, win, ctx), losses(m, lose, ctx), losses(ref, win, rctx), losses(ref, lose, rctx),
                             {"video": 30.0, "audio": 10.0}, mode, 0.1)
    assert out["loss"].item() == pytest.approx(ref_val.item(), rel=1e-4, abs=1e-5)


def test_dpo_stage_starts_at_log2_and_learns_the_preference() -> None:
    m = _model(beta_video=50.0, beta_audio=50.0, dpo_sft_weight=0.0)
    with torch.no_grad():
        m.head.head.weight.normal_(0, 0.05)
        m.audio_head.head.weight.normal_(0, 0.05)
    m.set_stage("dpo")
    win, lose = _batch(seed=1), _batch(seed=2)
    lose["caption"] = win["caption"]
    torch.manual_seed(0)
    out = m.preference_step(win, lose, None)
    assert float(out["dpo_loss_video"]) == pytest.approx(math.log(2), abs=1e-5)   # policy == reference
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-3)
    for step in range(15):
        torch.manual_seed(step)
        out = m.training_step({**win, "video_lose": lose["video"], "mel_lose": lose["mel"]}, step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    torch.manual_seed(99)
    final = m.preference_step(win, lose, None)
    assert final["loss"].item() < 2 * math.log(2)
    assert float(final["implicit_acc_audio"]) == 1.0 and float(final["implicit_acc_video"]) == 1.0


def test_dpo_needs_pairs_and_a_reference() -> None:
    m = _model()
    win = _batch()
    with pytest.raises(RuntimeError, match="reference"):
        m.preference_step(win, win, None)
    m.set_stage("dpo")
    with pytest.raises(ValueError, match="video_lose"):
        m.training_step(win, 0)
    other = dict(win, caption=["x", "y"])
    with pytest.raises(ValueError, match="share their prompts"):
        m.preference_step(win, other, None)


# ---------------------------------------------------------------------- DPO pair mining (dpo.py)


def _table(rng: "np.random.Generator", prompts: int = 6, per: int = 4) -> list[dict]:
    rows = []
    for p in range(prompts):
        for c in range(per):
            rows.append({"prompt": f"p{p}", "id": f"p{p}-{c}", "gt": c == 0,
                         **{m: float(rng.normal()) for m in ("visual_quality", "motion_quality", "ib_tv", "audio_quality",
                                                             "ib_ta", "ib_av", "desync_scores")}})
    return rows


def _naive_pairs(rows: list[dict], mode: str = "micro") -> dict[str, tuple[str, str]]:
    """Loop transcription of the original rule, with scipy's average ranks for "macro"."""
    from scipy.stats import rankdata

    from reference_models.dpo import ORIGINAL_GROUPS
    z = {}
    for m in {m for ms in ORIGINAL_GROUPS.values() for m in ms}:
        x = np.array([r[m] for r in rows])
        x = (x - x.mean()) / x.std(ddof=1)
        z[m] = -x if m == "desync_scores" else x
    dims = list(ORIGINAL_GROUPS)
    score = [[np.mean([(z[m] if mode == "micro" else rankdata(z[m]))[i] for m in ORIGINAL_GROUPS[d]]) for d in dims]
             for i in range(len(rows))]
    out = {}
    for p in dict.fromkeys(r["prompt"] for r in rows):
        idx = [i for i, r in enumerate(rows) if r["prompt"] == p]
        best = None
        for i in idx:
            for j in idx:
                if all(score[i][k] > score[j][k] for k in range(len(dims))):
                    margin = sum(score[i][k] - score[j][k] for k in range(len(dims)))
                    if best is None or margin > best[0]:
                        best = (margin, rows[i]["id"], rows[j]["id"])
        if best:
            out[p] = best[1:]
    return out


@pytest.mark.parametrize("mode", ["micro", "macro"])
def test_pair_mining_matches_a_loop_transcription(mode: str) -> None:
    from reference_models.dpo import rank_pairs
    rows = _table(np.random.default_rng(0), prompts=12)
    got = {p.prompt: (p.chosen, p.rejected) for p in rank_pairs(rows, mode=mode)}
    assert got == _naive_pairs(rows, mode) and len(got) >= 3


def test_pair_mining_rule_on_a_hand_made_table() -> None:
    from reference_models.dpo import rank_pairs
    groups = {"video": ("v",), "audio": ("a",), "audio_video": ("desync",)}
    rows = [{"prompt": "x", "id": "good", "v": 2.0, "a": 2.0, "desync": 0.1},
            {"prompt": "x", "id": "mid", "v": 1.0, "a": 1.0, "desync": 0.5},
            {"prompt": "x", "id": "bad", "v": 0.0, "a": 0.0, "desync": 0.9},
            {"prompt": "y", "id": "y1", "v": 2.0, "a": 0.0, "desync": 0.5},    # no dominance within y
            {"prompt": "y", "id": "y2", "v": 0.0, "a": 2.0, "desync": 0.5}]
    pairs = rank_pairs(rows, groups, lower_is_better={"desync"})
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("x", "good", "bad")]   # largest margin wins
    assert pairs[0].scores_chosen["audio_video"] > pairs[0].scores_rejected["audio_video"]
    # desync counted as higher-is-better flips the audio-video dimension: no pair dominates
    assert rank_pairs(rows, groups, lower_is_better=()) == []
    # dropping the best candidate after normalisation (the original's del_gt)
    pairs = rank_pairs(rows, groups, lower_is_better={"desync"}, include=lambda r: r["id"] != "good")
    assert [(p.chosen, p.rejected) for p in pairs] == [("mid", "bad")]


def test_pair_mining_with_a_reward_callable_and_bad_tables() -> None:
    from reference_models.dpo import rank_pairs, score_candidates
    cands = [{"prompt": "p", "id": i, "shift": s} for i, s in enumerate([0.0, 0.25, 1.0])]
    table = score_candidates(cands, lambda c: {"v": 1.0 - c["shift"], "a": 1.0 - c["shift"], "av": -c["shift"]})
    (pair,) = rank_pairs(table, {"video": ("v",), "audio": ("a",), "audio_video": ("av",)}, lower_is_better=())
    assert (pair.chosen, pair.rejected) == (0, 2)
    with pytest.raises(ValueError, match="lacks metric 'av'"):
        rank_pairs([{"prompt": "p", "id": 0, "v": 1, "a": 1}], {"video": ("v",), "audio": ("a",), "x": ("av",)})
    with pytest.raises(ValueError, match="non-finite"):
        rank_pairs([{"prompt": "p", "id": 0, "v": float("nan")}] * 2, {"video": ("v",)})


def test_pair_bench_round_trip_feeds_the_dpo_stage(tmp_path: Path) -> None:
    import shutil

    from reference_models.data import BenchData, read_bench
    from reference_models.dpo import rank_pairs, write_pair_bench
    from reference_models.synthav import make_bench

    bench = make_bench(tmp_path / "bench", n=3, seed=0, split="train")
    cand = tmp_path / "gen"
    shutil.copytree(bench, cand)
    rows = read_bench(bench)
    table, clips = [], {}
    for name, folder, score in (("gen", cand, 0.0), ("real", bench, 1.0)):
        for r in rows:
            cid = f"{name}:{r.index}"
            table.append({"prompt": str(r.index), "id": cid, "av": score + 0.01 * r.index})
            clips[cid] = {"text": r.text, "audio_text": r.audio_text, "video_text": r.video_text, "labels": r.labels,
                          "video": folder / r.video.name, "audio": folder / r.audio.name}
    pairs = rank_pairs(table, {"audio_video": ("av",)}, lower_is_better=())
    assert [(p.chosen, p.rejected) for p in pairs] == [(f"real:{i}", f"gen:{i}") for i in range(3)]
    out = write_pair_bench(pairs, clips, tmp_path / "pairs")
    chosen, rejected = read_bench(out), read_bench(out / "rejected.csv")
    assert [r.text for r in chosen] == [r.text for r in rejected] == [r.text for r in rows]
    assert all(c.video.resolve().parent == bench.resolve() for c in chosen)
    assert all(r.video.resolve().parent == cand.resolve() for r in rejected)
    m = _model(dpo_rejected=str(out / "rejected.csv"))
    m.set_stage("dpo")
    data = BenchData(out, **m.clip_size())
    losses = m.training_step(data.batch([2, 0]), 0)
    assert float(losses["dpo_loss_audio"]) == pytest.approx(math.log(2), abs=1e-5)   # first step: policy == reference
    with pytest.raises(ValueError, match="write_pair_bench|no preference pairs"):
        write_pair_bench([], clips, tmp_path / "none")
