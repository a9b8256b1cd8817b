"""SynthAV captions (spec §3.4): a template grammar over a closed vocabulary.

Three per clip: the joint caption (all models), a video-only caption with no sound words and an
audio-only caption with no colours, shapes or positions.  Optional ``timed`` mode adds
"at about 1.5 s" to the first event.
"""
from __future__ import annotations

from reference_models.synthav.scene import Scene

_STYLE = {"camera_shooting": "Camera footage of a", "animate_2d": "A flat cartoon", "animate_3d": "A 3D-rendered"}
_NOUN = {"disc": "ball", "square": "block", "triangle": "cone", "star": "star", "face": "face", "bird": "bird",
         "car": "car", "gear": "gear", "piston": "piston", "bell": "bell"}
_FIELD = {"natural": "rain", "urban": "snow", "living": "dust", "industrial": "sparks", "virtual": "glowing particles"}
_FIELD_PLURAL = {"sparks", "glowing particles"}
_VERB = {"impact": "bounces", "note": "hops", "pulse": "swells and glows", "call": "opens its beak", "spin": "spins", "talk": "moves its mouth"}
_SOUND = {"impact": ("a sharp knock", "sharp knocks"), "note": ("a bright note", "bright notes"),
          "pulse": ("a pulsing tone", "pulsing tones"),
          "call": ("a chirp", "chirps"), "spin": ("a whirring hum", "whirring hums"),
          "talk": ("a babbling voice", "babbling voices"), "ambient": ("a gust of noise", "gusts of noise")}
_BED = {"rain": "faint rain", "traffic": "distant traffic", "room": "quiet room tone", "machine": "a low machine drone",
        "pad": "a soft synth pad"}
_TIMES = {1: "once", 2: "twice", 3: "three times"}
_NUM = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def _times(n: int) -> str:
    return _TIMES.get(n, f"{_NUM.get(n, str(n))} times")


def _when(t: float, duration: float) -> str:
    return "at the start" if t < duration / 3 else "midway" if t < 2 * duration / 3 else "near the end"


def _runs(scene: Scene) -> list[tuple[int, int, float]]:
    """Consecutive events of the same source merged: (source, count, first time)."""
    runs: list[list] = []
    for e in scene.events:
        t = e.t_visual if e.t_visual is not None else e.t_audio
        if e.t_visual is None:      # a phantom sound is not part of the description
            continue
        if runs and runs[-1][0] == e.source:
            runs[-1][1] += 1
        else:
            runs.append([e.source, 1, t])
    return [tuple(r) for r in runs]  # type: ignore[misc]


def make_captions(scene: Scene, timed: bool = False) -> tuple[str, str, str]:
    """``(joint, video_only, audio_only)`` captions of a scene."""
    keys = scene.labels.keys()
    scen, temporal = keys["event_scenario"], keys["temporal"]
    srcs = scene.sources

    field_noun = _FIELD[scen]
    plural = field_noun in _FIELD_PLURAL

    def obj(i: int) -> str:
        s = srcs[i]
        if s.shape == "field":
            return f"the {field_noun}"
        if not s.visible:
            return f"an unseen {_NOUN[s.shape]}"
        return f"{'an' if s.colour[0] in 'aeiou' else 'a'} {s.colour} {_NOUN[s.shape]}"

    def video_clause(i: int, n: int) -> str:
        s = srcs[i]
        if s.kind == "ambient":
            return f"the {field_noun} {'thicken' if plural else 'thickens'} {_times(n)}"
        return f"{obj(i)} {_VERB[s.kind]} {_times(n)}"

    def audio_noun(i: int, n: int) -> str:
        one, many = _SOUND[srcs[i].kind]
        return one if n == 1 else f"{_NUM.get(n, str(n))} {many}"

    def joint_clause(i: int, n: int) -> str:
        s = srcs[i]
        one, many = _SOUND[s.kind]
        snd = one if n == 1 else many
        where = " off-screen" if not s.visible else ""
        if s.kind == "ambient":
            return f"the {field_noun} {'swell' if plural else 'swells'} {_times(n)} with {snd}{where}"
        if not s.visible:
            return f"{obj(i)} makes {audio_noun(i, n)}{where}"
        return f"{obj(i)} {_VERB[s.kind]} {_times(n)} with {snd}"

    runs = _runs(scene)
    if temporal == "simultaneous_events":
        counts: dict[int, int] = {}
        for src, n, _ in runs:
            counts[src] = counts.get(src, 0) + n
        order = list(counts)
        seen = [i for i in order if srcs[i].visible]
        vj = (" while ".join(video_clause(i, counts[i]) for i in seen) + (" at the same time" if len(seen) > 1 else "")) \
            if seen else "nothing visible happens"
        jj = " while ".join(joint_clause(i, counts[i]) for i in order) + " at the same time"
        aj = " together with ".join(audio_noun(i, counts[i]) for i in order) + ", overlapping"
    else:
        lead = "first " if len(runs) > 1 else ""
        vruns = [(i, n) for i, n, _ in runs if srcs[i].visible]
        vj = (("first " if len(vruns) > 1 else "") + ", then ".join(video_clause(i, n) for i, n in vruns)) \
            if vruns else "nothing visible happens"
        jj = lead + ", then ".join(joint_clause(i, n) for i, n, _ in runs)
        aj = (lead.capitalize() if lead else "") + ", followed by ".join(audio_noun(i, n) for i, n, _ in runs)
    if runs:
        t0 = runs[0][2]
        when = f"at about {t0:.1f} s" if timed else _when(t0, scene.duration)
        jj, aj = f"{when}, {jj}", f"{when}, {aj[0].lower()}{aj[1:]}"
        if not vj.startswith("nothing"):
            vj = f"{when}, {vj}"
    quiet = [i for i, s in enumerate(srcs) if s.visible and s.shape != "field" and not any(e.source == i for e in scene.events)]
    extra_v = "".join(f", and {obj(i)} {'drifts across' if srcs[i].kind == 'silent' else 'stays still'}" for i in quiet)
    extra_j = "".join(f", and {obj(i)} {'drifts across silently' if srcs[i].kind == 'silent' else 'stays silent'}" for i in quiet)
    prefix = f"{_STYLE[keys['visual_style']]} {scene.scenario_word}"
    joint = f"{prefix}: {jj}{extra_j}."
    video = f"{prefix}; {vj}{extra_v}."
    audio = aj[0].upper() + aj[1:]
    if scene.bed:
        audio += f", over {_BED[scene.bed]}"
    audio += "."
    return joint, video, audio


def vocabulary() -> list[str]:
    """Every word or punctuation token the caption grammar can emit (sorted): the string literals of
    this module and the scene's word lists, split like the text encoder splits (digits included)."""
    import ast
    import inspect
    import re
    import sys

    from reference_models.synthav import scene as scene_mod

    texts: list[str] = [str(d) for d in "0123456789"]
    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    texts += [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    texts += list(scene_mod.COLOURS) + [w for ws in scene_mod._SCENARIO_WORDS.values() for w in ws]
    return sorted({w for t in texts for w in re.findall(r"[a-z0-9]+|[^\sa-z0-9]", t.lower())})
