"""Kinetics fits: per-particle Arrhenius with censored waiting times, and the neighbouring
ensemble views (Avrami / JMAK, first-order rate constants, counts over time).

Arrhenius model (per particle, per series). The waiting time t from the jump to nucleation
at setpoint T is Gamma-distributed with shape m and mean 1/k(T), where
k(T) = A exp(-Ea / RT). Every heating cycle counts: a cycle with a transition contributes the
Gamma density at its waiting time, a cycle without one contributes the probability of lasting
longer than the hold (the survival function at the hold length; right censoring). ln A, Ea
and ln m are estimated jointly across all temperatures by maximum likelihood
(scipy.optimize.minimize, Nelder-Mead, with 1/T centred on the mean of the temperatures so the
two Arrhenius parameters are nearly uncorrelated), and their standard errors are the square
roots of the diagonal of the inverse Hessian of the negative log-likelihood (central finite
differences). With m = 1 it is the exponential (Poisson) model; the simulator's and the
published histograms are peaked (m ~ 8), so m is fitted. A particle needs events at two or
more temperatures for an Ea; otherwise its Ea is left empty and the reason is recorded.

Optional heater lag (`response`, the film's step response as (weight, time constant)
pairs, e.g. 0.776 x 0.17 s + 0.224 x 8.6 s for the simulated rig): the film does not reach
the setpoint at the jump but follows T(s) = T0 + (Tset - T0) (1 - sum w_i exp(-s / tau_i)).
The waiting time is then where the nucleation clock Lambda(t) = integral_0^t k(T(s)) ds
passes a Gamma(m, mean 1) threshold: density gamma(Lambda(t)) k(T(t)), survival
sf(Lambda(hold)); Lambda by the trapezoid rule on a fine grid. Without it (the default) the
setpoint is taken as the particle's temperature from the jump on, which biases Ea low when
the film lags (the faster the switching, the larger the share of time spent below the
setpoint).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, signal, special, stats

FloatArray = NDArray[np.float64]
R_KJ = 8.314462618e-3  # kJ / (mol K)
MIN_TIME_S = 1e-3


@dataclass(frozen=True)
class ArrheniusFit:
    ea_kj_mol: float
    ea_stderr_kj_mol: float
    ln_prefactor: float  # ln(A / s^-1)
    ln_prefactor_stderr: float
    shape: float  # Gamma shape m of the waiting times
    loglik: float
    n_events: int
    n_censored: int
    n_temperatures: int
    status: str  # "ok" or why there is no fit
    # the part of ea_stderr_kj_mol due to the film temperature's uncertainty (NaN: none)
    ea_stderr_temperature_kj_mol: float = float("nan")

    def rate(self, temperature_K: FloatArray) -> FloatArray:
        return np.asarray(np.exp(self.ln_prefactor - self.ea_kj_mol / (R_KJ * temperature_K)))


def _nll(
    theta: FloatArray,
    x: FloatArray,
    t: FloatArray,
    censored: NDArray[np.bool_],
    hold: FloatArray,
) -> float:
    """Negative log-likelihood of Gamma(m, mean 1/k) waiting times, right-censored."""
    ln_k0, ea, ln_m = theta
    m = float(np.exp(ln_m))
    ln_k = ln_k0 - ea * x
    u = m * np.exp(ln_k) * t  # t / scale, scale = 1 / (m k)
    ev = ~censored
    ln_pdf = m * (np.log(m) + ln_k[ev]) + (m - 1) * np.log(t[ev]) - u[ev] - special.gammaln(m)
    ll = ln_pdf.sum() + np.log(np.maximum(special.gammaincc(m, u[censored]), 1e-300)).sum()
    return float(-ll) if np.isfinite(ll) else 1e300


def _hessian(fn: Callable[[FloatArray], float], theta: FloatArray, steps: FloatArray) -> FloatArray:
    """Central-difference Hessian of `fn` at `theta`."""
    k = len(theta)
    h = np.zeros((k, k))
    f0 = fn(theta)
    unit = np.eye(k) * steps[:, None]
    for i in range(k):
        h[i, i] = (fn(theta + unit[i]) - 2 * f0 + fn(theta - unit[i])) / steps[i] ** 2
        for j in range(i + 1, k):
            ei, ej = unit[i], unit[j]
            value = (
                fn(theta + ei + ej)
                - fn(theta + ei - ej)
                - fn(theta - ei + ej)
                + fn(theta - ei - ej)
            ) / (4 * steps[i] * steps[j])
            h[i, j] = h[j, i] = value
    return h


Response = tuple[tuple[float, float], ...]  # (weight, time constant in s) of the film


def film_states(
    time_s: FloatArray, setpoint_K: FloatArray, response: Response, ambient_K: float
) -> FloatArray:
    """(frames, components): each component's share of the film's rise (K) at the start of
    every frame, for a setpoint held constant over each frame (exact for such steps at a
    constant frame period): state[k] = a state[k - 1] + (1 - a) w rise[k - 1]."""
    period = float(np.median(np.diff(time_s)))
    rise = np.asarray(setpoint_K, dtype=np.float64) - ambient_K
    states = np.zeros((len(time_s), len(response)))
    for j, (weight, tau) in enumerate(response):
        a = float(np.exp(-period / tau))
        states[:, j] = signal.lfilter([0.0, (1.0 - a) * weight], [1.0, -a], rise)
    return states


class _LaggedClock:
    """1/T(s) after each jump (the lagging film temperature) on one time grid shared by all
    jumps, with each observation's place on the grid precomputed, so one evaluation of the
    likelihood is a few array operations."""

    def __init__(
        self,
        temperature_K: FloatArray,
        start: FloatArray,
        t: FloatArray,
        response: Response,
        ambient_K: float,
        inv_ref: float,
    ) -> None:
        end = float(t.max())
        self.grid = np.unique(
            np.concatenate([np.linspace(0, min(2.0, end), 201), np.linspace(0, end, 300)])
        )
        table = np.column_stack([np.round(temperature_K, 3), np.round(start, 2)])
        _, first, group = np.unique(table, axis=0, return_index=True, return_inverse=True)
        self.group = group.ravel()
        args = (response, ambient_K, inv_ref)
        self.x = np.stack(
            [self._x(self.grid, temperature_K[i], start[i], *args) for i in first]
        )  # (groups, grid)
        self.x_at_t = np.array(
            [self._x(t[k : k + 1], temperature_K[k], start[k], *args)[0] for k in range(len(t))]
        )
        j = np.clip(np.searchsorted(self.grid, t, side="right") - 1, 0, len(self.grid) - 2)
        self.j = j
        self.frac = (t - self.grid[j]) / (self.grid[j + 1] - self.grid[j])
        self.dt = np.diff(self.grid)

    @staticmethod
    def _x(
        s: FloatArray,
        top: float,
        state: FloatArray,
        response: Response,
        ambient_K: float,
        inv_ref: float,
    ) -> FloatArray:
        temp = np.full(len(s), ambient_K)
        for (w, tau), c in zip(response, state, strict=True):
            target = w * (top - ambient_K)
            temp = temp + target + (c - target) * np.exp(-s / tau)
        return np.asarray((1.0 / temp - inv_ref) / R_KJ)

    def nll(self, theta: FloatArray, t: FloatArray, censored: NDArray[np.bool_]) -> float:
        ln_k0, ea, ln_m = theta
        m = float(np.exp(ln_m))
        rate = np.exp(np.minimum(ln_k0 - ea * self.x, 700.0))
        cum = np.zeros_like(rate)
        cum[:, 1:] = np.cumsum(0.5 * (rate[:, 1:] + rate[:, :-1]) * self.dt, axis=1)
        lo = cum[self.group, self.j]
        hi = cum[self.group, self.j + 1]
        clock = np.maximum(lo + self.frac * (hi - lo), 1e-300)
        ev = ~censored
        u = m * clock
        # Gamma(m, scale 1/m) of the clock, times dClock/dt = k(T(t)) for the events
        ln_pdf = m * np.log(m) + (m - 1) * np.log(clock[ev]) - u[ev] - special.gammaln(m)
        ll = (ln_pdf + ln_k0 - ea * self.x_at_t[ev]).sum()
        ll += np.log(np.maximum(special.gammaincc(m, u[censored]), 1e-300)).sum()
        return float(-ll) if np.isfinite(ll) else 1e300


def fit_arrhenius(
    temperature_K: FloatArray,
    waiting_s: FloatArray,
    hold_s: FloatArray,
    shape: float | None = None,
    response: Response | None = None,
    start_K: FloatArray | None = None,
    ambient_K: float = 293.0,
    initial: ArrheniusFit | None = None,
    stderr: bool = True,
) -> ArrheniusFit:
    """Censored maximum-likelihood Arrhenius fit. `waiting_s` is NaN for cycles without a
    transition within `hold_s`. `shape`: fix the Gamma shape instead of fitting it.
    `response`: the heater's step response, to fit against the lagging film temperature
    instead of the setpoint; `start_K` (observations, components): each component's rise
    above `ambient_K` at the jump (zeros: the film starts cold; see `film_states`).
    `initial`: a fit of the same waiting times to start from (e.g. under a nearby response);
    `stderr=False` skips the standard errors (NaN), for refits that need only Ea."""
    temperature_K = np.asarray(temperature_K, dtype=np.float64)
    waiting_s = np.asarray(waiting_s, dtype=np.float64)
    hold_s = np.asarray(hold_s, dtype=np.float64)
    censored = ~np.isfinite(waiting_s) | (waiting_s > hold_s)
    t = np.where(censored, hold_s, np.maximum(waiting_s, MIN_TIME_S))
    n_ev, n_cen = int((~censored).sum()), int(censored.sum())
    temps_with_events = np.unique(np.round(temperature_K[~censored], 2))
    n_temps = len(np.unique(np.round(temperature_K, 2)))

    def empty(status: str) -> ArrheniusFit:
        nan = float("nan")
        return ArrheniusFit(nan, nan, nan, nan, nan, nan, n_ev, n_cen, n_temps, status)

    if n_ev == 0:
        return empty("no transitions")
    if len(temps_with_events) < 2:
        return empty("transitions at fewer than two temperatures")
    inv_t = 1.0 / temperature_K
    inv_ref = float(np.mean(inv_t))
    x = (inv_t - inv_ref) / R_KJ  # Ea in kJ/mol multiplies this
    # starting point: a straight line through ln(1 / mean time) per temperature
    temps = np.unique(temperature_K)
    ln_rates, xs = [], []
    for temp in temps:
        sel = temperature_K == temp
        mean_t = t[sel].mean()
        frac = (~censored[sel]).mean()
        if frac > 0:
            ln_rates.append(np.log(max(frac, 0.05) / mean_t))
            xs.append(x[sel][0])
    slope, intercept = np.polyfit(xs, ln_rates, 1) if len(xs) >= 2 else (0.0, ln_rates[0])
    theta0 = np.array([intercept, float(np.clip(-slope, 1.0, 1000.0)), np.log(4.0)])
    fixed_m = shape is not None

    ln_shape = float(np.log(shape)) if shape is not None else 0.0

    lagged = None
    if response:
        start = np.zeros((len(t), len(response))) if start_K is None else np.asarray(start_K)
        lagged = _LaggedClock(temperature_K, start, t, response, ambient_K, inv_ref)

    def objective(theta: FloatArray) -> float:
        full = np.array([theta[0], theta[1], ln_shape if fixed_m else theta[2]])
        if lagged is not None:
            return lagged.nll(full, t, censored)
        return _nll(full, x, t, censored, t)

    if lagged is not None:  # start from the given fit, or from the setpoint fit: both close
        plain = initial or fit_arrhenius(temperature_K, waiting_s, hold_s, shape)
        if np.isfinite(plain.ea_kj_mol):
            theta0 = np.array(
                [plain.ln_prefactor - plain.ea_kj_mol * inv_ref / R_KJ, plain.ea_kj_mol, 0.0]
            )
            theta0[2] = np.log(np.clip(plain.shape, 0.5, 50.0))
    first = theta0[:2] if fixed_m else theta0
    bounds = [(-30.0, 30.0), (-500.0, 2000.0)] + ([] if fixed_m else [(np.log(0.3), np.log(60.0))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Nelder-Mead, restarted once from its optimum: robust on this small, smooth
        # problem, and free of the BLAS calls that make L-BFGS-B crawl on a busy machine
        options = {"xatol": 1e-3, "fatol": 1e-5, "maxfev": 4000}
        result = optimize.minimize(
            objective, first, method="Nelder-Mead", bounds=bounds, options=options
        )
        result2 = optimize.minimize(
            objective, result.x, method="Nelder-Mead", bounds=bounds, options=options
        )
        best = result2.x if result2.fun < result.fun else result.x
        steps = np.array([1e-3, 0.05 * max(abs(best[1]), 1.0) * 0.01, 1e-3])[: len(best)]
        hess = _hessian(objective, best, steps) if stderr else np.full((len(best),) * 2, np.nan)
    try:
        cov = np.linalg.inv(hess)
        se = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
    except np.linalg.LinAlgError:
        se = np.full(len(best), np.nan)
    ln_k0, ea = float(best[0]), float(best[1])
    m = float(np.exp(ln_shape)) if fixed_m else float(np.exp(best[2]))
    ln_a = ln_k0 + ea * inv_ref / R_KJ
    # se of ln A: gradient (1, inv_ref / R) through the covariance of (ln k0, Ea)
    try:
        g = np.array([1.0, inv_ref / R_KJ])
        var_ln_a = float(g @ np.linalg.inv(hess)[:2, :2] @ g)
        se_ln_a = float(np.sqrt(var_ln_a)) if var_ln_a > 0 else float("nan")
    except np.linalg.LinAlgError:
        se_ln_a = float("nan")
    status = "ok" if np.isfinite(se[1]) else "ok (standard error undefined)"
    return ArrheniusFit(
        ea, float(se[1]), ln_a, se_ln_a, m, -objective(best), n_ev, n_cen, n_temps, status
    )


# -- per temperature ------------------------------------------------------------------------


def censored_mean(waiting_s: FloatArray, hold_s: float | FloatArray, shape: float) -> float:
    """Maximum-likelihood mean waiting time at one temperature (Gamma of fixed shape).
    `hold_s`: the hold of every cycle, or one for all (a cycle without a transition within
    its hold is censored there)."""
    t = np.asarray(waiting_s, dtype=np.float64)
    hold = np.broadcast_to(np.asarray(hold_s, dtype=np.float64), t.shape)
    ev = np.isfinite(t) & (t <= hold)
    if not ev.any():
        return float("nan")
    tt = np.maximum(t[ev], MIN_TIME_S)
    censored_at = hold[~ev]

    def nll(ln_mean: float) -> float:
        scale = np.exp(ln_mean) / shape
        ll = stats.gamma.logpdf(tt, shape, scale=scale).sum()
        if len(censored_at):
            ll += stats.gamma.logsf(censored_at, shape, scale=scale).sum()
        return float(-ll) if np.isfinite(ll) else 1e300

    res = optimize.minimize_scalar(nll, bounds=(np.log(1e-3), np.log(1e6)), method="bounded")
    return float(np.exp(res.x))


# -- neighbouring kinetics ------------------------------------------------------------------


@dataclass(frozen=True)
class AvramiFit:
    k: float  # in s^-n
    n: float
    t0_s: float
    rms: float

    def curve(self, t: FloatArray) -> FloatArray:
        u = np.clip(t - self.t0_s, 0.0, None)
        return np.asarray(1.0 - np.exp(-self.k * u**self.n))


def fit_avrami(t: FloatArray, fraction: FloatArray) -> AvramiFit | None:
    """JMAK f = 1 - exp(-k (t - t0)^n) by least squares (k > 0, 0.3 < n < 8, t0 >= 0)."""
    good = np.isfinite(t) & np.isfinite(fraction)
    t, f = np.asarray(t[good]), np.asarray(fraction[good])
    if len(t) < 5 or np.nanmax(f) < 0.2:
        return None
    half = float(t[np.argmax(f >= 0.5 * np.nanmax(f))])

    def model(tt: FloatArray, ln_k: float, n: float, t0: float) -> FloatArray:
        u = np.clip(tt - t0, 0.0, None)
        return np.asarray(1.0 - np.exp(-np.exp(ln_k) * u**n))

    p0 = (np.log(np.log(2.0) / max(half, 1e-3) ** 2.0), 2.0, 0.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, _ = optimize.curve_fit(
                model, t, f, p0=p0, bounds=([-60, 0.3, 0.0], [20, 8.0, max(half, 1e-3)])
            )
    except (RuntimeError, ValueError):
        return None
    rms = float(np.sqrt(np.mean((model(t, *popt) - f) ** 2)))
    return AvramiFit(float(np.exp(popt[0])), float(popt[1]), float(popt[2]), rms)


def survival_curve(waiting_s: FloatArray, hold_s: float, grid: FloatArray) -> FloatArray:
    """Fraction of cycles (or particles) not yet switched at each time of `grid` (all
    cycles run the whole hold, so censoring is at `hold_s` only)."""
    t = np.asarray(waiting_s, dtype=np.float64)
    t = np.where(np.isfinite(t), t, np.inf)
    return np.asarray((t[None, :] > grid[:, None]).mean(axis=1))


def first_order_rate(grid: FloatArray, remaining: FloatArray) -> float:
    """k from ln(C0 / C) = k t, fitted through the origin while C > 10 % of C0."""
    ok = (remaining > 0.1) & (remaining < 1.0) & np.isfinite(remaining)
    if ok.sum() < 3:
        return float("nan")
    y = -np.log(remaining[ok])
    tt = grid[ok]
    return float((tt @ y) / (tt @ tt))


def arrhenius_line(temperature_K: FloatArray, rate: FloatArray) -> tuple[float, float]:
    """(Ea in kJ/mol, ln A) from a straight line of ln k against 1/T (least squares)."""
    ok = np.isfinite(rate) & (rate > 0)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(1.0 / temperature_K[ok], np.log(rate[ok]), 1)
    return float(-slope * R_KJ), float(intercept)


def nucleation_rate(grid: FloatArray, switched_count: FloatArray, total: int) -> float:
    """dN/dt per particle (1/s) from the rising part (10-50 %) of the count of switched
    particles against time since the jump."""
    frac = switched_count / max(total, 1)
    ok = (frac >= 0.1) & (frac <= 0.5)
    if ok.sum() < 3:
        return float("nan")
    slope = np.polyfit(grid[ok], frac[ok], 1)[0]
    return float(slope)
