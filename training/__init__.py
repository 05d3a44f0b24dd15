"""Training: the DDP trainer (run by torchrun) and the PyTorchJob launcher.

Run the trainer with `torchrun --nproc-per-node N -m mlworkloads.training --config CONFIG.json`.
"""
