"""The architecture's contracts: layering, feature keys from what an encoder reads, a set metric on
any encoder's features, self-sufficient results, and unchanged numbers on the golden bench."""
from __future__ import annotations

import ast
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from javisbench.config import EvalConfig
from javisbench.encoders import ENCODERS, encoder_class
from javisbench.evaluate import evaluate
from javisbench.protocol import FIXED, OFFICIAL, PROTOCOLS, Protocol

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
PACKAGES = ("javisbench", "metrics", "taxonomy", "reference_models")
STATISTICS = dict(seed=7, bootstrap=17, set_bootstrap=9, ci_level=0.8)


# ---------------------------------------------------------------------------------------------
# layering: read from the source, so function-level imports count too
# ---------------------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _import_graph() -> dict[str, set[str]]:
    files = {(_module_name(p)): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}

    def is_type_checking(node: ast.If) -> bool:
        t = node.test
        return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
               (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")

    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and is_type_checking(node):
                skip.update(id(n) for b in node.body for n in ast.walk(b))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                subs = [f"{origin}.{a.name}" for a in node.names]
                # `from pkg import submodule` imports the submodule (and runs pkg/__init__ first,
                # which is not an edge of this module); `from pkg import name` imports pkg
                targets = [t for t in subs if t in files] + ([origin] if any(t not in files for t in subs) else [])
            for t in targets:
                if t in files and t != mod:
                    graph[mod].add(t)
    return graph


def test_no_import_cycle_among_the_project_modules() -> None:
    graph = _import_graph()
    assert "javisbench.evaluate" in graph and graph["javisbench.evaluate"]        # the graph is read
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.remove(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == [], f"import cycles: {cycles}"


def test_pure_packages_import_nothing_from_javisbench() -> None:
    graph = _import_graph()
    bad = {m: sorted(t for t in targets if t.split(".")[0] == "javisbench")
           for m, targets in graph.items() if m.split(".")[0] in ("metrics", "taxonomy", "reference_models")}
    assert {m: t for m, t in bad.items() if t} == {}


def test_the_pipeline_stages_do_not_import_the_orchestrator() -> None:
    graph = _import_graph()
    for mod in ("javisbench.results", "javisbench.breakdown", "javisbench.reference", "javisbench.run",
                "javisbench.compare", "javisbench.report"):
        assert "javisbench.evaluate" not in graph[mod], mod


# ---------------------------------------------------------------------------------------------
# feature keys: only the protocol fields an encoder reads
# ---------------------------------------------------------------------------------------------
def _protocol_reads(path: Path, fields: set[str], cls: type) -> set[str]:
    """Protocol fields an encoder class reads: ``<x>.field`` attributes and ``"field"`` string
    arguments in its body, its bases' bodies in the same module and the module-level functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {c.__name__ for c in cls.__mro__}
    scopes = [n for n in tree.body if not isinstance(n, ast.ClassDef) or n.name in names]
    got: set[str] = set()
    for node in (n for scope in scopes for n in ast.walk(scope)):
        if isinstance(node, ast.Attribute) and node.attr in fields:
            got.add(node.attr)
        elif isinstance(node, ast.Call):
            got.update(a.value for a in node.args if isinstance(a, ast.Constant) and a.value in fields)
    return got


@pytest.mark.parametrize("enc_id", sorted(ENCODERS))
def test_encoders_declare_every_protocol_field_they_read(enc_id: str) -> None:
    cls = encoder_class(enc_id)
    fields = {f.name for f in dataclasses.fields(Protocol)} - {"name", "version", "description"}
    module = Path(sys.modules[cls.__module__].__file__)
    reads = _protocol_reads(module, fields | {"windowed"}, cls)
    if "windowed" in reads:                   # the property reads these two
        reads = (reads - {"windowed"}) | {"fvd_mode", "mmdiff_windows"}
    declared = set(cls.protocol_fields)
    # the declared set covers what the module reads (a module may hold helpers of other encoders
    # only through explicit arguments, never through the protocol)
    assert reads <= declared | {"decode_color_matrix", "decode_apply_rotation"}, sorted(reads - declared)
    assert not set(cls.protocol_fields) & set(STATISTICS), "statistics settings must not enter feature keys"


@pytest.mark.parametrize("enc_id", sorted(ENCODERS))
def test_statistics_settings_never_change_a_feature_key(enc_id: str) -> None:
    cls = encoder_class(enc_id)
    for p in PROTOCOLS.values():
        a = cls(p).feature_fingerprint()
        b = cls(p.replace(**STATISTICS, fad_scale=3.0)).feature_fingerprint()
        assert a == b


def test_a_new_protocol_field_for_one_encoder_leaves_the_others_valid() -> None:
    Extended = dataclasses.make_dataclass("Extended", [("new_view_frames", int, 5)], bases=(Protocol,), frozen=True)
    base = dataclasses.asdict(OFFICIAL)
    ext = Extended(**base)
    ext2 = Extended(**base, new_view_frames=9)
    for enc_id in ENCODERS:
        cls = encoder_class(enc_id)
        assert cls(OFFICIAL).feature_fingerprint() == cls(ext).feature_fingerprint() == cls(ext2).feature_fingerprint()
    # the encoder that reads the new field gets new keys when it changes, and only then
    reader = type("Reader", (encoder_class("avalign"),), {"protocol_fields": ("av_align_flow_threshold", "new_view_frames")})
    assert reader(ext).feature_fingerprint() != reader(ext2).feature_fingerprint()
    assert reader(ext).feature_fingerprint() == reader(Extended(**{**base, "seed": 3})).feature_fingerprint()


def test_own_fields_do_change_the_key() -> None:
    i3d = encoder_class("i3d")
    assert i3d(OFFICIAL).feature_fingerprint() != i3d(OFFICIAL.replace(fvd_frames=24)).feature_fingerprint()
    assert i3d(OFFICIAL).feature_fingerprint() == i3d(OFFICIAL.replace(clip_frames=8)).feature_fingerprint()
    # official and fixed decode differently: every encoder's key differs
    for enc_id in ENCODERS:
        cls = encoder_class(enc_id)
        assert cls(OFFICIAL).feature_fingerprint() != cls(FIXED).feature_fingerprint()


def test_metrics_read_declared_outputs() -> None:
    from javisbench.suite import METRICS

    for m in METRICS.values():
        assert m.features, m.key
        for enc, name in m.features:
            assert enc in m.encoders, (m.key, enc)
            assert name in encoder_class(enc).outputs, (m.key, enc, name)
        # the weight files of a metric are its encoders'
        assert m.weights == tuple(wf.name for e in m.encoders for wf in encoder_class(e).weight_files)


# ---------------------------------------------------------------------------------------------
# end to end on the golden clips with injected fake encoders
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from snapshot.golden_bench import FAKE, LABELS, REAL, copy_clips, write_bench

    root = tmp_path_factory.mktemp("arch")
    return {"root": root, "manifest": write_bench(root / "bench.csv", FAKE, LABELS),
            "samples": copy_clips(root / "samples", FAKE), "real": copy_clips(root / "real", REAL)}


def _fakes() -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from fakes import FakeAudio, FakeI3D

    return {"i3d": FakeI3D, "audioclip": FakeAudio}


def test_changing_the_seed_recomputes_no_feature(bench: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def run(seed: int) -> dict:
        cfg = EvalConfig(samples_dir=bench["samples"], bench=bench["manifest"], out=tmp_path / f"r{seed}.json",
                         metrics=["fvd", "kvd", "fad", "av_align"], cache_dir=tmp_path / "cache",
                         weights_dir=tmp_path / "w", reference_dir=bench["real"], seed=seed, batch_size=2)
        return evaluate(cfg, encoders=_fakes())

    first = run(0)
    capsys.readouterr()
    second = run(1)
    err = capsys.readouterr().err
    assert "0 of 4 clips need features" in err
    store = second["timing"]["feature_store"]
    assert store["misses"] == 0 and store["writes"] == 0 and store["hits"] == 3 * 4 + 2 * 4   # fake + real clips
    assert second["per_sample"] == first["per_sample"]
    for k in ("fvd", "kvd", "fad"):
        assert second["overall"][k]["value"] == first["overall"][k]["value"]
    assert second["protocol"]["values"]["seed"] == 1 and second["seed"] == 1
    assert second["overall"]["av_align"]["ci_low"] != first["overall"]["av_align"]["ci_low"]   # new resamples


def test_results_carry_labels_and_compare_and_crosstab_work_without_the_manifest(
        bench: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from javisbench.cli import main
    from javisbench.results import labels_from_results

    manifest = tmp_path / "bench.csv"
    shutil.copy(bench["manifest"], manifest)
    outs = []
    for name, folder in (("a", bench["samples"]), ("b", bench["real"])):
        out = tmp_path / f"{name}.json"
        assert main(["evaluate", str(folder), "--bench", str(manifest), "--out", str(out), "--quiet",
                     "--metrics", "av_align", "av_lag", "--cache-dir", str(tmp_path / "c"),
                     "--weights-dir", str(tmp_path / "w"), "--allow-failures"]) == 0   # a real clip is too short for av_lag
        outs.append(out)
    manifest.unlink()
    r = json.loads(outs[0].read_text())
    labels = labels_from_results(r)
    assert labels.n_rows == 4 and labels.row(1)["temporal"] == ("sequential_events",)
    capsys.readouterr()
    assert main(["report", str(outs[0]), "--crosstab", "sound_type", "spatial"]) == 0
    assert "[av_align: sound_type x spatial]" in capsys.readouterr().out
    assert main(["compare", str(outs[0]), str(outs[1]), "--out", str(tmp_path / "c.json")]) == 0
    c = json.loads((tmp_path / "c.json").read_text())
    assert not c["notes"]
    cells = [m for asp in c["per_category"].values() for row in asp.values() for k, m in row.items() if k == "av_align"]
    assert cells and {m["method"] for m in cells if m["n_pairs"]} == {"paired-bootstrap"}


# ---------------------------------------------------------------------------------------------
# the proof: a set metric on another encoder (FD on CLAP audio embeddings) is one table entry
# ---------------------------------------------------------------------------------------------
def test_fd_on_clap_embeddings_with_reference_build_and_reference(bench: dict, tmp_path: Path) -> None:
    from javisbench.cli import main
    from javisbench.golden import write_golden_weights
    from javisbench.reference import read_reference, recorded_protocol

    weights = write_golden_weights(GOLDEN, tmp_path / "weights", ["clap"])
    common = ["--weights-dir", str(weights), "--cache-dir", str(tmp_path / "cache")]
    ref = tmp_path / "ref.npz"
    assert main(["reference", "build", str(bench["real"]), "--bench", str(bench["manifest"]), "--metrics", "fd_clap",
                 "--out", str(ref), *common]) == 0
    feats = read_reference(ref, OFFICIAL)
    assert list(feats) == [("clap", "audio_embeds")] and feats[("clap", "audio_embeds")].shape == (4, 512)
    meta = recorded_protocol(ref)
    assert meta["features"]["clap:audio_embeds"]["clap_pad"] == "zero"
    assert "seed" not in meta["features"]["clap:audio_embeds"]
    # refused under a protocol whose CLAP view differs, accepted under another seed
    with pytest.raises(ValueError, match="clap_pad"):
        read_reference(ref, FIXED)
    read_reference(ref, OFFICIAL.replace(seed=5))

    out_ref, out_dir, out_self = (tmp_path / f"{n}.json" for n in ("ref", "dir", "self"))
    assert main(["evaluate", str(bench["samples"]), "--bench", str(bench["manifest"]), "--out", str(out_ref),
                 "--metrics", "fd_clap", "--reference", str(ref), "--quiet", *common]) == 0
    assert main(["evaluate", str(bench["samples"]), "--bench", str(bench["manifest"]), "--out", str(out_dir),
                 "--metrics", "fd_clap", "--reference-dir", str(bench["real"]), "--quiet", *common]) == 0
    assert main(["evaluate", str(bench["real"]), "--bench", str(bench["manifest"]), "--out", str(out_self),
                 "--metrics", "fd_clap", "--reference", str(ref), "--quiet", *common]) == 0
    r_ref, r_dir, r_self = (json.loads(p.read_text()) for p in (out_ref, out_dir, out_self))
    v = r_ref["overall"]["fd_clap"]["value"]
    assert v is not None and v > 0 and r_ref["overall"]["fd_clap"]["n"] == 4
    assert r_dir["overall"]["fd_clap"]["value"] == v               # the cache holds what --reference-dir computes
    assert abs(r_self["overall"]["fd_clap"]["value"]) < 1e-3 * v    # real against itself: float32 SVD noise
    assert r_ref["metrics"]["fd_clap"]["official"] is False
    assert r_ref["reference"]["rows"] == {"clap:audio_embeds": 4}


# ---------------------------------------------------------------------------------------------
# the golden bench: the numbers the restructuring must leave unchanged
# ---------------------------------------------------------------------------------------------
def test_golden_bench_results_equal_the_snapshot(tmp_path: Path) -> None:
    from snapshot.golden_bench import comparable, differences, run_golden_bench

    got = comparable(run_golden_bench(tmp_path))
    want = json.loads((GOLDEN / "e2e_snapshot.json").read_text())
    assert differences(want, got) == []
