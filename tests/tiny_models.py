"""Tiny models built in code for the tests: they train in about a second on CPU."""
from __future__ import annotations

import torch
from torch import nn


class TinyCNN(nn.Module):
    """conv(1->c) relu pool, linear(c*4*4 -> 10), for 8x8 digits."""

    WIDTH_KWARGS = {"c": "conv"}

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, c, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(c * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class TinyMLP(nn.Module):
    """flatten, linear(64 -> hidden) relu, linear(hidden -> 10), for 8x8 digits."""

    WIDTH_KWARGS = {"hidden": "fc1"}

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


class TinyBNCNN(nn.Module):
    """conv(1->c1) bn relu, conv(c1->c2) bn relu pool, head linear(c2*4*4 -> num_classes): backbone + head."""

    WIDTH_KWARGS = {"c1": "conv1", "c2": "conv2"}

    def __init__(self, c1: int = 8, c2: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c2)
        self.head = nn.Linear(c2 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.head(x.reshape(x.size(0), -1))


class TinyResidual(nn.Module):
    """conv -> relu -> conv, added to its input (a residual), then a linear head."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, c, 3, padding=1)
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.fc = nn.Linear(c * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = x + torch.relu(self.conv(x))
        return self.fc(torch.flatten(x, 1))


class TinyConcat(nn.Module):
    """Two convs whose outputs are concatenated, then a linear head."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, c, 3, padding=1)
        self.b = nn.Conv2d(1, c, 1)
        self.fc = nn.Linear(2 * c * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.cat([self.a(x), self.b(x)], 1), 1))


class DeepMLP(nn.Module):
    """flatten, three hidden linear+relu layers, linear -> 10, for 8x8 digits."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, hidden)
        self.fc4 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        x = torch.relu(self.fc2(x))
        return self.fc4(torch.relu(self.fc3(x)))


class SeqMLP(nn.Module):
    """The 8x8 digit as one 64-wide token: two Linear layers on a 3-D tensor export as MatMul + Add."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1, 64)
        return self.fc2(torch.relu(self.fc1(x))).reshape(x.shape[0], 10)


class _Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, 2 * d)
        self.fc2 = nn.Linear(2 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(x)))


class BlockMLP(nn.Module):
    """An LLM-shaped MLP: embed linear, residual blocks in an nn.ModuleList (``layers[i]``), linear head."""

    def __init__(self, hidden: int = 64, blocks: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(64, hidden)
        self.layers = nn.ModuleList([_Block(hidden) for _ in range(blocks)])
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(torch.flatten(x, 1))
        for block in self.layers:
            x = block(x)
        return self.head(x)


class TinyEncoder(nn.Module):
    """A two-layer BERT (seeded random weights, 4 heads of 8) pooled to a unit-length embedding, as MiniLM."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=16)
        self.bert = BertModel(config, add_pooling_layer=False).eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=1)
