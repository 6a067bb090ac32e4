# InstructVLA-Swift. `make demo` and `make test` are all a fresh machine needs; both install what
# they use (Debian packages, the test venv) and are idempotent.

SHELL := /bin/bash
.DEFAULT_GOAL := help
SWIFT ?= swift
VENV := .venv
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_PACKAGES := libopenblas-dev libhdf5-dev libzstd-dev zlib1g-dev pkg-config
RECIPE ?= tiny
STAGE ?= lm
OVERRIDES ?=
RUN_DIR := Checkpoints/$(RECIPE)/$(STAGE)
TRAIN_FLAGS := $(foreach o,$(OVERRIDES),--set $(o)) $(if $(RESUME),--resume) $(if $(OVERWRITE),--overwrite)

.PHONY: help setup system-packages venv build test bench demo data vlm train plot clean

help:
	@echo "make setup   system packages ($(APT_PACKAGES)) + the Python venv under $(VENV)"
	@echo "make test    build and run the whole test suite"
	@echo "make bench   kernel and step benchmarks -> Benchmarks/results/latest.json"
	@echo "make demo    the whole pipeline on the embedded tiny recipe"
	@echo "make data RECIPE=tiny|metaworld-mt10   Meta-World demonstrations -> Datasets/\$$RECIPE/*.hdf5"
	@echo "make vlm RECIPE=tiny    stage 0: train the VLM (Recipes/\$$RECIPE/vlm.yaml -> Checkpoints/\$$RECIPE/vlm)"
	@echo "make train RECIPE=tiny STAGE=lm [OVERRIDES=\"train.steps=200\"] [RESUME=1|OVERWRITE=1]"
	@echo "             train Recipes/\$$RECIPE/\$$STAGE.yaml into Checkpoints/\$$RECIPE/\$$STAGE (resumes by default)"
	@echo "make plot RECIPE=tiny STAGE=lm   loss and metric curves of that run as a PNG"

setup: system-packages venv

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "setup: installing$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

# One venv for the Python side: the Meta-World generator and the test-only reference implementations.
PY_REQUIREMENTS := Datasets/metaworld/requirements.txt Tests/requirements.txt
PY_NO_DEPS_REQUIREMENTS := Datasets/metaworld/requirements-client.txt
$(VENV)/.installed: $(PY_REQUIREMENTS) $(PY_NO_DEPS_REQUIREMENTS)
	@echo "setup: Python venv in $(VENV)"
	@python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check $(foreach r,$(PY_REQUIREMENTS),-r $(r))
	@$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r $(PY_NO_DEPS_REQUIREMENTS)
	@touch $@

build: system-packages
	$(SWIFT) build

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing

bench: system-packages
	$(SWIFT) build -c release --product bench
	.build/release/bench Benchmarks/results

demo:
	@echo "make demo: the tiny-recipe pipeline (data -> vlm -> stage1 -> stage2 -> eval) arrives with"
	@echo "issues 4-10; today the foundation is in place: run 'make test' or 'make bench'."
	@exit 2

# Generator arguments per recipe live in Recipes/<recipe>/data.args (robot demonstrations) and
# Recipes/<recipe>/vqa.args (general VQA for the VLM).
data: setup
	$(VENV)/bin/python Datasets/metaworld/generate.py $$(cat Recipes/$(RECIPE)/data.args) --out Datasets/$(RECIPE)
	$(VENV)/bin/python Datasets/vqa/scene_qa.py --episodes 'Datasets/$(RECIPE)/*-v3.hdf5' --out Datasets/$(RECIPE)/scene_qa.hdf5
	@if [ -f Recipes/$(RECIPE)/vqa.args ]; then \
		$(VENV)/bin/python Datasets/vqa/generate_shapes.py $$(cat Recipes/$(RECIPE)/vqa.args) --out Datasets/$(RECIPE)/shapes.hdf5; fi

# Stage 0: Recipes/$(RECIPE)/vlm.yaml -> Checkpoints/$(RECIPE)/vlm
vlm: system-packages
	$(SWIFT) build -c release --product pretrain-vlm
	.build/release/pretrain-vlm Recipes/$(RECIPE)/vlm.yaml --run-dir Checkpoints/$(RECIPE)/vlm $(TRAIN_FLAGS)

train: system-packages
	$(SWIFT) build -c release --product vla
	.build/release/vla train Recipes/$(RECIPE)/$(STAGE).yaml --run-dir $(RUN_DIR) $(TRAIN_FLAGS)

plot:
	$(SWIFT) build -c release --product vla
	.build/release/vla plot $(RUN_DIR)

clean:
	rm -rf .build
