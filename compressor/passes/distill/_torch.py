"""The torch side of distill.kd: teacher, student, the distillation loss, feature adapters."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.errors import PassError, first_line

CURVATURE_BATCHES = 4  # training batches whose output curvature ranks the channels for importance: hessian
RECONSTRUCT_BATCHES = 12  # training batches the pruned copy's least-squares refit reads (reconstruct: true)
MASK_INPUT = "attention_mask"  # the input whose zeros mark padding, for trim_padding

if TYPE_CHECKING:
    from compressor.artifact import Signature
    from compressor.data import Split
    from compressor.passes.base import PassContext
    from compressor.passes.distill.kd import DistillConfig


def load_teacher(artifact: Artifact) -> Any:
    """The teacher module, frozen, in inference mode (a torch folder or a .pt2 program)."""
    from compressor.frameworks._torch import load_exported, load_module

    if artifact.format.value == "torch_export":
        teacher = load_exported(Path(artifact.path))
    else:
        teacher = load_module(Path(artifact.path))
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def teacher_factory(artifact: Artifact) -> tuple[str, dict[str, Any]]:
    """The factory and kwargs the teacher was built from (a .pt2 remembers its source factory)."""
    if artifact.format.value == "torch_export":
        if "source_factory" not in artifact.meta:
            raise PassError("distill.kd width: needs the teacher's factory, and this .pt2 teacher does not record one; "
                            "give 'student' (and 'student_kwargs') instead.")
        from compressor.code import check_recorded

        factory = check_recorded(artifact.meta["source_factory"], f"model file '{artifact.path}'",
                                 "its recorded source factory")
        return factory, artifact.meta.get("source_kwargs", {})
    from compressor.frameworks._torch import recorded_factory

    return recorded_factory(Path(artifact.path))  # a factory the folder names: imported only when trusted


def student_spec(artifact: Artifact, config: DistillConfig) -> tuple[str, dict[str, Any] | None]:
    """The student's factory and kwargs, from ``student`` or from ``width`` x the teacher's widths.

    The kwargs are None when the teacher's factory declares no width kwargs: the student is then a
    pruned copy of the teacher (``pruned_copy``).
    """
    from compressor.passes.widths import declared_widths, scaled_kwargs

    if config.student:
        return config.student, dict(config.student_kwargs)
    factory, kwargs = teacher_factory(artifact)
    if not declared_widths(factory):
        if artifact.format.value != "torch":
            raise PassError(f"distill.kd width: {config.student_width} on a .pt2 teacher needs its source factory "
                            f"'{factory}' to declare width kwargs (a program has no layers to prune); distill before "
                            f"exporting, or give 'student'.")
        return factory, None
    copy_only = {k: v for k, v in (("heads", config.heads), ("importance", config.importance),
                                   ("round_to", config.round_to)) if v not in (0.0, "l1", None)}
    if "reconstruct" in config.model_fields_set and not config.reconstruct:
        copy_only["reconstruct"] = False
    if copy_only:
        shown = ", ".join(f"{k}: {v}" for k, v in copy_only.items())
        raise PassError(f"distill.kd {shown} applies to a pruned copy of the teacher, but factory '{factory}' "
                        f"declares width kwargs (the student is built narrower instead); remove {', '.join(copy_only)}.")
    return factory, scaled_kwargs(factory, kwargs, config.student_width)


def pruned_copy(artifact: Artifact, config: DistillConfig,
                split: Split | None = None) -> tuple[Any, Any, list[dict[str, Any]]]:
    """A copy of the teacher with ``1 - width`` of each channel group and ``heads`` of its heads removed.

    Channels are ranked by ``config.importance``; ``hessian`` reads a few batches of ``split`` (without
    it, as in ``check``, L1 stands in: the pruned shapes are the same). With ``reconstruct`` (and
    ``split``), the layers whose inputs shrank are refitted by least squares to the teacher's outputs
    (``compressor.passes._torch_refit.reconstruct``). Returns (student module with the teacher's
    remaining weights, the pruner: widths, heads, skipped; the refit's per-layer records).
    """
    from compressor.frameworks._torch import sample_inputs
    from compressor.passes._torch_channels import ChannelSettings, output_curvature, prune_channels

    student = load_teacher(artifact)
    for p in student.parameters():
        p.requires_grad_(True)
    importance = config.importance if split is not None else "l1"
    grads = None
    if importance == "hessian":
        grads = output_curvature(calibration_batches(split, artifact.signature, config))
    settings = ChannelSettings(ratio=1.0 - config.student_width, heads=config.heads, importance=importance,
                               round_to=config.round_to, who="distill.kd width:")
    pruner, _ = prune_channels(student, sample_inputs(artifact.signature, batch=2), settings, grads=grads)
    refits: list[dict[str, Any]] = []
    if config.reconstruct and split is not None:
        from compressor.passes._torch_refit import reconstruct

        batches = calibration_batches(split, artifact.signature, config, RECONSTRUCT_BATCHES)
        refits = reconstruct(student.eval(), load_teacher(artifact), batches)
    return student.eval(), pruner, refits


def calibration_batches(split: Split, signature: Signature, config: DistillConfig,
                        count: int = CURVATURE_BATCHES) -> list[tuple[Any, ...]]:
    """The first ``count`` training batches as tensors (padding trimmed with ``trim_padding``)."""
    from compressor.passes._torch_fit import to_tensors

    out = []
    for start in range(0, min(len(split), count * config.batch_size), config.batch_size):
        inputs = to_tensors(signature, {k: v[start:start + config.batch_size] for k, v in split.inputs.items()})
        out.append(tuple(trimmed(inputs, signature) if config.trim_padding else inputs))
    return out


def trimmed(inputs: list[Any], signature: Signature) -> list[Any]:
    """Token inputs cut after the batch's longest sequence (the last position its ``attention_mask`` keeps)."""
    mask = inputs[signature.input_names.index(MASK_INPUT)]
    width = max(1, int(mask.sum(1).max()))
    return [x[:, :width] if x.dim() >= 2 and x.shape[:2] == mask.shape else x for x in inputs]


def length_plan(split: Split, signature: Signature, batch_size: int) -> Any:
    """A batch plan (``fit``'s ``plan``) of sequences of similar length: sorted by their real length with
    ties broken at random, cut into batches, the batches shuffled; each epoch seeded by the loop's rng."""
    import numpy as np

    from compressor.data import feeds_for

    lengths = feeds_for(signature, split.inputs)[MASK_INPUT].sum(1)

    def plan(rng: Any) -> list[Any]:
        order = np.lexsort((rng.random(len(lengths)), lengths))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    return plan


def trimming(module: Any, signature: Signature) -> Any:
    """``module`` behind a wrapper that cuts its token inputs after the batch's longest sequence (no time
    spent on padding); the wrapper owns no parameters of its own."""
    from torch import nn

    class TrimmedPadding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *inputs: Any) -> Any:
            return self.inner(*trimmed(list(inputs), signature))

    return TrimmedPadding()


def build_student(artifact: Artifact, config: DistillConfig, seed: int,
                  split: Split | None = None) -> tuple[str, dict[str, Any] | None, Any, list[dict[str, Any]]]:
    """Build the student with a seeded init, or as a pruned copy of the teacher (kwargs None) ranked (and
    refitted, with ``reconstruct``) on ``split``. The last item: the refit's per-layer records."""
    import torch

    from compressor.frameworks._torch import build_module

    factory, kwargs = student_spec(artifact, config)
    if kwargs is None:
        student, _, refits = pruned_copy(artifact, config, split)
        return factory, None, student, refits
    torch.manual_seed(seed)
    try:
        return factory, kwargs, build_module(factory, kwargs), []
    except TypeError as exc:
        raise PassError(f"distill.kd student '{factory}' rejected kwargs {kwargs}: {exc}; fix student_kwargs.") from None


def check_student(artifact: Artifact, config: DistillConfig, seed: int) -> None:
    """The student's output must have the teacher's shape; feature layers must exist; trim_padding needs a mask."""
    import torch

    from compressor.frameworks._torch import sample_inputs

    if config.trim_padding and MASK_INPUT not in artifact.signature.input_names:
        raise PassError(f"distill.kd trim_padding: true needs a model input named '{MASK_INPUT}' (its zeros mark "
                        f"padding); this model's inputs are {artifact.signature.input_names}; remove trim_padding.")

    factory, kwargs, student, _ = build_student(artifact, config, seed)
    args = sample_inputs(artifact.signature, batch=2)
    try:
        with torch.no_grad():
            out = student.eval()(*args)
    except Exception as exc:
        raise PassError(f"distill.kd student '{factory}' ({kwargs}) cannot run on the teacher's input "
                        f"{[list(a.shape) for a in args]}: {first_line(exc, 200)}") from None
    expected = artifact.signature.outputs[0].shape[1:] if artifact.signature.outputs else None
    if expected is not None and tuple(out.shape[1:]) != tuple(expected):
        raise PassError(
            f"distill.kd student '{factory}' ({kwargs}) outputs shape {list(out.shape[1:])} per sample but the "
            f"teacher outputs {list(expected)}; the student must predict the same classes (e.g. num_classes)."
        )
    if config.features:
        if artifact.format.value != "torch":
            raise PassError("distill.kd features: needs a torch model folder teacher (a .pt2 program has no named "
                            "layers to hook); drop 'features' or distill before exporting.")
        teacher = load_teacher(artifact)
        for t_name, s_name in config.features:
            for side, module, name in (("teacher", teacher, t_name), ("student", student, s_name)):
                if name not in dict(module.named_modules()):
                    raise PassError(f"distill.kd features: the {side} has no layer '{name}'; "
                                    f"its layers include {[n for n, _ in module.named_modules() if n][:10]}.")


def match_loss(student_out: Any, teacher_out: Any, kind: str) -> Any:
    """How far the student's outputs are from the teacher's: 1 - cosine, or the mean squared error."""
    import torch.nn.functional as F

    if kind == "cosine":
        return (1.0 - F.cosine_similarity(student_out.flatten(1), teacher_out.flatten(1), dim=1)).mean()
    return F.mse_loss(student_out, teacher_out)


def kd_loss(student_logits: Any, teacher_logits: Any, labels: Any, temperature: float, alpha: float) -> Any:
    """alpha * T^2 * KL(soft teacher || soft student) + (1 - alpha) * CE(student, labels)."""
    import torch.nn.functional as F

    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True)
    loss = alpha * t * t * soft
    if alpha < 1.0:
        loss = loss + (1.0 - alpha) * F.cross_entropy(student_logits, labels)
    return loss


class FeatureMatch:
    """Forward hooks capturing paired layer outputs, and adapters mapping student features to the teacher's.

    Conv outputs (4-d) go through a 1x1 conv, linear outputs (2-d) through a Linear; sequence features
    (3-d: batch x tokens x width, e.g. a Transformer block's hidden states) are compared directly when
    the widths match (a pruned copy keeps the teacher's residual width) and through a Linear otherwise.
    A layer that returns a tuple (Hugging Face blocks) is matched on its first element.
    """

    def __init__(self, teacher: Any, student: Any, pairs: list[tuple[str, str]], sample: list[Any]) -> None:
        import torch
        from torch import nn

        self.pairs = pairs
        self.captured: dict[str, Any] = {}
        t_mods, s_mods = dict(teacher.named_modules()), dict(student.named_modules())
        self.handles = [t_mods[t].register_forward_hook(self._keep(("t", t))) for t, _ in pairs]
        self.handles += [s_mods[s].register_forward_hook(self._keep(("s", s))) for _, s in pairs]
        with torch.no_grad():
            teacher(*sample)
            student(*sample)
        self.adapters = nn.ModuleList()
        for t, s in pairs:
            tf, sf = self.captured[("t", t)], self.captured[("s", s)]
            if tf.dim() == 4 and sf.dim() == 4:
                self.adapters.append(nn.Conv2d(sf.shape[1], tf.shape[1], 1))
            elif tf.dim() == 2 and sf.dim() == 2:
                self.adapters.append(nn.Linear(sf.shape[1], tf.shape[1]))
            elif tf.dim() == 3 and sf.dim() == 3:
                same = tf.shape[-1] == sf.shape[-1]
                self.adapters.append(nn.Identity() if same else nn.Linear(sf.shape[-1], tf.shape[-1]))
            else:
                raise PassError(f"distill.kd features: teacher '{t}' gives {list(tf.shape)} and student '{s}' gives "
                                f"{list(sf.shape)}; pair two conv outputs (4-d), two linear outputs (2-d) or two "
                                f"sequence outputs (3-d).")

    def _keep(self, key: tuple[str, str]) -> Any:
        def hook(_m: Any, _i: Any, out: Any) -> None:
            self.captured[key] = out[0] if isinstance(out, (tuple, list)) else out
        return hook

    def loss(self) -> Any:
        import torch.nn.functional as F

        total = 0.0
        for (t, s), adapter in zip(self.pairs, self.adapters):
            tf, sf = self.captured[("t", t)], adapter(self.captured[("s", s)])
            if tf.dim() == 4 and sf.shape[2:] != tf.shape[2:]:
                sf = F.adaptive_avg_pool2d(sf, tf.shape[2:])
            total = total + F.mse_loss(sf, tf.detach())
        return total

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def train_student(teacher: Any, student: Any, split: Split, signature: Signature, config: DistillConfig, seed: int,
                  say: Any = None) -> list[float]:
    """Distil ``teacher`` into ``student`` in place on ``split``; return the loss of each epoch."""
    import torch

    from compressor.frameworks._torch import sample_inputs
    from compressor.passes._torch_fit import fit

    match = FeatureMatch(teacher, student, list(config.features), list(sample_inputs(signature, 2))) \
        if config.features else None

    def loss_fn(out: Any, labels: Any, inputs: list[Any]) -> Any:
        with torch.no_grad():
            t_out = teacher(*(trimmed(inputs, signature) if config.trim_padding else inputs))
        if config.loss == "kl":
            loss = kd_loss(out, t_out, labels, config.temperature, config.alpha)
        else:
            loss = match_loss(out, t_out, config.loss)
        if match is not None:
            loss = loss + config.feature_weight * match.loss()
        return loss

    params = list(student.parameters()) + (list(match.adapters.parameters()) if match else [])
    try:
        trained = trimming(student, signature) if config.trim_padding else student
        return fit(trained, split, signature, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                   seed=seed, loss_fn=loss_fn, parameters=params, say=say, workers=config.workers,
                   schedule=config.schedule,
                   plan=length_plan(split, signature, config.batch_size) if config.trim_padding else None)
    finally:
        if match is not None:
            match.close()


def distill(artifact: Artifact, config: DistillConfig, ctx: PassContext,
            out_dir: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Run distill.kd: build the student, train it, save it; return (path, report, artifact meta).

    A factory-built student is saved as a torch model folder; a pruned copy of the teacher as a .pt2
    program that remembers the teacher's factory.
    """
    from compressor.frameworks._torch import params_and_macs, sample_inputs, save_exported, save_module

    teacher = load_teacher(artifact)
    split = ctx.data.split("training", needed_by="distill.kd")
    factory, kwargs, student, refits = build_student(artifact, config, ctx.seed, split)
    sample = sample_inputs(artifact.signature, batch=2)
    teacher_cost = params_and_macs(teacher, sample) if artifact.format.value == "torch" else None
    history = train_student(teacher, student, split, artifact.signature, config, ctx.seed, ctx.say)
    student_cost = params_and_macs(student.eval(), sample)
    meta: dict[str, Any] = {}
    if kwargs is None:
        path = save_exported(student, artifact.signature, out_dir / "model.pt2")
        source = teacher_factory(artifact)
        meta = {"source_factory": source[0], "source_kwargs": source[1]}
        report: dict[str, Any] = {"student": "pruned copy of the teacher", "saved_as": "torch_export",
                                  "importance": config.importance}
        if config.reconstruct:
            report["reconstruct"] = refits
    else:
        path = save_module(student, factory, kwargs, out_dir)
        report = {"student": factory, "student_kwargs": kwargs, "saved_as": "factory"}
    report.update(loss=history, loss_kind=config.loss, student_params=student_cost["params"],
                  student_macs=student_cost["macs"])
    if config.loss == "kl":
        report.update(temperature=config.temperature, alpha=config.alpha)
    if teacher_cost:
        report.update(teacher_params=teacher_cost["params"], teacher_macs=teacher_cost["macs"])
    else:
        report["teacher_params"] = sum(p.numel() for p in teacher.parameters())
    return path, report, meta
