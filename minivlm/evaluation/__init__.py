"""minivlm.evaluation: scoring answers, evaluating runs, ablation tables, PTD and teaching figures.

Modules, in reading order (nothing is imported here, so ``scoring`` stays cheap for training):

1. :mod:`~minivlm.evaluation.scoring`: exact match per task (what training validates with).
2. :mod:`~minivlm.evaluation.tolerance`: near misses (one cell, one count, one second) and valid answers.
3. :mod:`~minivlm.evaluation.runs`: run folders, their weights and config, a label for their rope.
4. :mod:`~minivlm.evaluation.evaluate`: ``python evaluate.py <run or sweep>``: every task and split.
5. :mod:`~minivlm.evaluation.aggregate`: mean ± std over seeds per rope and ViT RoPE, tables and plots.
6. :mod:`~minivlm.evaluation.ptd_table`: Circle-RoPE's Table 1 (PTD per design) and PTD vs image size.
7. :mod:`~minivlm.evaluation.figures`: frequency allocation maps and the ids of an image per design.
"""
