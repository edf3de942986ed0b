"""Peak RSS of quantize.onnx.static's calibration with 1,000 vs 10,000 samples.

Each measurement runs in a fresh subprocess (peak RSS = VmHWM of that process) that calibrates
and quantizes the digits CNN (fp32 ONNX, 28x28 inputs) on N samples. Two data settings:

* streamed: the samples are made batch by batch (digits with seeded noise) and never held
  together, so the figure is what calibration itself holds;
* in memory: the N samples sit in one float32 array, as a pipeline's split does; the array
  itself (3 MB per 1,000 samples) is part of the figure;
* streamed, unstrided: as streamed, but with ORT's default single collect_data call (what the
  pass did before): the calibrator keeps every batch's intermediate outputs until the end
  (minmax only: ORT's unstrided histogram path fails on a last, partial batch).

    python -m benchmarks.calibration_memory [--methods minmax,entropy,percentile,distribution]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


class StreamedSplit:
    """N digit images made on the fly, batch by batch (seeded noise on scikit-learn's digits)."""

    def __init__(self, n: int, size: int = 28) -> None:
        from compressor.data import load_digits_source

        self.n = n
        self.base = load_digits_source(size)[0]["x"][:64]  # 64 source images, 200 KB

    def __len__(self) -> int:
        return self.n

    def _make(self, start: int, stop: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(start)
        idx = np.arange(start, stop) % len(self.base)
        x = self.base[idx] + rng.normal(0, 0.05, (stop - start, *self.base.shape[1:])).astype(np.float32)
        return {"x": np.clip(x, 0, 1)}

    def take(self, n: int) -> StreamedSplit:
        return StreamedSplit(min(n, self.n))

    @property
    def inputs(self) -> dict[str, np.ndarray]:
        return self._make(0, self.n)

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], None]]:
        for start in range(0, self.n, batch_size):
            yield self._make(start, min(start + batch_size, self.n)), None


def child(model: str, n: int, method: str, setting: str) -> None:
    """Calibrate + quantize in this process, print peak RSS as JSON."""
    from compressor.data import Split
    from compressor.frameworks._onnx import onnx_signature
    from compressor.measure.worker import _rss_mb
    from compressor.passes.quantize._onnx import StaticQuantizer
    from compressor.passes.registry import build_pass

    split = StreamedSplit(n)
    if setting == "in memory":
        split = Split(split.inputs)
    config = build_pass("quantize.onnx.static", {"calibration": method}).config
    with tempfile.TemporaryDirectory() as tmp:
        before = _rss_mb()
        q = StaticQuantizer(Path(model), split, onnx_signature(Path(model)), config, Path(tmp), "bench")
        if setting == "streamed, unstrided":
            q.options["extra_options"].pop("CalibStridedMinMax")
        q.quantize(Path(tmp) / "int8.onnx")
    print(json.dumps({"peak_rss_mb": _rss_mb(), "rss_before_mb": before}))


def fp32_model(out: Path) -> Path:
    from compressor import run_pipeline
    from compressor.run.pipeline import load_pipeline
    from samples.digits_cnn.train import ensure_weights

    ensure_weights()
    pipeline = load_pipeline(REPO / "samples" / "digits_cnn" / "pipeline.yaml")
    pipeline.select(["fp32-onnx"])
    results = run_pipeline(pipeline, out, benchmark=False)
    return out / results["variants"][0]["artifact"]["path"]


def main() -> None:
    from benchmarks.suite import markdown_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="minmax,entropy,percentile,distribution")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, n, method, setting = args.child
        return child(model, int(n), method, setting)
    model = fp32_model(Path(tempfile.mkdtemp(prefix="calib-mem-")))
    rows = []
    for setting in ("streamed", "in memory", "streamed, unstrided"):
        for method in args.methods.split(","):
            if setting == "streamed, unstrided" and method != "minmax":
                continue
            peaks = {}
            for n in (1000, 10000):
                proc = subprocess.run([sys.executable, "-m", "benchmarks.calibration_memory", "--child", str(model),
                                       str(n), method, setting], capture_output=True, text=True, cwd=REPO)
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr[-2000:])
                peaks[n] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]
            rows.append([setting, method, peaks[1000], peaks[10000], f"{100 * (peaks[10000] / peaks[1000] - 1):+.1f}%"])
    print("quantize.onnx.static on the digits CNN (28x28), calibration batch 32, one fresh process per cell\n")
    print(markdown_table(["data", "calibration", "peak RSS MB, 1,000 samples", "peak RSS MB, 10,000 samples",
                          "increase"], rows))


if __name__ == "__main__":
    main()
