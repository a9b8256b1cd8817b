"""SynthAV video rendering: scenario backgrounds, three visual styles, shapes and event looks.

Frames are drawn on a 2× supersampled grid and box-averaged to the output size.  Every event's
visible part ("active look") starts at its ``visual_onset_frame`` = ``ceil(t_visual·fps)``: the
source brightens and does its kind's action (a squash on contact, a hop, an open beak, a moving
mouth, a turning gear, a denser particle field) on every frame whose time lies in
``[t_visual, t_visual + duration)``.  Motion that leads to the event (a ball falling) is part of
the trajectory and starts earlier.
"""
from __future__ import annotations

import math

import numpy as np

from reference_models.synthav.scene import COLOURS, Scene, Source

SS = 2   # supersampling factor


def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int = 6) -> np.ndarray:
    """Smooth noise in [0,1] (bilinear interpolation of a coarse random grid)."""
    g = rng.random((cells + 1, cells + 1))
    ys, xs = np.linspace(0, cells, h), np.linspace(0, cells, w)
    y0, x0 = np.minimum(ys.astype(int), cells - 1), np.minimum(xs.astype(int), cells - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a, b = g[y0][:, x0], g[y0][:, x0 + 1]
    c, d = g[y0 + 1][:, x0], g[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def background(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """(H·SS, W·SS, 3) float in [0,1] for the scene's scenario and style."""
    h, w = scene.height * SS, scene.width * SS
    yy = np.linspace(0, 1, h)[:, None, None]
    xx = np.linspace(0, 1, w)[None, :, None]
    scen = scene.labels.keys()["event_scenario"]
    style = scene.labels.keys()["visual_style"]
    img = np.zeros((h, w, 3))
    if scen == "natural":
        sky = np.array([0.55, 0.75, 0.95]) * (0.85 + 0.15 * (1 - yy))
        grass = np.array([0.25, 0.6, 0.25]) * (0.8 + 0.2 * yy)
        img = np.where(yy < 0.6, sky, grass)
    elif scen == "urban":
        bld = np.array([0.55, 0.55, 0.6]) * (0.7 + 0.3 * (np.floor(xx * 5) % 2))
        road = np.broadcast_to(np.array([0.3, 0.3, 0.32]), (h, w, 3))
        img = np.where(yy < 0.45, bld, road)
        stripe = (np.abs(yy - 0.8) < 0.02) & ((xx * 6) % 1 < 0.5)
        img = np.where(stripe, np.array([0.95, 0.95, 0.9]), img)
    elif scen == "living":
        wall = np.array([0.85, 0.72, 0.55]) * np.ones_like(yy)
        floor = np.array([0.5, 0.33, 0.2]) * np.ones_like(yy)
        img = np.where(yy < 0.85, wall, floor) * np.ones_like(xx)
        win = (np.abs(yy - 0.25) < 0.12) & (np.abs(xx - 0.2) < 0.1)
        img = np.where(win, np.array([0.7, 0.85, 0.95]), img)
    elif scen == "industrial":
        img = np.array([0.28, 0.32, 0.38]) * (0.9 + 0.1 * np.sin(xx * 40)) * np.ones_like(yy)
        hz = (yy > 0.9) & (((xx + yy) * 8) % 1 < 0.5)
        img = np.where(hz, np.array([0.9, 0.8, 0.1]), np.where(yy > 0.9, np.array([0.05, 0.05, 0.05]), img))
    else:   # virtual
        img = np.array([0.12, 0.05, 0.22]) * (0.8 + 0.4 * yy) * np.ones_like(xx)
        grid = ((xx * 8) % 1 < 0.08) | ((yy * 8) % 1 < 0.08)
        img = np.where(grid, np.array([0.1, 0.85, 0.9]), img)
    img = np.broadcast_to(img, (h, w, 3)).astype(np.float64).copy()
    if style == "camera_shooting":
        tex = _value_noise(rng, h, w)[..., None]
        img *= 0.85 + 0.3 * tex
        r2 = (yy - 0.5) ** 2 + (xx - 0.5) ** 2
        img *= 1.0 - 0.6 * r2
    elif style == "animate_3d":
        img *= 0.75 + 0.35 * (1 - yy) * np.ones_like(xx)
    return np.clip(img, 0, 1)


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float, phase: float, open_: float) -> np.ndarray:
    """Boolean mask of a shape of radius ``r`` centred at (0,0); ``dx``, ``dy`` pixel offsets."""
    d = np.hypot(dx, dy)
    th = np.arctan2(dy, dx)
    if shape == "disc":
        return d < r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) < 0.85 * r
    if shape == "triangle":
        return (dy < 0.8 * r) & (np.abs(dx) < (dy + r) * 0.55) & (dy > -r)
    if shape == "star":
        return d < r * (0.6 + 0.4 * np.cos(5 * (th - phase)))
    if shape == "gear":
        teeth = 0.78 + 0.22 * (np.cos(8 * (th - phase)) > 0)
        return (d < r * teeth) & (d > 0.3 * r)
    if shape == "piston":
        return (np.abs(dx) < 0.45 * r) & (np.abs(dy) < r)
    if shape == "bell":
        return (dy < 0.7 * r) & (dy > -r) & (np.abs(dx) < 0.45 * r + 0.4 * (dy + r) * 0.6) | ((d < 0.25 * r) & (dy > 0.7 * r))
    if shape == "car":
        body = (np.abs(dx) < 1.2 * r) & (np.abs(dy) < 0.4 * r)
        roof = (np.abs(dx) < 0.6 * r) & (dy < -0.3 * r) & (dy > -0.8 * r)
        wheels = (np.hypot(dx - 0.7 * r, dy - 0.45 * r) < 0.3 * r) | (np.hypot(dx + 0.7 * r, dy - 0.45 * r) < 0.3 * r)
        return body | roof | wheels
    if shape == "bird":
        body = (dx / (1.1 * r)) ** 2 + (dy / (0.7 * r)) ** 2 < 1
        gap = 0.05 + 0.5 * open_
        beak = (dx > 0.9 * r) & (dx < 1.6 * r) & (np.abs(dy) < 0.35 * r * (1.6 * r - dx) / (0.7 * r)) & ~(
            np.abs(dy) < gap * 0.35 * r * (1.6 * r - dx) / (0.7 * r))
        return body | beak
    if shape == "face":
        head = d < r
        mouth = (np.abs(dx) < 0.45 * r) & (np.abs(dy - 0.4 * r) < 0.05 * r + 0.3 * r * open_)
        eyes = (np.hypot(np.abs(dx) - 0.38 * r, dy + 0.3 * r) < 0.14 * r)
        return head & ~mouth & ~eyes
    raise ValueError(f"unknown shape {shape!r}")


def _impact_height(t: float, contacts: list[float]) -> float:
    """Height above the resting row (0..1 of the bounce height) of a ball whose contacts are known."""
    if not contacts:
        return 0.0
    fall = 0.45
    if t <= contacts[0]:
        u = (t - (contacts[0] - fall)) / fall
        return 1.0 if u < 0 else 1.0 - u * u
    for a, b in zip(contacts, contacts[1:]):
        if a <= t <= b:
            u = (t - a) / (b - a)
            return 4 * u * (1 - u) * min(1.0, (b - a) / 0.9)
    u = (t - contacts[-1]) / fall
    return 0.5 * 4 * u * (1 - u) if u < 1 else 0.0


def render_video(scene: Scene, mute_visual: frozenset[int] | set[int] = frozenset()) -> np.ndarray:
    """(T, H, W, 3) uint8 frames.  ``mute_visual``: event indices whose active look is not drawn
    (trajectories are unchanged), for counterfactual checks of the stored onset frames."""
    rng = np.random.default_rng([scene.seed, 31])
    style = scene.labels.keys()["visual_style"]
    bg = background(scene, rng)
    h, w = bg.shape[:2]
    n_frames = int(round(scene.duration * scene.fps))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = np.empty((n_frames, scene.height, scene.width, 3), np.uint8)
    contacts = {i: sorted(e.t_visual for e in scene.events if e.source == i and e.kind == "impact" and e.t_visual is not None)
                for i in range(len(scene.sources))}
    particles = np.random.default_rng([scene.seed, 53]).random((60, 3))
    shake = np.random.default_rng([scene.seed, 59]).integers(-1, 2, size=(n_frames, 2))
    for f in range(n_frames):
        t = f / scene.fps
        fr = np.random.default_rng([scene.seed, 61, f])
        img = bg.copy()
        for si, s in enumerate(scene.sources):
            if not s.visible:
                continue
            act = [e for k, e in enumerate(scene.events) if e.source == si and k not in mute_visual
                   and e.t_visual is not None and e.t_visual <= t + 1e-9 < e.t_visual + e.duration]
            a = act[0] if act else None
            col = np.array(COLOURS[s.colour], np.float64) / 255.0
            if a is not None:
                col = col + 0.55 * (1.0 - col)                       # the event flash
            if s.shape == "field":
                level = 0.25 + (0.75 if a is not None else 0.0)
                n = int(level * len(particles))
                for (px, py, pv) in particles[:n]:
                    x0 = (px + 0.1 * t) % 1.0 * w
                    y0 = (py + (0.5 + pv) * t) % 1.0 * h
                    m = (np.abs(xx - x0) < 0.6 * SS) & (yy >= y0) & (yy < y0 + 3 * SS)
                    img[m] = col
                continue
            x = s.x + s.vx * t
            x = 0.12 + abs(((x - 0.12) % 1.52) - 0.76) if not 0.12 <= x <= 0.88 else x
            y = s.y
            r = s.size * w
            sx, sy = 1.0, 1.0
            phase, open_ = 0.0, 0.0
            if s.kind == "impact":
                y -= 0.16 * _impact_height(t, contacts[si])
                if a is not None:
                    sx, sy = 1.3, 0.7
            elif s.kind == "note" and a is not None:
                y -= 0.05
            elif s.kind == "pulse" and a is not None:       # size follows the sound's swell
                grow = 1.0 + 0.35 * (0.55 + 0.45 * math.cos(2 * math.pi * 3.0 * (t - a.t_visual)))
                sx, sy = grow, grow
            elif s.kind == "spin":
                on = [e for e in scene.events if e.source == si and e.t_visual is not None and e.t_visual <= t]
                spun = sum(min(t, e.t_visual + e.duration) - e.t_visual for e in on)
                phase = 2 * math.pi * 1.5 * spun                 # turns only while its events run
            elif s.kind == "call" and a is not None:
                open_ = 1.0
            elif s.kind == "talk" and a is not None:
                open_ = abs(math.cos(math.pi * 4 * (t - a.t_visual)))
            cx, cy = x * w, y * h
            dx, dy = (xx - cx) / sx, (yy - cy) / sy
            m = _shape_mask(s.shape, dx, dy, r, phase, open_)
            if style == "animate_3d":
                shadow = ((xx - cx - 0.3 * r) / (1.1 * r)) ** 2 + ((yy - (s.y * h + r)) / (0.3 * r)) ** 2 < 1
                img[shadow & ~m] *= 0.55
                shade = np.clip(1.0 - 0.35 * (dx + dy) / (2 * r), 0.5, 1.25)[..., None]
                spec = (np.hypot(dx + 0.35 * r, dy + 0.35 * r) < 0.25 * r)[..., None]
                body = np.clip(col * shade + 0.5 * spec, 0, 1)
                img = np.where(m[..., None], body, img)
            elif style == "animate_2d":
                ring = _shape_mask(s.shape, dx * r / (r + 1.2 * SS), dy * r / (r + 1.2 * SS), r, phase, open_) & ~m
                img[ring] = 0.0
                img[m] = col
            else:
                soft = (0.85 + 0.15 * np.clip(1 - dy / r, 0, 2) / 2)[..., None]
                img = np.where(m[..., None], col * soft, img)
        if style == "camera_shooting":
            img = np.roll(img, tuple(int(v) for v in shake[f]), axis=(0, 1))
            img = img + fr.normal(0, 0.015, img.shape)
        small = img.reshape(scene.height, SS, scene.width, SS, 3).mean(axis=(1, 3))
        frames[f] = np.clip(np.round(small * 255.0), 0, 255).astype(np.uint8)
    return frames
