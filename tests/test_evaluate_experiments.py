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
                assert (cfg.hydra.sweep.dir, cfg.hydra.sweep.subdir) == (f"outputs/{experiment}", cfg.name)
                names[cfg.name] = (rope, vit_rope, seed)
    assert len(names) == len(EXPERIMENTS[experiment]) * 2 * 3  # one run folder per (rope, vit_rope, seed)
