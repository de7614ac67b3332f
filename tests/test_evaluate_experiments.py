"""The ablation experiments: their sweeps compose, every job gets its own run folder in its sweep folder."""

import itertools

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser

from minivlm.model import RopeConfig

from conftest import REPO

EXPERIMENTS = {  # name: swept ropes (each with ViT RoPE on and off, seeds 0, 1, 2)
    "ablation_frequency": ["mrope", "mrope_interleaved", "videorope"],
    "ablation_staggered": ["circle", "circle_alternate", "circle_lower", "circle_upper", "mrope"],
}


def swept_values(params) -> dict[str, list]:
    """``hydra.sweeper.params`` parsed as Hydra's basic sweeper does: {key: [typed values]}."""
    parser = OverridesParser.create()
    return {key: list(parser.parse_override(f"{key}={values}").sweep_iterator()) for key, values in params.items()}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_sweep_names_every_job_uniquely(experiment):
    names = {}
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        base = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
        swept = swept_values(base.hydra.sweeper.params)
        assert swept == {"rope": EXPERIMENTS[experiment], "model.vit_rope": [True, False], "seed": [0, 1, 2]}
        for rope in swept["rope"]:  # composing checks every swept rope config exists
            cfg = compose("train", overrides=[f"experiment={experiment}", f"rope={rope}"], return_hydra_config=True)
            assert RopeConfig(**cfg.rope).label == rope
            for vit_rope, seed in itertools.product(swept["model.vit_rope"], swept["seed"]):
                cfg.model.vit_rope, cfg.seed = vit_rope, seed
                HydraConfig.instance().set_config(cfg)  # resolves the ${hydra:...} parts of the run name
                assert cfg.hydra.sweep.dir == f"outputs/{experiment}"
                assert cfg.hydra.sweep.subdir.startswith(f"{cfg.name}-job")  # the sweep itself numbers the jobs
                names[cfg.name] = (rope, vit_rope, seed)
    assert len(names) == len(EXPERIMENTS[experiment]) * 2 * 3  # one run folder per (rope, vit_rope, seed)


@pytest.mark.slow  # composes every job of the sweep
def test_the_temporal_sweep_names_every_job_and_the_timestamps_sweep_narrows_it():
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        base = compose("train", overrides=["experiment=ablation_temporal"], return_hydra_config=True)
        swept = swept_values(base.hydra.sweeper.params)
        assert swept == {"rope": ["mrope", "mrope_interleaved", "videorope", "rope1d", "circle"], "seed": [0, 1, 2]}
        assert (base.data.video_layout, base.data.task.form, base.data.mix) == ("absolute_time", "shape",
                                                                                {"clip_needle": 1.0})
        names = set()
        for layout, rope, seed in itertools.product(["absolute_time", "timestamps"], swept["rope"], swept["seed"]):
            cfg = compose("train", overrides=["experiment=ablation_temporal", f"rope={rope}",
                                              f"data.video_layout={layout}", f"seed={seed}"], return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            assert cfg.hydra.sweep.dir == "outputs/ablation_temporal"
            names.add(cfg.name)
    assert len(names) == 2 * 5 * 3  # one folder per (layout, rope, seed): both sweeps share the sweep folder


@pytest.mark.slow  # composes every job of the sweep
def test_the_bias_sweep_names_every_job_and_the_question_first_sweep_narrows_it():
    ropes = ["rope1d", "mrope", "mrope_interleaved", "circle", "circle_alternate", "circle_lower", "circle_upper"]
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        base = compose("train", overrides=["experiment=ablation_bias"], return_hydra_config=True)
        assert swept_values(base.hydra.sweeper.params) == {"rope": ropes, "seed": [0, 1, 2]}
        assert (base.data.task.image_size, base.data.max_pixels, base.data.mix) == ([96, 96], 96 * 96, "grounding")
        names = set()
        for question_first, rope, seed in itertools.product([False, True], ropes, [0, 1, 2]):
            cfg = compose("train", overrides=["experiment=ablation_bias", f"rope={rope}", f"seed={seed}",
                                              f"data.task.question_first={question_first}"], return_hydra_config=True)
            assert RopeConfig(**cfg.rope).label == rope
            HydraConfig.instance().set_config(cfg)
            assert cfg.hydra.sweep.dir == "outputs/ablation_bias"
            assert cfg.data.task.question_first is question_first
            names.add(cfg.name)
    assert len(names) == 2 * 7 * 3  # one folder per (question side, rope, seed): both settings share the sweep folder
