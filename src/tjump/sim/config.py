"""Parameters of the simulated rig, with defaults from the published instrument and
sample (docs/physics.md, docs/instruments.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from tjump.rig.heater_model import ThermalComponent


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThermalConfig(_Strict):
    """Gold-film heater: steady state dT = R_th V^2 / R(T), R(T) = R0 (1 + alpha dT).

    The default step response (weights 0.776 / 0.224, tau 0.17 s / 8.6 s) is the sum of two
    exponentials that reaches 35 % of the step in 0.1 s, 80 % in 1 s and 93 % in 10 s.
    `lag_factor` stretches every time constant (0.5: a film twice as fast, 3: a thicker
    coverslip three times as slow) without writing the components out again.
    """

    r0_ohm: PositiveFloat = 20.0
    alpha_per_K: PositiveFloat = 0.003
    r_th_K_per_W: PositiveFloat = 2000.0
    components: tuple[ThermalComponent, ...] = (
        ThermalComponent(weight=0.776, tau_s=0.17),
        ThermalComponent(weight=0.224, tau_s=8.6),
    )
    lag_factor: PositiveFloat = 1.0

    @property
    def step_response(self) -> tuple[ThermalComponent, ...]:
        """The components with `lag_factor` applied: how the film actually responds."""
        return tuple(
            ThermalComponent(weight=c.weight, tau_s=c.tau_s * self.lag_factor)
            for c in self.components
        )


class EaConfig(_Strict):
    """Activation energy, heterogeneous and falling with size; a minority far higher."""

    at_100nm_kj_mol: PositiveFloat = 250.0
    at_500nm_kj_mol: PositiveFloat = 160.0
    scatter: float = Field(0.08, ge=0, le=0.5)
    outlier_fraction: float = Field(0.1, ge=0, le=0.5)
    outlier_factor: PositiveFloat = 2.2


class AblationConfig(_Strict):
    """Heating far above the transition creates defects: dimmer, lower and uniform Ea."""

    onset_K: PositiveFloat = 450.0
    time_constant_s: PositiveFloat = 60.0
    ea_kj_mol: PositiveFloat = 90.0
    ea_scatter: float = Field(0.05, ge=0, le=0.5)
    transition_shift_K: float = 20.0
    dimming: float = Field(0.3, ge=0, lt=1)


class SampleConfig(_Strict):
    """The spin-crossover nanoparticles (and inert SiO2 references) under the objective."""

    particles: PositiveInt = 40
    references: int = Field(4, ge=0)
    size_nm: tuple[PositiveFloat, PositiveFloat] = (100.0, 500.0)
    min_separation_px: PositiveFloat = 8.0
    edge_margin_px: PositiveFloat = 8.0
    # how many particles sit beside another, closer than `min_separation_px` (real samples
    # have such pairs); each pair's separation is drawn from `pair_separation_px`
    close_pairs: int = Field(0, ge=0)
    pair_separation_px: tuple[PositiveFloat, PositiveFloat] = (7.0, 9.0)
    ea: EaConfig = EaConfig()
    tau_reference_s: PositiveFloat = 6.0
    tau_log_sigma: float = Field(0.4, ge=0)
    tau_reference_K: PositiveFloat = 377.7
    waiting_time_shape: PositiveFloat = 8.0
    hs_dimming: tuple[float, float] = (0.13, 0.17)
    growth_ms_at_400nm: PositiveFloat = 4.0
    reverse_K: tuple[PositiveFloat, PositiveFloat] = (312.0, 318.0)
    peak_fraction_at_100nm: float = Field(0.05, gt=0, lt=1)
    brightness_exponent: PositiveFloat = 1.544
    reference_peak_fraction: tuple[float, float] = (0.15, 0.3)
    ablation: AblationConfig = AblationConfig()

    @model_validator(mode="after")
    def _pairs_fit(self) -> SampleConfig:
        lo, hi = self.pair_separation_px
        if lo > hi:
            raise ValueError(f"pair_separation_px: {lo:g} is above {hi:g}")
        if 2 * self.close_pairs > self.particles + self.references:
            raise ValueError(
                f"close_pairs: {self.close_pairs} pairs need {2 * self.close_pairs} particles; "
                f"the sample has {self.particles + self.references}"
            )
        return self


class SensorConfig(_Strict):
    """Camera sensor: Pike F-032B-like CCD, 14-bit, read out as uint16."""

    width: PositiveInt = 640
    height: PositiveInt = 480
    bit_depth: int = Field(14, ge=8, le=16)
    offset_adu: float = Field(100.0, ge=0)
    gain_e_per_adu: PositiveFloat = 2.4
    read_noise_e: float = Field(15.0, ge=0)
    background_e: float = Field(40.0, ge=0)
    reference_exposure_ms: PositiveFloat = 50.0
    hot_pixels: int = Field(6, ge=0)


class OpticsConfig(_Strict):
    """PSF, focal drift with the temperature of the heated spot, slow lateral drift, and the
    light source's flicker.

    The focus moves `focus_um_per_K` per kelvin of the spot's rise above ambient, so every
    particle (inert ones too) dims as 1 / (1 + (z / z_R)^2) with the film's own lag.
    `flicker_rms`: relative standard deviation of the illumination from frame to frame,
    the same for every particle (white, plus a slow part `flicker_slow_rms` with time
    constant `flicker_slow_s`)."""

    psf_fwhm_px: PositiveFloat = 1.8
    focus_um_per_K: float = 0.0044
    rayleigh_range_um: PositiveFloat = 1.75
    lateral_drift_px_per_h: tuple[float, float] = (0.4, -0.25)
    flicker_rms: float = Field(0.0, ge=0, le=0.2)
    flicker_slow_rms: float = Field(0.0, ge=0, le=0.2)
    flicker_slow_s: PositiveFloat = 5.0


class SimConfig(_Strict):
    """Everything the simulated rig needs besides the rig's own limits."""

    seed: int = 1
    ambient_K: PositiveFloat = 293.0
    thermal: ThermalConfig = ThermalConfig()
    sample: SampleConfig = SampleConfig()
    sensor: SensorConfig = SensorConfig()
    optics: OpticsConfig = OpticsConfig()
    daq_noise_V: float = Field(0.0003, ge=0)
