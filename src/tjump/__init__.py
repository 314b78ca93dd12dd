"""tjump: instrument control and single-particle kinetics for a temperature-jump microscope."""

__version__ = "0.1.0"
