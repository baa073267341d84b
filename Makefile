# tritonfleet: the two commands a fresh machine needs are `make site` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
INVENTORY ?= inventory/local.yml

.PHONY: venv site preflight verify remove rollout fleet-status ee test lint unit bench gpu-proof clean

$(VENV)/.installed: requirements.txt requirements-controller.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

## Main job: provision this machine, serve Triton, verify it.
site: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/site.yml $(ARGS)

preflight: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/preflight.yml $(ARGS)

verify: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/verify.yml $(ARGS)

remove: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/remove.yml $(ARGS)

## Fleet rollout: canary, batches, health gates, rollback, fleet report (docs/fleet.md).
rollout: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/rollout.yml $(ARGS)

## Fleet report from collected status documents: make fleet-status ARGS='-e triton_fleet_status_collected_dir=DIR'.
fleet-status: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/fleet_status.yml $(ARGS)

## Execution environment image for AWX / Automation Platform / ansible-runner (podman, offline build).
ee: venv
	$(BIN)/python tools/build_ee.py $(ARGS)

## Tests: lint, unit, integration (real tritonserver, real ansible-playbook, real SSH), molecule.
test: venv
	tests/run-all

lint: venv
	tests/run-lint

unit: venv
	$(BIN)/pytest tests/unit -q

bench: venv
	for b in tests/bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

## GPU proof kit: the carry folder .gpu-proof/ for one run on a GPU machine (docs/gpu-evidence.md).
gpu-proof: venv
	$(BIN)/python tools/gpu-proof/prepare $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
