"""The ensemble surrogate: fits a known function of one-hot features, its spread grows away from the data, it is
deterministic per seed, warm refits continue training, and bad input is a user error."""

from __future__ import annotations

import numpy as np
import pytest

from nasforge.errors import NasforgeError
from nasforge.space import Space
from nasforge.surrogate import Surrogate

SPACE = Space({f"g{i}": list(range(4)) for i in range(5)})  # 1,024 archs, 20 features


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    archs = [SPACE.sample(rng) for _ in range(n)]
    X = SPACE.encode_many(archs)
    w = np.linspace(-2, 2, X.shape[1])
    y = X @ w + 0.5 * X[:, 0] * X[:, 5] + 70.0  # additive in the one-hots, one interaction, an offset
    return X, y


def test_fits_a_known_function_on_held_out_archs():
    X, y = data(300)
    Xt, yt = data(200, seed=1)
    s = Surrogate(seed=0, steps=300).fit(X, y)
    mu, sd = s.predict(Xt)
    assert mu.shape == sd.shape == (200,)
    assert np.corrcoef(mu, yt)[0, 1] > 0.95
    assert np.sqrt(np.mean((mu - yt) ** 2)) < 0.5 * yt.std()
    assert (sd >= 0).all()


def test_spread_is_larger_away_from_the_data():
    X, y = data(200)
    keep = X[:, 0] == 0  # never show the model g0 = 0
    s = Surrogate(seed=0, members=8).fit(X[keep], y[keep])
    _, sd_in = s.predict(X[keep])
    _, sd_out = s.predict(X[~keep])
    assert sd_out.mean() > sd_in.mean()


def test_deterministic_for_a_seed_and_members_differ():
    X, y = data(60)
    a = Surrogate(seed=3, steps=50).fit(X, y).predict_members(X)
    b = Surrogate(seed=3, steps=50).fit(X, y).predict_members(X)
    assert np.array_equal(a, b)
    assert not np.allclose(a[0], a[1])


def test_warm_refit_continues_from_the_current_weights():
    X, y = data(120)
    s = Surrogate(seed=0, steps=200, warm_steps=30).fit(X[:100], y[:100])
    err_before = np.abs(s.predict(X[100:])[0] - y[100:]).mean()
    s.fit(X, y, warm=True)
    assert s.n_fit == 120
    assert np.abs(s.predict(X[100:])[0] - y[100:]).mean() < err_before


@pytest.mark.parametrize("bootstrap", [False, True])
def test_constant_targets_and_bootstrap(bootstrap):
    X, _ = data(20)
    mu, _ = Surrogate(seed=0, steps=20, bootstrap=bootstrap).fit(X, np.full(20, 5.0)).predict(X)
    assert np.allclose(mu, 5.0, atol=0.05)


def test_bad_input_is_a_user_error():
    with pytest.raises(NasforgeError):
        Surrogate().predict(np.zeros((2, 3)))
    with pytest.raises(NasforgeError):
        Surrogate().fit(np.zeros((3, 2)), np.array([1.0, np.nan, 2.0]))
    with pytest.raises(NasforgeError):
        Surrogate().fit(np.zeros((1, 2)), np.array([1.0]))


def test_randomized_prior_widens_the_spread_away_from_the_data_and_one_member_has_none():
    X, y = data(200)
    keep = X[:, 0] == 0
    plain = Surrogate(seed=1, members=6).fit(X[keep], y[keep])
    prior = Surrogate(seed=1, members=6, prior=1.0).fit(X[keep], y[keep])
    assert prior.predict(X[~keep])[1].mean() > plain.predict(X[~keep])[1].mean()
    mu, sd = Surrogate(seed=0, members=1, hidden=32, layers=3, steps=50).fit(X, y).predict(X)
    assert np.all(sd == 0) and np.corrcoef(mu, y)[0, 1] > 0.8
