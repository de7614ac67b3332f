"""Ask a trained model about your own image or video.

    python -m minivlm.ask outputs/<run>/export --image photo.png "Where is the red circle?"
    python -m minivlm.ask outputs/<run> --video clip.gif "When does the red square appear?"
    python -m minivlm.ask outputs/<run> --video frames/ --fps 1 "What colour is the square?"
    python -m minivlm.ask EXPORT --image a.png --temperature 0.8 --top-k 5 --samples 3 --seed 0 "..."

(``minivlm-ask`` once installed.) The model is an export folder, a run folder (its export, or its
``last.ckpt`` while it trains) or a checkpoint; the question goes through the model's own
processor and chat template, the media first, as the training samples put them. Greedy decoding
by default (the answers evaluation scores); ``--temperature`` above 0 samples, from the ``--top-k``
most likely tokens when given, reproducibly under ``--seed``. A video is an animated GIF, WebP or
PNG (its frame rate from the file) or a folder of frame images in name order (``--fps``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageSequence

from minivlm.data.collate import Collator
from minivlm.evaluation.evaluate import Settings, load_config, load_model
from minivlm.evaluation.targets import resolve_target
from minivlm.model import VLM
from minivlm.processing import Processor
from minivlm.run_folder import RunFolder, is_export_dir
from minivlm.schema import ImageInput, Video
from minivlm.scoring import decode_answers
from minivlm.tokenizer import IM_END, BPETokenizer
from minivlm.train.run import build_processor

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")  # the frame files of a video folder


def load_answerer(path: str | Path) -> tuple[VLM, Processor, int]:
    """The model, its processor and its answer budget (tokens) from an export, a run folder or a checkpoint."""
    path, run = Path(path), RunFolder(path)
    if run.is_run() and is_export_dir(run.export):
        path = run.export  # a finished run: its export
    target = resolve_target(path, "last")
    cfg = load_config(target, Settings())  # the run's config, or the settings an export carries
    model, _ = load_model(target)
    if is_export_dir(target.weights):
        processor = Processor.from_pretrained(target.weights)
    else:
        processor = build_processor(cfg.data, model.config, BPETokenizer.load(target.tokenizer_dir))
    return model, processor, int(cfg.data.max_new_tokens)


def read_video(path: str | Path, fps: float | None = None) -> Video:
    """An animated image file (frame rate from its frame durations) or a folder of frames (at ``fps``).

    Raises:
        ValueError: a format that is not read here, a folder without frames or without ``fps``.
    """
    path = Path(path)
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not frames:
            raise ValueError(f"{path} holds no frame images ({', '.join(FRAME_SUFFIXES)})")
        if fps is None:
            raise ValueError(f"{path} is a folder of frames: give their frame rate with --fps")
        return {"frames": [frame.read_bytes() for frame in frames], "fps": fps}
    try:
        with Image.open(path) as image:
            frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]
            duration = image.info.get("duration")  # milliseconds per frame, in animated files
    except OSError:
        raise ValueError(f"cannot read {path} as a video: minivlm reads animated GIF, WebP or PNG files and "
                         "folders of frames; convert it, e.g. `ffmpeg -i clip.mp4 -vf fps=2 frames/%04d.png`, "
                         "then pass --video frames --fps 2") from None
    rate = fps or (1000 / duration if duration else None)
    if rate is None:
        raise ValueError(f"{path} does not say its frame rate; give it with --fps")
    return {"frames": frames, "fps": rate}


@torch.no_grad()
def ask(model: VLM, processor: Processor, question: str, images: Sequence[ImageInput] = (),
        videos: Sequence[Video] = (), max_new_tokens: int = 16, temperature: float = 0.0, top_k: int | None = None,
        generator: torch.Generator | None = None) -> str:
    """The model's answer to ``question`` about ``images`` and ``videos`` (placed before the question).

    Raises:
        ValueError: media the processor rejects, a prompt longer than the model's context.
    """
    parts = [{"type": "image"} for _ in images] + [{"type": "video"} for _ in videos]
    sample = {"id": "question", "images": list(images), "videos": list(videos),
              "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": question}]}]}
    tokenizer = processor.tokenizer
    collate = Collator(model.config.rope_schedule(), tokenizer.pad_id, model.config.max_seq_len, padding_side="left")
    batch = collate([processor(sample, prompt_only=True)])
    generated = model.generate(batch, max_new_tokens, eos_token_id=tokenizer.token_id(IM_END),
                               temperature=temperature, top_k=top_k, generator=generator)
    return decode_answers(tokenizer, generated)[0]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an export folder, a run folder or a .ckpt")
    parser.add_argument("question", help="the question, in the words of the training data")
    parser.add_argument("--image", type=Path, action="append", default=[], help="an image file (repeatable)")
    parser.add_argument("--video", type=Path, action="append", default=[],
                        help="an animated GIF/WebP/PNG or a folder of frames (repeatable)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of a folder of frames (or to override a file's)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="answer budget (default: the model's)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy; above 0: sample")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--samples", type=int, default=1, help="answers to draw (with --temperature)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    args = parser.parse_args(argv)
    if args.temperature < 0 or args.samples < 1:
        parser.error("--temperature must be >= 0 and --samples >= 1")
    try:
        model, processor, budget = load_answerer(args.model)
        images = [path.read_bytes() for path in args.image]
        videos = [read_video(path, args.fps) for path in args.video]
        generator = torch.Generator().manual_seed(args.seed)
        for _ in range(args.samples if args.temperature > 0 else 1):
            print(ask(model, processor, args.question, images, videos, args.max_new_tokens or budget,
                      args.temperature, args.top_k, generator))
    except (ValueError, OSError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
