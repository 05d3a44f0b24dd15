"""Serving: the KServe predictor and the InferenceService deployer."""
