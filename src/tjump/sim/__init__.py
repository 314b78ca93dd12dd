"""The simulated rig: sample, heater, optics and devices sharing one virtual clock."""
