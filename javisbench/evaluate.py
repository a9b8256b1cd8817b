"""The evaluation pipeline: manifest -> decode once -> encoders (batched) -> store -> metrics -> results.

``evaluate(config)`` reads as its five steps::

    plan      = plan_run(config)              # manifest, files, metrics, encoders, skips (no model loaded)
    features  = extract(plan)                 # decode each sample once, fill the feature store
    reference = load_reference(plan)          # real-set features for FVD/KVD/FAD
    scores    = score(plan, features, ref)    # pure numerics on stored features
    results   = assemble(plan, scores)        # overall + per category + failures + provenance
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from javisbench.config import EvalConfig
from javisbench.encoders import encoder_class
from javisbench.encoders.base import Encoder, SampleError
from javisbench.features import FeatureStore, feature_key
from javisbench.manifest import Manifest, ManifestRow, SampleFiles, load_manifest, resolve_samples
from javisbench.protocol import Protocol, get_protocol
from javisbench.suite import Feats, Metric, select_metrics
from javisbench.weights import BadWeightsError, MissingWeightsError, check, resolve_weights_dir


# ---------------------------------------------------------------------------------------------
# plan
# ---------------------------------------------------------------------------------------------
@dataclass
class Plan:
    config: EvalConfig
    protocol: Protocol
    manifest: Manifest
    samples: list[SampleFiles]
    metrics: list[Metric]
    encoders: dict[str, Encoder]                   # usable encoders (weights present)
    skipped: dict[str, str]                        # metric -> reason
    weights_dir: Path
    store: FeatureStore
    labels: Any = None                             # taxonomy.Labels or None
    taxonomy: Any = None
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    unofficial_weights: dict[str, str] = field(default_factory=dict)   # encoder:file -> why
    timing: dict[str, Any] = field(default_factory=dict)
    bench_def: Any = None                          # javisbench.benches.FolderBench for a folder bench
    reference_info: dict[str, Any] | None = None   # what the set metrics were compared against

    def fail(self, sample_id: str, stage: str, message: str) -> None:
        self.failures.setdefault(sample_id, {})[stage] = message

    def warn(self, sample_id: str, message: str) -> None:
        lst = self.warnings.setdefault(sample_id, [])
        if message not in lst:
            lst.append(message)


def _log(cfg: EvalConfig, msg: str) -> None:
    if cfg.progress:
        print(msg, file=sys.stderr, flush=True)


def load_labels(manifest: Manifest, taxonomy_ref: str | Path | None) -> tuple[Any, Any]:
    """Parse the manifest's ``cat{a}_ind`` columns against the taxonomy (fails fast with the row)."""
    if not manifest.has_labels:
        return None, None
    from taxonomy import load_taxonomy, parse_labels

    tax = load_taxonomy(taxonomy_ref or "javisbench")
    ids = [f"{manifest.path.name} line {r.line} ({r.sample_id})" for r in manifest.rows]
    return tax, parse_labels(manifest.raw_rows(), tax, row_ids=ids)


def select_rows(manifest: Manifest, tax: Any, labels: Any, where: str | None, subset: int | None,
                subset_seed: int) -> tuple[Manifest, Any]:
    """Keep the rows matching ``--where`` and/or a seeded ``--subset`` of them.

    Rows keep their manifest index, so ``sample_{i:04d}`` and the pairing with reference rows
    are unchanged; only which rows are scored changes.
    """
    import dataclasses

    pos = np.arange(len(manifest))
    if where:
        if labels is None:
            raise ValueError(f"--where {where!r} needs category labels, but {manifest.path} has no cat{{a}}_ind columns")
        from taxonomy import apply_where, parse_where

        pos = apply_where(labels, parse_where(where, tax))
        if pos.size == 0:
            raise ValueError(f"--where {where!r} keeps no row of {manifest.path}")
    if subset is not None:
        from taxonomy import mini_split

        if subset > pos.size:
            raise ValueError(f"--subset {subset} is larger than the {pos.size} selected rows")
        pos = pos[mini_split(pos.size, subset, subset_seed)]
    if pos.size == len(manifest):
        return manifest, labels
    rows = tuple(manifest.rows[i] for i in pos)
    return dataclasses.replace(manifest, rows=rows), (None if labels is None else labels.subset(pos))


def load_bench(bench: str | Path, samples_dir: str | Path | None, limit: int | None = None) -> tuple[Manifest, Any]:
    """``(manifest, folder bench definition or None)`` for ``--bench``: a JavisBench-style CSV (a path,
    or ``javisbench`` / ``javisbench-mini`` from the data folder), or a folder bench (a built-in name
    such as ``landscape`` or a YAML definition) whose rows are the video files of ``samples_dir``."""
    from javisbench.benches import find_bench, folder_manifest, resolve_csv_bench

    named = resolve_csv_bench(bench)
    if named is not None:
        return load_manifest(named, limit=limit), None
    bench_def = find_bench(bench)
    if bench_def is not None:
        return folder_manifest(bench_def, samples_dir, limit), bench_def
    return load_manifest(bench, limit=limit), None


def check_device(device: str) -> None:
    """Fail before any work when the requested device does not exist."""
    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise ValueError(f"--device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is visible to torch {torch.__version__}; use --device cpu")
    idx = int(device.split(":", 1)[1]) if ":" in device else 0
    if idx >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")


def plan_run(cfg: EvalConfig) -> Plan:
    check_device(cfg.device)
    if cfg.protocol:
        get_protocol(cfg.protocol)        # a misspelt name fails before any file is read
    manifest, bench_def = load_bench(cfg.bench, cfg.samples_dir, cfg.limit)
    protocol = get_protocol(cfg.protocol or (bench_def.protocol if bench_def else "javisbench-official"))
    if cfg.seed is not None:
        protocol = protocol.replace(seed=int(cfg.seed))
    tax, labels = load_labels(manifest, cfg.taxonomy)
    manifest, labels = select_rows(manifest, tax, labels, cfg.where, cfg.subset, cfg.subset_seed)
    samples = resolve_samples(manifest, None if bench_def else cfg.samples_dir)
    metrics = select_metrics(cfg.metrics or (list(bench_def.metrics) if bench_def else None))
    if bench_def is not None:
        texty = [m.key for m in metrics if m.needs_text]
        if texty:
            raise ValueError(f"bench {bench_def.name} has no prompts, so {', '.join(texty)} cannot be computed; "
                             f"its default metrics are {', '.join(bench_def.metrics)}")
    weights_dir = resolve_weights_dir(cfg.weights_dir)
    store = FeatureStore(cfg.cache_dir)
    plan = Plan(cfg, protocol, manifest, samples, metrics, {}, {}, weights_dir, store, labels, tax, bench_def=bench_def)
    for s in samples:
        if s.problem:
            plan.fail(s.sample_id, "input", s.problem)

    needed = sorted({e for m in metrics for e in m.encoders})
    unusable: dict[str, str] = {}
    for enc_id in needed:
        try:
            cls = encoder_class(enc_id)
        except (KeyError, ImportError) as e:
            unusable[enc_id] = f"encoder {enc_id!r} unavailable: {e}"
            continue
        enc = cls(protocol, device=cfg.device, batch_size=cfg.batch_size)
        reasons = []
        for wf in cls.weight_files:
            st = check(enc_id, wf, weights_dir, hash_it=True)
            if st.status in ("missing", "incomplete"):
                reasons.append(str(MissingWeightsError(enc_id, wf, st.path, st.detail)))
            else:
                enc.weights_sha256[wf.name] = st.sha256 or ""
                if st.status == "bad-hash":
                    plan.unofficial_weights[f"{enc_id}:{wf.name}"] = (
                        f"{st.path} has sha256 {st.sha256}, not the official file's ({wf.sha256}): "
                        "numbers are not comparable with published ones")
        if reasons:
            unusable[enc_id] = "; ".join(reasons)
        else:
            plan.encoders[enc_id] = enc
    for m in metrics:
        bad = [unusable[e] for e in m.encoders if e in unusable]
        if bad:
            plan.skipped[m.key] = "skipped: " + "; ".join(bad)
    return plan


# ---------------------------------------------------------------------------------------------
# extract: decode once, prepare for every encoder, encode in batches, store
# ---------------------------------------------------------------------------------------------
@dataclass
class _Work:
    row: ManifestRow
    files: SampleFiles
    content_hash: str
    missing: list[str]             # encoder ids whose features are not stored yet


def _keys_for(plan: Plan, row: ManifestRow, content_hash: str) -> dict[str, str]:
    out = {}
    for enc_id, enc in plan.encoders.items():
        prompts = (row.text, row.audio_text) if enc.uses_text else ()
        out[enc_id] = feature_key(content_hash, enc.fingerprint(), plan.protocol.fingerprint, prompts)
    return out


def extract(plan: Plan) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Features per sample id and encoder; fills the store with whatever is missing."""
    from javisbench.decode import content_hash

    cfg = plan.config
    t0 = time.perf_counter()
    feats: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    work: list[_Work] = []
    keys: dict[str, dict[str, str]] = {}
    for row, files in zip(plan.manifest.rows, plan.samples):
        if files.problem:
            continue
        try:
            h = content_hash(files.video, files.audio)
        except OSError as e:
            plan.fail(row.sample_id, "input", f"cannot read {files.video}: {e}")
            continue
        keys[row.sample_id] = k = _keys_for(plan, row, h)
        have: dict[str, dict[str, np.ndarray]] = {}
        missing = []
        for enc_id in plan.encoders:
            got = plan.store.get(enc_id, k[enc_id])
            if got is None:
                missing.append(enc_id)
            else:
                have[enc_id] = got
        feats[row.sample_id] = have
        if missing:
            work.append(_Work(row, files, h, missing))
    plan.timing["hash_and_lookup_s"] = time.perf_counter() - t0
    if not work:
        plan.timing["decode_s"] = 0.0
        plan.timing["encode_s"] = {}
        return feats

    needed = sorted({e for w in work for e in w.missing})
    loaded: list[str] = []
    for enc_id in needed:
        enc = plan.encoders[enc_id]
        if enc.loaded:          # shared with an earlier plan of this run (e.g. the reference pass)
            loaded.append(enc_id)
            continue
        t = time.perf_counter()
        try:
            enc.load(plan.weights_dir)
            enc.loaded = True
        except (MissingWeightsError, BadWeightsError) as e:
            for m in plan.metrics:
                if enc_id in m.encoders:
                    plan.skipped[m.key] = f"skipped: {e}"
            continue
        loaded.append(enc_id)
        plan.timing.setdefault("load_s", {})[enc_id] = time.perf_counter() - t
    _log(cfg, f"[javisbench] {len(work)} of {len(plan.manifest)} samples need features from {', '.join(loaded) or 'nothing'}")

    queues: dict[str, list[tuple[str, str, Any]]] = {e: [] for e in loaded}
    encode_s: dict[str, float] = {e: 0.0 for e in loaded}
    prepare_s = {"value": 0.0}

    def flush(enc_id: str) -> None:
        q = queues[enc_id]
        if not q:
            return
        enc = plan.encoders[enc_id]
        t = time.perf_counter()
        results: list[tuple[tuple[str, str, Any], dict[str, np.ndarray]]] = []
        try:
            outs = enc.encode([x for _, _, x in q])
            if len(outs) != len(q):
                raise RuntimeError(f"{enc_id} returned {len(outs)} results for a batch of {len(q)}")
            results = list(zip(q, outs))
        except Exception:  # noqa: BLE001 - find the sample that breaks the batch, record it
            for item in q:
                try:
                    results.append((item, enc.encode([item[2]])[0]))
                except Exception as e1:  # noqa: BLE001
                    plan.fail(item[0], f"encode:{enc_id}", f"{type(e1).__name__}: {e1}")
        for (sid, key, _x), out in results:
            try:
                plan.store.put(enc_id, key, out)
                feats[sid][enc_id] = out
            except ValueError as e2:
                plan.fail(sid, f"encode:{enc_id}", str(e2))
        encode_s[enc_id] += time.perf_counter() - t
        q.clear()

    def decode_and_prepare(w: _Work) -> tuple[_Work, dict[str, Any], dict[str, str], list[str]]:
        from javisbench.decode import DecodeError, decode_sample

        prepared: dict[str, Any] = {}
        errors: dict[str, str] = {}
        notes: list[str] = []
        try:
            clip = decode_sample(w.files.video, w.files.audio, sample_id=w.row.sample_id,
                                 color_matrix=plan.protocol.decode_color_matrix,
                                 apply_rotation=plan.protocol.decode_apply_rotation)
        except DecodeError as e:
            return w, prepared, {"decode": str(e)}, notes
        except Exception as e:  # noqa: BLE001 - any reader crash is this sample's failure
            return w, prepared, {"decode": f"{type(e).__name__}: {e} ({w.files.video})"}, notes
        notes.extend(clip.warnings)
        if clip.audio.size and float(np.max(np.abs(clip.audio))) == 0.0:
            notes.append("silent audio (every sample is 0): scored as is, audio metrics will be low")
        if clip.sr != plan.protocol.audio_sr or clip.n_channels != 1:
            notes.append(f"audio is {clip.sr} Hz with {clip.n_channels} channel(s); each metric resamples/mixes it "
                         f"as the protocol prescribes (JavisBench samples are {plan.protocol.audio_sr} Hz)")
        t = time.perf_counter()
        for enc_id in w.missing:
            if enc_id not in queues:
                continue
            try:
                prepared[enc_id] = plan.encoders[enc_id].prepare(clip, w.row.text, w.row.audio_text)
            except SampleError as e:
                errors[f"prepare:{enc_id}"] = str(e)
            except Exception as e:  # noqa: BLE001
                errors[f"prepare:{enc_id}"] = f"{type(e).__name__}: {e}"
        prepare_s["value"] += time.perf_counter() - t
        return w, prepared, errors, notes

    t_dec = time.perf_counter()
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        for w, prepared, errors, notes in _ordered_prefetch(pool, decode_and_prepare, work, cfg.workers * 2):
            for stage, msg in errors.items():
                plan.fail(w.row.sample_id, stage, msg)
            for n in notes:
                plan.warn(w.row.sample_id, n)
            for enc_id, x in prepared.items():
                queues[enc_id].append((w.row.sample_id, keys[w.row.sample_id][enc_id], x))
                if len(queues[enc_id]) >= plan.encoders[enc_id].batch_size:
                    flush(enc_id)
            done += 1
            if cfg.progress and (done % 25 == 0 or done == len(work)):
                _log(cfg, f"[javisbench] decoded {done}/{len(work)}")
    for enc_id in loaded:
        flush(enc_id)
    total = time.perf_counter() - t_dec
    plan.timing["decode_prepare_s"] = total - sum(encode_s.values())
    plan.timing["encode_s"] = encode_s
    return feats


def _ordered_prefetch(pool: ThreadPoolExecutor, fn: Any, items: list[Any], depth: int) -> Iterator[Any]:
    """``map`` with a bounded number of items in flight (decoded clips can be large)."""
    pending = []
    it = iter(items)
    for x in it:
        pending.append(pool.submit(fn, x))
        if len(pending) >= max(1, depth):
            break
    while pending:
        fut = pending.pop(0)
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))
        yield fut.result()


# ---------------------------------------------------------------------------------------------
# reference features for set metrics
# ---------------------------------------------------------------------------------------------
REFERENCE_FEATURES = {"video": ("i3d", "logits"), "audio": ("audioclip", "embedding")}


def load_reference_file(path: str | Path, protocol: Protocol | None = None) -> dict[tuple[str, str], np.ndarray]:
    """Read a ground-truth feature cache: the official ``{'video': [N,400], 'audio': [N,1024]}``
    ``torch.save`` file (parsed with ``weights_only=True``: tensors and plain containers only,
    never arbitrary objects; CUDA tensors land on the CPU) or an ``.npz`` with the same keys;
    refused under ``protocol`` when it records other feature-relevant values."""
    from javisbench.reference import read_reference

    return read_reference(path, protocol)


def reference_features(plan: Plan) -> tuple[dict[tuple[str, str], np.ndarray], str | None]:
    """Real-set features for the set metrics, and why there are none (or None).

    ``--reference`` reads a cache; ``--reference-dir`` computes one from real clips; otherwise,
    under javisbench-official, a released ``<bench>-vanilla-max4s.pt`` found where the original
    layout puts it (beside the CSV or in ``cache/fvd_fad/``) is used.  What was used is recorded
    in ``plan.reference_info`` (path and sha256, or the folder), which the results carry.
    """
    from javisbench.reference import compute_reference
    from javisbench.weights import sha256_of

    cfg = plan.config
    path = Path(cfg.reference) if cfg.reference else None
    if path is None and not cfg.reference_dir and plan.bench_def is None:
        from javisbench.benches import official_reference

        found = official_reference(plan.manifest.path)
        if found is not None and plan.protocol.name != "javisbench-official":
            return {}, (f"no reference statistics: {found} (the released cache) holds javisbench-official features; "
                        f"under {plan.protocol.name} build one with `javisbench reference build REAL_DIR --protocol "
                        f"{plan.protocol.name}` and pass it with --reference")
        path = found
        if path is not None:
            _log(cfg, f"[javisbench] reference statistics: {path} (found beside the bench)")
    if path is not None:
        ref = load_reference_file(path, plan.protocol)
        plan.reference_info = {"path": str(path.resolve()), "sha256": sha256_of(path),
                               "rows": {f"{e}:{n}": int(v.shape[0]) for (e, n), v in ref.items()},
                               "found_beside_bench": cfg.reference is None}
        return ref, None
    if cfg.reference_dir:
        ref = compute_reference(plan)
        plan.reference_info = {"computed_from": str(Path(cfg.reference_dir).resolve()),
                               "rows": {f"{e}:{n}": int(v.shape[0]) for (e, n), v in ref.items()}}
        return ref, None
    return {}, ("no reference statistics: pass --reference <bench>-vanilla-max4s.pt (the released ground-truth "
                "cache) or --reference-dir REAL_CLIPS (see `javisbench reference build`)")


# ---------------------------------------------------------------------------------------------
# score
# ---------------------------------------------------------------------------------------------
@dataclass
class Scores:
    per_sample: dict[str, np.ndarray]               # metric -> (N,) values, NaN where failed
    set_inputs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]   # metric -> (row idx, fake, real)
    # set metrics whose fake and real rows do not correspond (every window of every clip, as
    # MM-Diffusion's evaluator collects them): row idx gives each fake row's sample, real is apart
    unpaired: set[str] = field(default_factory=set)


def select_windows(n_fake: int, n_real: int, eval_num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows MM-Diffusion's evaluator keeps: each side's windows shuffled (here seeded, one
    stream per side) and cut to the first ``eval_num`` (0: all).  Returns (fake rows, real rows)."""
    pf = np.random.default_rng([int(seed), 0]).permutation(int(n_fake))
    pr = np.random.default_rng([int(seed), 1]).permutation(int(n_real))
    if eval_num:
        pf, pr = pf[:int(eval_num)], pr[:int(eval_num)]
    return pf, pr


def _windowed_set_input(plan: "Plan", feats: dict[str, dict[str, dict[str, np.ndarray]]], metric: Metric,
                        real: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    enc_id, name = metric.set_feature  # type: ignore[misc]
    idx: list[int] = []
    blocks: list[np.ndarray] = []
    for i, r in enumerate(plan.manifest.rows):
        f = feats.get(r.sample_id, {}).get(enc_id)
        if f is None:
            continue
        a = np.asarray(f[name], np.float32)
        a = a.reshape(1, -1) if a.ndim == 1 else a
        idx.extend([i] * a.shape[0])
        blocks.append(a)
    real = np.asarray(real, np.float32)
    real = real[np.all(np.isfinite(real), axis=1)]
    if not blocks or real.shape[0] < 2:
        plan.skipped[metric.key] = (f"skipped: {len(blocks)} clip(s) with windows and {real.shape[0]} reference "
                                    "window(s) (need windows on both sides)")
        return None
    fake = np.concatenate(blocks)
    if fake.shape[0] < 2:
        plan.skipped[metric.key] = "skipped: only 1 window to score (need 2)"
        return None
    pf, pr = select_windows(fake.shape[0], real.shape[0], plan.protocol.mmdiff_eval_num, plan.protocol.seed)
    return np.asarray(idx, np.int64)[pf], fake[pf], real[pr]


def score(plan: Plan, feats: dict[str, dict[str, dict[str, np.ndarray]]], reference: dict[tuple[str, str], np.ndarray],
          reference_problem: str | None) -> Scores:
    rows = plan.manifest.rows
    per_sample: dict[str, np.ndarray] = {}
    set_inputs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    unpaired: set[str] = set()
    for m in plan.metrics:
        if m.key in plan.skipped:
            continue
        if m.kind == "set":
            assert m.set_feature is not None
            if m.set_feature not in reference:
                plan.skipped[m.key] = "skipped: " + (reference_problem or f"the reference has no {m.set_feature[1]} features")
                continue
            real = reference[m.set_feature]
            if plan.protocol.windowed:
                got = _windowed_set_input(plan, feats, m, real)
                if got is not None:
                    set_inputs[m.key] = got
                    unpaired.add(m.key)
                continue
            idx, fake_rows = [], []
            ref_rows = []
            for i, r in enumerate(rows):
                f = feats.get(r.sample_id, {}).get(m.set_feature[0])
                # sample i pairs with reference row r.index (its manifest row), as the original pairs them
                if f is None or r.index >= len(real) or not np.all(np.isfinite(real[r.index])):
                    continue
                idx.append(i)
                ref_rows.append(r.index)
                fake_rows.append(np.asarray(f[m.set_feature[1]], np.float32).ravel())
            if len(idx) < 2:
                plan.skipped[m.key] = f"skipped: only {len(idx)} sample(s) with features paired to reference rows (need 2)"
                continue
            ii = np.asarray(idx)
            set_inputs[m.key] = (ii, np.stack(fake_rows), np.asarray(real, np.float32)[np.asarray(ref_rows)])
            continue
        sample_feats: list[Optional[Feats]] = []
        for r in rows:
            f = feats.get(r.sample_id, {})
            sample_feats.append({e: f[e] for e in m.encoders} if all(e in f for e in m.encoders) else None)
        if m.ordered_fn is not None:
            vals = np.asarray(m.ordered_fn(sample_feats, plan.protocol), np.float64)
        else:
            vals = np.full(len(rows), np.nan)
            for i, f in enumerate(sample_feats):
                if f is None:
                    continue
                try:
                    vals[i] = m.sample_fn(f, plan.protocol)  # type: ignore[misc]
                except (ValueError, ArithmeticError) as e:
                    plan.fail(rows[i].sample_id, f"metric:{m.key}", str(e))
        per_sample[m.key] = vals
    return Scores(per_sample, set_inputs, unpaired)


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Run the whole evaluation and return the results dict (also written to ``cfg.out``)."""
    from javisbench.results import assemble, write_results

    t0 = time.perf_counter()
    plan = plan_run(cfg)
    feats = extract(plan)
    t1 = time.perf_counter()
    reference, problem = reference_features(plan) if any(m.kind == "set" and m.key not in plan.skipped for m in plan.metrics) else ({}, None)
    scores = score(plan, feats, reference, problem)
    results = assemble(plan, scores)
    results["timing"].update({"extract_s": t1 - t0, "total_s": time.perf_counter() - t0})
    n = len(plan.manifest)
    results["timing"]["samples_per_s"] = n / max(results["timing"]["total_s"], 1e-9)
    results["timing"]["feature_store"] = plan.store.stats()
    if cfg.out:
        write_results(results, cfg.out)
    if cfg.export_official:
        from javisbench.results import export_official, write_json

        write_json(export_official(results, plan), cfg.export_official)
    return results
