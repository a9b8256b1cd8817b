"""The generator interface: requests, outputs, the registry and its listing."""
from __future__ import annotations

import pytest
import torch

from reference_models.interface import (GENERATORS, GenerationOutput, GenerationRequest, Generator, create_generator,
                                        derive_seed, describe_generator, generator_class, list_generators, register,
                                        seeded_noise)


def test_request_validation_and_seeds() -> None:
    r = GenerationRequest(prompts=["a", "b", "c"], seed=7, guidance={"video": 6.0, "audio": 7.0})
    assert len(r) == 3 and r.num_frames == 32 and r.num_samples == 64000
    assert r.guidance_for("video", 1.0) == 6.0 and r.guidance_for("audio", 1.0) == 7.0
    assert GenerationRequest(prompts=["a"]).guidance_for("video", 5.0) == 5.0
    assert r.sample_seeds() == [derive_seed(7, i) for i in range(3)]
    # with bench rows the seed follows the row, whatever the batch
    a = GenerationRequest(prompts=["x", "y"], seed=7, rows=[10, 11]).sample_seeds()
    b = GenerationRequest(prompts=["y"], seed=7, rows=[11]).sample_seeds()
    assert a[1] == b[0] and len(set(a)) == 2
    js = GenerationRequest(prompts=["a"], condition={"video": torch.zeros(1, 32, 3, 32, 32)}).to_json()
    assert js["condition"] == {"video": [1, 32, 3, 32, 32]}
    for bad, msg in [(dict(prompts=[]), "empty"), (dict(prompts=["a"], audio_prompts=["x", "y"]), "audio_prompts"),
                     (dict(prompts=["a"], guidance={"vid": 2.0}), "guidance"),
                     (dict(prompts=["a"], condition={"text": torch.zeros(1)}), "condition"),
                     (dict(prompts=["a"], fps=0), "positive")]:
        with pytest.raises(ValueError, match=msg):
            GenerationRequest(**bad)


def test_seeded_noise_is_per_row() -> None:
    s = [derive_seed(0, i) for i in range(3)]
    full = seeded_noise((4, 5), s)
    assert torch.equal(full[1:2], seeded_noise((4, 5), s[1:2]))
    assert not torch.equal(seeded_noise((4, 5), s, stream="video"), seeded_noise((4, 5), s, stream="audio"))
    assert derive_seed(1, "step", 3) == derive_seed(1, "step", 3) != derive_seed(1, "step", 4)


def test_output_to_uint8() -> None:
    v = torch.tensor([0.0, 0.5, 1.0, 1.2, -0.1]).reshape(1, 5, 1, 1, 1).expand(1, 5, 3, 2, 2).contiguous()
    out = GenerationOutput(v, torch.zeros(1, 10), 8.0, 16000)
    u = out.to_uint8_thwc()
    assert u.shape == (1, 5, 2, 2, 3) and u.dtype.name == "uint8"
    assert u[0, :, 0, 0, 0].tolist() == [0, 128, 255, 255, 0]
    with pytest.raises(ValueError, match="B,T,3,H,W"):
        GenerationOutput(torch.zeros(1, 5, 4, 2, 2), torch.zeros(1, 10), 8.0, 16000)
    with pytest.raises(ValueError, match="audio"):
        GenerationOutput(torch.zeros(2, 5, 3, 2, 2), torch.zeros(1, 10), 8.0, 16000)


def test_registry_did_you_mean_and_listing() -> None:
    with pytest.raises(ValueError, match="did you mean 'shift-audio'"):
        generator_class("shift-audi")
    with pytest.raises(ValueError, match="module:Class"):
        register("x", "no_colon")
    assert {"oracle", "shift-audio", "swap-audio", "frozen-video", "noise-video", "silent-audio"} <= set(GENERATORS)
    rows = {r["name"]: r for r in list_generators()}
    assert rows["oracle"]["parameters"] == 0 and rows["oracle"]["trainable"] is False
    assert rows["shift-audio"]["capabilities"]["audio_domain"] == "wave"
    g = create_generator("shift-audio", seconds=0.25)
    assert g.config()["seconds"] == 0.25 and g.name == "shift-audio-default"
    with pytest.raises(ValueError, match="did you mean 'default'"):
        create_generator("oracle", "defualt")


class _Toy(Generator):
    family = "toy-test"
    presets = {"tiny": {"width": 4}, "small": {"width": 8}}
    stages = ["joint_from_scratch", "head_only"]

    def __init__(self, preset: str = "tiny", width: int = 4) -> None:
        super().__init__(preset)
        self.body, self.head = torch.nn.Linear(width, width), torch.nn.Linear(width, 1)

    def set_stage(self, name: str) -> None:
        super().set_stage(name)
        self.body.requires_grad_(name != "head_only")


def test_generator_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(GENERATORS, "toy-test", f"{__name__}:_Toy")
    m = create_generator("toy-test", "small")
    assert m.parameter_count() == 8 * 8 + 8 + 8 + 1 and m.stage == "joint_from_scratch"
    m.set_stage("head_only")
    assert m.parameter_count(trainable_only=True) == 9
    with pytest.raises(ValueError, match="did you mean 'head_only'"):
        m.set_stage("head-only")
    meta = _Toy.from_preset("tiny", device="meta")
    assert meta.device.type == "meta" and meta.parameter_count() == 4 * 4 + 4 + 4 + 1
    d = describe_generator("toy-test")
    assert d["parameters"] == 25 and d["presets"] == ["small", "tiny"] and d["stages"] == _Toy.stages
    other = create_generator("toy-test", "small")
    assert m.config_hash() != other.config_hash()            # the stage is part of the config
    other.set_stage("head_only")
    assert m.config_hash() == other.config_hash()
    with pytest.raises(NotImplementedError):
        m.generate(GenerationRequest(prompts=["a"]))
