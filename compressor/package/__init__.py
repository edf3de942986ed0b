"""Deployment packages: a layer like report/, reading a finished run folder (results.json, artifacts/,
evaluation_samples.npz). ``build`` writes a package, ``verify`` checks one (folder, zip or OCI
layout), ``oci`` writes and reads OCI image layouts, ``pipeline`` packages a run's variants per target.
Importing this package loads no framework."""
