"""The shipped data, package data of minivlm (``minivlm.shipped``, see minivlm/resources.py and data/README.md)."""
