"""Diffusion schedules, timestep samplers, classifier-free guidance and samplers (spec §0, §2.4).

Rectified flow, the suite-wide convention:
    noising       x_t = (1 − t)·x0 + t·ε,  t ∈ [0, 1]
    target        u = ε − x0
    Euler         x ← x − Δt·v̂  from t = 1 down to 0
    CFG           v̂ = v_u + w·(v_c − v_u), per modality
    shift         t' = s·t / (1 + (s − 1)·t)
(The JavisDiT code keeps the opposite sign internally — label x0 − ε, integrating with +dt; the
flow is the same.)

DDPM (MM-Diffusion): linear β schedule, ε-prediction, fixed-large variance; DDIM for fast sampling.

Multi-modal states are dicts ``{"video": Tensor, "audio": Tensor}``; every sampler also accepts a
single tensor.  Model functions receive the per-sample time as a ``(B,)`` tensor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar, Union

import torch

State = Union[torch.Tensor, dict[str, torch.Tensor]]
S = TypeVar("S", torch.Tensor, dict)


def _map(fn: Callable[..., torch.Tensor], *xs: Any) -> Any:
    """Apply ``fn`` leaf-wise over tensors or dicts of tensors with the same keys."""
    if isinstance(xs[0], Mapping):
        return {k: fn(*(x[k] for x in xs)) for k in xs[0]}
    return fn(*xs)


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) matching ``like``'s rank, dtype and device."""
    return t.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def _batch_size(x: State) -> int:
    return int(next(iter(x.values())).shape[0]) if isinstance(x, Mapping) else int(x.shape[0])


def _device(x: State) -> torch.device:
    return next(iter(x.values())).device if isinstance(x, Mapping) else x.device


# ---------------------------------------------------------------------------------------------
# rectified flow
# ---------------------------------------------------------------------------------------------
def flow_shift(t: torch.Tensor, shift: float) -> torch.Tensor:
    """``s·t / (1 + (s − 1)·t)``: maps [0,1] onto itself, pushes t toward 1 (more noise) for s > 1."""
    if shift == 1.0:
        return t
    return shift * t / (1.0 + (shift - 1.0) * t)


def javisdit_resolution_shift(height: int, width: int, frames: int) -> float:
    """JavisDiT's shift from resolution and length: ``sqrt(HW/512²)·sqrt(⌊frames/17⌋·5)`` (code);
    ``frames`` below 17 count as one chunk so tiny clips get a finite positive shift."""
    return math.sqrt(height * width / 512.0 ** 2) * math.sqrt(max(frames // 17, 1) * 5)


def sample_timesteps(n: int, kind: str = "logit_normal", loc: float = 0.0, scale: float = 1.0, shift: float = 1.0,
                     generator: torch.Generator | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` training times in (0, 1): ``uniform`` or ``logit_normal`` (σ(N(loc, scale²))), then shifted.

    Drawn on the CPU (``generator`` or the global RNG) and moved to ``device``.
    """
    if kind == "uniform":
        t = torch.rand(n, generator=generator)
    elif kind == "logit_normal":
        t = torch.sigmoid(loc + scale * torch.randn(n, generator=generator))
    else:
        raise ValueError(f"unknown timestep sampler {kind!r} (known: uniform, logit_normal)")
    return flow_shift(t, shift).to(device)


@dataclass
class RectifiedFlow:
    """Rectified-flow schedule with its training-time sampler and the sampling grid.

    ``train_shift`` and ``sample_shift`` are separate on purpose: the JavisDiT++ code shifts in
    training but may not at sampling (spec §0), so both phases are explicit.
    """

    sampler: str = "logit_normal"
    loc: float = 0.0
    scale: float = 1.0
    train_shift: float = 1.0
    sample_shift: float = 1.0

    def sample_t(self, n: int, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu") -> torch.Tensor:
        return sample_timesteps(n, self.sampler, self.loc, self.scale, self.train_shift, generator, device)

    @staticmethod
    def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = (1 − t)·x0 + t·ε, ``t`` (B,)."""
        tb = _bcast(t, x0)
        return (1.0 - tb) * x0 + tb * noise

    @staticmethod
    def target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Velocity target u = ε − x0."""
        return noise - x0

    @staticmethod
    def loss(pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared error to ε − x0; ``weight`` (broadcastable, e.g. a token mask) averages over
        its support only."""
        err = (pred - (noise - x0)) ** 2
        if weight is None:
            return err.mean()
        w = weight.to(err.dtype).expand_as(err)
        return (err * w).sum() / w.sum().clamp_min(1.0)

    def timesteps(self, num_steps: int, device: str | torch.device = "cpu", shift: float | None = None) -> torch.Tensor:
        """The sampling grid: ``num_steps + 1`` times from 1 to 0, shifted by ``sample_shift``."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        t = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
        return flow_shift(t, self.sample_shift if shift is None else shift).to(device=device, dtype=torch.float32)


def euler_sample(velocity_fn: Callable[[Any, torch.Tensor], Any], x: S, timesteps: torch.Tensor,
                 callback: Callable[[int, Any], None] | None = None) -> S:
    """Integrate dx/dt = v from ``timesteps[0]`` to ``timesteps[-1]``: ``x ← x + (t_{i+1} − t_i)·v(x, t_i)``.

    With a decreasing grid this is ``x ← x − Δt·v̂``.  ``velocity_fn(x, t (B,))`` returns the same
    structure as ``x``; exact for velocity fields constant along the path (e.g. linear flows).
    """
    b = _batch_size(x)
    for i in range(len(timesteps) - 1):
        t, t_next = timesteps[i], timesteps[i + 1]
        v = velocity_fn(x, t.expand(b).to(_device(x)))
        dt = float(t_next - t)
        x = _map(lambda xi, vi: xi + dt * vi.to(xi.dtype), x, v)
        if callback is not None:
            callback(i, x)
    return x


class GuidedVelocity:
    """Classifier-free guidance around a conditional model function.

    ``model_fn(x, t, cond) -> {"video": v, "audio": v}``.  Per modality m with scale w_m:
    ``v̂_m = v_u + w_m·(v_c − v_u)``.

    * ``mode="joint"``: ``null`` is one condition (every modality's condition dropped at once); one
      unconditional pass.
    * ``mode="separate"``: ``null`` maps each modality to the condition with only *its* caption
      dropped (BridgeDiT's per-tower null prompts); one unconditional pass per guided modality.

    Modalities whose scale is 1 skip their unconditional pass.  :attr:`nfe` counts model calls.
    """

    def __init__(self, model_fn: Callable[[Any, torch.Tensor, Any], dict[str, torch.Tensor]], cond: Any, null: Any,
                 scales: Mapping[str, float], mode: str = "joint") -> None:
        if mode not in ("joint", "separate"):
            raise ValueError(f"unknown CFG mode {mode!r} (known: joint, separate)")
        if mode == "separate" and not isinstance(null, Mapping):
            raise ValueError("CFG mode 'separate' needs null = {modality: condition with that caption dropped}")
        self.model_fn, self.cond, self.null, self.scales, self.mode = model_fn, cond, null, dict(scales), mode
        self.nfe = 0

    def _call(self, x: Any, t: torch.Tensor, cond: Any) -> dict[str, torch.Tensor]:
        self.nfe += 1
        return self.model_fn(x, t, cond)

    def __call__(self, x: Any, t: torch.Tensor) -> dict[str, torch.Tensor]:
        v_c = self._call(x, t, self.cond)
        guided = [m for m in v_c if self.scales.get(m, 1.0) != 1.0]
        if not guided:
            return v_c
        out = dict(v_c)
        if self.mode == "joint":
            v_u = self._call(x, t, self.null)
            for m in guided:
                out[m] = v_u[m] + self.scales[m] * (v_c[m] - v_u[m])
        else:
            for m in guided:
                v_u = self._call(x, t, self.null[m])
                out[m] = v_u[m] + self.scales[m] * (v_c[m] - v_u[m])
        return out


# ---------------------------------------------------------------------------------------------
# DDPM / DDIM (MM-Diffusion)
# ---------------------------------------------------------------------------------------------
class DDPMSchedule:
    """Discrete diffusion schedule ``q(x_t | x0) = N(√ᾱ_t·x0, (1 − ᾱ_t)·I)``, t ∈ {0..num_steps−1}.

    Args:
        num_steps: training steps (1000 in MM-Diffusion); kind: "linear" (β from ``beta_start`` to
        ``beta_end``, scaled by 1000/num_steps as in improved-diffusion) or "cosine";
        variance: "fixed_large" (β_t, with the first step's posterior variance, as MM-Diffusion)
        or "fixed_small" (the posterior variance).
    Constants are float64; results are cast to the input dtype.
    """

    def __init__(self, num_steps: int = 1000, kind: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02,
                 variance: str = "fixed_large") -> None:
        # the tables are plain CPU constants, also when the model is built under a meta-device
        # context (parameter counting): they are never parameters
        with torch.device("cpu"):
            if kind == "linear":
                sc = 1000.0 / num_steps
                betas = torch.linspace(sc * beta_start, sc * beta_end, num_steps, dtype=torch.float64)
            elif kind == "cosine":
                s = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
                f = torch.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
                betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
            else:
                raise ValueError(f"unknown beta schedule {kind!r} (known: linear, cosine)")
            if variance not in ("fixed_large", "fixed_small"):
                raise ValueError(f"unknown DDPM variance {variance!r} (known: fixed_large, fixed_small)")
            self.num_steps, self.kind, self.variance = num_steps, kind, variance
            self.betas = betas
            self.alphas_cumprod = torch.cumprod(1.0 - betas, 0)
            prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
            self.alphas_cumprod_prev = prev
            self.posterior_variance = betas * (1.0 - prev) / (1.0 - self.alphas_cumprod)
            self.posterior_mean_coef1 = betas * prev.sqrt() / (1.0 - self.alphas_cumprod)
            self.posterior_mean_coef2 = (1.0 - prev) * (1.0 - betas).sqrt() / (1.0 - self.alphas_cumprod)

    def _at(self, arr: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return _bcast(arr[t.long().cpu()], like)

    def sample_t(self, n: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
        """Uniform integer steps (n,) in [0, num_steps)."""
        return torch.randint(0, self.num_steps, (n,), generator=generator).to(device)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε."""
        a = self._at(self.alphas_cumprod, t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self._at(self.alphas_cumprod, t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def ddpm_step(self, x_t: torch.Tensor, eps: torch.Tensor, t: int, noise: torch.Tensor | None,
                  clip_x0: float | None = None) -> torch.Tensor:
        """One ancestral step x_t -> x_{t−1} (no noise at t = 0)."""
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long)
        x0 = self.predict_x0(x_t, eps, tt)
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
        mean = self._at(self.posterior_mean_coef1, tt, x_t) * x0 + self._at(self.posterior_mean_coef2, tt, x_t) * x_t
        if t == 0:
            return mean
        if self.variance == "fixed_large":      # improved-diffusion: [posterior_var[1], β_1, β_2, ...]
            var = self.betas[t]
        else:
            var = self.posterior_variance[t]
        assert noise is not None, "ddpm_step needs noise for t > 0"
        return mean + float(var) ** 0.5 * noise

    def ddim_timesteps(self, num_steps: int) -> list[int]:
        """Evenly spaced steps, descending, ``num_steps`` of them (the last one is 0)."""
        if not 1 <= num_steps <= self.num_steps:
            raise ValueError(f"DDIM num_steps must be in [1, {self.num_steps}], got {num_steps}")
        ts = torch.linspace(0, self.num_steps - 1, num_steps, dtype=torch.float64).round().long().tolist()
        return sorted(set(int(t) for t in ts), reverse=True)

    def ddim_step(self, x_t: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, eta: float = 0.0,
                  noise: torch.Tensor | None = None, clip_x0: float | None = None) -> torch.Tensor:
        """DDIM update x_t -> x_{t_prev} (t_prev = −1 means the clean end, ᾱ = 1)."""
        a_t = float(self.alphas_cumprod[t])
        a_p = float(self.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
        x0 = (x_t - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
            eps = (x_t - a_t ** 0.5 * x0) / (1 - a_t) ** 0.5
        sigma = eta * ((1 - a_p) / (1 - a_t) * (1 - a_t / a_p)) ** 0.5
        out = a_p ** 0.5 * x0 + max(1 - a_p - sigma ** 2, 0.0) ** 0.5 * eps
        if sigma > 0:
            assert noise is not None, "ddim_step with eta > 0 needs noise"
            out = out + sigma * noise
        return out


def ddim_sample(eps_fn: Callable[[Any, torch.Tensor], Any], x: S, schedule: DDPMSchedule, num_steps: int,
                eta: float = 0.0, generator: torch.Generator | None = None, clip_x0: float | None = None) -> S:
    """DDIM from pure noise ``x`` (at step num_steps − 1) to x0; ``eps_fn(x, t (B,) long)``."""
    ts = schedule.ddim_timesteps(num_steps)
    b = _batch_size(x)
    dev = _device(x)
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        eps = eps_fn(x, torch.full((b,), t, dtype=torch.long, device=dev))
        def step(xi: torch.Tensor, ei: torch.Tensor) -> torch.Tensor:
            nz = torch.randn(xi.shape, generator=generator).to(xi) if eta > 0 else None
            return schedule.ddim_step(xi, ei, t, t_prev, eta, nz, clip_x0)
        x = _map(step, x, eps)
    return x


def ddpm_sample(eps_fn: Callable[[Any, torch.Tensor], Any], x: S, schedule: DDPMSchedule,
                generator: torch.Generator | None = None, clip_x0: float | None = None) -> S:
    """Ancestral DDPM over all ``schedule.num_steps`` steps."""
    b = _batch_size(x)
    dev = _device(x)
    for t in range(schedule.num_steps - 1, -1, -1):
        eps = eps_fn(x, torch.full((b,), t, dtype=torch.long, device=dev))
        def step(xi: torch.Tensor, ei: torch.Tensor) -> torch.Tensor:
            nz = torch.randn(xi.shape, generator=generator).to(xi) if t > 0 else None
            return schedule.ddpm_step(xi, ei, t, nz, clip_x0)
        x = _map(step, x, eps)
    return x
