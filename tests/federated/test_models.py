"""Models (finite-difference gradient checks, learning), strategies, DP and the accountant."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from federated.models import MLP, LinearRegression, LogisticRegression, build_model
from federated.privacy import PrivacyAccountant, clip_l2, privatise, rdp_sampled_gaussian
from federated.strategies import EarlyStopping, FedAdam, FedYogi, Strategy, build_strategy


@pytest.mark.parametrize("model", [LinearRegression(4), LogisticRegression(4),
                                   MLP(4, hidden=5, rng=np.random.default_rng(1))])
def test_gradients_match_finite_differences(model) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4))
    y = (rng.random(20) < 0.5).astype(float)
    w = rng.normal(size=model.get_weights().shape) * 0.3
    _, grad = model.loss_grad(w, x, y)
    numeric = np.zeros_like(w)
    for i in range(len(w)):
        e = np.zeros_like(w)
        e[i] = 1e-6
        numeric[i] = (model.loss_grad(w + e, x, y)[0] - model.loss_grad(w - e, x, y)[0]) / 2e-6
    assert np.allclose(grad, numeric, atol=1e-5)


def test_models_learn_and_round_trip_weights() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 3))
    y = ((x @ np.array([2.0, -1.0, 0.5])) > 0).astype(float)
    for kind in ("logistic", "mlp"):
        m = build_model(kind, 3, hidden=8, seed=1)
        before = m.evaluate(x, y).accuracy
        m.fit(x, y, epochs=20, learning_rate=0.2, rng=np.random.default_rng(1))
        assert m.evaluate(x, y).accuracy > max(before, 0.9)
        clone = build_model(kind, 3, hidden=8, seed=99)
        clone.set_weights(m.get_weights())
        assert np.allclose(clone.predict(x), m.predict(x))
    lin = build_model("linear", 3)
    target = x @ np.array([1.0, 2.0, 3.0]) + 0.5
    lin.fit(x, target, epochs=50, learning_rate=0.05)
    assert np.allclose(lin.get_weights(), [1, 2, 3, 0.5], atol=0.05)
    with pytest.raises(ValueError):
        lin.set_weights(np.zeros(2))


def test_proximal_term_keeps_weights_near_anchor() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] > 0).astype(float)
    free, prox = LogisticRegression(2), LogisticRegression(2)
    free.fit(x, y, epochs=10, learning_rate=0.5)
    prox.fit(x, y, epochs=10, learning_rate=0.5, proximal_mu=1.0, anchor=np.zeros(3))
    assert np.linalg.norm(prox.get_weights()) < np.linalg.norm(free.get_weights())


def test_strategies() -> None:
    w = np.zeros(3)
    delta = np.array([1.0, -2.0, 0.5])
    assert np.allclose(Strategy().apply(w, delta), delta)
    assert build_strategy("fedprox", proximal_mu=0.1).proximal_mu == 0.1
    assert build_strategy("fedavg", proximal_mu=0.1).proximal_mu == 0.0
    adam, yogi = FedAdam(server_learning_rate=0.1), FedYogi(server_learning_rate=0.1)
    for opt in (adam, yogi):
        step = opt.apply(w, delta)
        # First adaptive step moves every coordinate in the direction of the update.
        assert np.all(np.sign(step) == np.sign(delta))
        assert np.all(np.abs(step) <= 0.1 * 1.0 / (1 - 0.9) + 1e-9)
    big = np.full(3, 10.0)
    for _ in range(5):
        adam.apply(w, big), yogi.apply(w, big)
    for _ in range(50):
        adam.apply(w, big * 1e-3), yogi.apply(w, big * 1e-3)
    # Once updates shrink, Yogi's second moment decays additively, more slowly than Adam's.
    assert np.all(yogi.v > adam.v)
    with pytest.raises(Exception, match="unknown"):
        build_strategy("fedsgd")


def test_early_stopping() -> None:
    assert EarlyStopping("accuracy", 0.8).reached({"accuracy": 0.81})
    assert not EarlyStopping("accuracy", 0.8).reached({"loss": 0.1})
    assert EarlyStopping("loss", 0.3, "min").reached({"loss": 0.2})


def test_clipping_and_noise_scale() -> None:
    v = np.array([3.0, 4.0])
    assert np.allclose(clip_l2(v, 1.0), [0.6, 0.8])
    assert np.allclose(clip_l2(v, 10.0), v)
    rng = np.random.default_rng(0)
    noisy = np.array([privatise(np.zeros(1000), 2.0, 1.5, rng) for _ in range(20)])
    assert abs(noisy.std() - 3.0) < 0.1


def test_accountant_matches_gaussian_closed_form() -> None:
    sigma, steps, delta = 2.0, 10, 1e-5
    acc = PrivacyAccountant(sigma, 1.0, steps)
    closed = min(steps * a / (2 * sigma**2) + math.log(1 / delta) / (a - 1) for a in range(2, 257))
    assert acc.epsilon(delta) == pytest.approx(closed)
    assert rdp_sampled_gaussian(1.0, sigma, 8) == pytest.approx(8 / (2 * sigma**2))


def test_accountant_properties() -> None:
    acc = PrivacyAccountant(1.1, 1.0)
    assert acc.epsilon(1e-5) == 0.0
    eps = [acc.epsilon(1e-5, s) for s in (1, 2, 5, 10)]
    assert eps == sorted(eps) and eps[0] > 0
    # Subsampling amplifies privacy; more noise means less epsilon.
    def eps(sigma: float, q: float, steps: int) -> float:
        return PrivacyAccountant(sigma, q, steps).epsilon(1e-5)

    assert eps(1.1, 0.01, 100) < eps(1.1, 1.0, 100)
    assert eps(3.0, 1.0, 10) < eps(1.0, 1.0, 10)
    # Sampled RDP never exceeds the unsampled one at the same order.
    for order in (2, 4, 16, 64):
        assert rdp_sampled_gaussian(0.1, 1.0, order) <= rdp_sampled_gaussian(1.0, 1.0, order)
    assert PrivacyAccountant(0.0, 1.0, 1).epsilon(1e-5) == math.inf


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_torch_adapter_round_trip() -> None:  # pragma: no cover - runs only where torch is
    import torch

    from federated.torch_adapter import TorchModel

    module = torch.nn.Linear(3, 1)
    model = TorchModel(module, torch.nn.functional.binary_cross_entropy_with_logits)
    w = model.get_weights()
    model.set_weights(w + 1)
    assert np.allclose(model.get_weights(), w + 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    model.fit(x, y, epochs=20, learning_rate=0.5)
    assert model.evaluate(x, y).accuracy > 0.9


def test_torch_adapter_without_torch_says_so() -> None:
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed")
    from federated.errors import FederatedError
    from federated.torch_adapter import TorchModel

    with pytest.raises(FederatedError, match="PyTorch"):
        TorchModel(object(), lambda a, b: a)
