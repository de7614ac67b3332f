"""Training: the Lightning module and data module, checkpoints, resume, export, and one run end to end."""
