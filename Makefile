# Mura's commands. `make test` and `make testnet` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two installs: the runtime alone for make testnet, with the test tools for everything else.
RUNTIME_STAMP := $(VENV)/.runtime-stamp
TEST_STAMP := $(VENV)/.test-stamp
LINT_STAMP := $(VENV)/.lint-stamp
BROWSER_STAMP := $(VENV)/.browser-stamp
# make test-browser drives Debian's Chromium through its own driver at these paths, so Selenium
# never looks for (or downloads) a browser of its own.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
# What apt-get installs for it when any is missing: a Japanese font too, or the Japanese pages'
# screenshots show boxes (fontconfig for fc-list, which tells whether there is one).
BROWSER_PACKAGES := chromium chromium-driver fonts-ipafont-gothic fontconfig
# mypy finds a package by its folder's name, and this repository's root is the mura package: make
# lint shows it mypy through a folder that holds only a link named mura to the root.
LINT_ROOT := $(VENV)/lint-root
# setuptools notes on every editable install that a folder named like the package in the working
# directory could shadow it; this repository's root is the package, so the note is left out.
PIP_INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet
TESTNET_DIR ?= testnet
VALIDATORS ?= 4
# make testnet OBSERVERS=1 adds (and runs) an observer: a node that follows the chain and never votes,
# serving JSON-RPC 10 ports above the first validator's (127.0.0.1:8710).
OBSERVERS ?= 0
# make testnet RPC_PORT=8800 P2P_PORT=9800: validator i serves JSON-RPC on RPC_PORT+i and peers on
# P2P_PORT+i (8700 and 9700 when not given; an existing testnet keeps the ports it was generated with).
RPC_PORT ?=
P2P_PORT ?=
SEEDS ?= 200
MINUTES ?= 5
CHAOS_ARGS ?=
BENCH_ARGS ?=
# make attacks: which attacks (comma-separated; empty: all) and how hard (1 quick, 10 full strength).
ATTACK ?=
SCALE ?= 1
# make bench-sync: the state a node joins (accounts), and how many of them the replayed blocks make
# (the replay's figures are scaled to ACCOUNTS when fewer).
ACCOUNTS ?= 1000000
REPLAY_ACCOUNTS ?= 200000

.PHONY: test test-browser lint testnet testnet-reset demo-bond sim chaos bench bench-full bench-sync attacks clean

$(RUNTIME_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e .
	touch $(RUNTIME_STAMP)

$(TEST_STAMP): $(RUNTIME_STAMP)
	$(PIP_INSTALL) -e '.[test]'
	touch $(TEST_STAMP)

test: $(TEST_STAMP)
	$(PY) -m pytest

$(BROWSER_STAMP): $(TEST_STAMP)
	$(PIP_INSTALL) -e '.[test,browser]'
	touch $(BROWSER_STAMP)

# The block explorer in headless Chromium against a testnet of real node processes (not part of
# make test). Chromium, its driver and a Japanese font come from apt when missing, which takes root.
test-browser: $(BROWSER_STAMP)
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ] || ! fc-list :lang=ja 2>/dev/null | grep -q .; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "make test-browser needs $(CHROMIUM), $(CHROMEDRIVER) and a Japanese font; install them with:" >&2; \
			echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $(BROWSER_PACKAGES)" >&2; \
			exit 1; \
		fi; \
		echo "installing $(BROWSER_PACKAGES) with apt-get"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(BROWSER_PACKAGES); \
	fi
	$(PY) -m pytest -m browser tests/browser

# The linter and the type checker read the tests too, so they get the test tools' types (Selenium's
# for the browser tests).
$(LINT_STAMP): $(TEST_STAMP)
	$(PIP_INSTALL) -e '.[test,lint,browser]'
	touch $(LINT_STAMP)

lint: $(LINT_STAMP)
	$(VENV)/bin/ruff check .
	mkdir -p $(LINT_ROOT)
	ln -sfn $(CURDIR) $(LINT_ROOT)/mura
	cd $(LINT_ROOT) && MYPYPATH=$(CURDIR)/$(LINT_ROOT) $(CURDIR)/$(VENV)/bin/mypy --strict --config-file $(CURDIR)/pyproject.toml -p mura

testnet: $(RUNTIME_STAMP)
	$(VENV)/bin/mura testnet --dir $(TESTNET_DIR) --validators $(VALIDATORS) $(if $(filter-out 0,$(OBSERVERS)),--observers $(OBSERVERS)) $(if $(RPC_PORT),--rpc-port $(RPC_PORT)) $(if $(P2P_PORT),--p2p-port $(P2P_PORT))

# Refused, with the node that holds it, while any node of the testnet runs.
testnet-reset: $(RUNTIME_STAMP)
	$(VENV)/bin/mura testnet --dir $(TESTNET_DIR) --reset

# A municipal bond's life, from issue to redemption, on the running make testnet (a few minutes).
demo-bond: $(RUNTIME_STAMP)
	$(VENV)/bin/mura $(if $(RPC_PORT),--rpc http://127.0.0.1:$(RPC_PORT)) demo bond --dir $(TESTNET_DIR)

sim: $(TEST_STAMP)
	$(PY) -m mura.sim.campaign --seeds $(SEEDS)

# Real network faults between validator processes (see tests/chaos/campaign.py). Real packet
# loss needs iptables and clock skew needs libfaketime (apt-get install iptables faketime);
# without them those faults are skipped with a line saying so.
chaos: $(TEST_STAMP)
	$(PY) -m mura.tests.chaos.campaign --minutes $(MINUTES) $(CHAOS_ARGS)

bench: $(TEST_STAMP)
	$(PY) -m mura.bench.ledger --quick --json bench-results/ledger.json
	$(PY) -m mura.bench.network --quick --json bench-results/network.json $(BENCH_ARGS)

bench-full: $(TEST_STAMP)
	$(PY) -m mura.bench.ledger --json bench-results/ledger.json
	$(PY) -m mura.bench.network --full --json bench-results/network.json $(BENCH_ARGS)

# Joining by state sync against replaying the blocks (a few minutes at 1,000,000 accounts; not part of test).
bench-sync: $(TEST_STAMP)
	$(PY) -m mura.bench.sync --accounts $(ACCOUNTS) --replay-accounts $(REPLAY_ACCOUNTS) --json bench-results/sync.json

# Attacks on real node processes and what they cost the honest nodes (a measuring tool, not part of test).
attacks: $(TEST_STAMP)
	$(PY) -m mura.tests.attacks.campaign $(if $(ATTACK),--attack '$(ATTACK)') --scale $(SCALE) --json attack-results/attacks-scale-$(SCALE).json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .ruff_cache .mypy_cache
