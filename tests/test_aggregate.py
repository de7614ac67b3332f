"""The ablation aggregate on fabricated run folders with known numbers, finished and unfinished."""

import json
import math

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from omegaconf import OmegaConf

from minivlm.data.storage import load_baselines
from minivlm.evaluation.aggregate import RunRecord, group_stats, main, plot_bars, read_run, write_report
from minivlm.run_folder import find_runs

MROPE = {"schedule": "all", "variant": "mrope", "partner": "mrope", "theta": 10000, "options": {}}
ALTERNATE = {"schedule": "alternate", "variant": "circle", "partner": "mrope", "theta": 10000, "options": {}}


def fabricate(root, name, rope, vit_rope, seed, evaluation=None, final=None, evaluated_step=10):
    """A run folder as training and evaluate.py leave it: config, baselines (the shipped ones), and
    optionally their result files."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    config = {"seed": seed, "steps": 10, "rope": rope, "model": {"size": "tiny", "vit_rope": vit_rope}}
    OmegaConf.save(config, run / "checkpoints" / "config.yaml")
    (run / "checkpoints" / "baselines.json").write_text(json.dumps(load_baselines()["splits"]))
    if evaluation is not None:  # {split: {task: exact}}; near = exact + 0.1
        scores = {split: {task: {"n": 4, "exact": v, "near": v + 0.1, "valid": 1.0} for task, v in tasks.items()}
                  for split, tasks in evaluation.items()}
        (run / "evaluation.json").write_text(json.dumps({"step": evaluated_step, "scores": scores}))
    if final is not None:
        (run / "final_eval.json").write_text(json.dumps({"accuracy": final, "steps": 10}))
    return run


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    for seed, (grounding, count) in enumerate([(0.5, 0.1), (0.7, 0.2), (0.9, 0.3)]):
        fabricate(root, f"mrope-{seed}", MROPE, True, seed,
                  evaluation={"val": {"grounding": grounding, "count": count}, "extrapolate": {"grounding": count}},
                  final={"grounding": 0.0, "count": 0.0})  # evaluation.json wins over final_eval.json
    fabricate(root, "alt-0", ALTERNATE, False, 0, final={"grounding": 0.4, "count": 0.6},  # scores from training:
              evaluation={"val": {"grounding": 0.9, "count": 0.9}}, evaluated_step=5)  # evaluation.json is stale
    fabricate(root, "alt-1", ALTERNATE, False, 1)  # still training: nothing yet
    fabricate(root, "alt-2", ALTERNATE, False, 2, evaluation={"val": {"grounding": 1.0, "count": 1.0}})  # unfinished
    return root


def test_means_and_sample_stds_over_seeds(sweep):
    records = [read_run(run, ("rope", "model.vit_rope")) for run in find_runs(sweep)]
    assert [(r.group, r.seed, r.included) for r in records] == [
        (("circle_alternate", "False"), 0, True), (("circle_alternate", "False"), 1, False),
        (("circle_alternate", "False"), 2, False),
        (("mrope", "True"), 0, True), (("mrope", "True"), 1, True), (("mrope", "True"), 2, True)]
    stats = group_stats(records)
    mrope = stats["val", "exact"][("mrope", "True")]
    assert (mrope["grounding"].mean, mrope["grounding"].std, mrope["grounding"].n) == pytest.approx((0.7, 0.2, 3))
    assert (mrope["count"].mean, mrope["count"].std) == pytest.approx((0.2, 0.1))
    assert (mrope["mean"].mean, mrope["mean"].std) == pytest.approx((0.45, 0.15))  # per-run task means .3 .45 .6
    assert stats["val", "near"][("mrope", "True")]["grounding"].mean == pytest.approx(0.8)
    assert stats["extrapolate", "exact"][("mrope", "True")]["grounding"].mean == pytest.approx(0.2)
    alternate = stats["val", "exact"][("circle_alternate", "False")]  # one finished seed, from final_eval.json
    assert (alternate["count"].mean, alternate["count"].n) == (0.6, 1) and math.isnan(alternate["count"].std)
    assert ("circle_alternate", "False") not in stats["val", "near"]  # training reports exact match only


def test_report_files(sweep, tmp_path):
    written = write_report(sweep, tmp_path / "report")
    names = sorted(path.name for path in written)
    assert names == sorted(["summary.md", "summary.csv", "val_exact.png", "val_near.png", "val_valid.png",
                            "extrapolate_exact.png", "extrapolate_near.png", "extrapolate_valid.png"])
    markdown = (tmp_path / "report" / "summary.md").read_text()
    assert "| rope | vit_rope | n | count | grounding | mean |" in markdown
    assert "| mrope | True | 3 | 0.200 ± 0.100 | 0.700 ± 0.200 | 0.450 ± 0.150 |" in markdown
    assert "| circle_alternate | False | 1 | 0.600 | 0.400 | 0.500 |" in markdown
    assert ("| alt-0 | circle_alternate | False | 0 | 10 | final_eval.json (evaluation.json is of step 5: re-run "
            "evaluate.py) | yes |") in markdown
    assert "| alt-1 | circle_alternate | False | 1 | - | - | no: training not finished |" in markdown
    assert "| alt-2 | circle_alternate | False | 2 | 10 | evaluation.json | no: training not finished |" in markdown
    rows = (tmp_path / "report" / "summary.csv").read_text().splitlines()
    assert rows[0] == "rope,vit_rope,split,metric,task,mean,std,n"
    assert "mrope,True,val,exact,grounding,0.7,0.2,3" in rows
    assert "circle_alternate,False,val,exact,count,0.6,nan,1" in rows
    assert all(0 < path.stat().st_size < 200_000 for path in written if path.suffix == ".png")


def test_cli(sweep, tmp_path, capsys):
    main([str(sweep), "--out", str(tmp_path / "cli"), "--group-by", "rope"])
    assert "| circle_alternate | 1 | 0.600 | 0.400 | 0.500 |" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no minivlm run below"):
        main([str(tmp_path / "empty"), "--out", str(tmp_path / "unused")])


def test_record_without_scores_is_not_included(tmp_path):
    record = RunRecord(tmp_path, ("mrope",), 0, None, True, "", {})
    assert not record.included and group_stats([record]) == {}


def test_bar_charts_show_every_seed_and_fit_their_title_and_legend(sweep, tmp_path):
    records = [read_run(run, ("rope", "model.vit_rope")) for run in find_runs(sweep)]
    groups = group_stats(records)["val", "exact"]
    title = "a long sweep name: val, exact (bars: mean ± std over seeds; points: seeds) " * 2
    figure = plot_bars(groups, ["rope", "vit_rope"], title, {"grounding": 0.11}, tmp_path / "bars.png")
    points = sorted(float(y) for collection in figure.axes[0].collections if isinstance(collection, PathCollection)
                    for _, y in collection.get_offsets())
    # mrope: 3 seeds x (count, grounding, their mean); circle_alternate: 1 finished seed x 3
    assert points == pytest.approx(sorted([0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.3, 0.45, 0.6, 0.6, 0.4, 0.5]))
    canvas = FigureCanvasAgg(figure)  # what savefig rendered with
    canvas.draw()
    renderer = canvas.get_renderer()
    inside = figure.bbox
    for artist in (figure.legends[0], figure._suptitle):
        box = artist.get_window_extent(renderer)
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels[:2] == ["rope=circle_alternate, vit_rope=False", "rope=mrope, vit_rope=True"]
    assert {"one seed", "chance"} <= set(labels)
