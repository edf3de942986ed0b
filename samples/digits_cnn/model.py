"""A small CNN for 28x28 digit images (scikit-learn's digits, upsampled)."""
from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """conv(1->c1) relu pool, conv(c1->c2) relu pool, fc(c2*7*7 -> hidden) relu, fc(hidden -> 10).

    ``c1``, ``c2`` and ``hidden`` are keyword arguments so a structurally pruned model rebuilds
    from the same factory with smaller widths.
    """

    WIDTH_KWARGS = {"c1": "conv1", "c2": "conv2", "hidden": "fc1"}  # kwarg -> layer whose width it sets

    def __init__(self, c1: int = 32, c2: int = 64, hidden: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(c2 * 7 * 7, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc2(torch.relu(self.fc1(x)))
