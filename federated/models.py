"""Small numpy models whose parameters travel as one flat float64 vector.

Each model exposes ``get_weights`` / ``set_weights`` over a flat vector (what secure
aggregation sums), ``fit`` (mini-batch gradient descent, with an optional FedProx proximal
term pulling towards the round's global weights) and ``evaluate`` (loss and, for classifiers,
accuracy). No heavy dependency: gradients are written out by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from federated.errors import TaskFileError

EPS = 1e-12


@dataclass(frozen=True)
class Evaluation:
    """Mean loss and accuracy (accuracy is 0 for regression) over ``count`` examples."""

    loss: float
    accuracy: float
    count: int


class FlatModel:
    """Base: parameters as one flat vector, gradient descent driven by ``loss_grad``."""

    classifier = True

    def __init__(self, n_features: int, rng: np.random.Generator | None = None) -> None:
        self.n_features = n_features
        self.weights = self.initial_weights(rng or np.random.default_rng(0))

    def initial_weights(self, rng: np.random.Generator) -> np.ndarray:
        """Starting point (zeros for linear models; small random values for the MLP)."""
        return np.zeros(self.n_features + 1)

    def get_weights(self) -> np.ndarray:
        """Copy of the flat parameter vector."""
        return self.weights.copy()

    def set_weights(self, weights: np.ndarray) -> None:
        """Replace the parameters (length must match)."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != self.weights.shape:
            raise ValueError(f"expected {self.weights.shape[0]} weights, got {weights.shape}")
        self.weights = weights.copy()

    def loss_grad(self, w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean loss and its gradient at ``w`` on a batch."""
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions (probabilities for classifiers)."""
        raise NotImplementedError

    def fit(
        self, x: np.ndarray, y: np.ndarray, *, epochs: int, learning_rate: float,
        batch_size: int = 32, rng: np.random.Generator | None = None,
        proximal_mu: float = 0.0, anchor: np.ndarray | None = None,
    ) -> float:
        """Mini-batch gradient descent; returns the mean training loss of the last epoch.

        With ``proximal_mu > 0`` the objective gains ``mu/2 * |w - anchor|^2`` (FedProx).
        """
        rng = rng or np.random.default_rng(0)
        anchor = self.weights.copy() if anchor is None else anchor
        n = len(y)
        last = 0.0
        for _ in range(epochs):
            order = rng.permutation(n)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                loss, grad = self.loss_grad(self.weights, x[idx], y[idx])
                if proximal_mu:
                    grad = grad + proximal_mu * (self.weights - anchor)
                self.weights = self.weights - learning_rate * grad
                total += loss * len(idx)
            last = total / max(n, 1)
        return last

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        """Loss and accuracy on a data set."""
        if len(y) == 0:
            return Evaluation(0.0, 0.0, 0)
        loss, _ = self.loss_grad(self.weights, x, y)
        if self.classifier:
            accuracy = float(np.mean((self.predict(x) >= 0.5) == (y >= 0.5)))
        else:
            accuracy = 0.0
        return Evaluation(float(loss), accuracy, len(y))


class LinearRegression(FlatModel):
    """Least squares: loss = mean (x.w + b - y)^2 / 2."""

    classifier = False

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Linear prediction."""
        return x @ self.weights[:-1] + self.weights[-1]

    def loss_grad(self, w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Half mean squared error and its gradient."""
        err = x @ w[:-1] + w[-1] - y
        grad = np.append(x.T @ err, err.sum()) / len(y)
        return float(np.mean(err**2) / 2), grad


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


class LogisticRegression(FlatModel):
    """Binary logistic regression with cross-entropy loss."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class."""
        return _sigmoid(x @ self.weights[:-1] + self.weights[-1])

    def loss_grad(self, w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Binary cross-entropy and its gradient."""
        p = _sigmoid(x @ w[:-1] + w[-1])
        loss = -np.mean(y * np.log(p + EPS) + (1 - y) * np.log(1 - p + EPS))
        err = p - y
        return float(loss), np.append(x.T @ err, err.sum()) / len(y)


class MLP(FlatModel):
    """One hidden tanh layer, sigmoid output (binary classifier)."""

    def __init__(self, n_features: int, hidden: int = 16,
                 rng: np.random.Generator | None = None) -> None:
        self.hidden = hidden
        super().__init__(n_features, rng)

    def initial_weights(self, rng: np.random.Generator) -> np.ndarray:
        """Glorot-scaled random first layer; zero biases and output layer start."""
        w1 = rng.normal(0, 1 / np.sqrt(self.n_features), (self.n_features, self.hidden))
        w2 = rng.normal(0, 1 / np.sqrt(self.hidden), self.hidden)
        return np.concatenate([w1.ravel(), np.zeros(self.hidden), w2, [0.0]])

    def _unpack(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        f, h = self.n_features, self.hidden
        w1 = w[: f * h].reshape(f, h)
        b1 = w[f * h : f * h + h]
        w2 = w[f * h + h : f * h + 2 * h]
        return w1, b1, w2, float(w[-1])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class."""
        w1, b1, w2, b2 = self._unpack(self.weights)
        return _sigmoid(np.tanh(x @ w1 + b1) @ w2 + b2)

    def loss_grad(self, w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Cross-entropy and its gradient by backpropagation."""
        w1, b1, w2, b2 = self._unpack(w)
        hidden = np.tanh(x @ w1 + b1)
        p = _sigmoid(hidden @ w2 + b2)
        loss = -np.mean(y * np.log(p + EPS) + (1 - y) * np.log(1 - p + EPS))
        err = (p - y) / len(y)
        g_w2 = hidden.T @ err
        g_b2 = err.sum()
        back = np.outer(err, w2) * (1 - hidden**2)
        g_w1 = x.T @ back
        g_b1 = back.sum(axis=0)
        return float(loss), np.concatenate([g_w1.ravel(), g_b1, g_w2, [g_b2]])


MODEL_KINDS = ("linear", "logistic", "mlp")


def build_model(kind: str, n_features: int, hidden: int = 16, seed: int = 0) -> FlatModel:
    """Construct a model by its task-file name; every party builds the same initial weights."""
    rng = np.random.default_rng(seed)
    if kind == "linear":
        return LinearRegression(n_features, rng)
    if kind == "logistic":
        return LogisticRegression(n_features, rng)
    if kind == "mlp":
        return MLP(n_features, hidden, rng)
    raise TaskFileError([f"model: unknown kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}"])
