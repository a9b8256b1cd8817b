"""Cascades t2v-v2a / t2a-a2v (and parallel) built from the two-tower models' x-conditional modes."""
from __future__ import annotations

import pytest
import torch

from reference_models.cascades import Cascade, T2AThenA2V, T2VThenV2A
from reference_models.interface import GenerationRequest


pytestmark = pytest.mark.usefixtures("one_thread")


BASE = dict(dim_video=32, dim_audio=32, heads_video=2, heads_audio=2, depth_video=2, depth_audio=2, text_dim=32,
            text_depth=1, text_heads=2, video_bridge_points=(0,), audio_bridge_points=(0,), bridge_heads=2)


def _cascade(cls: type, **kw) -> Cascade:
    torch.manual_seed(0)
    m = cls(preset="small", base="bridgedit", base_preset="tiny", base_options=BASE, **kw)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1 and p.abs().max() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return m


def _batch(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(4)
    return {"video": torch.rand(b, 4, 3, 16, 16, generator=g) * 2 - 1, "mel": torch.randn(b, 32, 64, generator=g),
            "caption": ["a red ball bounces, knocks"] * b, "caption_video": ["a red ball bounces"] * b,
            "caption_audio": ["two knocks"] * b}


def _req(seed: int = 3, **kw) -> GenerationRequest:
    base = dict(prompts=["a red ball", "a bird"], duration_s=0.5, fps=8.0, height=16, width=16, num_steps=2, seed=seed)
    base.update(kw)
    return GenerationRequest(**base)


def test_t2v_v2a_chains_the_decoded_video() -> None:
    """Stage 1 is the video tower alone; stage 2 is the v2a mode fed exactly stage 1's frames."""
    m = _cascade(T2VThenV2A)
    out = m.generate(_req())
    x, _ = m.model.sample(_req(), towers=("video",), bridges=False)
    stage1 = ((x["video"].clamp(-1, 1) + 1) / 2)
    torch.testing.assert_close(out.video, stage1, rtol=0, atol=1e-6)
    ref = m.model.generate(_req(condition={"video": stage1}))
    # stage 2 saw the same frames (float32 round trip [0,1] -> [-1,1] moves them by an ulp)
    torch.testing.assert_close(out.audio, ref.audio, rtol=0, atol=1e-5)
    assert out.extras["stage1"]["modality"] == "video" and out.extras["stage2"]["mode"] == "v2a"
    assert out.extras["nfe"] == out.extras["stage1"]["nfe"] + out.extras["stage2"]["nfe"] == 8
    again = m.generate(_req())
    assert torch.equal(again.video, out.video) and torch.equal(again.audio, out.audio)


def test_t2a_a2v_chains_the_decoded_audio() -> None:
    m = _cascade(T2AThenA2V)
    out = m.generate(_req())
    x, _ = m.model.sample(_req(), towers=("audio",), bridges=False)
    wave = m.model._mel_spec().to_wave(x["audio"].clamp(-4, 4), 8000, seed=3)
    # the same Griffin-Lim run; its float32 FFTs round differently from call to call (6e-6 seen)
    torch.testing.assert_close(out.audio, wave.clamp(-1, 1), rtol=0, atol=1e-4)
    assert out.extras["stage2"]["mode"] == "a2v"


def test_stage1_ignores_the_other_modality() -> None:
    """The first stage is a text-to-video model: the audio caption cannot change its frames."""
    m = _cascade(T2VThenV2A)
    a = m.generate(_req(video_prompts=["a red ball", "a bird"], audio_prompts=["knocks", "song"]))
    b = m.generate(_req(video_prompts=["a red ball", "a bird"], audio_prompts=["engine", "rain"]))
    assert torch.equal(a.video, b.video) and not torch.equal(a.audio, b.audio)


def test_training_mixes_stage1_and_stage2_batches() -> None:
    m = _cascade(T2VThenV2A)
    assert m.model.cfg.x_cond_modes == ("v2a",) and m.model.cfg.tower_only_prob == 0.5
    kinds = set()
    for s in range(12):
        torch.manual_seed(s)
        out = m.training_step(_batch(), s)
        out["loss"].backward()
        kinds.add("v2a" if float(out["loss_video"]) == 0.0 else "towers")
    assert kinds == {"v2a", "towers"}
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        torch.manual_seed(7)
        out = m.training_step(_batch(), step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.6 * losses[0]


def test_parallel_and_errors() -> None:
    m = _cascade(Cascade, order="parallel")
    out = m.generate(_req())
    assert out.extras["order"] == "parallel" and out.video.shape == (2, 4, 3, 16, 16)
    with pytest.raises(ValueError, match="order is fixed"):
        T2VThenV2A(preset="x", order="t2a_a2v", base_options=BASE)
    with pytest.raises(ValueError, match="no v2a/a2v"):
        Cascade(preset="x", base="javisdit++", base_preset="tiny")


def test_meta_counts_equal_the_base_model() -> None:
    from reference_models.bridgedit import BridgeDiT
    c = T2VThenV2A.from_preset("tiny", device="meta")
    assert c.parameter_count() == BridgeDiT.from_preset("tiny", device="meta").parameter_count()
    assert T2AThenA2V.from_preset("avfulldit-tiny", device="meta").parameter_count() > 0


# ---------------------------------------------------------------------------------------------
# the user path: javisbench train / generate / evaluate for every family of this issue
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory):
    from reference_models.synthav import make_bench
    return make_bench(tmp_path_factory.mktemp("g2") / "bench", n=4, seed=2, split="train")


@pytest.mark.parametrize("family", ["bridgedit", "avfulldit", "mm-diffusion", "t2v-v2a", "t2a-a2v"])
def test_cli_train_generate_evaluate(family: str, bench, tmp_path) -> None:
    import json

    from javisbench.cli import main

    ck = tmp_path / "ck"
    assert main(["train", family, "--preset", "tiny", "--data", str(bench), "--steps", "2", "--batch-size", "2",
                 "--out", str(ck), "--quiet"]) == 0
    out = tmp_path / "samples"
    assert main(["generate", family, "--checkpoint", str(ck), "--bench", str(bench / "manifest.csv"), "--steps", "2",
                 "--limit", "2", "--batch-size", "2", "--out", str(out), "--quiet"]) == 0
    rec = json.loads((out / "generation.json").read_text())
    assert rec["generator"] == family and len(rec["samples"]) == 2
    assert main(["evaluate", str(out), "--bench", str(bench / "manifest.csv"), "--metrics", "av_align", "--limit", "2",
                 "--out", str(tmp_path / "r.json"), "--quiet", "--cache-dir", str(tmp_path / "c")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["overall"]["av_align"]["n"] == 2


def test_oracle_upper_bound_skips_stage1() -> None:
    """V2A fed ground-truth video: the output video is the given one, stage 1 never runs."""
    m = _cascade(T2VThenV2A)
    gt = torch.rand(2, 4, 3, 16, 16)
    out = m.generate(_req(condition={"video": gt}))
    torch.testing.assert_close(out.video, gt, rtol=0, atol=1e-6)
    assert out.extras["stage1"] == {"modality": "video", "given": True, "nfe": 0}
    assert out.extras["nfe"] == out.extras["stage2"]["nfe"] == 4
