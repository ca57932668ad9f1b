"""Hydra experiments: configs, the `steer-run` entry point, sweeps with controls, the results
store, aggregation and reports."""
