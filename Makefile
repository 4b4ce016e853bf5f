# AIF Workbench. Two commands for a newcomer (as root, on a dedicated Debian 12 machine or VM):
#   make sandbox   install everything and start Slurm + JupyterHub at http://127.0.0.1:8000
#   make test      install what the tests need and run the whole suite on its own ports and state
SHELL := /bin/bash
AIFW_HOME ?= /opt/aifw
AIFW_TEST_HOME ?= /opt/aifw-test
PYTEST_ARGS ?=

.PHONY: help sandbox sandbox-down sandbox-status test test-unit install-test

help:
	@echo "make sandbox         install and start the sandbox (Slurm + hub on http://127.0.0.1:8000)"
	@echo "make sandbox-status  what runs"
	@echo "make sandbox-down    stop every process the sandbox started (data is kept)"
	@echo "make test            install test needs and run unit, integration and browser tests"
	@echo "make test-unit       only the fast unit tests"

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
