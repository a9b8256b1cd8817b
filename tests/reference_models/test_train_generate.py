"""Dataset, trainer (resume = uninterrupted), generation, baselines, CLI and bad input."""
from __future__ import annotations

import csv
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from javisbench.cli import main
from reference_models.data import BenchData, read_bench, read_video, read_wav
from reference_models.interface import GENERATORS
from reference_models.synthav import make_bench
from reference_models.train import TrainConfig, load_checkpoint, train

FAMILY = "tiny-rf-test"


@pytest.fixture(scope="module", autouse=True)
def tiny_family() -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(GENERATORS, FAMILY, "tiny_rf_generator:TinyRF")
        yield


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bench(tmp_path_factory.mktemp("tg") / "bench", n=8, seed=1, split="train")


@pytest.fixture(scope="module")
def trained(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "full"
    train(TrainConfig(FAMILY, str(bench), str(out), steps=4, checkpoint_every=2, batch_size=2, progress=False))
    return out


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


# ---------------------------------------------------------------------------------------------
def test_dataset_batch(bench: Path) -> None:
    d = BenchData(bench)
    assert len(d) == 8 and (bench / ".cache").is_dir()
    b = d.batch([3, 0])
    assert b["video"].shape == (2, 32, 3, 32, 32) and b["video"].min() >= -1 and b["video"].max() <= 1
    assert b["wave"].shape == (2, 64000) and b["mel"].shape == (2, 256, 64) and b["mel"].abs().max() <= 4
    rows = list(csv.DictReader(open(bench / "manifest.csv", newline="")))
    assert b["caption"][0] == rows[3]["text"] and b["caption_video"][0] == rows[3]["video_text"]
    assert b["caption_audio"][1] == rows[0]["audio_text"]
    assert b["labels"][0].tolist() == [int(rows[3][f"cat{a}_ind"]) for a in range(5)]
    ev = json.loads((bench / "events.json").read_text())["clips"][3]
    assert b["events"][0] == ev["events"] and int(b["seed"][0]) == ev["seed"]
    # the decoded wav is exactly the written one, the frames are the decoded mp4
    assert torch.equal(b["wave"][0], torch.from_numpy(read_wav(bench / "sample_0003.wav")[0]))
    frames, fps = read_video(bench / "sample_0003.mp4")
    assert fps == 8 and torch.equal(b["video"][0], torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1)
    again = BenchData(bench)                         # from the cache
    assert np.array_equal(again.video, d.video) and np.array_equal(again.wave, d.wave)
    # every clip once per epoch, same draw for the same (step, seed)
    seen = np.concatenate([d.indices_for_step(s, 2, seed=5) for s in range(4)])
    assert sorted(seen.tolist()) == list(range(8))
    assert np.array_equal(d.indices_for_step(9, 3, 5), d.indices_for_step(9, 3, 5))


def test_bench_folder_scores_as_its_own_oracle(bench: Path, tmp_path: Path) -> None:
    assert main(["evaluate", str(bench), "--bench", str(bench / "manifest.csv"), "--metrics", "av_align",
                 "--out", str(tmp_path / "r.json"), "--quiet", "--cache-dir", str(tmp_path / "c")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["overall"]["av_align"]["n"] == 8 and not r["failures"]


def test_train_resume_equals_uninterrupted(bench: Path, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    r = train(TrainConfig(FAMILY, str(bench), str(out), steps=4, checkpoint_every=2, batch_size=2, progress=False),
              stop_after=3)
    assert r.get("stopped") and json.loads((out / "checkpoint.json").read_text())["step"] == 2
    # the resumed run goes through the CLI (with a progress bar)
    assert main(["train", FAMILY, "--data", str(bench), "--out", str(out), "--steps", "4", "--checkpoint-every", "2",
                 "--batch-size", "2"]) == 0
    info = json.loads((out / "checkpoint.json").read_text())
    assert info["step"] == 4 and info["latest"] == "step_000004" and info["family"] == FAMILY
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.json", "step_000004"]
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = _tensors(trained / "step_000004" / name), _tensors(out / "step_000004" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    ha = json.loads((trained / "step_000004" / "history.json").read_text())
    hb = json.loads((out / "step_000004" / "history.json").read_text())
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb] and len(ha) == 4
    assert {"loss", "loss_video", "loss_audio", "grad_norm"} <= set(ha[0])
    cfg = json.loads((out / "step_000004" / "config.json").read_text())
    assert cfg["model_config"]["width"] == 32 and cfg["stage"] == "joint_from_scratch" and cfg["train"]["seed"] == 0
    assert cfg["data"]["n"] == 8 and len(cfg["config_hash"]) == 16
    # a finished run asked for the same steps again does nothing; another stage is refused
    assert train(TrainConfig(FAMILY, str(bench), str(out), steps=4, progress=False))["step"] == 4
    with pytest.raises(ValueError, match="--init"):
        train(TrainConfig(FAMILY, str(bench), str(out), steps=6, stage="audio_only", progress=False))


def test_stage_and_init(bench: Path, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "stage2"
    train(TrainConfig(FAMILY, str(bench), str(out), steps=1, stage="audio_only", init=str(trained), batch_size=2,
                      progress=False))
    before, _ = load_checkpoint(trained, weights="ema")
    after, cfg = load_checkpoint(out, weights="raw")
    assert cfg["stage"] == "audio_only" and after.stage == "audio_only"
    assert torch.equal(before.v_in.weight, after.v_in.weight)         # frozen in this stage
    assert not torch.equal(before.a_in.weight, after.a_in.weight)


def test_generate_is_seeded_and_scored(bench: Path, trained: Path, tmp_path: Path) -> None:
    args = ["generate", FAMILY, "--checkpoint", str(trained), "--bench", str(bench / "manifest.csv"), "--steps", "2",
            "--cfg", "3", "--limit", "3", "--batch-size", "2", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "s1")]) == 0
    assert main(args + ["--out", str(tmp_path / "s2")]) == 0
    names = sorted(p.name for p in (tmp_path / "s1").iterdir())
    assert names == ["generation.json"] + [f"sample_{i:04d}.{e}" for i in range(3) for e in ("mp4", "wav")]
    for n in names[1:]:
        assert (tmp_path / "s1" / n).read_bytes() == (tmp_path / "s2" / n).read_bytes(), n
    rec = json.loads((tmp_path / "s1" / "generation.json").read_text())
    assert rec["generator"] == FAMILY and rec["nfe"] == 2 * 2 * 2 and rec["checkpoint"]["step"] == 4
    assert [s["row"] for s in rec["samples"]] == [0, 1, 2] and len(rec["requests"]) == 2
    assert rec["requests"][0]["num_steps"] == 2 and rec["requests"][0]["guidance"] == 3.0 and rec["wall_time_s"] > 0
    assert len(rec["config_hash"]) == 16 and rec["bench"]["rows"] == 3
    frames, fps = read_video(tmp_path / "s1" / "sample_0000.mp4")
    assert frames.shape == (32, 32, 32, 3) and fps == 8
    assert read_wav(tmp_path / "s1" / "sample_0000.wav")[0].shape == (64000,)
    # another seed, other clips
    assert main(args[:-1] + ["--seed", "1", "--out", str(tmp_path / "s3"), "--quiet"]) == 0
    assert (tmp_path / "s3" / "sample_0000.wav").read_bytes() != (tmp_path / "s1" / "sample_0000.wav").read_bytes()
    small = tmp_path / "bench3.csv"
    rows = list(csv.reader(open(bench / "manifest.csv", newline="")))
    with open(small, "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + [[c if not c.endswith((".mp4", ".wav")) else str(bench / c) for c in r]
                                             for r in rows[1:4]])
    assert main(["evaluate", str(tmp_path / "s1"), "--bench", str(small), "--metrics", "av_align",
                 "--out", str(tmp_path / "r.json"), "--quiet", "--cache-dir", str(tmp_path / "c")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["overall"]["av_align"]["n"] == 3


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int32)


def test_baselines_behind_the_interface(bench: Path, tmp_path: Path) -> None:
    m = str(bench / "manifest.csv")
    for fam, extra in [("oracle", []), ("shift-audio", ["--option", "seconds=0.25"]), ("swap-audio", []),
                       ("frozen-video", []), ("silent-audio", []), ("noise-video", ["--option", "sigma=0.2"])]:
        assert main(["generate", fam, "--bench", m, "--out", str(tmp_path / fam), "--limit", "4", "--quiet", *extra]) == 0
    real = [_wav(bench / f"sample_{i:04d}.wav") for i in range(5)]
    for i in range(4):
        name = f"sample_{i:04d}.wav"
        assert (tmp_path / "oracle" / name).read_bytes() == (bench / name).read_bytes()
        sh = _wav(tmp_path / "shift-audio" / name)
        assert np.array_equal(sh[4000:], real[i][:-4000]) and not sh[:4000].any()
        assert np.array_equal(_wav(tmp_path / "swap-audio" / name), real[i + 1])
        assert not _wav(tmp_path / "silent-audio" / name).any()
        fz, _ = read_video(tmp_path / "frozen-video" / f"sample_{i:04d}.mp4")
        orig, _ = read_video(bench / f"sample_{i:04d}.mp4")
        still = np.abs(fz.astype(float) - fz[:1]).mean()                           # one picture, up to codec noise
        assert still < 2.0 and still < np.abs(orig.astype(float) - orig[:1]).mean() / 3
        nz, _ = read_video(tmp_path / "noise-video" / f"sample_{i:04d}.mp4")
        assert np.abs(nz.astype(float) - orig).mean() > 10
    assert json.loads((tmp_path / "shift-audio" / "generation.json").read_text())["config"]["seconds"] == 0.25
    assert main(["evaluate", str(tmp_path / "oracle"), "--bench", m, "--metrics", "av_align", "--limit", "4",
                 "--out", str(tmp_path / "o.json"), "--quiet", "--cache-dir", str(tmp_path / "c")]) == 0


def test_ls_generators(capsys: pytest.CaptureFixture) -> None:
    assert main(["ls", "generators"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert {"oracle", "shift-audio", "swap-audio", "frozen-video", "noise-video", "silent-audio", FAMILY} <= set(lines)
    assert "baseline" in lines["oracle"] and "text" in lines[FAMILY] and "M" in lines[FAMILY].split()[2]


def _err(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("javisbench: error:") and "\n" not in err, err
    return err


def test_bad_input(bench: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "not a bench folder" in _err(capsys, ["train", FAMILY, "--data", str(empty), "--out", str(tmp_path / "o1"),
                                                 "--quiet"])
    nocap = tmp_path / "nocap"
    shutil.copytree(bench, nocap, ignore=shutil.ignore_patterns(".cache"))
    rows = list(csv.reader(open(nocap / "manifest.csv", newline="")))
    with open(nocap / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([[c for j, c in enumerate(r) if j != 0] for r in rows])     # drop 'text'
    assert "no 'text' column" in _err(capsys, ["train", FAMILY, "--data", str(nocap), "--out", str(tmp_path / "o2")])
    with open(nocap / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([rows[0], rows[1], ["", *rows[2][1:]]])
    assert "line 3: empty 'text'" in _err(capsys, ["generate", "oracle", "--bench", str(nocap), "--out", str(tmp_path / "o3")])
    assert "did you mean 'tiny'" in _err(capsys, ["train", FAMILY, "--preset", "tinny", "--data", str(bench),
                                                  "--out", str(tmp_path / "o4")])
    assert "did you mean 'oracle'" in _err(capsys, ["generate", "oracel", "--bench", str(bench), "--out", str(tmp_path / "o5")])
    assert "does not exist" in _err(capsys, ["generate", FAMILY, "--checkpoint", str(tmp_path / "none"), "--bench",
                                             str(bench), "--out", str(tmp_path / "o6")])
    assert "no checkpoint.json" in _err(capsys, ["generate", FAMILY, "--checkpoint", str(empty), "--bench", str(bench),
                                                 "--out", str(tmp_path / "o7")])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "checkpoint.json").write_text(json.dumps({"format": "diffusers", "latest": "x"}))
    assert "foreign checkpoint" in _err(capsys, ["generate", FAMILY, "--checkpoint", str(foreign), "--bench", str(bench),
                                                 "--out", str(tmp_path / "o8")])
    other = tmp_path / "other_family"
    shutil.copytree(trained, other)
    info = json.loads((other / "checkpoint.json").read_text())
    (other / "checkpoint.json").write_text(json.dumps({**info, "family": "oracle"}))
    assert "not 'tiny-rf-test'" in _err(capsys, ["generate", FAMILY, "--checkpoint", str(other), "--bench", str(bench),
                                                 "--out", str(tmp_path / "o9")])
    assert "--checkpoint" in _err(capsys, ["generate", FAMILY, "--bench", str(bench), "--out", str(tmp_path / "o10")])
    assert "not a checkpoint folder" in _err(capsys, ["train", FAMILY, "--data", str(bench), "--out", str(nocap)])
    assert "nothing to train" in _err(capsys, ["train", "oracle", "--data", str(bench), "--out", str(tmp_path / "o11")])
    # weights that do not fit the model: a one-line error naming the checkpoint
    bad = tmp_path / "badweights"
    shutil.copytree(trained, bad)
    from safetensors.torch import save_file

    save_file({"v_in.weight": torch.zeros(3, 3)}, str(bad / "step_000004" / "ema.safetensors"))
    assert "the model expects (32, 384)" in _err(capsys, ["generate", FAMILY, "--checkpoint", str(bad), "--bench", str(bench),
                                         "--out", str(tmp_path / "o12")])
    # nothing half-written: a failed run leaves no output and no temporary folder
    assert not any(p.name.startswith((".o", "o1", "o3", "o6", "o7", "o8", "o9", "o12")) for p in tmp_path.iterdir())
    assert read_bench(bench)[0].text


def test_failed_generation_leaves_nothing(bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reference_models import baseline_generators as baselines

    calls = {"n": 0}
    real = baselines.BaselineGenerator.generate

    def flaky(self, req):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("device lost")
        return real(self, req)

    monkeypatch.setattr(baselines.BaselineGenerator, "generate", flaky)
    from reference_models.generate import generate_bench

    with pytest.raises(RuntimeError):
        generate_bench("oracle", bench, tmp_path / "out", batch_size=2)
    assert list(tmp_path.iterdir()) == []
