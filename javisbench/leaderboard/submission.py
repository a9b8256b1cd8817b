"""Leaderboard submissions: a results file checked as untrusted input.

:func:`check_submission` reads the raw bytes and returns every problem it finds (not only the
first): size, JSON syntax (``NaN``/``Infinity`` and duplicate keys are refused), schema major
version, the type of every field a number or a string is expected in, the bench and protocol
(known to this board, with the identity and fingerprint this javisbench gives them), every
official metric either scored or skipped with a reason, and provenance (javisbench and library
versions, the sha256 of the weights behind every scored metric).  :func:`check_results` is the
structural part alone, which ``build`` applies to every file already on the board.

Metric metadata (keys, directions, official flag, encoders, weights) comes from the metric
table in :mod:`javisbench.suite`; nothing here names a metric.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

#: the largest submission accepted, in bytes
MAX_BYTES = 5 * 1024 * 1024
#: method families, in the order the papers group them
FAMILIES = ("T2A+A2V", "T2V+V2A", "T2AV")
MAX_NAME = 120
MAX_LINK = 500

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_SCHEMA = re.compile(r"(\d+)\.(\d+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_LINK = re.compile(r"https?://[^\s\"'<>`\\]+", re.ASCII)


class SubmissionError(ValueError):
    """A submission refused; ``problems`` lists every reason (the message lists them one a line)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: refused, {len(self.problems)} problem(s):\n{lines}")


# ---------------------------------------------------------------------------------------------
# JSON, strictly
# ---------------------------------------------------------------------------------------------
def parse_json(raw: bytes) -> tuple[Any, list[str]]:
    """``(data, problems)``: UTF-8 JSON without NaN/Infinity literals or repeated keys."""
    problems: list[str] = []
    if len(raw) > MAX_BYTES:
        return None, [f"file is {len(raw):,} bytes; the limit is {MAX_BYTES:,} (5 MB)"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, [f"not JSON: not UTF-8 text ({e.reason} at byte {e.start})"]
    dupes: list[str] = []

    def pairs(kv: list[tuple[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k, v in kv:
            if k in d:
                dupes.append(k)
            d[k] = v
        return d

    def constant(c: str) -> Any:
        raise ValueError(f"{c} is not a JSON number")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except RecursionError:
        return None, ["not JSON this reader accepts: nested too deeply"]
    except ValueError as e:
        return None, [f"not JSON: {e}"]
    if dupes:
        problems.append(f"repeated key(s) in one object: {', '.join(sorted(set(map(repr, dupes))))}")
    return data, problems


# ---------------------------------------------------------------------------------------------
# structure and types
# ---------------------------------------------------------------------------------------------
def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _tname(x: Any) -> str:
    if x is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(x), type(x).__name__)


def _show(x: Any) -> str:
    s = json.dumps(x, ensure_ascii=True)
    return s if len(s) <= 40 else s[:37] + "..."


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, where: str, expected: str, got: Any) -> None:
        self.problems.append(f"{where}: expected {expected}, got {_tname(got)} {_show(got)}")

    def obj(self, d: Any, key: str, where: str, required: bool = True) -> dict[str, Any] | None:
        """``d[key]`` when it is an object; records a problem (missing or wrong type) otherwise."""
        if not isinstance(d, dict):
            return None
        if key not in d:
            if required:
                self.problems.append(f"{where}: missing")
            return None
        v = d[key]
        if not isinstance(v, dict):
            self.bad(where, "an object", v)
            return None
        return v

    def string(self, d: dict[str, Any], key: str, where: str, required: bool = True, nullable: bool = False,
               pattern: re.Pattern[str] | None = None, what: str = "a string") -> str | None:
        if key not in d:
            if required:
                self.problems.append(f"{where}: missing")
            return None
        v = d[key]
        if v is None and nullable:
            return None
        if not isinstance(v, str) or (required and not v.strip()) or (pattern is not None and not pattern.fullmatch(v)):
            self.bad(where, what + (" or null" if nullable else ""), v)
            return None
        return v

    def num(self, d: dict[str, Any], key: str, where: str, required: bool = False, nullable: bool = True,
            integer: bool = False) -> float | None:
        if key not in d:
            if required:
                self.problems.append(f"{where}: missing")
            return None
        v = d[key]
        if v is None and nullable:
            return None
        ok = (_is_int(v) and v >= 0) if integer else _is_num(v)
        if not ok:
            self.bad(where, ("a non-negative integer" if integer else "a finite number") + (" or null" if nullable else ""), v)
            return None
        return float(v)

    def cell(self, c: Any, where: str) -> None:
        """A score cell: ``{value, ci_low, ci_high, n, n_failed[, n_real, n_clips], flags}``."""
        if not isinstance(c, dict):
            self.bad(where, "an object {value, ci_low, ci_high, n, ...}", c)
            return
        v = self.num(c, "value", f"{where}.value", required=True)
        lo = self.num(c, "ci_low", f"{where}.ci_low")
        hi = self.num(c, "ci_high", f"{where}.ci_high")
        for k in ("n", "n_failed", "n_real", "n_clips"):
            self.num(c, k, f"{where}.{k}", integer=True)
        if lo is not None and hi is not None and lo > hi:
            self.problems.append(f"{where}: ci_low {lo!r} is above ci_high {hi!r}")
        if (lo is None) != (hi is None):
            self.problems.append(f"{where}: an interval needs both ci_low and ci_high")
        if c.get("value") is None and (lo is not None or hi is not None):
            self.problems.append(f"{where}: an interval without a value")
        if "flags" in c and not (isinstance(c["flags"], list) and all(isinstance(f, str) for f in c["flags"])):
            self.bad(f"{where}.flags", "a list of strings", c["flags"])


def check_results(data: Any) -> list[str]:
    """Every structural problem of a results dict (types, required fields, schema major version).

    Unknown extra fields are allowed (minor schema versions add fields); every field this board
    reads is checked.  Metric keys are checked against the metric table (:mod:`javisbench.suite`),
    and a submission's stated direction or kind must agree with it.
    """
    from javisbench.results import SCHEMA_VERSION
    from javisbench.suite import METRICS

    if not isinstance(data, dict):
        return [f"expected a JSON object (a javisbench results file), got {_tname(data)}"]
    ck = _Checker()
    p = ck.problems
    sv = data.get("schema_version")
    m = _SCHEMA.fullmatch(sv) if isinstance(sv, str) else None
    if "schema_version" not in data:
        p.append("schema_version: missing (not a javisbench results file?)")
    elif m is None:
        ck.bad("schema_version", 'a version string such as "1.1"', sv)
    elif m.group(1) != SCHEMA_VERSION.split(".")[0]:
        p.append(f"schema_version: {sv} has major version {m.group(1)}; this board reads {SCHEMA_VERSION.split('.')[0]}.x "
                 f"(this is javisbench schema {SCHEMA_VERSION})")
    ck.string(data, "javisbench_version", "javisbench_version", what="a version string")
    ck.string(data, "git_commit", "git_commit", required=False, nullable=True)
    ck.string(data, "created", "created", required=False, nullable=True)

    proto = ck.obj(data, "protocol", "protocol")
    if proto is not None:
        ck.string(proto, "name", "protocol.name")
        ck.string(proto, "version", "protocol.version")
        ck.string(proto, "fingerprint", "protocol.fingerprint", pattern=_HEX16, what="16 hex digits")
        ck.obj(proto, "values", "protocol.values")
    bench = ck.obj(data, "bench", "bench")
    if bench is not None:
        ck.string(bench, "name", "bench.name")
        ck.string(bench, "manifest_sha256", "bench.manifest_sha256", pattern=_HEX64, what="64 lowercase hex digits")
        n_rows = ck.num(bench, "n_rows", "bench.n_rows", required=True, nullable=False, integer=True)
        if n_rows == 0:
            p.append("bench.n_rows: 0 rows scored")
        ck.string(bench, "kind", "bench.kind", required=False)
        ck.string(bench, "path", "bench.path", required=False, nullable=True)
        tax = ck.obj(bench, "taxonomy", "bench.taxonomy", required=False) if bench.get("taxonomy") is not None else None
        if tax is not None:
            ck.string(tax, "name", "bench.taxonomy.name")
            ck.string(tax, "version", "bench.taxonomy.version")
    model = ck.obj(data, "model", "model")
    if model is not None:
        name = ck.string(model, "name", "model.name", what="a non-empty name")
        if name is not None:
            p.extend(name_problems(name, "model.name"))
        if model.get("link") is not None:
            link = ck.string(model, "link", "model.link")
            if link is not None:
                p.extend(link_problems(link, "model.link"))
        if model.get("family") is not None:
            fam = ck.string(model, "family", "model.family")
            if fam is not None and fam not in FAMILIES:
                p.append(f"model.family: expected one of {', '.join(FAMILIES)}, got {_show(fam)}")

    encs = ck.obj(data, "encoders", "encoders")
    for eid, e in (encs or {}).items():
        w = f"encoders.{eid}"
        if not isinstance(e, dict):
            ck.bad(w, "an object {fingerprint, weights_sha256}", e)
            continue
        ck.string(e, "fingerprint", f"{w}.fingerprint")
        ws = ck.obj(e, "weights_sha256", f"{w}.weights_sha256")
        for fname, h in (ws or {}).items():
            if not (isinstance(h, str) and _HEX64.fullmatch(h)):
                ck.bad(f"{w}.weights_sha256.{fname}", "64 lowercase hex digits", h)
    libs = ck.obj(data, "libraries", "libraries")
    for lib, ver in (libs or {}).items():
        if not isinstance(ver, str) or not ver:
            ck.bad(f"libraries.{lib}", "a version string", ver)
    if "seed" in data and not _is_int(data["seed"]):
        ck.bad("seed", "an integer", data["seed"])
    ck.string(data, "device", "device", required=False)

    metrics = ck.obj(data, "metrics", "metrics")
    for key, md in (metrics or {}).items():
        w = f"metrics.{key}"
        if key not in METRICS:
            p.append(f"{w}: unknown metric {key!r} (this javisbench knows {', '.join(METRICS)})")
            continue
        if not isinstance(md, dict):
            ck.bad(w, "an object {title, kind, higher_is_better, official, encoders}", md)
            continue
        ref = METRICS[key]
        hib = md.get("higher_is_better")
        if not isinstance(hib, bool):
            ck.bad(f"{w}.higher_is_better", "true or false", hib)
        elif hib != ref.higher_is_better:
            p.append(f"{w}.higher_is_better: {key} is {ref.direction}-is-better in the metric table, the file says "
                     f"{'higher' if hib else 'lower'}")
        kind = md.get("kind")
        if kind != ref.kind:
            ck.bad(f"{w}.kind", f'"{ref.kind}" (the metric table\'s kind of {key})', kind)
        if "official" in md and not isinstance(md["official"], bool):
            ck.bad(f"{w}.official", "true or false", md["official"])
        ck.string(md, "title", f"{w}.title", required=False)
    known = set(metrics or {})

    overall = ck.obj(data, "overall", "overall")
    for key, c in (overall or {}).items():
        if key not in known:
            p.append(f"overall.{key}: metric not declared under 'metrics'")
            continue
        ck.cell(c, f"overall.{key}")
    for part, depth in (("per_category", 2), ("per_subcategory", 3)):
        top = ck.obj(data, part, part, required=False)
        _walk_cells(ck, top or {}, part, depth, known)
    per_sample = ck.obj(data, "per_sample", "per_sample", required=False)
    for sid, vals in (per_sample or {}).items():
        if not isinstance(vals, dict):
            ck.bad(f"per_sample.{sid}", "an object", vals)
            continue
        for key, v in vals.items():
            if key in known and v is not None and not _is_num(v):
                ck.bad(f"per_sample.{sid}.{key}", "a finite number or null", v)
    skipped = ck.obj(data, "skipped", "skipped", required=False)
    for key, reason in (skipped or {}).items():
        if not isinstance(reason, str) or not reason.strip():
            ck.bad(f"skipped.{key}", "a reason (non-empty string)", reason)
    failures = ck.obj(data, "failures", "failures", required=False)
    for sid, stages in (failures or {}).items():
        if not isinstance(stages, dict) or not all(isinstance(s, str) for s in stages.values()):
            ck.bad(f"failures.{sid}", "an object stage -> message", stages)
    uw = data.get("unofficial_weights")
    if uw is not None and not isinstance(uw, dict):
        ck.bad("unofficial_weights", "an object", uw)
    return p


def _walk_cells(ck: _Checker, node: dict[str, Any], where: str, depth: int, known: set[str]) -> None:
    """``depth`` levels of names (aspect, category[, subcategory]) above metric -> cell."""
    for name, sub in node.items():
        w = f"{where}.{name}"
        if not isinstance(sub, dict):
            ck.bad(w, "an object", sub)
            continue
        if depth > 1:
            _walk_cells(ck, sub, w, depth - 1, known)
            continue
        for key, c in sub.items():
            if key in known:
                ck.cell(c, f"{w}.{key}")


def name_problems(name: str, where: str) -> list[str]:
    out = []
    if not name.strip():
        out.append(f"{where}: empty")
    if len(name) > MAX_NAME:
        out.append(f"{where}: {len(name)} characters; at most {MAX_NAME}")
    if _CONTROL.search(name):
        out.append(f"{where}: control characters (line breaks, tabs, ...) are not allowed in a name: {_show(name)}")
    return out


def link_problems(link: str, where: str) -> list[str]:
    if len(link) > MAX_LINK:
        return [f"{where}: {len(link)} characters; at most {MAX_LINK}"]
    if not _LINK.fullmatch(link):
        return [f"{where}: expected an http:// or https:// URL without spaces, quotes or angle brackets, got {_show(link)}"]
    return []


# ---------------------------------------------------------------------------------------------
# what this board accepts
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KnownBench:
    """A bench the board ranks: ``sha256``/``rows`` pin it where they are known."""

    name: str
    sha256: str | None
    rows: int | None
    metrics: tuple[str, ...] | None     # the metrics that apply (None: every metric)
    note: str


def known_benches() -> dict[str, KnownBench]:
    """The named JavisBench CSVs, the built-in folder benches and the demo bench, by lower-case name."""
    from javisbench.benches import CSV_BENCHES, builtin_benches

    out: dict[str, KnownBench] = {}
    for b in CSV_BENCHES.values():
        stem = b.file.rsplit(".", 1)[0]
        out[stem.lower()] = KnownBench(stem, None, b.rows, None, b.title)
    for fb in builtin_benches().values():
        out[fb.name.lower()] = KnownBench(fb.name, fb.sha256, None, fb.metrics, fb.title)
    # `javisbench demo`'s synthetic bench: lets anyone try the board end to end
    out["synthav_demo"] = KnownBench("synthav_demo", None, None, None, "SynthAV demo (javisbench demo)")
    return out


def protocol_fingerprint(values: dict[str, Any]) -> str:
    """The fingerprint :class:`javisbench.protocol.Protocol` derives from its values."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def needs_weights(encoder: str) -> bool:
    """Whether some metric of the metric table reads ``encoder`` from weight files."""
    from javisbench.suite import METRICS

    return any(m.weights for m in METRICS.values() if encoder in m.encoders)


def check_policy(data: dict[str, Any]) -> list[str]:
    """What makes a structurally valid results file acceptable on this board.

    Bench and protocol known (the protocol with this javisbench's version and fingerprint),
    every official metric that applies to the bench scored or skipped with a reason, provenance
    present (javisbench and library versions, the encoders behind every scored metric with the
    sha256 of their weights).
    """
    from javisbench.protocol import PROTOCOLS
    from javisbench.suite import METRICS

    p: list[str] = []
    bench, proto = data["bench"], data["protocol"]
    kb = known_benches().get(bench["name"].lower())
    if kb is None:
        p.append(f"bench.name: {bench['name']!r} is not a bench this board ranks (known: "
                 f"{', '.join(b.name for b in known_benches().values())})")
    else:
        if kb.sha256 is not None and bench["manifest_sha256"] != kb.sha256:
            p.append(f"bench.manifest_sha256: {bench['manifest_sha256'][:12]}... is not the identity of bench "
                     f"{kb.name} ({kb.sha256[:12]}...)")
        if kb.rows is not None and bench["n_rows"] != kb.rows:
            p.append(f"bench.n_rows: bench {kb.name} has {kb.rows} rows; this run scored {bench['n_rows']} "
                     "(partial runs are not ranked)")
    ref = PROTOCOLS.get(proto["name"])
    if ref is None:
        p.append(f"protocol.name: {proto['name']!r} is not a protocol of this javisbench (known: {', '.join(PROTOCOLS)})")
    else:
        if proto["version"] != ref.version:
            p.append(f"protocol.version: {proto['name']} v{proto['version']} is not this javisbench's v{ref.version}")
        else:
            # a field this javisbench added since the run is absent from the file (an older javisbench); a
            # value that differs, or a field this javisbench does not know, is another protocol
            mine = ref.values()
            diff = [f"{k}={_show(v)} (here {_show(mine[k])})" for k, v in sorted(proto["values"].items())
                    if k in mine and v != mine[k]]
            unknown = sorted(k for k in proto["values"] if k not in mine)
            if diff:
                p.append(f"protocol.values: differ from {proto['name']} v{ref.version}: {', '.join(diff[:8])}"
                         + (f" and {len(diff) - 8} more" if len(diff) > 8 else ""))
            if unknown:
                p.append(f"protocol.values: fields this javisbench does not know ({', '.join(unknown[:8])}): "
                         "made by a newer javisbench?")
    if protocol_fingerprint(proto["values"]) != proto["fingerprint"]:
        p.append("protocol.values: do not hash to protocol.fingerprint (edited after the run?)")

    overall, skipped = data["overall"], data.get("skipped") or {}
    applies = set(kb.metrics) if kb is not None and kb.metrics is not None else set(METRICS)
    for key, m in METRICS.items():
        if not m.official or key not in applies:
            continue
        cell = overall.get(key)
        scored = isinstance(cell, dict) and cell.get("value") is not None
        # every sample failed: the failures are the recorded reason
        all_failed = isinstance(cell, dict) and bool(cell.get("n_failed")) and bool(data.get("failures"))
        if not scored and not all_failed and not skipped.get(key):
            p.append(f"overall.{key}: official metric {key} is neither scored nor skipped with a reason")
    for key, c in overall.items():
        if c.get("value") is not None and key in skipped:
            p.append(f"overall.{key}: scored and also listed as skipped")

    if not data.get("libraries"):
        p.append("libraries: missing library versions (provenance)")
    encs = data["encoders"]
    scored_keys = [k for k, c in overall.items() if c.get("value") is not None]
    for key in scored_keys:
        for enc in METRICS[key].encoders:
            if enc not in encs:
                p.append(f"encoders.{enc}: missing (provenance of {key})")
                continue
            hashes = encs[enc].get("weights_sha256") or {}
            files = weight_files(enc)
            if files is None:       # encoder not importable here: at least one hash where weights are read
                if needs_weights(enc) and not hashes:
                    p.append(f"encoders.{enc}.weights_sha256: empty; {key} was scored with weights whose sha256 is "
                             "not recorded (provenance)")
                continue
            for name, official in files:
                if not hashes.get(name):
                    p.append(f"encoders.{enc}.weights_sha256.{name}: missing; {key} was scored with weights whose "
                             "sha256 is not recorded (provenance)")
                elif official and hashes[name] != official:
                    p.append(f"encoders.{enc}.weights_sha256.{name}: {hashes[name][:12]}... is not the official "
                             f"file's {official[:12]}...; {key} is not comparable with other entries")
    for what, why in sorted((data.get("unofficial_weights") or {}).items()):
        p.append(f"unofficial_weights.{what}: {why if isinstance(why, str) else 'recorded'} (scores from other weights "
                 "are not ranked)")
    return sorted(set(p), key=p.index)


def weight_files(encoder: str) -> list[tuple[str, str | None]] | None:
    """``(name, official sha256 or None)`` of every weight file ``encoder`` reads; None when the encoder
    cannot be looked up here."""
    try:
        from javisbench.encoders import encoder_class

        return [(wf.name, wf.sha256) for wf in encoder_class(encoder).weight_files]
    except Exception:  # noqa: BLE001 - an optional dependency missing: fall back to the metric table
        return None


# ---------------------------------------------------------------------------------------------
# identity and file names
# ---------------------------------------------------------------------------------------------
def identity(data: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """(model, bench, bench sha256, protocol, protocol version): one entry per identity."""
    return (unicodedata.normalize("NFC", data["model"]["name"].strip()), data["bench"]["name"],
            data["bench"]["manifest_sha256"], data["protocol"]["name"], data["protocol"]["version"])


def slug(s: str, limit: int = 40) -> str:
    """ASCII file-name part: letters, digits, ``.``, ``_``, ``-``; never empty, never hidden."""
    a = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    a = re.sub(r"[^a-z0-9._-]+", "-", a.lower()).strip("-._")
    return a[:limit].strip("-._") or "x"


def entry_filename(data: dict[str, Any]) -> str:
    """``<model>__<bench>__<protocol>-<12 hex of the identity>.json``: distinct identities never collide
    (names that slug alike differ in the hash)."""
    ident = identity(data)
    h = hashlib.sha256(json.dumps(list(ident), ensure_ascii=False).encode("utf-8")).hexdigest()[:12]
    return f"{slug(ident[0])}__{slug(ident[1], 24)}__{slug(ident[3], 24)}-{h}.json"
