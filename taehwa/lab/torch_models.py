"""The optional small PyTorch network (install the `torch` extra): a multilayer perceptron for RUL, soft sensors and
forecasts, trained on the CPU with a fixed seed. Imported only when torch is installed."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from taehwa.lab.protocol import Model, need_target


class MLPRegressor(Model):
    """Two hidden layers with ReLU, Adam, mean-squared error; inputs and target standardised from training data."""

    kind = "mlp"
    tasks = ("rul", "soft_sensor", "forecast")
    defaults: ClassVar[dict[str, Any]] = {
        "hidden": 64,
        "epochs": 40,
        "learning_rate": 0.003,
        "batch_size": 256,
        "seed": 0,
    }

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        target = need_target(y, X, self.kind).astype(float)
        torch.manual_seed(int(self.params["seed"]))
        self.n_features_ = X.shape[1]
        self.x_mean_, self.x_std_ = X.mean(axis=0), X.std(axis=0) + 1e-9
        self.y_mean_, self.y_std_ = float(target.mean()), float(target.std() + 1e-9)
        h = int(self.params["hidden"])
        self.net_ = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], h),
            torch.nn.ReLU(),
            torch.nn.Linear(h, h),
            torch.nn.ReLU(),
            torch.nn.Linear(h, 1),
        )
        xs = torch.tensor((X - self.x_mean_) / self.x_std_, dtype=torch.float32)
        ys = torch.tensor((target - self.y_mean_) / self.y_std_, dtype=torch.float32).unsqueeze(1)
        opt = torch.optim.Adam(self.net_.parameters(), lr=float(self.params["learning_rate"]))
        gen = torch.Generator().manual_seed(int(self.params["seed"]))
        bs = int(self.params["batch_size"])
        for _ in range(int(self.params["epochs"])):
            order = torch.randperm(len(xs), generator=gen)
            for i in range(0, len(xs), bs):
                idx = order[i : i + bs]
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(self.net_(xs[idx]), ys[idx])
                loss.backward()
                opt.step()

    def _predict(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        with torch.no_grad():
            out = self.net_(torch.tensor((X - self.x_mean_) / self.x_std_, dtype=torch.float32)).numpy()[:, 0]
        return np.asarray(out * self.y_std_ + self.y_mean_, dtype=float)
