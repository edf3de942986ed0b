"""Tiny models built in code for the tests: they train in about a second on CPU."""
from __future__ import annotations

import torch
from torch import nn


class TinyCNN(nn.Module):
    """conv(1->c) relu pool, linear(c*4*4 -> 10), for 8x8 digits."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, c, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(c * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class TinyMLP(nn.Module):
    """flatten, linear(64 -> hidden) relu, linear(hidden -> 10), for 8x8 digits."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class NoWeights(nn.Module):
    """A model with no Conv, Linear or MatMul: nothing to quantize or prune."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.flatten(x, 1))[:, :10]
