#!/usr/bin/env bash
# The GPU check of the README's "Speed" section, prepared and not yet run (no GPU so far).
# On one GPU, from the repository root, with the bench extra installed (pip install -e ".[bench]"):
#   bash results/speed/gpu_check.sh
# About 9 minutes: the benchmark of small and base in bf16 without and with torch.compile, then
# two minutes of training of experiment=gpu_small. It writes, into results/speed/:
#   gpu_bench_eager.md, gpu_bench_compiled.md   the benchmark tables (python -m minivlm.bench)
#   gpu_small_run.txt                            the run's progress lines, tokens/s and final table
# Each step has its own time limit and a step that fails or times out is recorded in
# gpu_failures.txt and does not stop the next, so one run of the script measures all it can.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=results/speed
step() {  # step SECONDS NAME COMMAND...: run it under a time limit; a failure is written down, not fatal
    local seconds=$1 name=$2; shift 2
    timeout "$seconds" "$@" || echo "$name: exit $? (124: past its ${seconds} s)" | tee -a "$out/gpu_failures.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu_device.txt"
step 150 bench-eager python -m minivlm.bench --sizes small base --out "$out/gpu_bench_eager.md"
step 240 bench-compiled python -m minivlm.bench --sizes small base --compile --warmup 5 --out "$out/gpu_bench_compiled.md"
# Two minutes of training (Lightning's max_time), then the final evaluation; progress lines every 100 steps.
step 200 gpu_small python train.py experiment=gpu_small name=gpu_check overwrite=true trainer.enable_progress_bar=false \
    logging.progress_every=100 trainer.log_every_n_steps=100 +trainer.max_time=00:00:02:00 > >(tee "$out/gpu_small_run.txt") 2>&1
