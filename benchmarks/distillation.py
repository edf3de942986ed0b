"""Hinton-style distillation on the bundled MNIST digits: how much of the teacher-student gap KD recovers.

Hinton et al.'s MNIST setting, scaled to 3,750 training digits: the teacher (MLP 784-1200-1200-10,
dropout 0.3) is trained on the training digits plus copies shifted by one pixel (jitter); the student
(MLP 784-800-800-10, about half the teacher's weights, no dropout) sees only the original training
digits, once with the hard labels alone and once distilled from the teacher by distill.kd's loss and
training loop at T in {2, 4, 8} (same init, same data order); three seeds. The recovered fraction of
the gap is (acc_kd - acc_student) / (acc_teacher - acc_student) on the 1,250 held-out digits (Hinton
et al. 2015 recovered about 90% of it on full MNIST). A tiny student (``--student-hidden 32``) has
little to gain here: its gap is capacity, which soft targets do not supply.

    python -m benchmarks.distillation [--student-hidden 800 800] [--epochs 30] [--alpha 0.97] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import statistics
from typing import Any

TEMPERATURES = (2.0, 4.0, 8.0)


def jittered(split: Any) -> Any:
    """The split plus four copies shifted by one pixel up, down, left and right (the teacher's training set)."""
    import numpy as np

    from compressor.data import Split

    x = split.inputs["x"]
    copies = [x] + [np.roll(x, shift, axis=axis) for axis in (2, 3) for shift in (1, -1)]
    return Split({"x": np.concatenate(copies)}, np.concatenate([split.labels] * len(copies)))


class TeacherData:
    """A bundle whose training split is jittered (for the teacher only)."""

    def __init__(self, data: Any) -> None:
        self.data, self.train = data, jittered(data.split("training"))

    def split(self, role: str) -> Any:
        return self.train if role == "training" else self.data.split(role)


def train_student(data: Any, hidden: list[int], epochs: int, lr: float, seed: int, teacher: Any = None,
                  temperature: float = 1.0, alpha: float = 0.0) -> float:
    """One student run: hard labels (no teacher) or distillation; return held-out accuracy."""
    import torch

    from benchmarks.mnist_models import MLP, accuracy, signature
    from compressor.passes.distill._torch import train_student as distil
    from compressor.passes.distill.kd import DistillConfig
    from compressor.passes.train._torch import fit

    torch.manual_seed(seed)
    student = MLP(hidden=tuple(hidden))
    if teacher is None:
        fit(student, data.split("training"), signature(), epochs=epochs, lr=lr, seed=seed)
    else:
        config = DistillConfig(student="benchmarks.mnist_models:MLP", temperature=temperature, alpha=alpha,
                               epochs=epochs, lr=lr)
        distil(teacher, student, data.split("training"), signature(), config, seed)
    return accuracy(student, data.split("evaluation"))


def main() -> None:
    import torch

    from benchmarks.compare import markdown_table
    from benchmarks.mnist_models import MLP, mnist_bundle, train_dense

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student-hidden", type=int, nargs="+", default=[800, 800])
    parser.add_argument("--epochs", type=int, default=30, help="student epochs (hard labels and KD alike)")
    parser.add_argument("--teacher-epochs", type=int, default=6, help="over the jittered set (5x the digits)")
    parser.add_argument("--alpha", type=float, default=0.97, help="weight of the soft targets (Hinton: small weight on hard)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    data = mnist_bundle()
    torch.manual_seed(0)
    teacher = MLP(hidden=(1200, 1200), dropout=0.3)
    t_acc = train_dense(teacher, TeacherData(data), args.teacher_epochs)
    teacher.eval()
    print(f"teacher MLP 1200-1200 (dropout 0.3, jittered digits): held-out accuracy {t_acc:.4f}", flush=True)
    rows, recovered = [], {t: [] for t in TEMPERATURES}
    for seed in args.seeds:
        base = train_student(data, args.student_hidden, args.epochs, args.lr, seed)
        row: list[Any] = [seed, t_acc, base]
        for t in TEMPERATURES:
            kd = train_student(data, args.student_hidden, args.epochs, args.lr, seed, teacher, t, args.alpha)
            frac = (kd - base) / (t_acc - base) if t_acc > base else float("nan")
            recovered[t].append(frac)
            row += [kd, f"{frac:.0%}"]
        rows.append(row)
        print(f"seed {seed} done", flush=True)
    mean = ["mean", "", ""] + sum((["", f"{statistics.mean(recovered[t]):.0%}"] for t in TEMPERATURES), [])
    rows.append(mean)
    head = ["seed", "teacher", "student (hard labels)"]
    for t in TEMPERATURES:
        head += [f"KD T={t:g}", f"gap recovered T={t:g}"]
    widths = "-".join(str(h) for h in args.student_hidden)
    print(f"\nMNIST 5,000 digits (3,750 train / 1,250 held out). Teacher MLP 784-1200-1200-10 (dropout, jittered "
          f"digits); student MLP 784-{widths}-10 on the original digits, {args.epochs} epochs, alpha {args.alpha}; "
          f"same init and data order with and without the teacher.\n")
    print(markdown_table(head, rows))
    best = max(TEMPERATURES, key=lambda t: statistics.mean(recovered[t]))
    print(f"\nbest temperature T={best:g}: {statistics.mean(recovered[best]):.0%} of the gap recovered on average "
          f"over {len(args.seeds)} seeds")


if __name__ == "__main__":
    main()
