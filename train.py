"""Train minivlm: `python train.py` (tiny model, synthetic tasks, CPU, a few minutes).

    python train.py rope=circle                       # any config in configs/rope/
    python train.py experiment=quick                  # a one-minute check of the whole pipeline
    python train.py experiment=gpu_small              # the small model on one GPU (bf16, compiled)
    python train.py trainer=ddp trainer.devices=4     # data parallel: the loss of one process with a 4x batch
    python train.py data=real                         # the_cauldron (vqav2) from the hub, see configs/data/real.yaml
    python train.py -m rope=mrope,mrope_interleaved seed=0,1,2     # a sweep
    python train.py ckpt_path=last                    # resume this run exactly

Everything is composed by Hydra from configs/ (see configs/train.yaml, or `python train.py --help`);
the command is minivlm.train.main (also installed as `minivlm-train`, for any folder) and the
work is done by minivlm.train.run, which the tests call directly.
"""

from minivlm.train.main import main

if __name__ == "__main__":
    main()
