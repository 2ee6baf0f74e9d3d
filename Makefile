# Two commands do all the set-up on a fresh machine:
#   make demo   installs into .venv, then trains on the bundled flower photos (240 photos, 5 classes),
#               writes the report, and prints the held-out accuracy beside the pixel baseline
#   make test   installs into .venv, then runs the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TIMM_VENV := .venv-timm
TIMM_STAMP := $(TIMM_VENV)/.installed

.PHONY: install demo test bench

# constraints.txt pins every package the resolver chose once (a fresh resolution of this many
# packages backtracks into sdists that no longer build); regenerate it with
#   .venv/bin/pip freeze --exclude-editable | grep -v '^torch==' > constraints.txt
$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]" -c constraints.txt
	$(PY) -m pip install -q --no-deps keras-hub==0.32.0 onnxscript onnx-ir absl-py regex rich kagglehub kagglesdk sentencepiece tokenizers -c constraints.txt
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "warning: could not install chromium (needed by the report browser test); run as root or install it"
	touch $(STAMP)

install: $(STAMP) $(TIMM_STAMP)

# The timm route's tests convert timm models in a venv of their own: timm imports torchvision, and no
# torchvision wheel here loads beside the CPU torch 2.13.0 that .venv pins (PyPI's 0.28 is a CUDA
# build). torch 2.14.1 + torchvision 0.29.1 is a matching pair (a CUDA build, used on the CPU; about
# 5.5 GB, a minute to install). What it converts is an onnx: encoder that .venv then uses.
$(TIMM_STAMP): constraints.txt
	python3 -m venv $(TIMM_VENV)
	$(TIMM_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(TIMM_VENV)/bin/python -m pip install -q timm==1.0.31 onnx onnxscript onnx-ir onnxruntime pillow -c constraints.txt
	touch $(TIMM_STAMP)

# The demo trains one backbone (efficientnet_lite0, its 4 stages pooled): the default ensemble
# (lite0+lite2) gains a few more points but takes about twice as long on a 2-core CPU.
demo: $(STAMP)
	$(VENV)/bin/keras-transfer train flowers --backbone efficientnet_lite0 --out runs/flowers
	$(VENV)/bin/keras-transfer report runs/flowers --quiet
	@echo "report: runs/flowers/report/report.html"
	@echo "next, try:"
	@echo "  $(VENV)/bin/keras-transfer predict runs/flowers keras_transfer/data/demo/flowers/roses"
	@echo "  $(VENV)/bin/keras-transfer serve runs/flowers      # a web page at http://127.0.0.1:8000"
	@echo "  $(VENV)/bin/keras-transfer train path/to/your/photos --out runs/mine"

# Two pytest workers, a test file each at a time (module fixtures stay in one worker): most tests
# wait on a child process, a server or Ray starting, so two overlap well on two cores.
test: $(STAMP) $(TIMM_STAMP)
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) -m benchmarks.run
