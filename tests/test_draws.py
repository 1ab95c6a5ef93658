"""The named-draw seam (bench/data/draws.py): the default path is the generator's own
stream, and a replay hands out recorded values by name and refuses mismatches."""
import numpy as np
import pytest

from bench.data.draws import DrawsError, ReplayDraws, SampleDraws


def test_default_draws_are_the_generators_stream():
    draws = SampleDraws(np.random.default_rng(7))
    got = [draws.random("a"), draws.normal("b"), draws.integers("c", 0, 17),
           draws.uniform("d", 0.5, 2.0), draws.normal("e", 0.0, 0.1, size=3).tolist(),
           draws.permutation("f", 3).tolist(), draws.choice("g", [0.6, 0.7, 0.8])]
    rng = np.random.default_rng(7)
    want = [rng.random(), rng.standard_normal(), int(rng.integers(0, 17)),
            rng.uniform(0.5, 2.0), rng.normal(0.0, 0.1, size=3).tolist(),
            rng.permutation(3).tolist(), [0.6, 0.7, 0.8][int(rng.integers(0, 3))]]
    assert got == want


def test_replay_hands_out_values_by_name_in_order():
    draws = ReplayDraws({"flip": [0.25, 0.75], "scale": [-0.5], "crop_x": [3]})
    assert draws.random("flip") == 0.25
    assert draws.normal("scale") == -0.5
    assert draws.random("flip") == 0.75
    assert draws.integers("crop_x", 0, 4) == 3
    assert draws.unused() == {}
    assert [name for name, _ in draws.log] == ["flip", "scale", "flip", "crop_x"]


def test_replay_refuses_a_missing_name_and_values_out_of_range():
    draws = ReplayDraws({"flip": [0.1], "crop_x": [4], "lighting": [[0.1, 0.2]],
                         "order": [[0, 0, 1]], "scale": [0.65]})
    with pytest.raises(DrawsError, match="no recorded draw 'rotate' left"):
        draws.random("rotate")
    with pytest.raises(DrawsError, match="not an integer in \\[0, 4\\)"):
        draws.integers("crop_x", 0, 4)      # randint(0, 4) includes 4, integers does not
    with pytest.raises(DrawsError, match="recorded shape \\(2,\\), asked for \\(3,\\)"):
        draws.normal("lighting", 0.0, 0.1, size=3)
    with pytest.raises(DrawsError, match="not a permutation"):
        draws.permutation("order", 3)
    with pytest.raises(DrawsError, match="not one of"):
        draws.choice("scale", [0.6, 0.7])
    assert draws.unused() == {"flip": [0.1]}
