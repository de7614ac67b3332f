"""The shipped Hydra configs, package data of minivlm (``minivlm.configs``, see minivlm/resources.py)."""
