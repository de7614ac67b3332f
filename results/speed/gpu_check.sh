#!/usr/bin/env bash
# The GPU check of the README's "Speed" section, prepared and not yet run (no GPU was lent so far).
# On one GPU, from the repository root, with the bench extra installed (pip install -e ".[bench]"):
#   bash results/speed/gpu_check.sh
# About 9 minutes: the benchmark of small and base in bf16 without and with torch.compile, then
# two minutes of training of experiment=gpu_small. It writes, into results/speed/:
#   gpu_bench_eager.md, gpu_bench_compiled.md   the benchmark tables (python -m minivlm.bench)
#   gpu_small_run.txt                            the run's progress lines, tokens/s and final table
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/speed
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu_device.txt"
timeout 150 python -m minivlm.bench --sizes small base --out "$out/gpu_bench_eager.md"
timeout 240 python -m minivlm.bench --sizes small base --compile --warmup 5 --out "$out/gpu_bench_compiled.md"
# Two minutes of training (Lightning's max_time), then the final evaluation; progress lines every 100 steps.
timeout 200 python train.py experiment=gpu_small name=gpu_check overwrite=true trainer.enable_progress_bar=false \
    logging.progress_every=100 trainer.log_every_n_steps=100 +trainer.max_time=00:00:02:00 2>&1 | tee "$out/gpu_small_run.txt"
