# InstructVLA-Swift. `make demo` and `make test` are all a fresh machine needs; both install what
# they use (Debian packages, the test venv) and are idempotent.

SHELL := /bin/bash
.DEFAULT_GOAL := help
SWIFT ?= swift
VENV := .venv
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_PACKAGES := libopenblas-dev libhdf5-dev libzstd-dev zlib1g-dev pkg-config libopenmpi-dev openmpi-bin
RECIPE ?= tiny
STAGE ?= lm
OVERRIDES ?=
RUN_DIR := Checkpoints/$(RECIPE)/$(STAGE)
TRAIN_FLAGS := $(foreach o,$(OVERRIDES),--set $(o)) $(if $(RESUME),--resume) $(if $(OVERWRITE),--overwrite)
# NP=N trains as a data-parallel MPI job of N processes (train.batch_size is per process); HOSTFILE=FILE
# spreads them over the hosts it lists; MPIRUN_FLAGS adds mpirun options. As root, mpirun needs the
# OMPI_ALLOW_RUN_AS_ROOT variables; ranks on one host share its cores unless INSTRUCTVLA_THREADS is set.
# With a hostfile, rtc_hwloc_vmhole none: Open MPI 4.1's daemons otherwise map a shared hwloc topology
# into an address-space hole and now and then segfault there (hwloc_shmem_topology_write).
# Without NP, Recipes/<recipe>/<stage>.np (one number), where it exists, is that recipe's own process
# count: its batch_size was chosen per process for it.
NP ?=
HOSTFILE ?=
MPIRUN_FLAGS ?=
processes = $(or $(NP),$(shell cat Recipes/$(RECIPE)/$(1).np 2>/dev/null))
launch = $(call mpirun,$(call processes,$(1)))
mpirun = $(if $(1),OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np $(1) --oversubscribe --bind-to none \
	$(if $(SUDO),,--allow-run-as-root) $(if $(HOSTFILE),--hostfile $(HOSTFILE) --mca rtc_hwloc_vmhole none) $(MPIRUN_FLAGS))

.PHONY: help setup system-packages venv build test bench demo data vlm stage1 stage2 eval eval-instruct export train plot clean

help:
	@echo "make setup   system packages ($(APT_PACKAGES)) + the Python venv under $(VENV)"
	@echo "make test    build and run the whole test suite"
	@echo "make bench   kernel and step benchmarks -> Benchmarks/results/latest.json"
	@echo "make demo    the whole pipeline on the embedded tiny recipe"
	@echo "make data RECIPE=tiny|metaworld-mt10   Meta-World (+ Meta-World-Instruct) demonstrations with VLA-IT"
	@echo "             annotations -> Datasets/\$$RECIPE/*.hdf5"
	@echo "make vlm RECIPE=tiny    stage 0: train the VLM (Recipes/\$$RECIPE/vlm.yaml -> Checkpoints/\$$RECIPE/vlm)"
	@echo "make stage1 RECIPE=tiny stage 1: train the action expert (Recipes/\$$RECIPE/stage1.yaml -> Checkpoints/\$$RECIPE/stage1)"
	@echo "make stage2 RECIPE=tiny stage 2: instruction tuning (Recipes/\$$RECIPE/stage2.yaml -> Checkpoints/\$$RECIPE/stage2);"
	@echo "             STAGE=stage2-full-ft trains the full-fine-tune ablation"
	@echo "make eval RECIPE=tiny [STAGE=stage1]   closed-loop Meta-World evaluation of that run (Recipes/\$$RECIPE/eval.args)"
	@echo "make eval-instruct RECIPE=tiny STAGE=stage2   Meta-World-Instruct with held-out atomic/rewriting/context"
	@echo "             instructions, plus VQA retention (Recipes/\$$RECIPE/eval-instruct.args);"
	@echo "             PHRASINGS=train: the same goals in training wordings"
	@echo "make export RECIPE=tiny [STAGE=stage1] inference bundle -> Checkpoints/\$$RECIPE/\$$STAGE-bundle"
	@echo "make train RECIPE=tiny STAGE=lm [OVERRIDES=\"train.steps=200\"] [RESUME=1|OVERWRITE=1]"
	@echo "             train Recipes/\$$RECIPE/\$$STAGE.yaml into Checkpoints/\$$RECIPE/\$$STAGE (resumes by default)"
	@echo "make vlm|stage1|train ... NP=2 [HOSTFILE=FILE]   the same as a data-parallel MPI job of 2 processes"
	@echo "             (without NP: Recipes/\$$RECIPE/\$$STAGE.np where present, e.g. metaworld-mt10's stage1.np)"
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
demo: setup
	@started=$$(date +%s); set -e; \
	[ -f Datasets/tiny/instruct-place-v3.hdf5 ] || $(MAKE) --no-print-directory data RECIPE=tiny; \
	$(MAKE) --no-print-directory vlm RECIPE=tiny; \
	$(MAKE) --no-print-directory stage1 RECIPE=tiny; \
	$(MAKE) --no-print-directory stage2 RECIPE=tiny; \
	$(MAKE) --no-print-directory eval RECIPE=tiny STAGE=stage2 EVAL_OUT=Checkpoints/tiny/stage2/eval-demo; \
	$(MAKE) --no-print-directory eval-instruct RECIPE=tiny STAGE=stage2 EVAL_OUT=Checkpoints/tiny/stage2/eval-instruct-demo; \
	$(MAKE) --no-print-directory export RECIPE=tiny STAGE=stage2; \
	echo; echo "== make demo: done in $$(( $$(date +%s) - started )) s on the tiny recipe =="; \
	echo "stage 0 VLM: Checkpoints/tiny/vlm ($$(tail -n 1 Checkpoints/tiny/vlm/metrics.jsonl))"; \
	echo "stage 1 expert: Checkpoints/tiny/stage1 ($$(tail -n 1 Checkpoints/tiny/stage1/metrics.jsonl))"; \
	echo "stage 2 generalist: Checkpoints/tiny/stage2 ($$(tail -n 1 Checkpoints/tiny/stage2/metrics.jsonl))"; \
	echo "closed loop, Meta-World (Checkpoints/tiny/stage2/eval-demo/results.md):"; cat Checkpoints/tiny/stage2/eval-demo/results.md; \
	echo "closed loop, Meta-World-Instruct with held-out phrasings, and VQA (Checkpoints/tiny/stage2/eval-instruct-demo/summary.md):"; \
	cat Checkpoints/tiny/stage2/eval-instruct-demo/summary.md; \
	echo "export bundle: Checkpoints/tiny/stage2-bundle"

# Generator arguments per recipe live in Recipes/<recipe>/data.args (robot demonstrations),
# Recipes/<recipe>/instruct.args (Meta-World-Instruct demonstrations, same --seed/--image-size/--camera/--max-steps
# as data.args so that both share one dataset card), Recipes/<recipe>/scene_qa.args (stage 0's questions about
# those frames) and Recipes/<recipe>/vqa.args (general VQA for the VLM).
# annotate.py then adds the VLA-IT annotations to every demonstration file (skipping ones already annotated).
data: setup
	$(VENV)/bin/python Datasets/metaworld/generate.py $$(cat Recipes/$(RECIPE)/data.args) --out Datasets/$(RECIPE)
	@if [ -f Recipes/$(RECIPE)/instruct.args ]; then \
		$(VENV)/bin/python Datasets/metaworld/generate.py $$(cat Recipes/$(RECIPE)/instruct.args) --out Datasets/$(RECIPE); fi
	$(VENV)/bin/python Datasets/metaworld/annotate.py Datasets/$(RECIPE)
	$(VENV)/bin/python Datasets/vqa/scene_qa.py --episodes 'Datasets/$(RECIPE)/*-v3.hdf5' --out Datasets/$(RECIPE)/scene_qa.hdf5 \
		$$(cat Recipes/$(RECIPE)/scene_qa.args 2>/dev/null)
	@if [ -f Recipes/$(RECIPE)/vqa.args ]; then \
		$(VENV)/bin/python Datasets/vqa/generate_shapes.py $$(cat Recipes/$(RECIPE)/vqa.args) --out Datasets/$(RECIPE)/shapes.hdf5; fi

# Stage 0: Recipes/$(RECIPE)/vlm.yaml -> Checkpoints/$(RECIPE)/vlm
vlm: system-packages
	$(SWIFT) build -c release --product pretrain-vlm
	$(call launch,vlm) .build/release/pretrain-vlm Recipes/$(RECIPE)/vlm.yaml --run-dir Checkpoints/$(RECIPE)/vlm $(TRAIN_FLAGS)

# Stage 1: Recipes/$(RECIPE)/stage1.yaml -> Checkpoints/$(RECIPE)/stage1
stage1: system-packages
	$(SWIFT) build -c release --product pretrain-action
	$(call launch,stage1) .build/release/pretrain-action Recipes/$(RECIPE)/stage1.yaml --run-dir Checkpoints/$(RECIPE)/stage1 $(TRAIN_FLAGS)

# Stage 2: Recipes/$(RECIPE)/stage2.yaml -> Checkpoints/$(RECIPE)/stage2; STAGE=stage2-full-ft trains the ablation.
STAGE2 = $(if $(filter stage2%,$(STAGE)),$(STAGE),stage2)
stage2: system-packages
	$(SWIFT) build -c release --product instruct-tune
	$(call launch,$(STAGE2)) .build/release/instruct-tune Recipes/$(RECIPE)/$(STAGE2).yaml --run-dir Checkpoints/$(RECIPE)/$(STAGE2) $(TRAIN_FLAGS)

# Closed loop: starts `vla serve` on the run, runs the Meta-World client (Recipes/$(RECIPE)/eval.args), stops the server.
EVAL_STAGE = $(if $(filter lm,$(STAGE)),stage1,$(STAGE))
EVAL_OUT ?= Checkpoints/$(RECIPE)/$(EVAL_STAGE)/eval-$(shell date +%Y%m%d-%H%M%S)
eval: setup
	$(SWIFT) build -c release --product vla
	$(VENV)/bin/python Datasets/metaworld/evaluate.py --serve Checkpoints/$(RECIPE)/$(EVAL_STAGE) $$(cat Recipes/$(RECIPE)/eval.args) --out $(EVAL_OUT)

# Instruction following on Meta-World-Instruct with held-out phrasings (atomic commands, command
# rewriting, context creation; Recipes/$(RECIPE)/eval-instruct.args), then VQA retention on the
# stage-0 data's test split; a summary table at the end. PHRASINGS=train words the same evaluation
# goals with the training phrasings instead, to tell not learning apart from not generalising.
PHRASINGS ?= eval
eval-instruct: setup
	$(SWIFT) build -c release --product vla
	@set -e; dir=Datasets/metaworld/eval_instructions; \
	if [ "$(PHRASINGS)" = train ]; then dir=$${dir}_train; $(VENV)/bin/python Datasets/metaworld/eval_instructions.py --phrasings train --out $$dir; \
	elif [ "$(PHRASINGS)" != eval ]; then echo "PHRASINGS must be eval or train, got '$(PHRASINGS)'" >&2; exit 2; fi; \
	for kind in atomic rewriting context; do \
		$(VENV)/bin/python Datasets/metaworld/evaluate.py --serve Checkpoints/$(RECIPE)/$(EVAL_STAGE) $$(cat Recipes/$(RECIPE)/eval-instruct.args) \
			--instructions $$dir/$$kind.json --out $(EVAL_OUT)/$$kind; done
	.build/release/vla eval --vqa Checkpoints/$(RECIPE)/$(EVAL_STAGE) -o $(EVAL_OUT)/vqa.json
	@$(VENV)/bin/python Datasets/metaworld/instruct_summary.py $(EVAL_OUT)

export: system-packages
	$(SWIFT) build -c release --product vla
	.build/release/vla export Checkpoints/$(RECIPE)/$(EVAL_STAGE) -o Checkpoints/$(RECIPE)/$(EVAL_STAGE)-bundle

train: system-packages
	$(SWIFT) build -c release --product vla
	$(call launch,$(STAGE)) .build/release/vla train Recipes/$(RECIPE)/$(STAGE).yaml --run-dir $(RUN_DIR) $(TRAIN_FLAGS)

plot:
	$(SWIFT) build -c release --product vla
	.build/release/vla plot $(RUN_DIR)

clean:
	rm -rf .build
