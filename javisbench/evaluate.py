"""The evaluation pipeline: manifest -> decode once -> encoders (batched) -> store -> metrics -> results.

``evaluate(config)`` reads as its steps::

    run, log  = plan_run(config)                    # rows, files, metrics (no model loaded)
    encoders  = load_encoders(run)                  # weights checked; missing ones skip their metrics
    features  = extract(run, encoders, store)       # decode each sample once, fill the feature store
    reference = reference_features(run, ...)        # real-set features for set metrics (FVD/KVD/FAD, ...)
    scores    = score(run, features, reference)     # numbers from stored features (metrics/)
    results   = assemble(run, log, scores, ...)     # overall + per category + failures + provenance

Each stage returns what it found (a :class:`~javisbench.run.RunLog`); this module merges them.
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from javisbench.benches import load_bench, load_labels, select_rows
from javisbench.config import EvalConfig
from javisbench.encoders import encoder_class
from javisbench.encoders.base import Encoder, SampleError
from javisbench.features import FeatureStore, feature_key, output_problem
from javisbench.manifest import ManifestRow, SampleFiles, real_samples, resolve_samples
from javisbench.protocol import get_protocol
from javisbench.run import FeatureTable, Run, RunLog, Scores
from javisbench.suite import Feats, Metric, select_metrics
from javisbench.weights import BadWeightsError, MissingWeightsError, check, resolve_weights_dir

#: what ``encoders=`` may hold per encoder id: an Encoder subclass (constructed here) or an instance
EncoderSpec = "type[Encoder] | Encoder"


def _log(cfg: EvalConfig, msg: str) -> None:
    from javisbench.progress import note

    note(cfg.progress, msg)


#: Python module (top-level name) -> what installs it; encoder-specific extras below
_INSTALL: dict[str, str] = {
    "imagebind": "pip install --no-deps imagebind-unofficial   (ImageBind's model classes, without their declared "
                 "dependencies)",
    "open_clip": "pip install 'javisbench[clip]'",
    "torch": "pip install 'javisbench[torch]'", "torchvision": "pip install 'javisbench[torch]'",
    "av": "pip install 'javisbench[media]'", "cv2": "pip install 'javisbench[media]'",
    "librosa": "pip install 'javisbench[media]'", "soundfile": "pip install 'javisbench[media]'",
    "resampy": "pip install 'javisbench[media]'", "PIL": "pip install 'javisbench[media]'",
}
_ENCODER_EXTRA: dict[str, str] = {"clip": "clip", "clap": "clap", "videoreward": "videoreward",
                                  "imagebind": "imagebind", "imagebind-avh": "imagebind", "audiobox": "clap"}


def missing_dependency(enc_id: str, e: ImportError) -> str:
    """The skip reason of an encoder whose optional Python dependency is not installed, with the
    command that installs it.

    Example:
        >>> missing_dependency("clap", ModuleNotFoundError("No module named 'transformers'", name="transformers"))
        "skipped: encoder 'clap' needs the Python package 'transformers', which is not installed: pip install 'javisbench[clap]'"
    """
    name = (getattr(e, "name", None) or str(e).split("'")[1 if "'" in str(e) else 0]).split(".")[0]
    cmd = _INSTALL.get(name)
    if cmd is None:
        extra = _ENCODER_EXTRA.get(enc_id)
        cmd = f"pip install 'javisbench[{extra}]'" if extra else f"pip install {name}"
    return f"skipped: encoder {enc_id!r} needs the Python package {name!r}, which is not installed: {cmd}"


# ---------------------------------------------------------------------------------------------
# plan
# ---------------------------------------------------------------------------------------------
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


PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str, protocol_name: str, device: str) -> str:
    """``--precision``, validated: a known value, never changed under javisbench-official (which keeps
    the original's own choices), fp16 only on CUDA."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "fp32" and protocol_name == "javisbench-official":
        raise ValueError(f"--precision {precision}: javisbench-official keeps the original's precision (fp32; CLIP fp16 "
                         "and VideoReward bf16 on CUDA, as the original ran them); use --protocol javisbench-fixed")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ValueError(f"--precision fp16 needs --device cuda (got {device}); on CPU use fp32 or bf16")
    return precision


def autocast(protocol: Any, device: str) -> Any:
    """The autocast context of the protocol's precision on ``device`` (a no-op for fp32)."""
    import contextlib

    if getattr(protocol, "precision", "fp32") == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if protocol.precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


def plan_run(cfg: EvalConfig) -> tuple[Run, RunLog]:
    """The run's inputs, validated before any model is loaded, and the samples already known bad."""
    check_device(cfg.device)
    if cfg.protocol:
        get_protocol(cfg.protocol)        # a misspelt name fails before any file is read
    manifest, bench_def = load_bench(cfg.bench, cfg.samples_dir, cfg.limit)
    protocol = get_protocol(cfg.protocol or (bench_def.protocol if bench_def else "javisbench-official"))
    if cfg.seed is not None:
        protocol = protocol.replace(seed=int(cfg.seed))
    if cfg.precision is not None:
        protocol = protocol.replace(precision=check_precision(cfg.precision, protocol.name, cfg.device))
    tax, labels = load_labels(manifest, cfg.taxonomy)
    manifest, labels = select_rows(manifest, tax, labels, cfg.where, cfg.subset, cfg.subset_seed)
    samples = resolve_samples(manifest, None if bench_def else cfg.samples_dir)
    metrics = select_metrics(cfg.metrics or (list(bench_def.metrics) if bench_def else None))
    if bench_def is not None:
        texty = [m.key for m in metrics if m.needs_text]
        if texty:
            raise ValueError(f"bench {bench_def.name} has no prompts, so {', '.join(texty)} cannot be computed; "
                             f"its default metrics are {', '.join(bench_def.metrics)}")
    run = Run(cfg, protocol, manifest, tuple(samples), tuple(metrics), resolve_weights_dir(cfg.weights_dir),
              labels, tax, bench_def)
    log = RunLog()
    for s in samples:
        if s.problem:
            log.fail(s.sample_id, "input", s.problem)
    return run, log


def load_encoders(run: Run, injected: Mapping[str, Any] | None = None) -> tuple[dict[str, Encoder], RunLog]:
    """The usable encoders of the run's metrics (weights present, not loaded yet), and the skips.

    ``injected``: encoder id -> Encoder subclass or instance, used instead of the registry (tests,
    or a caller that brings its own model).  An injected instance is used as it is.
    """
    log = RunLog()
    cfg = run.config
    encoders: dict[str, Encoder] = {}
    unusable: dict[str, str] = {}
    for enc_id in sorted({e for m in run.metrics for e in m.encoders}):
        spec = (injected or {}).get(enc_id)
        if isinstance(spec, Encoder):
            encoders[enc_id] = spec
            continue
        try:
            cls = spec if spec is not None else encoder_class(enc_id)
        except ImportError as e:
            unusable[enc_id] = missing_dependency(enc_id, e)[len("skipped: "):]
            continue
        except KeyError as e:
            unusable[enc_id] = f"encoder {enc_id!r} unavailable: {e}"
            continue
        enc = cls(run.protocol, device=cfg.device, batch_size=cfg.batch_size_for(enc_id))
        reasons = []
        for wf in cls.weight_files:
            st = check(enc_id, wf, run.weights_dir, hash_it=True)
            if st.status in ("missing", "incomplete"):
                reasons.append(str(MissingWeightsError(enc_id, wf, st.path, st.detail)))
            else:
                enc.weights_sha256[wf.name] = st.sha256 or ""
                if st.status == "bad-hash":
                    log.unofficial_weights[f"{enc_id}:{wf.name}"] = (
                        f"{st.path} has sha256 {st.sha256}, not the official file's ({wf.sha256}): "
                        "numbers are not comparable with published ones")
        if reasons:
            unusable[enc_id] = "; ".join(reasons)
        else:
            encoders[enc_id] = enc
    for m in run.metrics:
        bad = [unusable[e] for e in m.encoders if e in unusable]
        if bad:
            log.skip(m.key, "skipped: " + "; ".join(bad))
    return encoders, log


# ---------------------------------------------------------------------------------------------
# extract: decode once, prepare for every encoder, encode in batches, store
# ---------------------------------------------------------------------------------------------
@dataclass
class _Work:
    row: ManifestRow
    files: SampleFiles
    missing: list[str]             # encoder ids whose features are not stored yet


def _keys_for(encoders: Mapping[str, Encoder], row: ManifestRow, content_hash: str) -> dict[str, str]:
    out = {}
    for enc_id, enc in encoders.items():
        prompts = (row.text, row.audio_text) if enc.uses_text else ()
        out[enc_id] = feature_key(content_hash, enc.fingerprint(), enc.feature_fingerprint(), prompts)
    return out


def _notes_key(run: Run, content_hash: str) -> str:
    from javisbench.encoders.base import DECODE_FIELDS
    from javisbench.features import memo_key

    v = run.protocol.values()
    return memo_key("sample-notes", 1, content_hash, {f: v[f] for f in (*DECODE_FIELDS, "audio_sr")})


def _stored_notes(store: FeatureStore, run: Run, content_hash: str) -> list[str]:
    """The per-sample warnings recorded when the clip was last decoded (a run served from the
    store reports the same warnings as the run that filled it)."""
    got = store.memo_get(_notes_key(run, content_hash))
    return [str(n) for n in got] if isinstance(got, list) and all(isinstance(n, str) for n in got) else []


def _store_notes(store: FeatureStore, run: Run, content_hash: str, notes: list[str]) -> None:
    try:
        store.memo_put(_notes_key(run, content_hash), list(notes))
    except OSError:
        pass        # a read-only store still serves features; the warnings are in this run's results


def extract(run: Run, encoders: Mapping[str, Encoder], store: FeatureStore,
            samples: tuple[SampleFiles, ...] | None = None, label: str = "samples") -> tuple[FeatureTable, RunLog]:
    """Features per sample id and encoder; fills the store with whatever is missing.

    ``samples`` (default: the run's) are the files of the run's rows, e.g. the real clips;
    ``label`` names the stage in progress output.
    Encoders are loaded here, only when some sample needs them; one that fails to load skips
    its metrics.
    """
    from javisbench.decode import content_hash

    cfg = run.config
    log = RunLog()
    files_of = run.samples if samples is None else samples
    t0 = time.perf_counter()
    feats: FeatureTable = {}
    work: list[_Work] = []
    hashes: dict[str, str] = {}
    keys: dict[str, dict[str, str]] = {}
    for row, files in zip(run.manifest.rows, files_of):
        if files.problem:
            continue
        try:
            h = content_hash(files.video, files.audio)
        except OSError as e:
            log.fail(row.sample_id, "input", f"cannot read {files.video}: {e}")
            continue
        keys[row.sample_id] = k = _keys_for(encoders, row, h)
        hashes[row.sample_id] = h
        have: dict[str, dict[str, np.ndarray]] = {}
        missing = []
        for enc_id, enc in encoders.items():
            got = store.get(enc_id, k[enc_id], expect=tuple(enc.outputs),
                            validate=lambda f, e=enc: output_problem(e, f))
            if got is None:
                missing.append(enc_id)
            else:
                have[enc_id] = got
        feats[row.sample_id] = have
        if missing:
            work.append(_Work(row, files, missing))
        else:   # served from the store: the clip's warnings come from where its decode left them
            for n in _stored_notes(store, run, h):
                log.warn(row.sample_id, n)
    log.timing["hash_and_lookup_s"] = time.perf_counter() - t0
    _log(cfg, f"[javisbench] {label}: {len(work)} of {len(run.manifest)} clips need features")
    if not work:
        log.timing["decode_s"] = 0.0
        log.timing["encode_s"] = {}
        return feats, log

    loaded: list[str] = []
    for enc_id in sorted({e for w in work for e in w.missing}):
        enc = encoders[enc_id]
        if enc.loaded:          # loaded by an earlier stage of this run (e.g. the reference pass)
            loaded.append(enc_id)
            continue
        t = time.perf_counter()
        try:
            enc.load(run.weights_dir)
            enc.loaded = True
        except ImportError as e:    # an optional dependency is not installed: its metrics only
            for m in run.metrics:
                if enc_id in m.encoders:
                    log.skip(m.key, missing_dependency(enc_id, e))
            continue
        except Exception as e:  # noqa: BLE001 - a weights file that cannot be used skips only its metrics
            why = str(e) if isinstance(e, (MissingWeightsError, BadWeightsError)) else (
                f"encoder {enc_id!r} could not be loaded from {run.weights_dir}: {type(e).__name__}: "
                + " ".join(str(e).split())[:300])
            for m in run.metrics:
                if enc_id in m.encoders:
                    log.skip(m.key, f"skipped: {why}")
            continue
        loaded.append(enc_id)
        log.timing.setdefault("load_s", {})[enc_id] = time.perf_counter() - t
    _log(cfg, f"[javisbench] encoders: {', '.join(loaded) or 'none'}")

    queues: dict[str, list[tuple[str, str, Any]]] = {e: [] for e in loaded}
    encode_s: dict[str, float] = {e: 0.0 for e in loaded}

    def flush(enc_id: str) -> None:
        q = queues[enc_id]
        if not q:
            return
        enc = encoders[enc_id]
        t = time.perf_counter()
        results: list[tuple[tuple[str, str, Any], dict[str, np.ndarray]]] = []
        try:
            with autocast(run.protocol, cfg.device):
                outs = enc.encode([x for _, _, x in q])
            if len(outs) != len(q):
                raise RuntimeError(f"{enc_id} returned {len(outs)} results for a batch of {len(q)}")
            results = list(zip(q, outs))
        except Exception:  # noqa: BLE001 - find the sample that breaks the batch, record it
            for item in q:
                try:
                    with autocast(run.protocol, cfg.device):
                        results.append((item, enc.encode([item[2]])[0]))
                except Exception as e1:  # noqa: BLE001
                    log.fail(item[0], f"encode:{enc_id}", f"{type(e1).__name__}: {e1}")
        for (sid, key, _x), out in results:
            try:
                stored = {n: np.asarray(v, np.float64 if n in enc.float64_outputs else np.float32) for n, v in out.items()}
                problem = output_problem(enc, stored)
                if problem is not None:
                    raise ValueError(f"{enc_id} returned features that break its declared outputs: {problem}")
                store.put(enc_id, key, out, float64=enc.float64_outputs)
                # what a later (resumed, sharded) run reads back: the stored dtypes, bit for bit
                feats[sid][enc_id] = {k: np.asarray(v, np.float64 if k in enc.float64_outputs else np.float32)
                                      for k, v in out.items()}
            except ValueError as e2:
                log.fail(sid, f"encode:{enc_id}", str(e2))
        encode_s[enc_id] += time.perf_counter() - t
        q.clear()

    def decode_and_prepare(w: _Work) -> tuple[_Work, dict[str, Any], dict[str, str], list[str]]:
        from javisbench.decode import DecodeError, clip_warnings, decode_sample

        prepared: dict[str, Any] = {}
        errors: dict[str, str] = {}
        notes: list[str] = []
        try:
            clip = decode_sample(w.files.video, w.files.audio, sample_id=w.row.sample_id,
                                 color_matrix=run.protocol.decode_color_matrix,
                                 apply_rotation=run.protocol.decode_apply_rotation)
        except DecodeError as e:
            return w, prepared, {"decode": str(e)}, notes
        except Exception as e:  # noqa: BLE001 - any reader crash is this sample's failure
            return w, prepared, {"decode": f"{type(e).__name__}: {e} ({w.files.video})"}, notes
        notes.extend(clip.warnings)
        notes.extend(clip_warnings(clip))
        if clip.incomplete and run.protocol.incomplete_decode == "fail":
            return w, prepared, {"decode": f"incomplete decode: {'; '.join(clip.incomplete)} (protocol "
                                           f"{run.protocol.name} fails incomplete decodes; javisbench-official "
                                           "scores what decodes, with a warning)"}, notes
        if clip.audio.size and float(np.max(np.abs(clip.audio))) == 0.0:
            notes.append("silent audio (every sample is 0): scored as is, audio metrics will be low")
        if clip.sr != run.protocol.audio_sr or clip.n_channels != 1:
            notes.append(f"audio is {clip.sr} Hz with {clip.n_channels} channel(s); each metric resamples/mixes it "
                         f"as the protocol prescribes (JavisBench samples are {run.protocol.audio_sr} Hz)")
        for enc_id in w.missing:
            if enc_id not in queues:
                continue
            try:
                prepared[enc_id] = encoders[enc_id].prepare(clip, w.row.text, w.row.audio_text)
            except ImportError as e:    # an optional dependency: the encoder's metrics are skipped
                errors[f"missing:{enc_id}"] = missing_dependency(enc_id, e)
            except SampleError as e:
                errors[f"prepare:{enc_id}"] = str(e)
            except Exception as e:  # noqa: BLE001
                errors[f"prepare:{enc_id}"] = f"{type(e).__name__}: {e}"
        return w, prepared, errors, notes

    from javisbench.progress import Progress

    t_dec = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool, \
            Progress(label, len(work), cfg.progress, unit="clip") as bar:
        for w, prepared, errors, notes in _ordered_prefetch(pool, decode_and_prepare, work, cfg.workers * 2):
            for stage, msg in errors.items():
                if stage.startswith("missing:"):
                    enc_id = stage.split(":", 1)[1]
                    queues.pop(enc_id, None)
                    for m in run.metrics:
                        if enc_id in m.encoders:
                            log.skip(m.key, msg)
                    continue
                log.fail(w.row.sample_id, stage, msg)
            for n in notes:
                log.warn(w.row.sample_id, n)
            if not errors:
                _store_notes(store, run, hashes[w.row.sample_id], notes)
            for enc_id, x in prepared.items():
                if enc_id not in queues:
                    continue
                queues[enc_id].append((w.row.sample_id, keys[w.row.sample_id][enc_id], x))
                if len(queues[enc_id]) >= encoders[enc_id].batch_size:
                    flush(enc_id)
            bar.update()
    for enc_id in loaded:
        if enc_id in queues:
            flush(enc_id)
    total = time.perf_counter() - t_dec
    log.timing["decode_prepare_s"] = total - sum(encode_s.values())
    log.timing["encode_s"] = encode_s
    return feats, log


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
def _set_features(run: Run, skipped: Mapping[str, str]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(m.set_feature for m in run.metrics
                              if m.kind == "set" and m.set_feature is not None and m.key not in skipped))


def real_run(run: Run) -> tuple[Run, tuple[SampleFiles, ...]]:
    """The run over the real clips of ``--reference-dir``: the same rows (a folder bench: the real
    folder's own clips), files from the real folder."""
    cfg = run.config
    assert cfg.reference_dir is not None
    real_dir = Path(cfg.reference_dir)
    if run.bench_def is not None:
        from javisbench.benches import folder_manifest

        manifest = folder_manifest(run.bench_def, real_dir, cfg.limit)
        r = replace(run, manifest=manifest, samples=tuple(resolve_samples(manifest, None)), labels=None)
        return r, r.samples
    files = tuple(real_samples(run.manifest, real_dir))
    return replace(run, samples=files), files


def compute_reference_features(run: Run, encoders: Mapping[str, Encoder], store: FeatureStore,
                               wanted: list[tuple[str, str]], files: tuple[SampleFiles, ...] | None = None
                               ) -> tuple[dict[tuple[str, str], np.ndarray], RunLog]:
    """Reference features of ``wanted`` (encoder, feature) from the real clips, through the same
    extraction (and the same loaded encoders) as the generated clips.

    ``files``: the real clip of each of the run's rows (default: ``--reference-dir``'s).
    """
    from javisbench.reference import features_from_table

    real, files = (replace(run, samples=files), files) if files is not None else real_run(run)
    needed = {e for e, _ in wanted}
    feats, sub = extract(real, {k: v for k, v in encoders.items() if k in needed}, store, samples=files,
                         label="reference")
    log = RunLog(skipped=sub.skipped, timing={"reference_" + k: v for k, v in sub.timing.items()})
    for sid, stages in sub.failures.items():
        for stage, msg in stages.items():
            log.warn(sid, f"reference clip failed at {stage}: {msg}")
    return features_from_table(real.manifest.rows, feats, wanted, windowed=run.protocol.windowed), log


def reference_features(run: Run, encoders: Mapping[str, Encoder], store: FeatureStore,
                       skipped: Mapping[str, str]) -> tuple[dict[tuple[str, str], np.ndarray], str | None, RunLog]:
    """Real-set features for the set metrics, why there are none (or None), and the log.

    ``--reference`` reads a cache; ``--reference-dir`` computes one from real clips; otherwise,
    under javisbench-official, a released ``<bench>-vanilla-max4s.pt`` found where the original
    layout puts it (beside the CSV or in ``cache/fvd_fad/``) is used; failing that, the features
    are computed from the real clips the manifest's ``path`` / ``audio_path`` columns name (as the
    original does without a cache), rows whose files are missing listed and left out of the
    pairing.  What was used is recorded in the log's ``reference_info`` (path and sha256, the
    folder, or the manifest columns and the missing rows), which the results carry.
    """
    from javisbench.reference import read_reference
    from javisbench.weights import sha256_of

    cfg = run.config
    log = RunLog()
    path = Path(cfg.reference) if cfg.reference else None
    if path is None and not cfg.reference_dir and run.bench_def is None:
        from javisbench.benches import official_reference

        found = official_reference(run.manifest.path)
        if found is not None and run.protocol.name != "javisbench-official":
            return {}, (f"no reference statistics: {found} (the released cache) holds javisbench-official features; "
                        f"under {run.protocol.name} build one with `javisbench reference build REAL_DIR --protocol "
                        f"{run.protocol.name}` and pass it with --reference"), log
        path = found
        if path is not None:
            _log(cfg, f"[javisbench] reference statistics: {path} (found beside the bench)")
    if path is not None:
        ref = read_reference(path, run.protocol)
        log.reference_info = {"path": str(path.resolve()), "sha256": sha256_of(path),
                              "rows": {f"{e}:{n}": int(v.shape[0]) for (e, n), v in ref.items()},
                              "found_beside_bench": cfg.reference is None}
        return ref, None, log
    if cfg.reference_dir:
        ref, sub = compute_reference_features(run, encoders, store, _set_features(run, skipped))
        log.merge(sub)
        log.reference_info = {"computed_from": str(Path(cfg.reference_dir).resolve()),
                              "rows": {f"{e}:{n}": int(v.shape[0]) for (e, n), v in ref.items()}}
        return ref, None, log
    hint = ("pass --reference <bench>-vanilla-max4s.pt (the released ground-truth cache) or --reference-dir "
            "REAL_CLIPS (see `javisbench reference build`)")
    if run.bench_def is None and "path" in run.manifest.columns:
        return _reference_from_manifest(run, encoders, store, skipped, log, hint)
    return {}, f"no reference statistics: {hint}", log


def _reference_from_manifest(run: Run, encoders: Mapping[str, Encoder], store: FeatureStore,
                             skipped: Mapping[str, str], log: RunLog, hint: str
                             ) -> tuple[dict[tuple[str, str], np.ndarray], str | None, RunLog]:
    """Reference features from the real clips of the manifest's ``path`` / ``audio_path`` columns."""
    from javisbench.manifest import manifest_real_samples

    files = tuple(manifest_real_samples(run.manifest))
    missing = [{"sample_id": f.sample_id, "problem": f.problem} for f in files if f.problem]
    n_ok = len(files) - len(missing)
    if n_ok == 0:
        first = missing[0]["problem"] if missing else ""
        return {}, (f"no reference statistics: none of the {len(files)} real clips named in the 'path' column of "
                    f"{run.manifest.path} was found ({first}); {hint}"), log
    _log(run.config, f"[javisbench] reference statistics: computed from the real clips in the 'path'/'audio_path' "
                     f"columns of {run.manifest.path.name} ({n_ok} of {len(files)} found)")
    for m in missing:
        log.warn(m["sample_id"], f"reference clip missing, row left out of the set metrics: {m['problem']}")
    ref, sub = compute_reference_features(run, encoders, store, _set_features(run, skipped), files=files)
    log.merge(sub)
    log.reference_info = {"computed_from": "manifest", "manifest": str(run.manifest.path.resolve()),
                          "columns": [c for c in ("path", "audio_path") if c in run.manifest.columns],
                          "n_found": n_ok, "missing": missing,
                          "rows": {f"{e}:{n}": int(v.shape[0]) for (e, n), v in ref.items()}}
    return ref, None, log


# ---------------------------------------------------------------------------------------------
# score
# ---------------------------------------------------------------------------------------------
def select_windows(n_fake: int, n_real: int, eval_num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows MM-Diffusion's evaluator keeps: each side's windows shuffled (here seeded, one
    stream per side) and cut to the first ``eval_num`` (0: all).  Returns (fake rows, real rows)."""
    pf = np.random.default_rng([int(seed), 0]).permutation(int(n_fake))
    pr = np.random.default_rng([int(seed), 1]).permutation(int(n_real))
    if eval_num:
        pf, pr = pf[:int(eval_num)], pr[:int(eval_num)]
    return pf, pr


def _windowed_set_input(run: Run, feats: FeatureTable, metric: Metric, real: np.ndarray,
                        log: RunLog) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    enc_id, name = metric.set_feature  # type: ignore[misc]
    idx: list[int] = []
    blocks: list[np.ndarray] = []
    for i, r in enumerate(run.manifest.rows):
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
        log.skip(metric.key, f"skipped: {len(blocks)} clip(s) with windows and {real.shape[0]} reference "
                             "window(s) (need windows on both sides)")
        return None
    fake = np.concatenate(blocks)
    if fake.shape[0] < 2:
        log.skip(metric.key, "skipped: only 1 window to score (need 2)")
        return None
    pf, pr = select_windows(fake.shape[0], real.shape[0], run.protocol.mmdiff_eval_num, run.protocol.seed)
    return np.asarray(idx, np.int64)[pf], fake[pf], real[pr]


def score(run: Run, feats: FeatureTable, reference: Mapping[tuple[str, str], np.ndarray],
          reference_problem: str | None, skipped: Mapping[str, str]) -> tuple[Scores, RunLog]:
    """Per-sample values and set-metric inputs from stored features (the numbers live in metrics/)."""
    log = RunLog()
    rows = run.manifest.rows
    per_sample: dict[str, np.ndarray] = {}
    set_inputs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    unpaired: set[str] = set()
    for m in run.metrics:
        if m.key in skipped:
            continue
        if m.kind == "set":
            assert m.set_feature is not None
            if m.set_feature not in reference:
                log.skip(m.key, "skipped: " + (reference_problem or
                                               f"the reference has no {m.set_feature[0]}:{m.set_feature[1]} features"))
                continue
            real = reference[m.set_feature]
            if run.protocol.windowed:
                got = _windowed_set_input(run, feats, m, real, log)
                if got is not None:
                    set_inputs[m.key] = got
                    unpaired.add(m.key)
                continue
            idx, fake_rows, ref_rows = [], [], []
            for i, r in enumerate(rows):
                f = feats.get(r.sample_id, {}).get(m.set_feature[0])
                # sample i pairs with reference row r.index (its manifest row), as the original pairs them
                if f is None or r.index >= len(real) or not np.all(np.isfinite(real[r.index])):
                    continue
                idx.append(i)
                ref_rows.append(r.index)
                fake_rows.append(np.asarray(f[m.set_feature[1]], np.float32).ravel())
            if len(idx) < 2:
                log.skip(m.key, f"skipped: only {len(idx)} sample(s) with features paired to reference rows (need 2)")
                continue
            set_inputs[m.key] = (np.asarray(idx), np.stack(fake_rows), np.asarray(real, np.float32)[np.asarray(ref_rows)])
            continue
        sample_feats: list[Optional[Feats]] = []
        for r in rows:
            f = feats.get(r.sample_id, {})
            sample_feats.append({e: f[e] for e in m.encoders} if all(e in f for e in m.encoders) else None)
        if m.ordered_fn is not None:
            vals = np.asarray(m.ordered_fn(sample_feats, run.protocol), np.float64)
        else:
            vals = np.full(len(rows), np.nan)
            for i, f in enumerate(sample_feats):
                if f is None:
                    continue
                try:
                    vals[i] = m.sample_fn(f, run.protocol)  # type: ignore[misc]
                except (ValueError, ArithmeticError) as e:
                    log.fail(rows[i].sample_id, f"metric:{m.key}", str(e))
        per_sample[m.key] = vals
    return Scores(per_sample, set_inputs, unpaired), log


# ---------------------------------------------------------------------------------------------
# the whole run
# ---------------------------------------------------------------------------------------------
def evaluate(cfg: EvalConfig, encoders: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the whole evaluation and return the results dict (also written to ``cfg.out``).

    ``encoders``: optional encoder id -> Encoder subclass or instance, replacing the registry's.
    """
    from javisbench.results import assemble, export_official, write_json, write_results

    from javisbench.outputs import check_run_outputs, writing

    from javisbench import distributed

    t0 = time.perf_counter()
    dist = distributed.from_env()        # launched by torchrun: this process is one rank of several
    if dist is not None:
        cfg = replace(cfg, device=dist.device(cfg.device), progress=cfg.progress and dist.is_main)
    run, log = plan_run(cfg)
    check_run_outputs(run, force=cfg.force)      # before any model: nothing read is ever overwritten
    store = FeatureStore(cfg.cache_dir)
    encs, sub = load_encoders(run, encoders)
    log.merge(sub)
    if dist is not None:
        done = _extract_shard(run, dist, encs, store, log)
        if not dist.is_main:
            return done
    feats, sub = extract(run, encs, store)
    log.merge(sub)
    t1 = time.perf_counter()
    reference: Mapping[tuple[str, str], np.ndarray] = {}
    problem = None
    if any(m.kind == "set" and m.key not in log.skipped for m in run.metrics):
        reference, problem, sub = reference_features(run, encs, store, log.skipped)
        log.merge(sub)
    scores, sub = score(run, feats, reference, problem, log.skipped)
    log.merge(sub)
    order = {r.sample_id: i for i, r in enumerate(run.manifest.rows)}      # same bytes whatever was cached
    log.warnings = dict(sorted(log.warnings.items(), key=lambda kv: order.get(kv[0], len(order))))
    results = assemble(run, log, scores, encs, store)
    results["timing"].update({"extract_s": t1 - t0, "total_s": time.perf_counter() - t0})
    results["timing"]["samples_per_s"] = len(run.manifest) / max(results["timing"]["total_s"], 1e-9)
    results["timing"]["feature_store"] = store.stats()
    if cfg.out:
        with writing("--out", cfg.out):
            write_results(results, cfg.out)
    if cfg.export_official:
        with writing("--export-official", cfg.export_official):
            write_json(export_official(results), cfg.export_official)
    return results


def _extract_shard(run: Run, dist: Any, encs: Mapping[str, Encoder], store: FeatureStore, log: RunLog) -> dict[str, Any]:
    """One rank's part of a torchrun launch: the features of its rows (and of their real clips)
    into the shared store, then a barrier.  Rank 0 goes on to read everything back; the others
    return ``{"rank", "world", "rows"}`` (no results: rank 0 writes them)."""
    from javisbench import distributed

    distributed.init(dist, run.config.device)
    rows = dist.shard(range(len(run.manifest.rows)))
    mine = replace(run, manifest=replace(run.manifest, rows=tuple(run.manifest.rows[i] for i in rows)),
                   samples=tuple(run.samples[i] for i in rows), labels=None)
    extract(mine, encs, store)
    if any(m.kind == "set" and m.key not in log.skipped for m in run.metrics):
        reference_features(mine, encs, store, log.skipped)
    distributed.barrier(dist)
    distributed.finish(dist)
    return {"rank": dist.rank, "world": dist.world, "rows": len(rows)}


def build_reference(cfg: EvalConfig, encoders: Mapping[str, Any] | None = None) -> tuple[
        dict[tuple[str, str], np.ndarray], dict[str, dict[str, Any]], Run, RunLog]:
    """Reference features of every selected set metric from the real clips in ``cfg.samples_dir``.

    Returns ``(features keyed (encoder, feature), encoder id -> the protocol values its features
    depend on, run, log)``; :func:`javisbench.reference.write_reference` records both.
    """
    cfg = replace(cfg, reference_dir=cfg.samples_dir, metrics=cfg.metrics or [
        m.key for m in select_metrics(None) if m.kind == "set"])
    run, _ = plan_run(cfg)      # the real clips' own problems come back from the extraction below
    log = RunLog()
    if not any(m.kind == "set" for m in run.metrics):
        raise ValueError("reference build needs set metrics (e.g. fvd kvd fad); got "
                         + ", ".join(m.key for m in run.metrics))
    run = replace(run, metrics=tuple(m for m in run.metrics if m.kind == "set"))
    store = FeatureStore(cfg.cache_dir)
    encs, sub = load_encoders(run, encoders)
    log.merge(sub)
    feats, sub = compute_reference_features(run, encs, store, _set_features(run, log.skipped))
    log.merge(sub)
    return feats, {e: enc.feature_protocol() for e, enc in encs.items()}, run, log
