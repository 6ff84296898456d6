# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ZOO := $(VENV)/bin/zoo
ARCH := $(shell uname -m)
# The exact torch build a fresh machine gets (pyproject.toml holds ranges so the GPU box's
# torch 2.11 / torchvision 0.26 also satisfy it).
ifeq ($(ARCH),x86_64)
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
else
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
endif
# `make test` runs the suite without the tests marked slow (about 10 minutes on the 2-core CPU box);
# CI (.ci/run) runs everything, slow tests too: `make test PYTEST_ARGS=-q`.
PYTEST_ARGS ?= -m "not slow"
DEMO_RUN := runs/demo-digits

.PHONY: venv demo test clean browser

$(VENV)/.installed: pyproject.toml constraints.txt plugins/zoo-example/pyproject.toml plugins/zoo-openvino/pyproject.toml plugins/zoo-mlflow/pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,serve]' -e plugins/zoo-example -e plugins/zoo-openvino \
		-e plugins/zoo-mlflow
	touch $@

venv: $(VENV)/.installed

# Fine-tune a small ResNet on the embedded digits set on CPU, export to ONNX, print the parity report.
demo: venv
	$(ZOO) finetune resnet18_cifar --data digits --epochs 3 --batch-size 64 --output $(DEMO_RUN) --overwrite
	$(ZOO) export $(DEMO_RUN) --format all

# The browser test drives Debian's Chromium (Playwright's own browser download needs the internet); it is
# installed where apt-get can, else that one test skips saying so.
browser:
	@command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) \
		|| echo "note: Chromium could not be installed (apt-get install chromium); the browser test will skip"

test: venv browser
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
