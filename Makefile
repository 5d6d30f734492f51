# Mura's commands. `make test` and `make testnet` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TESTNET_DIR ?= testnet
VALIDATORS ?= 4
SEEDS ?= 200
MINUTES ?= 5
CHAOS_ARGS ?=
BENCH_ARGS ?=
# make attacks: which attacks (comma-separated; empty: all) and how hard (1 quick, 10 full strength).
ATTACK ?=
SCALE ?= 1

.PHONY: test testnet testnet-reset sim chaos bench bench-full attacks clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

testnet: $(STAMP)
	$(VENV)/bin/mura testnet --dir $(TESTNET_DIR) --validators $(VALIDATORS)

sim: $(STAMP)
	$(PY) -m mura.tests.sim.campaign --seeds $(SEEDS)

# Real network faults between validator processes (see tests/chaos/campaign.py). Real packet
# loss needs iptables and clock skew needs libfaketime (apt-get install iptables faketime);
# without them those faults are skipped with a line saying so.
chaos: $(STAMP)
	$(PY) -m mura.tests.chaos.campaign --minutes $(MINUTES) $(CHAOS_ARGS)

testnet-reset:
	rm -rf $(TESTNET_DIR)

bench: $(STAMP)
	$(PY) -m mura.chain.bench --quick --json bench-results/ledger.json
	$(PY) -m mura.tests.bench.network --quick --json bench-results/network.json $(BENCH_ARGS)

bench-full: $(STAMP)
	$(PY) -m mura.chain.bench --json bench-results/ledger.json
	$(PY) -m mura.tests.bench.network --full --json bench-results/network.json $(BENCH_ARGS)

# Attacks on real node processes and what they cost the honest nodes (a measuring tool, not part of test).
attacks: $(STAMP)
	$(PY) -m mura.tests.attacks.campaign $(if $(ATTACK),--attack '$(ATTACK)') --scale $(SCALE) --json attack-results/attacks-scale-$(SCALE).json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
