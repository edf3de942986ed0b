"""A package as an OCI image layout (oci-layout, index.json, blobs/sha256/<digest>), with the media
types of the CNCF ModelPack specification, so standard tools (skopeo, oras) copy it to any OCI
registry. Each package file is one uncompressed layer, named by its path in the annotations."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from compressor.cache import temp_sibling
from compressor.package.container import replace_folder, safe_relative
from compressor.package.manifest import MANIFEST, file_sha256

IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG = "application/vnd.cncf.model.config.v1+json"
WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG = "application/vnd.cncf.model.weight.config.v1.raw"
CODE = "application/vnd.cncf.model.code.v1.raw"
DATASET = "application/vnd.cncf.model.dataset.v1.raw"
FILEPATH = "org.cncf.model.filepath"
TITLE = "org.opencontainers.image.title"
REF_NAME = "org.opencontainers.image.ref.name"


def _media_type(path: str, manifest: dict[str, Any]) -> str:
    if path in {m["path"] for m in manifest["models"]}:
        return WEIGHT
    if path == manifest["golden"]["path"]:
        return DATASET
    if path.endswith(".py"):
        return CODE
    return WEIGHT_CONFIG  # manifest.json, the operators config


def _blob(blobs: Path, data: bytes | None = None, src: Path | None = None) -> tuple[str, int]:
    """Store bytes (or a file) under blobs/sha256/<digest>; return its digest and size."""
    if src is not None:
        digest, size = file_sha256(src), src.stat().st_size
        if not (blobs / digest).exists():
            shutil.copyfile(src, blobs / digest)
    else:
        digest, size = hashlib.sha256(data).hexdigest(), len(data)
        (blobs / digest).write_bytes(data)
    return f"sha256:{digest}", size


def write_layout(package: Path, dst: Path) -> Path:
    """Write the package folder ``package`` as an OCI image layout at ``dst`` (replaced atomically),
    tagged with the package's version."""
    manifest = json.loads((package / MANIFEST).read_text())
    stage = temp_sibling(dst)
    blobs = stage / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    try:
        paths = [MANIFEST] + [f["path"] for f in manifest["files"]]
        layers = []
        for rel in paths:
            digest, size = _blob(blobs, src=package / rel)
            layers.append({"mediaType": _media_type(rel, manifest), "digest": digest, "size": size,
                           "annotations": {TITLE: rel, FILEPATH: rel}})
        config = {
            "descriptor": {"name": manifest["name"], "version": manifest["version"], "createdAt": manifest["created"]},
            "config": {"format": manifest["models"][0]["format"], "runtime": manifest["runtime"]["name"],
                       "target": manifest["target"]},
            "modelfs": {"type": "layers", "diffIds": [layer["digest"] for layer in layers]},
        }
        config_digest, config_size = _blob(blobs, json.dumps(config, indent=2).encode())
        image = {"schemaVersion": 2, "mediaType": IMAGE_MANIFEST, "artifactType": ARTIFACT_TYPE,
                 "config": {"mediaType": CONFIG, "digest": config_digest, "size": config_size}, "layers": layers,
                 "annotations": {"org.opencontainers.image.created": manifest["created"],
                                 "org.opencontainers.image.title": manifest["name"],
                                 "org.opencontainers.image.version": manifest["version"]}}
        image_digest, image_size = _blob(blobs, json.dumps(image, indent=2).encode())
        index = {"schemaVersion": 2, "mediaType": IMAGE_INDEX,
                 "manifests": [{"mediaType": IMAGE_MANIFEST, "artifactType": ARTIFACT_TYPE, "digest": image_digest,
                                "size": image_size, "annotations": {REF_NAME: manifest["version"]}}]}
        (stage / "index.json").write_text(json.dumps(index, indent=2))
        (stage / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        replace_folder(stage, dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return dst


def _read_blob(layout: Path, descriptor: dict[str, Any], what: str) -> tuple[bytes | None, list[str]]:
    digest = str(descriptor.get("digest", ""))
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        return None, [f"{what}: oci: digest '{digest[:80]}' is not a sha256 digest"]
    path = layout / "blobs" / "sha256" / hexdigest
    if path.is_symlink() or not path.is_file():
        return None, [f"{what}: oci: blob {digest[:19]}... is missing"]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != hexdigest or len(data) != descriptor.get("size"):
        return None, [f"{what}: oci: blob {digest[:19]}... does not match its digest or size"]
    return data, []


def read_layout(layout: Path, dst: Path) -> list[str]:
    """Rebuild the package folder held by an OCI layout into ``dst``, checking every digest; the failures."""
    try:
        index = json.loads((layout / "index.json").read_text())
        descriptors = [m for m in index["manifests"] if m.get("mediaType") == IMAGE_MANIFEST]
    except (OSError, ValueError, KeyError, TypeError):
        return ["index.json: oci: not a readable OCI image index"]
    failures: list[str] = []
    for descriptor in descriptors:  # a copy (skopeo copy) may drop artifactType from the index: read each
        data, problems = _read_blob(layout, descriptor, "index.json")
        failures += problems
        image = json.loads(data) if data is not None else {}
        if image.get("artifactType") == ARTIFACT_TYPE:
            break
    else:
        return failures or [f"index.json: oci: no manifest of artifactType {ARTIFACT_TYPE}"]
    dst.mkdir(parents=True)
    for layer in image.get("layers", []):
        rel = str(layer.get("annotations", {}).get(FILEPATH, ""))
        if not safe_relative(rel):
            failures.append(f"{rel or '(no path)'}: oci: layer path leaves the package (absolute, '..' or empty)")
            continue
        content, problems = _read_blob(layout, layer, rel)
        failures += problems
        if content is not None:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_bytes(content)
    return failures
