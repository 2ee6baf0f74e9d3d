# Two commands do all the set-up on a fresh machine:
#   make demo   installs into .venv, then trains on the embedded default dataset (scikit-learn digits)
#   make test   installs into .venv, then runs the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench

# constraints.txt pins every package the resolver chose once (a fresh resolution of this many
# packages backtracks into sdists that no longer build); regenerate it with
#   .venv/bin/pip freeze --exclude-editable | grep -v '^torch==' > constraints.txt
$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]" -c constraints.txt
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "warning: could not install chromium (needed by the report browser test); run as root or install it"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keras-transfer train --out runs/digits

test: $(STAMP)
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(PY) -m benchmarks.run
