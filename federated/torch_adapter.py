"""Optional adapter presenting a torch ``nn.Module`` with the flat-vector model interface.

torch is not a dependency of autospace: it is imported only when an adapter is created, and a
clear error says so when it is missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from federated.errors import FederatedError
from federated.models import Evaluation


def _torch() -> Any:
    try:
        return importlib.import_module("torch")
    except ModuleNotFoundError as exc:
        raise FederatedError(
            "the torch adapter needs PyTorch installed (pip install torch)") from exc


class TorchModel:
    """Wraps ``module`` and a loss function so rounds can treat it like a numpy model.

    Args:
        module: any ``torch.nn.Module``.
        loss_fn: ``loss_fn(outputs, targets)`` returning a scalar tensor.
        classifier: if True, ``evaluate`` reports accuracy of ``sigmoid(output) >= 0.5``.
    """

    def __init__(self, module: Any, loss_fn: Callable[[Any, Any], Any],
                 classifier: bool = True) -> None:
        self.torch = _torch()
        self.module = module
        self.loss_fn = loss_fn
        self.classifier = classifier

    def get_weights(self) -> np.ndarray:
        """All parameters concatenated (float64)."""
        vec = self.torch.nn.utils.parameters_to_vector(self.module.parameters())
        return vec.detach().cpu().numpy().astype(np.float64)

    def set_weights(self, weights: np.ndarray) -> None:
        """Load a flat vector back into the module's parameters."""
        ref = next(self.module.parameters())
        vec = self.torch.as_tensor(np.asarray(weights), dtype=ref.dtype, device=ref.device)
        self.torch.nn.utils.vector_to_parameters(vec, self.module.parameters())

    def _tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        ref = next(self.module.parameters())
        return (self.torch.as_tensor(x, dtype=ref.dtype), self.torch.as_tensor(y, dtype=ref.dtype))

    def fit(self, x: np.ndarray, y: np.ndarray, *, epochs: int, learning_rate: float,
            batch_size: int = 32, rng: np.random.Generator | None = None,
            proximal_mu: float = 0.0, anchor: np.ndarray | None = None) -> float:
        """SGD with the optional FedProx term, mirroring ``FlatModel.fit``."""
        torch = self.torch
        rng = rng or np.random.default_rng(0)
        anchor_t = torch.as_tensor(self.get_weights() if anchor is None else anchor,
                                   dtype=next(self.module.parameters()).dtype)
        opt = torch.optim.SGD(self.module.parameters(), lr=learning_rate)
        xt, yt = self._tensors(x, y)
        last = 0.0
        for _ in range(epochs):
            total = 0.0
            order = rng.permutation(len(y))
            for start in range(0, len(y), batch_size):
                idx = torch.as_tensor(order[start : start + batch_size])
                opt.zero_grad()
                loss = self.loss_fn(self.module(xt[idx]).reshape(-1), yt[idx])
                if proximal_mu:
                    flat = torch.nn.utils.parameters_to_vector(self.module.parameters())
                    loss = loss + proximal_mu / 2 * torch.sum((flat - anchor_t) ** 2)
                loss.backward()
                opt.step()
                total += float(loss) * len(idx)
            last = total / max(len(y), 1)
        return last

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        """Mean loss and accuracy without gradients."""
        torch = self.torch
        xt, yt = self._tensors(x, y)
        with torch.no_grad():
            out = self.module(xt).reshape(-1)
            loss = float(self.loss_fn(out, yt))
            acc = float(((torch.sigmoid(out) >= 0.5).to(yt.dtype) == yt).float().mean()) \
                if self.classifier else 0.0
        return Evaluation(loss, acc, len(y))
