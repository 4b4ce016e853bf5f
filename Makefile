# AIF Workbench. Two commands for a newcomer (as root, on a dedicated Debian 12 machine or VM):
#   make sandbox   install everything and start Slurm + JupyterHub at http://127.0.0.1:8000
#   make test      install what the tests need and run the whole suite on its own ports and state
SHELL := /bin/bash
AIFW_HOME ?= /opt/aifw
AIFW_TEST_HOME ?= /opt/aifw-test
PYTEST_ARGS ?=

.PHONY: help sandbox sandbox-down sandbox-status test test-unit install-test bench

help:
	@echo "make sandbox         install and start the sandbox (Slurm + hub on http://127.0.0.1:8000)"
	@echo "make sandbox-status  what runs"
	@echo "make sandbox-down    stop every process the sandbox started (data is kept)"
	@echo "make test            install test needs and run unit, integration and browser tests"
	@echo "make test-unit       only the fast unit tests"
	@echo "make bench           run every benchmark against the running sandbox (else the test stack);"
	@echo "                     prints each table, writes out/bench/*.json (BENCH_HOME=, BENCH_OUT=; docs/benchmarks.md)"

sandbox:
	@scripts/install.sh $(AIFW_HOME)
	@$(AIFW_HOME)/venv/bin/aifw sandbox up --home $(AIFW_HOME)

sandbox-down:
	@if [ -x $(AIFW_HOME)/venv/bin/aifw ]; then $(AIFW_HOME)/venv/bin/aifw sandbox down --home $(AIFW_HOME); \
	else echo "No sandbox is installed in $(AIFW_HOME)."; fi

sandbox-status:
	@if [ -x $(AIFW_HOME)/venv/bin/aifw ]; then $(AIFW_HOME)/venv/bin/aifw sandbox status --home $(AIFW_HOME); \
	else echo "No sandbox is installed in $(AIFW_HOME)."; exit 3; fi

install-test:
	@scripts/install.sh $(AIFW_TEST_HOME) --test

test: install-test
	@AIFW_TEST_HOME=$(AIFW_TEST_HOME) scripts/run-tests.sh $(or $(TESTS),tests) $(PYTEST_ARGS)

test-unit: install-test
	@AIFW_TEST_HOME=$(AIFW_TEST_HOME) scripts/run-tests.sh tests/unit $(PYTEST_ARGS)

# Benchmarks print their tables (headline last) and write JSON; they are not tests. Each of BENCHMARKS takes
# --home (a running stack's prefix) and --json; grade_parallel takes the stack's site file. The stack: the
# sandbox when its hub answers on 127.0.0.1:8000, else the test stack (BENCH_HOME= to choose).
BENCHMARKS ?= spawn_overhead server_startup pending_spawns class_burst class_prestart
BENCH_HOME ?=
BENCH_OUT ?= out/bench
BENCH_GRADE_ARGS ?=

bench:
	@home="$(BENCH_HOME)"; \
	if [ -z "$$home" ]; then \
	  if curl -s -o /dev/null -m 3 -w '%{http_code}' http://127.0.0.1:8000/hub/health | grep -q 200; then home=$(AIFW_HOME); \
	  else home=$(AIFW_TEST_HOME); fi; \
	fi; \
	if [ ! -x "$$home/venv/bin/python" ]; then echo "make bench: no stack installed in $$home (make sandbox, or the test stack)" >&2; exit 2; fi; \
	mkdir -p $(BENCH_OUT); failed=""; \
	for b in $(BENCHMARKS); do \
	  echo "== benchmarks/$$b.py --home $$home"; \
	  "$$home/venv/bin/python" benchmarks/$$b.py --home "$$home" --json $(BENCH_OUT)/$$b.json || failed="$$failed $$b"; \
	done; \
	echo "== benchmarks/grade_parallel.py --site $$home/state/site.yaml $(BENCH_GRADE_ARGS)"; \
	"$$home/venv/bin/python" benchmarks/grade_parallel.py --site "$$home/state/site.yaml" $(BENCH_GRADE_ARGS) || failed="$$failed grade_parallel"; \
	echo "make bench: figures in $(BENCH_OUT)/"; \
	if [ -n "$$failed" ]; then echo "make bench: failed:$$failed" >&2; exit 1; fi
