"""The sample as its own thermometer: the film's step response read from the recording.

Two thermometers, both independent of any separate calibration run:

- **The image.** Right after a jump every particle dims together, inert ones too: the
  substrate's refractive index changes with its temperature and moves the focus by an
  amount proportional to the temperature rise r, so the common-mode intensity is
  D(r) = 1 / (1 + (g r)^2) (a Lorentzian focus curve; g is the defocus per kelvin over the
  Rayleigh range). Within a cycle the common mode is relative to a level taken over a few
  frames before the jump, which the light source's slow drift moves, so each cycle's level
  is left free: the model is log c_k = log D(r_k) + a_cycle.
- **The film's resistance.** Where the DAQ recorded the film's drive and current, R = V/I
  and R(T) = R0 (1 + alpha (T - T0)) give the film temperature of every heated frame.

Either is fitted with the film's step response, a sum of two exponentials
r(s) = (Tset - T0) (1 - w exp(-s / tau1) - (1 - w) exp(-s / tau2)) driven by the setpoints of
the whole recording (so the relaxation on cooling, and what is left of it at the next jump,
are part of the model), averaged over each frame's exposure. Parameters are
theta = (logit w, ln tau1, ln tau2) and, for the image, ln g. The image's noise is not
white: the light source drifts over seconds, as slowly as a thick coverslip relaxes. Its
fit is therefore generalised least squares: a first fit gives residuals, their
autocovariance an ARMA(1, 1) model (white flicker plus an exponentially correlated drift),
and the second fit whitens the residuals by it, so a drift lasting many frames weighs as
the one independent value it is (on simulated common modes of a film three times slower
than the default, this cuts the error of the inferred response by about 40 %). The
covariance of the parameters is estimated by a jackknife over groups of cycles, which keeps
whatever the noise model misses in the error bars.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, signal

from tjump.analysis.events import Cycle
from tjump.analysis.kinetics import Response

FloatArray = NDArray[np.float64]

JACKKNIFE_GROUPS = 24
# starting points (w, tau1, tau2): from a film much faster to much slower than a typical one
_STARTS = [
    (w, t1, t2)
    for w in (0.5, 0.8)
    for t1 in (0.05, 0.3, 1.5)
    for t2 in (3.0, 12.0, 40.0)
    if t2 > 2 * t1
]


@dataclass(frozen=True)
class InferredResponse:
    """A step response fitted to one thermometer, with its uncertainty."""

    source: str  # "image" (common-mode focal drift) or "film resistance" (V/I)
    theta: FloatArray  # (logit w, ln tau1, ln tau2)
    covariance: FloatArray  # of theta (3 x 3)
    rms: float  # residual rms of the fit (relative intensity, or K)
    jumps: int
    scale: float  # image: defocus per kelvin g; film resistance: reached fraction of the step

    @property
    def response(self) -> Response:
        return to_response(self.theta)

    def fraction_at(self, s: FloatArray) -> FloatArray:
        """Fraction of a step reached `s` seconds after it."""
        return step_fraction(self.response, s)

    def fraction_error_at(self, s: FloatArray) -> FloatArray:
        """Standard error of `fraction_at` (propagated through the covariance)."""
        grads = np.stack(
            [
                (step_fraction(to_response(self.theta + h), s) - self.fraction_at(s)) / 1e-4
                for h in np.eye(3) * 1e-4
            ],
            axis=1,
        )
        var = np.einsum("ki,ij,kj->k", grads, self.covariance, grads)
        return np.asarray(np.sqrt(np.clip(var, 0.0, None)))

    def directions(self) -> list[FloatArray]:
        """One-standard-deviation perturbations of theta along the covariance's principal
        axes (their effects add in quadrature)."""
        values, vectors = np.linalg.eigh(self.covariance)
        return [vectors[:, i] * np.sqrt(values[i]) for i in range(len(values)) if values[i] > 1e-12]

    def as_dict(self) -> dict[str, Any]:
        grid = np.array([0.1, 1.0, 10.0, 30.0])
        frac, err = self.fraction_at(grid), self.fraction_error_at(grid)
        return {
            "source": self.source,
            "components": [{"weight": round(w, 4), "tau_s": round(t, 4)} for w, t in self.response],
            "fraction_of_step": {
                f"{s:g}_s": {"value": round(float(f), 4), "stderr": round(float(e), 4)}
                for s, f, e in zip(grid, frac, err, strict=True)
            },
            "theta": [float(v) for v in self.theta],
            "theta_covariance": [[float(v) for v in row] for row in self.covariance],
            "fit_rms": self.rms,
            "jumps": self.jumps,
            ("defocus_per_K" if self.source == "image" else "fraction_of_setpoint_rise"): (
                self.scale
            ),
        }


def to_response(theta: FloatArray) -> Response:
    """(logit w, ln tau1, ln tau2) -> ((w, tau1), (1 - w, tau2)), fast component first."""
    w = float(1.0 / (1.0 + np.exp(-theta[0])))
    t1, t2 = float(np.exp(theta[1])), float(np.exp(theta[2]))
    pairs = [(w, t1), (1.0 - w, t2)]
    return tuple(sorted(pairs, key=lambda p: p[1]))


def from_response(response: Response) -> FloatArray:
    """The inverse of `to_response` for a two-component response."""
    (w, t1), (_, t2) = sorted(response, key=lambda p: p[1])
    w = float(np.clip(w, 1e-4, 1 - 1e-4))
    return np.array([np.log(w / (1 - w)), np.log(t1), np.log(t2)])


def step_fraction(response: Response, s: FloatArray) -> FloatArray:
    """Fraction of a step reached `s` seconds after it."""
    s = np.asarray(s, dtype=np.float64)
    return np.asarray(1.0 - sum(w * np.exp(-s / tau) for w, tau in response))


def exposure_rise(
    time_s: FloatArray,
    setpoint_K: FloatArray,
    response: Response,
    ambient_K: float,
    exposure_s: float,
) -> FloatArray:
    """The film's rise above ambient averaged over each frame's exposure [t_k, t_k + e], for
    a setpoint held constant over each frame period (it changes on frame edges)."""
    period = float(np.median(np.diff(time_s)))
    rise = np.asarray(setpoint_K, dtype=np.float64) - ambient_K
    total = np.zeros(len(time_s))
    e = max(min(exposure_s, period), 1e-6)
    for weight, tau in response:
        a = float(np.exp(-period / tau))
        start = signal.lfilter([0.0, (1.0 - a) * weight], [1.0, -a], rise)
        target = weight * rise
        mean_decay = tau / e * (1.0 - np.exp(-e / tau))
        total += target + (start - target) * mean_decay
    return total


# -- the image thermometer --------------------------------------------------------------------


@dataclass(frozen=True)
class _Segments:
    """The frames of the common mode the image fit uses, cut where its normalisation
    changes: segment j is cycle j's [pre_first, next cycle's pre_first), the frames the
    common mode divided by cycle j's levels."""

    bounds: list[tuple[int, int]]

    @property
    def index(self) -> NDArray[np.intp]:
        return np.concatenate([np.arange(a, b) for a, b in self.bounds])

    @property
    def cycle(self) -> NDArray[np.intp]:
        return np.concatenate([np.full(b - a, j) for j, (a, b) in enumerate(self.bounds)])


def _segments(cycles: list[Cycle], frames: int) -> _Segments:
    bounds = []
    for j, c in enumerate(cycles):
        end = cycles[j + 1].pre_first if j + 1 < len(cycles) else min(c.end, frames)
        if end - c.pre_first >= 4:
            bounds.append((c.pre_first, end))
    return _Segments(bounds)


@dataclass(frozen=True)
class NoiseModel:
    """The common mode's noise in log intensity: white (the light source's frame-to-frame
    flicker, the particles' shot noise) plus a slow part relaxing with `phi` per frame (the
    light source's drift), as an ARMA(1, 1) process; `whiten` turns a stretch of it into
    independent values of equal variance, so slow drift does not weigh as much as its
    number of frames."""

    phi: float  # AR coefficient of the slow part (0: no slow part)
    psi: float  # MA coefficient of the differenced series

    def whiten(self, values: FloatArray) -> FloatArray:
        return np.asarray(signal.lfilter([1.0, -self.phi], [1.0, self.psi], values))


WHITE = NoiseModel(0.0, 0.0)


def estimate_noise(residual: FloatArray, which: NDArray[np.intp], lags: int = 40) -> NoiseModel:
    """An ARMA(1, 1) noise model (white plus an exponentially correlated part) from the
    autocovariances of fit residuals within segments (`which` labels them)."""
    r = np.asarray(residual, dtype=np.float64) - float(np.mean(residual))
    gamma = np.empty(lags + 1)
    for lag in range(lags + 1):
        a, b = r[: len(r) - lag], r[lag:]
        pair = which[: len(r) - lag] == which[lag:]
        gamma[lag] = float(np.mean(a[pair] * b[pair])) if pair.any() else 0.0
    k = np.arange(1, lags + 1)
    good = gamma[1:] > 0
    if good.sum() < 3 or gamma[0] <= 0:
        return WHITE
    slope, intercept = np.polyfit(k[good], np.log(gamma[1:][good]), 1, w=np.sqrt(gamma[1:][good]))
    phi, slow = float(np.exp(slope)), float(np.exp(intercept))
    white = gamma[0] - slow
    if not 0.0 < phi < 0.9999 or slow <= 0.0 or white <= 0.0:
        return WHITE
    c0 = slow * (1.0 - phi**2) + white * (1.0 + phi**2)
    rho = -phi * white / c0  # lag-1 autocorrelation of the differenced series, in (-0.5, 0)
    rho = float(np.clip(rho, -0.4999, 0.0))
    psi = (1.0 - np.sqrt(1.0 - 4.0 * rho**2)) / (2.0 * rho) if rho < 0 else 0.0
    return NoiseModel(phi, float(psi))


def _log_dimming(
    theta: FloatArray,
    ln_g: float,
    time_s: FloatArray,
    setpoint_K: FloatArray,
    ambient_K: float,
    exposure_s: float,
) -> FloatArray:
    rise = exposure_rise(time_s, setpoint_K, to_response(theta), ambient_K, exposure_s)
    return np.asarray(-np.log1p((np.exp(ln_g) * rise) ** 2))


@dataclass(frozen=True)
class _Whitener:
    """The image fit's residuals under a noise model: each segment's own level fitted out
    by generalised least squares, then whitened, every segment starting from rest. All
    segments go through one filter; what it carries over a segment's start dies away as
    (-psi)^k and is taken off again."""

    noise: NoiseModel
    index: NDArray[np.intp]  # the frames of the segments, end to end
    which: NDArray[np.intp]  # the segment of each
    starts: NDArray[np.intp]  # where each segment starts in `index`
    carried: FloatArray  # (-psi)^k, k frames into a segment
    levels: FloatArray  # each segment's whitened constant as a unit vector, end to end

    @classmethod
    def of(cls, segments: _Segments, noise: NoiseModel) -> _Whitener:
        lengths = np.array([b - a for a, b in segments.bounds])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ones = [noise.whiten(np.ones(n)) for n in lengths]
        k = np.arange(int(lengths.sum())) - np.repeat(starts, lengths)
        return cls(
            noise,
            segments.index,
            segments.cycle,
            starts,
            (-noise.psi) ** k,
            np.concatenate([one / float(np.sqrt(one @ one)) for one in ones]),
        )

    def residuals(
        self, model: FloatArray, observed: FloatArray, keep: NDArray[np.bool_]
    ) -> FloatArray:
        """log common mode minus the model, whitened, over the segments in `keep`."""
        diff = (observed - model)[self.index]
        white = self.noise.whiten(diff)
        inner = self.starts[1:]
        carry = np.zeros(len(self.starts))
        carry[1:] = -self.noise.phi * diff[inner - 1] - self.noise.psi * white[inner - 1]
        white -= carry[self.which] * self.carried
        level = np.add.reduceat(white * self.levels, self.starts)
        white -= level[self.which] * self.levels
        return np.asarray(white[keep[self.which]])


def _fit_image(
    log_common: FloatArray,
    time_s: FloatArray,
    setpoint_K: FloatArray,
    ambient_K: float,
    exposure_s: float,
    whitener: _Whitener,
    keep: NDArray[np.bool_],
    starts: list[FloatArray],
) -> tuple[FloatArray, float]:
    """Best (theta, ln g) over the segments in `keep`, from several starting points;
    returns (parameters, whitened residual rms)."""

    def residuals(p: FloatArray) -> FloatArray:
        model = _log_dimming(p[:3], p[3], time_s, setpoint_K, ambient_K, exposure_s)
        return whitener.residuals(model, log_common, keep)

    best: tuple[float, FloatArray] | None = None
    lower = [-7.0, np.log(0.005), np.log(0.05), -12.0]
    upper = [7.0, np.log(200.0), np.log(2000.0), 0.0]
    if len(starts) > 3:  # refine only the three most promising starting points
        costs = [float(np.sum(residuals(np.clip(p, lower, upper)) ** 2)) for p in starts]
        starts = [starts[k] for k in np.argsort(costs)[:3]]
    for start in starts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = optimize.least_squares(
                residuals, np.clip(start, lower, upper), bounds=(lower, upper), x_scale=1.0
            )
        cost = float(result.cost)
        if best is None or cost < best[0]:
            best = (cost, np.asarray(result.x))
    assert best is not None
    params = best[1]
    rms = float(np.sqrt(2.0 * best[0] / max(len(residuals(params)), 1)))
    return params, rms


def infer_from_image(
    common: FloatArray,
    cycles: list[Cycle],
    time_s: FloatArray,
    setpoint_K: FloatArray,
    ambient_K: float,
    exposure_s: float,
) -> InferredResponse | None:
    """The step response from the common-mode dimming, or None when the recording has too
    few cycles or too little dimming to tell (less than 0.2 % at the hottest steps).

    Fitted to the log of the common mode with each segment's level free (the common mode is
    relative to a level taken over a few frames before each jump, which the light source's
    drift moves), by generalised least squares: a first fit with white noise gives the
    residuals' noise model, a second fit whitens by it."""
    if len(cycles) < 2:
        return None
    segments = _segments(cycles, len(common))
    ends = [c.cool_first - 1 for c in cycles]
    dims = np.array([common[k] for k in ends])
    rises = np.array([c.temperature_K - ambient_K for c in cycles])
    ok = np.isfinite(dims) & (rises > 0)
    if not ok.any() or float(np.median(1.0 - dims[ok])) < 0.002 or len(segments.bounds) < 2:
        return None
    g0 = float(np.median(np.sqrt(np.clip(1.0 / dims[ok] - 1.0, 1e-8, None)) / rises[ok]))
    starts = [np.append(from_response(((w, t1), (1 - w, t2))), np.log(g0)) for w, t1, t2 in _STARTS]
    log_common = np.log(np.clip(np.where(np.isfinite(common), common, 1.0), 1e-3, None))
    everything = np.ones(len(segments.bounds), dtype=bool)
    args = (log_common, time_s, setpoint_K, ambient_K, exposure_s)
    plain = _Whitener.of(segments, WHITE)
    first, _ = _fit_image(*args, plain, everything, starts)
    model = _log_dimming(first[:3], first[3], time_s, setpoint_K, ambient_K, exposure_s)
    noise = estimate_noise(plain.residuals(model, log_common, everything), segments.cycle)
    whitener = _Whitener.of(segments, noise)
    best, rms = _fit_image(*args, whitener, everything, [first, *starts])
    # jackknife over groups of segments, each refit started from the best fit
    groups = min(JACKKNIFE_GROUPS, len(segments.bounds))
    labels = np.arange(len(segments.bounds)) % groups
    jack = np.asarray([_fit_image(*args, whitener, labels != g, [best])[0] for g in range(groups)])
    centred = jack - jack.mean(axis=0)
    cov = (groups - 1) / groups * centred.T @ centred
    return InferredResponse(
        "image", best[:3], cov[:3, :3], rms, len(cycles), float(np.exp(best[3]))
    )


# -- the film-resistance thermometer ----------------------------------------------------------


def infer_from_film(
    film_K: FloatArray,
    heating: NDArray[np.bool_],
    cycles: list[Cycle],
    time_s: FloatArray,
    setpoint_K: FloatArray,
    ambient_K: float,
    exposure_s: float,
) -> InferredResponse | None:
    """The step response from the film temperature measured by V/I in the heated frames
    (where the drive is off, V/I says nothing), or None without enough of them."""
    valid = heating & np.isfinite(film_K)
    if valid.sum() < 20 or len(cycles) < 2:
        return None
    index = np.flatnonzero(valid)
    which = np.searchsorted([c.first for c in cycles], index, side="right") - 1
    observed = film_K[index] - ambient_K

    def fit(keep: NDArray[np.bool_], starts: list[FloatArray]) -> tuple[FloatArray, float]:
        def residuals(p: FloatArray) -> FloatArray:
            rise = exposure_rise(time_s, setpoint_K, to_response(p[:3]), ambient_K, exposure_s)
            return np.asarray((p[3] * rise[index] - observed)[keep])

        best: tuple[float, FloatArray] | None = None
        lower, upper = [-7.0, np.log(0.005), np.log(0.05), 0.5], [7.0, 5.3, 7.6, 1.5]
        for start in starts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = optimize.least_squares(
                    residuals, np.clip(start, lower, upper), bounds=(lower, upper)
                )
            if best is None or result.cost < best[0]:
                best = (float(result.cost), np.asarray(result.x))
        assert best is not None
        return best[1], float(np.sqrt(2.0 * best[0] / max(int(keep.sum()), 1)))

    starts = [np.append(from_response(((w, t1), (1 - w, t2))), 1.0) for w, t1, t2 in _STARTS]
    best, rms = fit(np.ones(len(index), dtype=bool), starts)
    groups = min(JACKKNIFE_GROUPS, len(cycles))
    jack = np.asarray([fit((which % groups) != g, [best])[0] for g in range(groups)])
    centred = jack - jack.mean(axis=0)
    cov = (groups - 1) / groups * centred.T @ centred
    return InferredResponse(
        "film resistance", best[:3], cov[:3, :3], rms, len(cycles), float(best[3])
    )


def film_temperature_from_vi(
    drive_V: FloatArray, current_A: FloatArray, r0_ohm: float, alpha_per_K: float, t0_K: float
) -> FloatArray:
    """Film temperature from R = V / I and R(T) = R0 (1 + alpha (T - T0)); NaN where the
    drive is too small for the ratio to mean anything."""
    with np.errstate(divide="ignore", invalid="ignore"):
        resistance = drive_V / current_A
        temperature = t0_K + (resistance / r0_ohm - 1.0) / alpha_per_K
    usable = (np.abs(drive_V) > 0.01) & (np.abs(current_A) > 1e-5)
    return np.where(usable, temperature, np.nan)


def agreement(a: Response, b: Response, hold_s: float) -> float:
    """Largest difference of two step responses over [0, hold_s], as a fraction of the step."""
    s = np.linspace(0.0, max(hold_s, 0.1), 400)
    return float(np.max(np.abs(step_fraction(a, s) - step_fraction(b, s))))
