"""The PTD table (Circle-RoPE Table 1 analogue): SPEC.md section 5 goldens and how PTD scales."""

import pytest

from minivlm.evaluation.ptd_table import DESIGNS, design_ids, image_layout, main, markdown_table, ptd_of


def test_table_one_goldens():
    """2 text tokens, a 3x3 image, 3 text tokens (SPEC.md section 5)."""
    assert ptd_of("rope1d", 3, 3) == pytest.approx(20 / 9, abs=1e-6)  # "hard": flattened 1D positions
    assert ptd_of("shared", 3, 3) == 0.0  # one index for the whole image
    assert ptd_of("mrope", 3, 3) == pytest.approx(0.5326, abs=1e-4)
    assert ptd_of("circle", 3, 3) < 1e-6


def test_shared_index_layout():
    ids = design_ids("shared", image_layout(2, 2))
    assert ids.tolist() == [[0, 1, 2, 2, 2, 2, 3, 4, 5]]


@pytest.mark.parametrize("side", [2, 5, 8])
def test_ptd_vs_size(side):
    """Flattened 1D PTD grows with the image; the shared index and the ring stay at 0; M-RoPE in between."""
    assert ptd_of("shared", side, side) == 0.0 and ptd_of("circle", side, side) < 1e-5
    assert 0 < ptd_of("mrope", side, side) < ptd_of("rope1d", side, side)
    assert ptd_of("rope1d", side + 1, side + 1) > ptd_of("rope1d", side, side)


def test_markdown_and_plot(tmp_path, capsys):
    assert "| rope1d | hard: the next integers, in raster order (1D) | 2.2222 |" in markdown_table()
    main(["--out", str(tmp_path), "--max-side", "4"])
    printed = capsys.readouterr().out
    assert "| mrope | M-RoPE: (s, s + y, s + x) | 0.5326 |" in printed and "| circle |" in printed
    assert (tmp_path / "ptd_table.md").read_text().count("\n| ") == 1 + len(DESIGNS)
    assert 0 < (tmp_path / "ptd_vs_image_size.png").stat().st_size < 200_000
    with pytest.raises(ValueError, match="unknown PTD row"):
        design_ids("hard", image_layout(2, 2))
