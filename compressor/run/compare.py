"""Compare two runs of a pipeline (a CI gate): per variant, its metric, size and latency against a baseline.

Latency is never read off two results.json files written on different machines or days: where both
variants' model files are in their run folders (and match the sha256 their results.json records), the
two are re-measured here, side by side, in paired rounds (``compressor.measure.paired``) on every target
and batch both runs measured; the new one is a regression when the whole interval of its speed-up lies
below ``1 / (1 + max_slowdown)``. Two identical files (same sha256) are the same model: not re-measured.
Otherwise latency is not compared, and each row says why. The metric and the size are compared from
the results. A variant missing from the new run, or failed there, is a regression too.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.artifact import Artifact
from compressor.errors import CompressorError, ConfigError

Measure = Callable[[Artifact, str, int], float]  # (artifact, "runtime:device", batch) -> p50 ms


@dataclass(frozen=True)
class Gate:
    """What counts as a regression: metric drop, latency slowdown and size growth allowed."""

    max_drop: float = 0.01  # the new metric may be at most this much worse (0.01 = one accuracy point)
    max_slowdown: float = 0.10  # slower is a regression when the whole interval is below 1 / (1 + this)
    max_growth: float = 0.05  # the model file may grow by at most this fraction
    rounds: int = 5
    max_rounds: int = 15
    remeasure_same: bool = False  # re-measure identical files too (an A/A check of the gate on this machine)

    def __post_init__(self) -> None:
        for name in ("max_drop", "max_slowdown", "max_growth"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} = {value!r} is not allowed; give a number of at least 0 (e.g. {flag} 0.05).")
        if self.rounds < 3 or self.max_rounds < self.rounds:
            raise ConfigError(f"rounds = {self.rounds}, max_rounds = {self.max_rounds} are not allowed; give "
                              f"rounds >= 3 and max_rounds >= rounds.")


@dataclass
class Run:
    """One side of a comparison: its results and the folder its artifacts are in (None for a bare results.json)."""

    label: str
    results: dict[str, Any]
    folder: Path | None
    variants: dict[str, dict] = field(default_factory=dict)


def load_run(path: Path | str, label: str) -> Run:
    """A run folder or its results.json, checked enough to compare; a one-line error otherwise."""
    path = Path(path).expanduser()
    if path.is_dir():
        folder, file = path, path / "results.json"
        if not file.is_file():
            raise ConfigError(f"{label} '{path}' has no results.json; give a run folder written by 'compressor run' "
                              f"or its results.json.")
    elif path.is_file():
        folder, file = (path.parent if path.name == "results.json" else None), path
    else:
        raise ConfigError(f"{label} '{path}' does not exist; give a run folder (with results.json) or a results.json file.")
    try:
        results = json.loads(file.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label} '{file}' is not readable JSON ({type(exc).__name__}); give the results.json "
                          f"a run wrote.") from None
    if not isinstance(results, dict) or results.get("schema") != 1 or not isinstance(results.get("variants"), list):
        raise ConfigError(f"{label} '{file}' is not a compressor results.json (schema 1 with 'variants'); give the "
                          f"results.json a run wrote.")
    variants = {v.get("name"): v for v in results["variants"] if isinstance(v, dict)}
    return Run(label, results, folder, variants)


def _metric_info(base: Run, new: Run) -> tuple[str, bool]:
    names = [r.results.get("metric", {}).get("name") for r in (base, new)]
    if names[0] != names[1]:
        raise ConfigError(f"the runs use different metrics (baseline {names[0]!r}, new {names[1]!r}); compare runs of "
                          f"the same pipeline.")
    return names[0], bool(base.results["metric"].get("higher_is_better", True))


def _local_artifact(run: Run, variant: dict) -> tuple[Artifact | None, str]:
    """The variant's model file in its run folder, as an Artifact; or None and why not."""
    from compressor.artifact import content_sha256
    from compressor.cache import path_inside
    from compressor.formats import Format
    from compressor.frameworks import function_for

    a = variant.get("artifact") or {}
    if run.folder is None:
        return None, f"the {run.label} is a bare results.json, without its run folder's artifacts/"
    try:
        path = path_inside(run.folder, a.get("path", ""), "variant")
    except CompressorError as exc:
        return None, str(exc)
    if not path.exists():
        return None, f"the {run.label}'s model file {a.get('path')} is not on this machine"
    if content_sha256(path) != a.get("sha256"):
        return None, f"the {run.label}'s model file {a.get('path')} differs from the sha256 its results.json records"
    fmt = Format(a["format"])
    importer = function_for(fmt, "importer", "compare")
    with tempfile.TemporaryDirectory() as tmp:
        signature = importer(path, Path(tmp))[1]
    return Artifact(fmt, path.resolve(), signature, a["sha256"]), ""


def _harness_measure(gate: Gate) -> Measure:
    """p50 of one round: a fresh worker process, random inputs drawn once per artifact pair (fixed seed)."""
    from backends import parse_target
    from compressor.measure.harness import measure, random_samples
    from compressor.measure.timing import TimingSettings

    timing = TimingSettings(warmup_runs=5, warmup_seconds=0.05, min_runs=20, min_seconds=0.2)
    samples: dict[tuple, Any] = {}

    def one(artifact: Artifact, target: str, batch: int) -> float:
        t = parse_target(target)
        key = tuple(s.name for s in artifact.signature.inputs)  # both sides of a pair get the same inputs
        feed = samples.setdefault(key, random_samples(artifact))
        return float(measure(artifact, t.runtime, t.device, batch, 1, timing, feed)["p50_ms"])

    return one


def _targets(base: dict, new: dict) -> list[tuple[str, int, dict, dict]]:
    theirs = {(b["runtime"], b["device"], b["batch_size"]): b for b in base.get("benchmarks", []) if "p50_ms" in b}
    rows = []
    for b in new.get("benchmarks", []):
        key = (b["runtime"], b["device"], b["batch_size"])
        if "p50_ms" in b and key in theirs:
            rows.append((f"{b['runtime']}:{b['device']}", b["batch_size"], theirs[key], b))
    return rows


def compare_runs(baseline: Path | str, new: Path | str, gate: Gate | None = None, measure: Measure | None = None,
                 on_event: Callable[..., None] | None = None) -> dict[str, Any]:
    """The comparison of ``new`` against ``baseline``: per variant metric, size and latency, the regressions,
    and ``passed`` (no regression). ``measure`` times one round (default: the harness, a fresh process)."""
    gate = gate or Gate()
    base, cand = load_run(baseline, "baseline"), load_run(new, "new run")
    metric, higher = _metric_info(base, cand)
    out: dict[str, Any] = {"baseline": str(baseline), "new": str(new), "metric": metric,
                           "thresholds": {"max_drop": gate.max_drop, "max_slowdown": gate.max_slowdown,
                                          "max_growth": gate.max_growth}, "variants": [], "regressions": []}
    for name, b in base.variants.items():
        row: dict[str, Any] = {"name": name, "regressions": []}
        n = cand.variants.get(name)
        if n is None:
            row.update(status="missing in the new run")
            row["regressions"].append("missing in the new run")
        elif n.get("status") != "ok" and b.get("status") == "ok":
            row.update(status="failed in the new run", error=n.get("error"))
            row["regressions"].append(f"failed in the new run: {n.get('error')}")
        elif b.get("status") != "ok" or n.get("artifact") is None:
            row.update(status="not compared (failed in the baseline)")
        else:
            row["status"] = "compared"
            _metric_and_size(row, b, n, gate, higher)
            row["latency"] = latency_rows(base, cand, b, n, _targets(b, n), gate,
                                          measure or _harness_measure(gate), on_event)
            row["regressions"] += [f"slower on {r['target']} batch {r['batch_size']}: {r['speedup']:.2f}x "
                                   f"(95% interval {r['interval'][0]:.2f}-{r['interval'][1]:.2f})"
                                   for r in row["latency"] if r.get("verdict") == "slower"]
        out["variants"].append(row)
        out["regressions"] += [f"{name}: {text}" for text in row["regressions"]]
    out["variants"] += [{"name": k, "status": "new in this run", "regressions": []}
                        for k in cand.variants if k not in base.variants]
    out["passed"] = not out["regressions"]
    return out


def _metric_and_size(row: dict, b: dict, n: dict, gate: Gate, higher: bool) -> None:
    drop = (b["metric"] - n["metric"]) if higher else (n["metric"] - b["metric"])
    row["metric"] = {"baseline": b["metric"], "new": n["metric"], "drop": round(drop, 6)}
    if drop > gate.max_drop:
        row["regressions"].append(f"metric {b['metric']:.4f} -> {n['metric']:.4f} (drop {drop:.4f} > --max-drop "
                                  f"{gate.max_drop:g})")
    bs, ns = b["artifact"]["size_bytes"], n["artifact"]["size_bytes"]
    growth = ns / bs - 1 if bs else 0.0
    row["size"] = {"baseline_bytes": bs, "new_bytes": ns, "growth": round(growth, 4)}
    if growth > gate.max_growth:
        row["regressions"].append(f"size {bs:,} -> {ns:,} bytes (+{growth:.1%} > --max-growth {gate.max_growth:g})")


def latency_rows(base: Run, cand: Run, b: dict, n: dict, targets: list[tuple[str, int, dict, dict]], gate: Gate,
                 measure: Measure, on_event: Callable[..., None] | None = None) -> list[dict[str, Any]]:
    """One row per target and batch both runs measured: paired rounds here, or why latency was not compared."""
    from compressor.measure.paired import PairedSettings, paired_rounds
    from compressor.run.measurements import usable_targets

    if not targets:
        return [{"not_compared": "no target and batch was measured in both runs"}]
    if b["artifact"].get("sha256") == n["artifact"].get("sha256") and not gate.remeasure_same:
        return [{"target": t, "batch_size": k, "baseline_p50_ms": bb["p50_ms"], "new_p50_ms": nb["p50_ms"],
                 "same_artifact": True} for t, k, bb, nb in targets]
    arts, why = {}, ""
    for side, run, v in (("baseline", base, b), ("new", cand, n)):
        try:
            arts[side], reason = _local_artifact(run, v)
        except CompressorError as exc:
            arts[side], reason = None, f"the {run.label}'s model file cannot be opened here: {exc}"
        why = why or reason
    _, skipped = usable_targets(sorted({t for t, _, _, _ in targets}))
    unusable = {s["target"]: s["reason"] for s in skipped}
    settings = PairedSettings(rounds=gate.rounds, max_rounds=gate.max_rounds, min_effect=gate.max_slowdown)
    rows = []
    for target, batch, bb, nb in targets:
        row: dict[str, Any] = {"target": target, "batch_size": batch, "baseline_p50_ms": bb["p50_ms"],
                               "new_p50_ms": nb["p50_ms"]}
        if why or target in unusable:
            row["not_compared"] = why or unusable[target]
            rows.append(row)
            continue
        if on_event:
            on_event("compare", variant=n["name"], target=target, batch=batch)
        try:
            record = paired_rounds(lambda side, t=target, k=batch: measure(arts[side], t, k),
                                   [("baseline", "new")], settings)[("baseline", "new")]
        except CompressorError as exc:
            row["not_compared"] = f"re-measuring failed: {exc}"
        else:
            row.update(record)
        rows.append(row)
    return rows
