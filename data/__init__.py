"""Data logic shared by the components, the trainer and the predictor.

Plain Python (pyarrow, numpy, fsspec): nothing here imports KFP, torch or KServe.
"""
