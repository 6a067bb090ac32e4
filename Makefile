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

.PHONY: help setup system-packages venv build test bench demo data vlm stage1 eval export train plot clean

help:
	@echo "make setup   system packages ($(APT_PACKAGES)) + the Python venv under $(VENV)"
	@echo "make test    build and run the whole test suite"
	@echo "make bench   kernel and step benchmarks -> Benchmarks/results/latest.json"
	@echo "make demo    the whole pipeline on the embedded tiny recipe"
	@echo "make data RECIPE=tiny|metaworld-mt10   Meta-World (+ Meta-World-Instruct) demonstrations with VLA-IT"
	@echo "             annotations -> Datasets/\$$RECIPE/*.hdf5"
	@echo "make vlm RECIPE=tiny    stage 0: train the VLM (Recipes/\$$RECIPE/vlm.yaml -> Checkpoints/\$$RECIPE/vlm)"
	@echo "make stage1 RECIPE=tiny stage 1: train the action expert (Recipes/\$$RECIPE/stage1.yaml -> Checkpoints/\$$RECIPE/stage1)"
	@echo "make eval RECIPE=tiny [STAGE=stage1]   closed-loop Meta-World evaluation of that run (Recipes/\$$RECIPE/eval.args)"
	@echo "make export RECIPE=tiny [STAGE=stage1] inference bundle -> Checkpoints/\$$RECIPE/\$$STAGE-bundle"
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

# The whole pipeline on the tiny recipe, each step resuming or skipping what is already done.
# Stage 2 (instruct-tune) is not built yet; the demo says so and evaluates stage 1.
demo: setup
	@started=$$(date +%s); set -e; \
	[ -f Datasets/tiny/drawer-close-v3.hdf5 ] || $(MAKE) --no-print-directory data RECIPE=tiny; \
	$(MAKE) --no-print-directory vlm RECIPE=tiny; \
	$(MAKE) --no-print-directory stage1 RECIPE=tiny; \
	echo "stage 2 (instruct-tune): not built yet, skipped"; \
	$(MAKE) --no-print-directory eval RECIPE=tiny STAGE=stage1 EVAL_OUT=Checkpoints/tiny/stage1/eval-demo; \
	$(MAKE) --no-print-directory export RECIPE=tiny STAGE=stage1; \
	echo; echo "== make demo: done in $$(( $$(date +%s) - started )) s on the tiny recipe =="; \
	echo "stage 0 VLM: Checkpoints/tiny/vlm ($$(tail -n 1 Checkpoints/tiny/vlm/metrics.jsonl))"; \
	echo "stage 1 expert: Checkpoints/tiny/stage1 ($$(tail -n 1 Checkpoints/tiny/stage1/metrics.jsonl))"; \
	echo "closed loop (Checkpoints/tiny/stage1/eval-demo/results.md):"; cat Checkpoints/tiny/stage1/eval-demo/results.md; \
	echo "export bundle: Checkpoints/tiny/stage1-bundle"

# Generator arguments per recipe live in Recipes/<recipe>/data.args (robot demonstrations),
# Recipes/<recipe>/instruct.args (Meta-World-Instruct demonstrations, same --seed/--image-size/--camera/--max-steps
# as data.args so that both share one dataset card) and Recipes/<recipe>/vqa.args (general VQA for the VLM).
# annotate.py then adds the VLA-IT annotations to every demonstration file (skipping ones already annotated).
data: setup
	$(VENV)/bin/python Datasets/metaworld/generate.py $$(cat Recipes/$(RECIPE)/data.args) --out Datasets/$(RECIPE)
	@if [ -f Recipes/$(RECIPE)/instruct.args ]; then \
		$(VENV)/bin/python Datasets/metaworld/generate.py $$(cat Recipes/$(RECIPE)/instruct.args) --out Datasets/$(RECIPE); fi
	$(VENV)/bin/python Datasets/metaworld/annotate.py Datasets/$(RECIPE)
	$(VENV)/bin/python Datasets/vqa/scene_qa.py --episodes 'Datasets/$(RECIPE)/*-v3.hdf5' --out Datasets/$(RECIPE)/scene_qa.hdf5
	@if [ -f Recipes/$(RECIPE)/vqa.args ]; then \
		$(VENV)/bin/python Datasets/vqa/generate_shapes.py $$(cat Recipes/$(RECIPE)/vqa.args) --out Datasets/$(RECIPE)/shapes.hdf5; fi

# Stage 0: Recipes/$(RECIPE)/vlm.yaml -> Checkpoints/$(RECIPE)/vlm
vlm: system-packages
	$(SWIFT) build -c release --product pretrain-vlm
	.build/release/pretrain-vlm Recipes/$(RECIPE)/vlm.yaml --run-dir Checkpoints/$(RECIPE)/vlm $(TRAIN_FLAGS)

# Stage 1: Recipes/$(RECIPE)/stage1.yaml -> Checkpoints/$(RECIPE)/stage1
stage1: system-packages
	$(SWIFT) build -c release --product pretrain-action
	.build/release/pretrain-action Recipes/$(RECIPE)/stage1.yaml --run-dir Checkpoints/$(RECIPE)/stage1 $(TRAIN_FLAGS)

# Closed loop: starts `vla serve` on the run, runs the Meta-World client (Recipes/$(RECIPE)/eval.args), stops the server.
EVAL_STAGE = $(if $(filter lm,$(STAGE)),stage1,$(STAGE))
EVAL_OUT ?= Checkpoints/$(RECIPE)/$(EVAL_STAGE)/eval-$(shell date +%Y%m%d-%H%M%S)
eval: setup
	$(SWIFT) build -c release --product vla
	$(VENV)/bin/python Datasets/metaworld/evaluate.py --serve Checkpoints/$(RECIPE)/$(EVAL_STAGE) $$(cat Recipes/$(RECIPE)/eval.args) --out $(EVAL_OUT)

export: system-packages
	$(SWIFT) build -c release --product vla
	.build/release/vla export Checkpoints/$(RECIPE)/$(EVAL_STAGE) -o Checkpoints/$(RECIPE)/$(EVAL_STAGE)-bundle

train: system-packages
	$(SWIFT) build -c release --product vla
	.build/release/vla train Recipes/$(RECIPE)/$(STAGE).yaml --run-dir $(RUN_DIR) $(TRAIN_FLAGS)

plot:
	$(SWIFT) build -c release --product vla
	.build/release/vla plot $(RUN_DIR)

clean:
	rm -rf .build
