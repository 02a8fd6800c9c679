# Two commands set everything up on a fresh machine:
#   make run   - FocusMate on its embedded defaults (local SQLite profile, no relay)
#   make test  - lint, type-check and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck check clean screenshots bench soak

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[desktop,dev,packaging]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/focusmate $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A PNG of each main view (light, and dark at 2x) from a demo profile, offscreen: docs/screenshots/
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m ui.screenshots docs/screenshots
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m ui.screenshots docs/screenshots/dark-2x --theme dark --scale 2

# Every benchmark in bench/ beside its anchors (~20 min; BENCH_ARGS=--quick for a smoke run):
# bench/results/*.json, docs/benchmarks.md and docs/bench/*.png. The bench extra has the anchors
# and matplotlib; tests/interop/node's npm packages are the Node anchor (see bench/README.md).
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# The long reliability runs in tests/soak (fuzzing, convergence; minutes each), figures printed,
# the decoder fuzz tests with fresh random draws and 20x their examples, and the scale-out chaos
# test with 12x its writes (~1 min):
soak: $(STAMP)
	FOCUSMATE_SOAK=1 HYPOTHESIS_PROFILE=explore FOCUSMATE_FUZZ_SCALE=20 FOCUSMATE_CHAOS_WRITES=5000 \
		$(BIN)/python -m pytest -s -p no:cacheprovider tests/soak tests/unit/test_fuzz_decoders.py \
		tests/integration/test_relay_scaleout_chaos.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
