"""Recipe probe on the synthetic tasks: a plain torch loop, no Lightning, no DataLoader workers.

Trains `tiny` on a task mix and prints the mean training loss and the teacher-forced exact accuracy
(every answer token argmax-correct) per task on the shipped `val` set every `--eval-every` steps;
with `--task` (TaskConfig overrides for training, e.g. fewer objects) it also scores val-split
samples of the training distribution, reported as `<task>~`.

    python results/learning/scripts/probe.py --mix '{"grounding": 1}' --rope videorope --theta 100
"""
import argparse
import json
import time

import torch

from minivlm.data.collate import Collator
from minivlm.data.storage import synthetic_set
from minivlm.data.streaming import SyntheticStream
from minivlm.data.tasks import split_config
from minivlm.model import VLM, ModelConfig
from minivlm.processing import Processor
from minivlm.processing.template import IGNORE_INDEX
from minivlm.tokenizer import BPETokenizer
from minivlm.train.optim import build_optimizer

parser = argparse.ArgumentParser()
parser.add_argument("--mix", default='{"grounding": 1}', help="{task: weight} as JSON")
parser.add_argument("--steps", type=int, default=400)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--batch", type=int, default=16)
parser.add_argument("--max-pixels", type=int, default=4096)
parser.add_argument("--rope", default="mrope")
parser.add_argument("--theta", type=float, default=10000.0)
parser.add_argument("--model", default="{}", help="ModelConfig overrides as JSON")
parser.add_argument("--task", default="{}", help="TaskConfig overrides of the training stream as JSON")
parser.add_argument("--stages", default="[]", help="curriculum: [[steps, TaskConfig overrides], ...] before --task")
parser.add_argument("--eval-every", type=int, default=50)
parser.add_argument("--val-per-task", type=int, default=64)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)
torch.set_num_threads(2)

tokenizer = BPETokenizer.load("data/tokenizer")
config = ModelConfig(size="tiny", vocab_size=tokenizer.vocab_size, rope={"variant": args.rope, "theta": args.theta},
                     **json.loads(args.model))
model = VLM(config)
processor = Processor(tokenizer, patch_size=config.patch_size, temporal_patch=config.temporal_patch,
                      merge=config.spatial_merge, min_pixels=1024, max_pixels=args.max_pixels, fps=2.0,
                      video_layout="timestamps", max_seq_len=config.max_seq_len)
collate = Collator(config.rope_schedule(), tokenizer.pad_id, config.max_seq_len, mode="pad")
mix = json.loads(args.mix)


def task_config(split: str, fields: dict) -> object:
    overrides = {key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()}
    return split_config(split, **overrides) if overrides else None


overrides = json.loads(args.task)
stream = SyntheticStream(mix=mix, split="train", seed=args.seed, config=task_config("train", overrides))
stages = [(steps, SyntheticStream(mix=mix, split="train", seed=args.seed, config=task_config("train", fields)))
          for steps, fields in json.loads(args.stages)]


def stream_at(step: int) -> SyntheticStream:
    """The curriculum stage's stream at `step` (1-based), then the --task stream."""
    for steps, stage in stages:
        if step <= steps:
            return stage
        step -= steps
    return stream

val = synthetic_set("val", tasks=list(mix))
kept: dict[str, int] = {}
val_samples, val_tasks = [], []
for index in range(len(val)):
    task = val.table[index]["task"]
    if kept.get(task, 0) < args.val_per_task:
        kept[task] = kept.get(task, 0) + 1
        val_samples.append(processor(val[index]))
        val_tasks.append(task)
if overrides:
    same = SyntheticStream(mix=mix, split="val", seed=args.seed, config=stream.config)
    for position in range(args.val_per_task * len(mix)):
        sample = same.sample(position)
        val_samples.append(processor(sample))
        val_tasks.append(sample["task"] + "~")
val_batches = [collate(val_samples[i:i + 64]) for i in range(0, len(val_samples), 64)]


def accuracy() -> dict[str, float]:
    model.eval()
    hits: dict[str, list[bool]] = {}
    with torch.no_grad():
        exact = []
        for batch in val_batches:
            logits, labels = model(batch, return_logits=True).logits[:, :-1], batch["labels"][:, 1:]
            exact += ((logits.argmax(-1) == labels) | (labels == IGNORE_INDEX)).all(-1).tolist()
    for task, hit in zip(val_tasks, exact):
        hits.setdefault(task, []).append(hit)
    model.train()
    return {task: round(sum(v) / len(v), 3) for task, v in hits.items()}


optimizer, schedule = build_optimizer(model, lr=args.lr, weight_decay=0.05, betas=(0.9, 0.95), warmup_steps=30,
                                      total_steps=args.steps, min_lr_ratio=0.1)
start, losses = time.time(), []
for step in range(1, args.steps + 1):
    first = (step - 1) * args.batch
    source = stream_at(step)
    loss = model(collate([processor(source.sample(p)) for p in range(first, first + args.batch)])).loss
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    losses.append(loss.item())
    if step % args.eval_every == 0 or step == args.steps:
        record = {"step": step, "time": round(time.time() - start, 1), "loss": round(sum(losses) / len(losses), 4)}
        print(json.dumps({**record, **accuracy()}), flush=True)
        losses = []
