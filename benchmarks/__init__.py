"""Benchmarks for the decision point: engine vs a hand-written baseline vs cedarpy and pycasbin, and scaling."""
