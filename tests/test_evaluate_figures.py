"""Teaching figures: the pair -> axis maps they draw, and small PNGs."""

import math

import pytest
import torch

from minivlm.evaluation.figures import main, wavelength_map
from minivlm.rope import axis_string, pair_axes


def test_wavelength_map_marks_the_axis_each_pair_reads():
    for allocation in ("chunked", "interleaved", "lta"):
        grid = wavelength_map(allocation, head_dim=128, theta=10_000)
        read = (~grid.isnan()).to(torch.long)
        assert read.sum(dim=0).tolist() == [1] * 64  # every pair reads exactly one axis
        assert axis_string(read.argmax(dim=0)) == axis_string(pair_axes(allocation, 64))
        wavelengths = grid.nan_to_num(0).sum(dim=0)
        assert wavelengths[0] == pytest.approx(math.log10(2 * math.pi))  # pair 0: one turn per 2 pi positions
        assert (wavelengths.diff() > 0).all()  # slower and slower along the pairs


def test_figures_are_small_pngs(tmp_path, capsys):
    main(["--out", str(tmp_path)])
    for name in ("frequency_maps.png", "image_ids.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / name).stat().st_size < 200_000
    assert "frequency_maps.png" in capsys.readouterr().out
