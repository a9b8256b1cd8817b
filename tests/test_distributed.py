"""torchrun: two processes (gloo, CPU) shard the samples into one store and rank 0 writes results
equal to a single process's; a rank killed mid-run leaves its features and a re-run resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch.distributed", reason="needs torch.distributed (pip install 'javisbench[torch]')")

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FAKE = ["clip_00", "clip_01", "clip_02", "clip_03", "edge_short2s"]
REAL = ["edge_short2s", "edge_5p3s_30fps", "edge_44k_stereo", "clip_02", "clip_01"]
LABELS = [("0", "0", "3", "0", "0"), ("1", "0", "0,3", "1", "1"), ("0", "1", "4", "2", "0,2"), ("1", "1", "3", "1", "1"),
          ("0", "2", "1", "0", "2")]
#: the CLI with the tests' fake I3D/AudioCLIP registered (no weights), run as each rank's program
PROGRAM = ("import sys, importlib.util; spec = importlib.util.spec_from_file_location('fakes', {fakes!r}); "
           "m = importlib.util.module_from_spec(spec); sys.modules['fakes'] = m; spec.loader.exec_module(m); "
           "from javisbench import encoders as r; "
           "r.ENCODERS['i3d'] = 'fakes:FakeI3D'; r.ENCODERS['audioclip'] = 'fakes:FakeAudio'; "
           "from javisbench.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from snapshot.golden_bench import copy_clips, write_bench

    root = tmp_path_factory.mktemp("dist")
    program = root / "rank.py"
    program.write_text(PROGRAM.format(fakes=str(TESTS / "fakes.py")))
    return {"root": root, "manifest": write_bench(root / "bench.csv", FAKE, LABELS),
            "samples": copy_clips(root / "samples", FAKE), "real": copy_clips(root / "real", REAL), "program": program}


def _args(bench: dict, out: Path, cache: Path) -> list[str]:
    return ["evaluate", str(bench["samples"]), "--bench", str(bench["manifest"]), "--out", str(out),
            "--cache-dir", str(cache), "--weights-dir", str(out.parent / "w"), "--reference-dir", str(bench["real"]),
            "--metrics", "fvd", "kvd", "fad", "av_align", "av_lag", "--batch-size", "1", "--workers", "1", "--quiet",
            "--allow-failures"]


def _single(bench: dict, out: Path, cache: Path, env: dict | None = None) -> dict:
    r = subprocess.run([sys.executable, str(bench["program"]), *_args(bench, out, cache)], cwd=REPO,
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(out.read_text())


def _torchrun(bench: dict, out: Path, cache: Path, env: dict | None = None, **kw: object) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(bench["program"]), *_args(bench, out, cache)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kw)  # type: ignore[call-overload]


def _numbers(r: dict) -> dict:
    return {k: r[k] for k in ("overall", "per_category", "per_sample", "failures", "skipped", "sample_ids", "labels")}


def test_two_ranks_equal_one_process(bench: dict, tmp_path: Path) -> None:
    single = _single(bench, tmp_path / "single.json", tmp_path / "cache-single")
    proc = _torchrun(bench, tmp_path / "dist.json", tmp_path / "cache-dist")
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    dist = json.loads((tmp_path / "dist.json").read_text())
    assert _numbers(dist) == _numbers(single)
    assert dist["overall"]["fvd"]["value"] is not None and dist["overall"]["av_align"]["n"] == len(FAKE)
    # both ranks filled the store: every distinct fake and real clip has its features, once
    for enc in ("i3d", "audioclip", "avalign"):
        stored = [p for p in (tmp_path / "cache-dist" / "features" / enc).rglob("*.npz") if not p.name.startswith(".")]
        assert len(stored) == (len(set(FAKE) | set(REAL)) if enc != "avalign" else len(FAKE)), enc


def test_a_killed_rank_leaves_its_features_and_the_rerun_resumes(bench: dict, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = dict(os.environ, JAVISBENCH_FAKE_ENCODE_DELAY="0.4")
    proc = _torchrun(bench, tmp_path / "killed.json", cache, env=env)
    feat_dir = cache / "features" / "i3d"
    deadline = time.time() + 300
    while time.time() < deadline and len([p for p in feat_dir.rglob("*.npz") if not p.name.startswith(".")]) < 2:
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-f", "-P", str(proc.pid), "rank.py"], capture_output=True, text=True).stdout.split()
    assert workers, "no rank process found"
    os.kill(int(workers[-1]), signal.SIGKILL)               # one rank dies; torchrun stops the other
    proc.communicate(timeout=300)
    assert proc.returncode != 0 and not (tmp_path / "killed.json").exists()
    kept = len([p for p in feat_dir.rglob("*.npz") if not p.name.startswith(".")])
    assert kept >= 2
    resumed = _single(bench, tmp_path / "resumed.json", cache)
    assert resumed["timing"]["feature_store"]["hits"] >= kept
    fresh = _single(bench, tmp_path / "fresh.json", tmp_path / "cache-fresh")
    assert _numbers(resumed) == _numbers(fresh)
