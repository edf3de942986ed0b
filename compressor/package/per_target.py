"""The pipeline's ``package:`` section, run at the end of a run: per target, the variant named for it,
or else the fastest within budget on that target (p50 at the smallest batch measured there; the
smallest file when nothing was measured), packaged under OUT/packages/."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from compressor.errors import CompressorError
from compressor.package.build import RUNTIME_FORMATS, PackageOptions, build_package
from compressor.package.manifest import MANIFEST

log = logging.getLogger(__name__)


def choose(results: dict[str, Any], target: str) -> tuple[dict[str, Any] | None, str]:
    """(the fastest variant within budget that ``target`` runs, why) or (None, why none)."""
    runtime = target.partition(":")[0]
    formats = RUNTIME_FORMATS.get(runtime, ())
    able = [v for v in results["variants"] if v.get("status") == "ok" and v.get("artifact")
            and v["artifact"]["format"] in formats]
    within = [v for v in able if v.get("within_budget")]
    if not within:
        why = "no variant within budget" if able else f"no variant in a format {runtime} runs ({', '.join(formats) or 'none'})"
        return None, f"{why} for {target}"
    rows = [(b["batch_size"], b["p50_ms"], v) for v in within for b in v.get("benchmarks", [])
            if f"{b['runtime']}:{b['device']}" == target and "p50_ms" in b]
    if not rows:
        best = min(within, key=lambda v: v["artifact"]["size_bytes"])
        return best, f"the smallest file within budget (no latency measured on {target})"
    batch = min(r[0] for r in rows)
    p50, best = min(((r[1], r[2]) for r in rows if r[0] == batch), key=lambda r: r[0])
    return best, f"the fastest within budget on {target}: p50 {p50:.4g} ms at batch {batch}"


def package_run(results: dict[str, Any], out_dir: Path, spec: Any, targets: list[str]) -> list[dict[str, Any]]:
    """Build the packages a pipeline's ``package:`` section asks for; one record per target (with
    ``error`` when its package could not be built)."""
    from compressor.package.container import write_zip
    from compressor.package.oci import write_layout

    records = []
    for target in spec.targets or targets:
        named = spec.variants.get(target)
        if named:
            variant, why = next((v for v in results["variants"] if v["name"] == named), None), "named in package.variants"
            if variant is None:
                records.append({"target": target, "variant": named, "selected_by": why,
                                "error": f"package.variants names '{named}' for {target}, a variant this run left out"})
                continue
        else:
            variant, why = choose(results, target)
        record: dict[str, Any] = {"target": target, "variant": variant["name"] if variant else None, "selected_by": why}
        if variant is None:
            record["skipped"] = why
            records.append(record)
            continue
        folder = Path("packages") / f"{results['pipeline']}-{variant['name']}-{target.replace(':', '-')}"
        options = PackageOptions(target=target, version=spec.version, golden_samples=spec.golden_samples, ort=spec.ort,
                                 labels=tuple(spec.labels) if spec.labels else None, selected_by=why)
        try:
            built = build_package(out_dir, variant["name"], out_dir / folder, options)
            record["path"] = folder.as_posix()
            record["platform"] = json.loads((built / MANIFEST).read_text())["runtime"]["platform"]
            if spec.zip:
                record["zip"] = write_zip(built, built.with_name(built.name + ".zip")).relative_to(out_dir).as_posix()
            if spec.oci:
                record["oci"] = write_layout(built, built.with_name(built.name + ".oci")).relative_to(out_dir).as_posix()
            record["verified"] = True
        except CompressorError as exc:
            log.warning("package for %s: %s", target, exc)
            record["error"] = str(exc)
        records.append(record)
    return records
