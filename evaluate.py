"""Score checkpoints on the synthetic diagnostic splits or real data: `python evaluate.py outputs/<run>`.

    python evaluate.py outputs/tiny-mrope-seed0                       # one run (its last.ckpt)
    python evaluate.py outputs/ablation_frequency --per-task 96       # every run of a sweep; resumes
    python evaluate.py outputs/ablation_frequency --report results/ablation_frequency  # + tables, plots
    python evaluate.py outputs/<run> --splits real my_vqa.parquet     # real data: held-out records, a file

The work is done by minivlm.evaluation.evaluate (`--help` lists every option); installed, the
command is `minivlm-eval`, from any folder.
"""

from minivlm.evaluation.evaluate import main

if __name__ == "__main__":
    main()
