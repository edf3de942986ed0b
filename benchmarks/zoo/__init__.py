"""The model zoo benchmark (``python -m benchmarks.zoo``): our int8 against ONNX Runtime's and NNCF's
defaults on six real models; see __main__.py."""
