"""Run this package's model on its golden inputs with nothing but the runtime and numpy.

    pip install numpy <runtime.package>==<runtime.min_version>     (both named in manifest.json)
    python run.py            # each model file's outputs for the golden inputs, and their distance to the golden outputs
    python run.py --json     # the same as JSON, with the signature the runtime reads from the model

It applies the manifest's preprocessing to the raw golden inputs, quantizes int8 inputs and
dequantizes int8 outputs with the manifest's scale and zero point, and runs one sample at a time.
Exit status 0 when every output is within the golden tolerance, 1 otherwise.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np


def resize(x, height, width):
    """Bilinear resize of (..., H, W) arrays with corner-aligned grids."""
    h, w = x.shape[-2:]
    ys, xs = np.linspace(0, h - 1, height), np.linspace(0, w - 1, width)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = x[..., y0, :][..., x0] * (1 - fx) + x[..., y0, :][..., x1] * fx
    bottom = x[..., y1, :][..., x0] * (1 - fx) + x[..., y1, :][..., x1] * fx
    return top * (1 - fy) + bottom * fy


def preprocess(raw, prep):
    """A raw sample batch (N, C, H, W) to the model's float input, as the manifest says."""
    x = raw.astype(np.float64)
    if prep.get("resize"):
        x = resize(x, *prep["resize"])
    x = x * prep["scale"] + prep["offset"]
    if prep.get("clip"):
        x = np.clip(x, *prep["clip"])
    if prep["layout"] == "NHWC" and x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    return x.astype(prep["dtype"])


def quantize(x, tensor):
    """Float to the tensor's integer type: round(x / scale) + zero_point, saturated."""
    q = tensor.get("quantization")
    if not q or not np.issubdtype(np.dtype(tensor["dtype"]), np.integer):
        return x.astype(tensor["dtype"])
    info = np.iinfo(tensor["dtype"])
    return np.clip(np.round(x / q["scale"]) + q["zero_point"], info.min, info.max).astype(tensor["dtype"])


def dequantize(y, tensor):
    """Integer outputs to float32: (q - zero_point) * scale."""
    q = tensor.get("quantization")
    if not q or not np.issubdtype(y.dtype, np.integer):
        return y.astype(np.float32)
    return ((y.astype(np.float32) - q["zero_point"]) * np.float32(q["scale"])).astype(np.float32)


def open_model(path, runtime):
    """(run(feeds) -> outputs by name, the signature the runtime reads) for one model file."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        dtypes = {"float": "float32", "double": "float64"}  # "tensor(float)" -> float32; int8, uint8, ... as they are

        def spec(a):
            dtype = a.type[len("tensor("):-1]
            return {"name": a.name, "shape": [d if isinstance(d, int) else None for d in a.shape],
                    "dtype": dtypes.get(dtype, dtype), "quantization": None}

        names = [o.name for o in session.get_outputs()]
        signature = {"inputs": [spec(a) for a in session.get_inputs()], "outputs": [spec(a) for a in session.get_outputs()]}
        return (lambda feeds: dict(zip(names, session.run(names, feeds)))), signature
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the older name of the same runtime
        from tflite_runtime.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    ins, outs = interpreter.get_input_details(), interpreter.get_output_details()

    def spec(d):
        scale, zero = d["quantization"]
        shape = [int(s) if s >= 0 else None for s in d.get("shape_signature", d["shape"])]
        q = {"scale": float(scale), "zero_point": int(zero)} if scale else None
        return {"name": d["name"], "shape": shape, "dtype": np.dtype(d["dtype"]).name, "quantization": q}

    def run(feeds):
        for d in ins:
            if list(d["shape"]) != list(feeds[d["name"]].shape):
                interpreter.resize_tensor_input(d["index"], feeds[d["name"]].shape)
                interpreter.allocate_tensors()
            interpreter.set_tensor(d["index"], feeds[d["name"]])
        interpreter.invoke()
        return {d["name"]: interpreter.get_tensor(d["index"]) for d in outs}

    return run, {"inputs": [spec(d) for d in ins], "outputs": [spec(d) for d in outs]}


def predict(run, signature, inputs, count):
    """Float outputs by name for the first ``count`` samples of float ``inputs``, one sample at a time."""
    outputs = {t["name"]: [] for t in signature["outputs"]}
    for i in range(count):
        produced = run({t["name"]: quantize(inputs[t["name"]][i:i + 1], t) for t in signature["inputs"]})
        for t in signature["outputs"]:
            outputs[t["name"]].append(dequantize(produced[t["name"]], t)[0])
    return {name: np.stack(values) for name, values in outputs.items()}


def golden_inputs(manifest, golden):
    """The model's float inputs for the golden samples: preprocessed raw samples, or the stored inputs."""
    prep, out = manifest.get("preprocessing"), {}
    for t in manifest["signature"]["inputs"]:
        if manifest["golden"]["raw_inputs"] and prep and f"raw.{t['name']}" in golden:
            out[t["name"]] = preprocess(golden[f"raw.{t['name']}"], prep)
        else:
            out[t["name"]] = golden[f"input.{t['name']}"]
    return out


def run_model(path, manifest, golden):
    """One model file on every golden sample: its signature, outputs and distance to the golden outputs."""
    run, signature = open_model(path, manifest["runtime"]["name"])
    inputs = golden_inputs(manifest, golden)
    outputs = predict(run, manifest["signature"], inputs, manifest["golden"]["samples"])
    tol = manifest["golden"]
    report = {"path": str(path), "signature": signature, "outputs": {}, "max_abs_error": {}, "within": {}}
    for name, got in outputs.items():
        want = golden[f"output.{name}"]
        report["outputs"][name] = got.tolist()
        report["max_abs_error"][name] = float(np.max(np.abs(got - want))) if got.shape == want.shape else None
        report["within"][name] = got.shape == want.shape and bool(np.allclose(got, want, atol=tol["atol"], rtol=tol["rtol"]))
    report["within_tolerance"] = all(report["within"].values())
    if manifest["golden"]["raw_inputs"]:
        report["preprocessing_max_abs_error"] = max(
            float(np.max(np.abs(inputs[k].astype(np.float64) - golden[f"input.{k}"]))) for k in inputs)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=Path(__file__).resolve().parent, help="the package folder")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    manifest = json.loads((args.package / "manifest.json").read_text())
    with np.load(args.package / manifest["golden"]["path"], allow_pickle=False) as archive:
        golden = {k: archive[k] for k in archive.files}
    reports = [run_model(args.package / m["path"], manifest, golden) for m in manifest["models"]]
    if args.json:
        print(json.dumps({"models": reports}))
    else:
        labels, truth = manifest.get("labels"), golden.get("label")
        for r in reports:
            print(f"{r['path']} ({manifest['runtime']['name']}):")
            if "preprocessing_max_abs_error" in r:
                print(f"  raw golden inputs preprocessed: max abs error vs the stored inputs {r['preprocessing_max_abs_error']:.3g}")
            for name, values in r["outputs"].items():
                for i, v in enumerate(values):
                    top = int(np.argmax(v)) if labels and np.size(v) == len(labels) else None
                    label = f"  -> {labels[top]}" if top is not None else ""
                    label += f" (true label {labels[int(truth[i])]})" if top is not None and truth is not None else ""
                    print(f"  {name}[{i}] = {np.array2string(np.asarray(v), precision=4, max_line_width=200)}{label}")
                verdict = "within" if r["within_tolerance"] else "NOT within"
                print(f"  {name}: max abs error vs golden {r['max_abs_error'][name]:.3g} ({verdict} the tolerance)")
    return 0 if all(r["within_tolerance"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
