"""benchmarks/warmstart_equal_time.py: every candidate trains the conditioned IR-Flow recipe with its own network
at a constant lr, and nothing else differs between them."""

from pathlib import Path

from benchmarks.warmstart_equal_time import CANDIDATES, TRAINING, candidate_recipe
from flowprior.train_warmstart import learning_rate


def test_candidates_differ_only_in_their_network_and_keep_a_constant_lr(tmp_path):
    recipes = {name: candidate_recipe(net, 10, 2, Path(tmp_path) / name, TRAINING["fp32"])
               for name, net in CANDIDATES.items()}
    for name, recipe in recipes.items():
        assert {key: getattr(recipe.irflow, key) for key in CANDIDATES[name]} == CANDIDATES[name]
        assert recipe.irflow.cond_channels == 7 and recipe.optim.max_minutes == 10
        model = recipe.build_model()
        assert model.conditioned and model.config.arch == CANDIDATES[name]["arch"]
        o = recipe.optim
        assert learning_rate(o, 200, o.steps) == learning_rate(o, 5000, o.steps) == o.lr
    assert first_optim_is_float32(recipes)
    first, *others = recipes.values()
    for recipe in others:
        assert recipe.data == first.data and recipe.optim == first.optim


def first_optim_is_float32(recipes) -> bool:
    return all(r.optim.precision == "fp32" and not r.optim.compile for r in recipes.values())


def test_the_fast_arm_differs_from_the_float32_arm_only_in_how_it_trains(tmp_path):
    network = CANDIDATES["lean-w48-d2-top16"]
    slow = candidate_recipe(network, 7, 2, tmp_path / "a", TRAINING["fp32"])
    fast = candidate_recipe(network, 7, 2, tmp_path / "b", TRAINING["fast"])
    assert (slow.optim.precision, slow.optim.fast_adam, slow.optim.compile) == ("fp32", False, False)
    assert (fast.optim.precision, fast.optim.fast_adam, fast.optim.compile) == ("bf16", True, True)
    assert slow.irflow == fast.irflow and slow.data == fast.data and slow.optim.lr == fast.optim.lr
