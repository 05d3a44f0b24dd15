"""Test support code: the real test cluster (`cluster/`), and the one emulated service left
(`emulated_kfp.py`, the KFP API, until the KFP backend runs on the test cluster)."""
