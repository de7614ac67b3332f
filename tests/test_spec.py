"""minivlm/SPEC.md and the project stay in sync.

1. Citations: every ``SPEC.md section <n>`` (or ``sections <n> and <m>``) in the project names a
   ``## <n>.`` heading of the spec, every ``SPEC.md golden <name>`` (or ``goldens <name>, <name>
   and <name>``) a ``### Golden <name>:`` heading.
2. Goldens: the values written in the spec's fenced blocks are what the code computes (position
   ids of every block with ``segments:`` and ``design:`` lines, the 3x3 ring, PTD, cos tables,
   allocation maps, default sections, smart resize, patch order, timestamp text). The values are
   parsed from the spec text, so a wrong digit in SPEC.md fails here.
"""

import os
import re
from pathlib import Path

import pytest
import torch

from minivlm.processing import patch_positions, smart_resize, timestamp_text
from minivlm.rope import (
    TextSegment, VisionSegment, axis_string, build_positions, circle_offsets, default_sections,
    pair_axes, position_ids, ptd, rotary_cos_sin, vision_mask,
)

ROOT = Path(__file__).resolve().parents[1]
SPEC = (ROOT / "minivlm" / "SPEC.md").read_text()
SECTIONS = [int(n) for n in re.findall(r"^## (\d+)\. \S", SPEC, re.MULTILINE)]
GOLDEN_NAMES = re.findall(r"^### Golden ([^\s:]+): \S", SPEC, re.MULTILINE)
SKIP_DIRS = {"venv", "outputs", "multirun", "lightning_logs", "build", "dist", "__pycache__"}

# A citation: "SPEC.md" then a clause, e.g. "section 3", "sections 5 and 7", "golden A", "goldens A,
# B and H", and optionally more clauses after commas ("SPEC.md section 7, golden A"). Comment
# markers (#) may sit inside a citation wrapped over lines.
NUM, NAME = r"\d+(?:\.\d+)*", r"(?!(?:and|or)\b)[A-Za-z0-9][\w-]*"
AND = r"(?:[\s#]*,[\s#]*and[\s#]+|[\s#]*,[\s#]*|[\s#]+and[\s#]+)"
BODY = (rf"""(?:[Ss]ections?[\s#]+(?P<sections>{NUM}(?:(?:{AND}|[\s#]*-[\s#]*){NUM})*)"""
        rf"""|[Gg]olden[\s#]+["'`]?(?P<golden>{NAME})|[Gg]oldens[\s#]+(?P<goldens>{NAME}(?:{AND}{NAME})*))""")
FIRST, NEXT = re.compile(rf"""[\s#,("'`*]*{BODY}"""), re.compile(rf"""[\s#"'`*]*,[\s#"'`*]*{BODY}""")


def project_files():
    """Source, config and documentation files of the project (hidden and build folders skipped),
    except this file, whose examples cite on purpose what does not exist."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not (d.startswith(".") or d in SKIP_DIRS or d.endswith(".egg-info")))
        for name in sorted(files):
            path = Path(folder, name)
            if name.endswith((".py", ".md", ".yaml", ".yml", ".toml")) and path != Path(__file__).resolve():
                yield path


def citations(text: str):
    """``(kind, value)`` for each cited section ("section", "3") and golden ("golden", "A"); a
    "SPEC.md" followed by a bare number ("SPEC.md 7A") is ("malformed", its text)."""
    for match in re.finditer(r"SPEC\.md", text):
        position, found = match.end(), False
        while clause := (NEXT if found else FIRST).match(text, position):
            position, found = clause.end(), True
            if clause["sections"]:
                yield from (("section", n) for n in re.findall(NUM, clause["sections"]))
            names = clause["golden"] or clause["goldens"]
            if names:
                yield from (("golden", n) for n in re.split(AND, names))
        if not found and re.match(r"[\s,(]*[\d§]", text[match.end():]):
            yield "malformed", text[match.start():match.end() + 12].strip()


def unresolved(text: str) -> list[str]:
    known = {"section": {str(n) for n in SECTIONS}, "golden": set(GOLDEN_NAMES), "malformed": set()}
    return [f"{kind} {value}" for kind, value in citations(text) if value not in known[kind]]


def test_spec_structure():
    assert SECTIONS == list(range(1, len(SECTIONS) + 1)) and len(SECTIONS) >= 7
    assert len(GOLDEN_NAMES) == len(set(GOLDEN_NAMES)), "golden names must be unique"
    assert {"A", "B", "D", "H", "circle-sequence", "circle-ring-3x3", "ptd"} <= set(GOLDEN_NAMES)


def test_citation_scanner_reads_every_form():
    text = ("SPEC.md sections 5 and 7, golden A; (SPEC.md, section 3) SPEC.md goldens B, D and H\n"
            "# SPEC.md\n# section 4 goldens and how; ``SPEC.md`` exactly; SPEC.md golden circle-ring-3x3.")
    assert list(citations(text)) == [("section", "5"), ("section", "7"), ("golden", "A"), ("section", "3"),
                                     ("golden", "B"), ("golden", "D"), ("golden", "H"), ("section", "4"),
                                     ("golden", "circle-ring-3x3")]
    assert unresolved(text) == []
    assert unresolved("SPEC.md section 9, SPEC.md golden Z, SPEC.md 7A") == ["section 9", "golden Z",
                                                                           "malformed SPEC.md 7A"]


def test_every_spec_citation_resolves():
    bad = {str(p.relative_to(ROOT)): unresolved(p.read_text(errors="replace")) for p in project_files()}
    bad = {path: problems for path, problems in bad.items() if problems}
    assert not bad, (f"citations SPEC.md does not resolve: {bad}; its sections are {SECTIONS}, its goldens "
                     f"{GOLDEN_NAMES}; cite as `SPEC.md section 3` or `SPEC.md golden A`")


# ---- the golden values written in SPEC.md --------------------------------------------------------

def golden_blocks() -> dict[str, list[str]]:
    """The fenced blocks under each ``### Golden <name>:`` heading."""
    blocks = {}
    for part in re.split(r"^(?=#{1,3} )", SPEC, flags=re.MULTILINE):
        if heading := re.match(r"### Golden ([^\s:]+): ", part):
            blocks[heading[1]] = re.findall(r"^```\n(.*?)^```", part, re.DOTALL | re.MULTILINE)
    return blocks


GOLDENS = golden_blocks()


def fields(block: str) -> dict[str, str]:
    return {key.strip(): value.strip() for key, value in
            (line.split(":", 1) for line in block.splitlines() if ":" in line)}


def numbers(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def keywords(words: list[str]) -> dict:
    """``["alpha=0.5", "radius=10"]`` -> ``{"alpha": 0.5, "radius": 10}``."""
    return {k: int(v) if v.isdigit() else float(v) for k, v in (word.split("=") for word in words)}


def segments_of(text: str) -> list:
    """``"text 4, vision 1x2x3 seconds_per_grid=0.5"`` -> segments."""
    segments = []
    for kind, size, *options in (item.split() for item in text.split(",")):
        if kind == "text":
            segments.append(TextSegment(int(size)))
        else:
            segments.append(VisionSegment(*map(int, size.split("x")), **keywords(options)))
    return segments


ID_CASES = [(f"{name}-{i}", block) for name, blocks in GOLDENS.items()
            for i, block in enumerate(blocks) if "design:" in block]


def test_id_goldens_are_all_there():
    assert {"A-0", "B-0", "D-0", "H-0", "circle-sequence-0"} <= {case for case, _ in ID_CASES}


@pytest.mark.parametrize("block", [block for _, block in ID_CASES], ids=[case for case, _ in ID_CASES])
def test_position_id_goldens(block):
    spec = fields(block)
    design, *options = spec["design"].split()
    ids, next_position = build_positions(segments_of(spec["segments"]), design, **keywords(options))
    torch.testing.assert_close(ids, torch.tensor([numbers(spec[row]) for row in "thw"]), atol=1e-4, rtol=0)
    if "next" in spec:
        assert next_position == pytest.approx(float(spec["next"]), abs=1e-4)


def test_circle_ring_golden():
    (block,) = GOLDENS["circle-ring-3x3"]
    options = keywords(fields(block)["ring"].split())
    rows = re.findall(r"^\((\d+), (\d+)\)((?:\s+\S+){3})$", block, re.MULTILINE)
    raster = [(y, x) for y in range(options["h"]) for x in range(options["w"])]
    assert [(int(y), int(x)) for y, x, _ in rows] == raster
    expected = torch.tensor([numbers(values) for _, _, values in rows], dtype=torch.float64).T
    torch.testing.assert_close(circle_offsets(**options), expected, atol=1e-4, rtol=0)


def test_ptd_golden():
    spec = fields(GOLDENS["ptd"][0])
    segments = segments_of(spec.pop("segments"))
    assert {"rope1d", "mrope", "circle"} <= spec.keys()
    for design, value in spec.items():
        ids = position_ids(segments, design)
        ids = ids[:1] if design == "rope1d" else ids  # a 1D position is one number (SPEC.md section 5)
        assert ptd(ids, vision_mask(segments)) == pytest.approx(float(value), abs=1e-4), design


@pytest.mark.parametrize("name", ["cos-chunked", "cos-interleaved"])
def test_cos_goldens(name):
    spec = fields(GOLDENS[name][0])
    head_dim = int(spec["head_dim"])
    cos, _ = rotary_cos_sin(torch.tensor(numbers(spec["ids"])).view(3, 1), head_dim, float(spec["theta"]),
                            spec["allocation"])
    for channel, value in (item.split("=") for item in spec["cos"].split()):
        c = int(channel.removeprefix("c"))
        assert cos[0, c].item() == pytest.approx(float(value), abs=1e-5)
        assert cos[0, c + head_dim // 2].item() == cos[0, c].item()


def test_allocation_goldens():
    for allocation, string in fields(GOLDENS["pair-axes"][0]).items():
        assert axis_string(pair_axes(allocation, len(string))) == string, allocation
    for key, sections in fields(GOLDENS["default-sections"][0]).items():
        allocation, pairs = key.split(" P=")
        assert default_sections(allocation, int(pairs)) == tuple(int(s) for s in sections.split()), key


def test_resize_golden():
    for block in GOLDENS["resize"]:
        lines = block.splitlines()
        bounds = keywords(lines[0].removeprefix("bounds:").split())
        for size, result in (line.split(" -> ") for line in lines[1:]):
            height, width = map(int, size.split("x"))
            if result.startswith("ValueError: "):
                with pytest.raises(ValueError, match=re.escape(result.removeprefix("ValueError: "))):
                    smart_resize(height, width, **bounds)
            else:
                assert smart_resize(height, width, **bounds) == tuple(map(int, result.split("x"))), size


def test_patch_order_golden():
    pairs = re.findall(r"\((\d+),(\d+)\)", GOLDENS["patch-order"][0])
    assert patch_positions(1, 4, 4, 2).tolist() == [[int(r), int(c)] for r, c in pairs]


def test_timestamp_text_golden():
    for seconds, text in (line.split(" -> ") for line in GOLDENS["timestamp-text"][0].splitlines()):
        assert timestamp_text(float(seconds)) == text
