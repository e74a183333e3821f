# The two commands the README promises: `make run` (install + the main job on the embedded digits set)
# and `make test` (install + the test suite). PYTHON is whichever interpreter you want xai installed into
# (activate a venv first if you like).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# The torch/torchvision pair that installs offline on our build machines; any compatible pair works.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install run test test-cluster bench clean

install:
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e '.[dev]'

run: install
	xai train

test: install
	$(PYTHON) -m pytest -q

# The cluster stage: a one-node Slurm (Debian's slurm-wlm and munge, installed here when missing, as root)
# started for the session on 127.0.0.1, sweeps through the shipped launcher presets, every daemon stopped
# by its PID at the end (tests/cluster). A few minutes; `.ci/run` runs it after `make test`.
test-cluster: install
	bash scripts/cluster/install_slurm.sh
	$(PYTHON) -m pytest -q tests/cluster --cluster

bench: install
	$(PYTHON) scripts/bench_train.py

clean:
	rm -rf outputs/*/ models/ .cache/
