"""Hinton-style distillation on the bundled MNIST digits: how much of the teacher-student gap KD recovers.

Hinton et al.'s MNIST setting, scaled to the 5,000 bundled digits. Protocol (printed by the script):

* The bundle's 3,750 training digits are split (stratified, seeded: ``compressor.data.split_indices``)
  into 3,000 FIT digits and 750 VALIDATION digits; the bundle's 1,250 TEST digits are touched only to
  report the final table.
* The teacher (MLP 784-1200-1200-10, dropout 0.3) is trained once, with fixed settings, on the fit
  digits plus copies shifted by one pixel (jitter). The students (MLP 784-800-800-10, no dropout) see
  only the plain fit digits, with the hard labels alone or distilled from the teacher by distill.kd's
  loss and training loop (same init, data order, epochs, optimizer and schedule either way).
* Selection on VALIDATION only: the students' shared schedule is the one giving the hard-label student
  its best mean validation accuracy (so the baseline is not handicapped); then alpha and T (T within
  {2, 4, 8}) are the pair giving the KD student its best mean validation accuracy.
* Reported on TEST: per seed and mean, the fraction of the gap recovered,
  (acc_kd - acc_student) / (acc_teacher - acc_student), at every T for the selected schedule and alpha.

The teacher's logits on the fit digits are computed once (teacher in eval mode, deterministic), so
each KD run costs about what a hard-label run does; the loss and loop are distill.kd's own.

    python -m benchmarks.distillation [--seeds 0 1 2] [--alphas 0.9 0.97]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

TEMPERATURES = (2.0, 4.0, 8.0)
# (name, [(epochs, lr), ...]) phases run back to back with a fresh Adam each (a step decay when two)
SCHEDULES = {
    "30 ep @1e-3": [(30, 1e-3)],
    "20 ep @1e-3 + 10 @1e-4": [(20, 1e-3), (10, 1e-4)],
}
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0


def jittered(split: Any) -> Any:
    """The split plus four copies shifted by one pixel up, down, left and right (the teacher's training set)."""
    import numpy as np

    from compressor.data import Split

    x = split.inputs["x"]
    copies = [x] + [np.roll(x, shift, axis=axis) for axis in (2, 3) for shift in (1, -1)]
    return Split({"x": np.concatenate(copies)}, np.concatenate([split.labels] * len(copies)))


class Roles:
    """A minimal bundle: ``split(role)`` for the roles the training helpers read."""

    def __init__(self, **splits: Any) -> None:
        self.splits = splits

    def split(self, role: str, needed_by: str = "") -> Any:
        return self.splits[role]


def subset(split: Any, idx: Any) -> Any:
    from compressor.data import Split

    return Split({k: v[idx] for k, v in split.inputs.items()}, split.labels[idx])


class CachedTeacher:
    """The frozen teacher's logits on the transfer set, looked up by input (identical to running it in eval)."""

    def __init__(self, teacher: Any, split: Any) -> None:
        import torch

        teacher.eval()
        with torch.inference_mode():
            logits = torch.cat([teacher(torch.from_numpy(b["x"])) for b, _ in split.batches(500)])
        self.table = {row.tobytes(): logits[i] for i, row in enumerate(split.inputs["x"])}

    def __call__(self, x: Any) -> Any:
        import torch

        return torch.stack([self.table[row.tobytes()] for row in x.numpy()])


def train_student(fit_split: Any, hidden: list[int], schedule: list[tuple[int, float]], seed: int,
                  teacher: Any = None, temperature: float = 1.0, alpha: float = 0.0) -> Any:
    """One student: hard labels (no teacher) or distill.kd; the same init, data order and schedule either way."""
    import torch

    from benchmarks.mnist_models import MLP, signature
    from compressor.passes._torch_fit import fit
    from compressor.passes.distill._torch import train_student as distil
    from compressor.passes.distill.kd import DistillConfig

    torch.manual_seed(seed)
    student = MLP(hidden=tuple(hidden))
    for phase, (epochs, lr) in enumerate(schedule):
        if teacher is None:
            fit(student, fit_split, signature(), epochs=epochs, lr=lr, seed=seed + phase)
        else:
            config = DistillConfig(student="benchmarks.mnist_models:MLP", temperature=temperature, alpha=alpha,
                                   epochs=epochs, lr=lr)
            distil(teacher, student, fit_split, signature(), config, seed + phase)
    return student


def recovered(kd: float, base: float, teacher: float) -> float:
    return (kd - base) / (teacher - base) if teacher > base else float("nan")


def main() -> None:
    import torch

    from benchmarks.mnist_models import MLP, accuracy, mnist_bundle, train_dense
    from benchmarks.suite import markdown_table
    from compressor.data import split_indices

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student-hidden", type=int, nargs="+", default=[800, 800])
    parser.add_argument("--teacher-epochs", type=int, default=6,
                        help="over the jittered fit set (5x the digits), then half as many at lr/10")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.9, 0.97],
                        help="candidate weights of the soft targets (chosen on validation)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    start = time.perf_counter()

    data = mnist_bundle()
    train, test = data.split("training"), data.split("evaluation")
    fit_idx, val_idx = split_indices(len(train), train.labels, VALIDATION_FRACTION, SPLIT_SEED)
    fit_split, val = subset(train, fit_idx), subset(train, val_idx)
    print(f"PROTOCOL: the bundle's {len(train)} training digits -> {len(fit_split)} fit + {len(val)} validation "
          f"(stratified, seed {SPLIT_SEED}); {len(test)} test digits used only for the final table.\n"
          f"Teacher: fixed settings, trained on the jittered fit digits. Students: plain fit digits only.\n"
          f"Selected on VALIDATION: the shared student schedule (best hard-label validation accuracy), then "
          f"alpha in {args.alphas} and T in {list(TEMPERATURES)} (best KD validation accuracy).", flush=True)

    torch.manual_seed(0)
    teacher = MLP(hidden=(1200, 1200), dropout=0.3)
    t_val = train_dense(teacher, Roles(training=jittered(fit_split), evaluation=val), args.teacher_epochs)
    teacher.eval()
    t_test = accuracy(teacher, test)
    print(f"teacher MLP 1200-1200 (dropout 0.3, jittered fit digits): validation {t_val:.4f} "
          f"[{time.perf_counter() - start:.0f} s]", flush=True)
    cached = CachedTeacher(teacher, fit_split)

    def run(schedule: list[tuple[int, float]], seed: int, t: float | None = None, alpha: float = 0.0) -> dict:
        student = train_student(fit_split, args.student_hidden, schedule, seed,
                                None if t is None else cached, t or 1.0, alpha)
        return {"val": accuracy(student, val), "test": accuracy(student, test)}

    # stage 1: the students' shared schedule, chosen by the hard-label student's validation accuracy
    base = {name: {s: run(sched, s) for s in args.seeds} for name, sched in SCHEDULES.items()}
    mean_val = {name: statistics.mean(r["val"] for r in runs.values()) for name, runs in base.items()}
    schedule = max(SCHEDULES, key=lambda n: mean_val[n])
    print("\nSelection 1 (validation, hard-label student, mean over seeds):")
    print(markdown_table(["schedule", "student val acc"], [[n, mean_val[n]] for n in SCHEDULES]))
    print(f"-> schedule '{schedule}' [{time.perf_counter() - start:.0f} s]", flush=True)

    # stage 2: alpha and T, chosen by the KD student's validation accuracy
    kd = {(a, t): {s: run(SCHEDULES[schedule], s, t, a) for s in args.seeds} for a in args.alphas for t in TEMPERATURES}
    kd_val = {k: statistics.mean(r["val"] for r in runs.values()) for k, runs in kd.items()}
    b_val = mean_val[schedule]
    alpha, best_t = max(kd, key=lambda k: kd_val[k])
    print("\nSelection 2 (validation, KD student, mean over seeds; recovered = of the validation gap):")
    print(markdown_table(["alpha", "T", "KD val acc", "recovered (val)"],
                         [[a, f"{t:g}", kd_val[(a, t)], f"{recovered(kd_val[(a, t)], b_val, t_val):.0%}"]
                          for a, t in kd]))
    print(f"-> alpha {alpha}, T={best_t:g} [{time.perf_counter() - start:.0f} s]", flush=True)

    # final: the selected schedule and alpha on TEST, every T, per seed
    rows, fracs = [], {t: [] for t in TEMPERATURES}
    for s in args.seeds:
        b = base[schedule][s]["test"]
        row: list[Any] = [s, t_test, b]
        for t in TEMPERATURES:
            k = kd[(alpha, t)][s]["test"]
            fracs[t].append(recovered(k, b, t_test))
            row += [k, f"{fracs[t][-1]:.0%}"]
        rows.append(row)
    rows.append(["mean", "", ""] + sum((["", f"{statistics.mean(fracs[t]):.0%}"] for t in TEMPERATURES), []))
    head = ["seed", "teacher", "student (hard labels)"]
    for t in TEMPERATURES:
        head += [f"KD T={t:g}", f"gap recovered T={t:g}"]
    widths = "-".join(str(h) for h in args.student_hidden)
    print(f"\nTEST ({len(test)} held-out digits). Teacher MLP 784-1200-1200-10 (dropout, jittered fit digits); "
          f"student MLP 784-{widths}-10 on the {len(fit_split)} plain fit digits, schedule '{schedule}', "
          f"alpha {alpha} (validation-selected); same init, data order and schedule with and without the teacher.\n")
    print(markdown_table(head, rows))
    print(f"\nvalidation-selected T={best_t:g}: {statistics.mean(fracs[best_t]):.0%} of the test gap recovered on "
          f"average over {len(args.seeds)} seeds ({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
