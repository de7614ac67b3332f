"""Recipe probe on hand-drawn 64x64 images: does the vision-to-LM path learn a position readout?

Tasks (answers in a 2x2 grid A1 B1 / A2 B2):
  colour      the whole image is one of 6 colours           -> its name (content only)
  quadrant    one quadrant filled red                       -> which (edges reveal position)
  square      a 12 px red square anywhere in one quadrant   -> which (needs attention + positions)
  two_squares two 32 px squares of different colours        -> where the named one is (binding)

    python results/learning/scripts/square.py square --rope mrope_interleaved --theta 100 --seed 0

Prints step, training loss, teacher-forced exact accuracy on 64 held-out images every 25 steps.
One torch thread, so two probes can share a 2-core machine.
"""
import argparse
import json

import numpy as np
import torch
from PIL import Image

from minivlm.data.collate import Collator
from minivlm.model import VLM, ModelConfig
from minivlm.processing import Processor
from minivlm.processing.template import IGNORE_INDEX
from minivlm.tokenizer import BPETokenizer
from minivlm.train.optim import build_optimizer

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30),
           "purple": (150, 30, 180), "orange": (240, 140, 20)}
NAMES = list(COLOURS)
CELLS = ["A1", "B1", "A2", "B2"]

parser = argparse.ArgumentParser()
parser.add_argument("task", choices=["colour", "quadrant", "square", "two_squares"])
parser.add_argument("--rope", default="mrope")
parser.add_argument("--theta", type=float, default=10000.0)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--model", default="{}", help="ModelConfig overrides as JSON, e.g. '{\"vit_abs_pos\": 8}'")
args = parser.parse_args()
torch.manual_seed(args.seed)
torch.set_num_threads(1)

tokenizer = BPETokenizer.load("data/tokenizer")
config = ModelConfig(size="tiny", vocab_size=tokenizer.vocab_size, rope={"variant": args.rope, "theta": args.theta},
                     **json.loads(args.model))
model = VLM(config)
processor = Processor(tokenizer, patch_size=8, temporal_patch=2, merge=2, min_pixels=1024, max_pixels=4096,
                      fps=2.0, video_layout="timestamps", max_seq_len=2048)
collate = Collator(config.rope_schedule(), tokenizer.pad_id, 2048, mode="pad")


def paint(image, cell, colour, size=32, offset=(0, 0)):
    row, column = divmod(cell, 2)
    y, x = row * 32 + offset[0], column * 32 + offset[1]
    image[y:y + size, x:x + size] = COLOURS[colour]


def sample(rng):
    image = np.full((64, 64, 3), 255, np.uint8)
    if args.task == "colour":
        colour = NAMES[rng.integers(6)]
        image[:] = COLOURS[colour]
        question, answer = "What colour is the image?", colour
    elif args.task == "quadrant":
        cell = int(rng.integers(4))
        paint(image, cell, "red")
        question, answer = "Where is the red square?", CELLS[cell]
    elif args.task == "square":
        cell = int(rng.integers(4))
        paint(image, cell, "red", size=12, offset=tuple(rng.integers(0, 20, size=2)))
        question, answer = "Where is the red square?", CELLS[cell]
    else:
        cells, colours = rng.permutation(4)[:2], rng.permutation(6)[:2]
        for cell, colour in zip(cells, colours):
            paint(image, int(cell), NAMES[colour])
        question, answer = f"Where is the {NAMES[colours[0]]} square?", CELLS[cells[0]]
    return processor({"id": "probe", "task": args.task, "answer": answer, "meta": {}, "images": [Image.fromarray(image)],
                      "videos": [], "messages": [
                          {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
                          {"role": "assistant", "content": [{"type": "text", "text": answer}]}]})


train_rng, val_rng = np.random.default_rng(args.seed), np.random.default_rng(1)  # one validation set for all seeds
val = collate([sample(val_rng) for _ in range(64)])
optimizer, schedule = build_optimizer(model, lr=args.lr, weight_decay=0.05, betas=(0.9, 0.95), warmup_steps=20,
                                      total_steps=args.steps, min_lr_ratio=0.1)
for step in range(1, args.steps + 1):
    loss = model(collate([sample(train_rng) for _ in range(16)])).loss
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    if step % 25 == 0:
        with torch.no_grad():
            logits, labels = model(val, return_logits=True).logits[:, :-1], val["labels"][:, 1:]
            exact = ((logits.argmax(-1) == labels) | (labels == IGNORE_INDEX)).all(-1).float().mean().item()
        print(step, round(loss.item(), 3), exact, flush=True)
