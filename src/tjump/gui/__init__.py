"""The lab GUI (Qt through qtpy, plots with pyqtgraph): run control, live frames, traces,
heater, nucleation histograms, devices and results."""
