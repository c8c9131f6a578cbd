"""benchmarks/warmstart_equal_time.py: every candidate trains the conditioned IR-Flow recipe with its own network
at a constant lr, and nothing else differs between them."""

from pathlib import Path

from benchmarks.warmstart_equal_time import CANDIDATES, candidate_recipe
from flowprior.train_warmstart import learning_rate


def test_candidates_differ_only_in_their_network_and_keep_a_constant_lr(tmp_path):
    recipes = {name: candidate_recipe(net, 10, 2, Path(tmp_path) / name) for name, net in CANDIDATES.items()}
    for name, recipe in recipes.items():
        assert {key: getattr(recipe.irflow, key) for key in CANDIDATES[name]} == CANDIDATES[name]
        assert recipe.irflow.cond_channels == 7 and recipe.optim.max_minutes == 10
        model = recipe.build_model()
        assert model.conditioned and model.config.arch == CANDIDATES[name]["arch"]
        o = recipe.optim
        assert learning_rate(o, 200, o.steps) == learning_rate(o, 5000, o.steps) == o.lr
    first, *others = recipes.values()
    for recipe in others:
        assert recipe.data == first.data and recipe.optim == first.optim
