"""Score checkpoints on the synthetic diagnostic splits: `python evaluate.py outputs/<run>`.

    python evaluate.py outputs/tiny-mrope-seed0                       # one run (its last.ckpt)
    python evaluate.py outputs/ablation_frequency --per-task 96       # every run of a sweep; resumes
    python evaluate.py outputs/ablation_frequency --report results/ablation_frequency  # + tables, plots

The work is done by minivlm.evaluation.evaluate (`--help` lists every option).
"""

from minivlm.evaluation.evaluate import main

if __name__ == "__main__":
    main()
