# Every target sets itself up: a fresh clone needs only Python 3.11, pip and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test lint bench bench-atari bench-minatar pretrained pretrained-minatar clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "deepq needs Python >= 3.11, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/deepq train $(ARGS)

# The suite runs on up to TEST_WORKERS processes, one test module each at a time (its fixtures
# are set up once); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest --numprocesses $(TEST_WORKERS) --maxprocesses 4 --dist loadscope $(PYTEST_ARGS)

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The full benchmark (10 seeds x 3 systems, one after the other) takes about an hour on 2 cores;
# `make bench ARGS="--quick"` is a minute-long smoke run.
bench: $(VENV)/.bench-installed
	$(BIN)/deepq bench $(ARGS)

# The Breakout training loop, deepq against SB3 with the same network and hyperparameters (~7 min).
bench-atari: $(VENV)/.bench-installed
	$(BIN)/python -m deepq.bench_atari --steps 12000 --learning-starts 4000 \
		--out bench-results/$(shell date +%Y-%m-%d)-atari-loop $(ARGS)

# The MinAtar Breakout training loop, deepq's paper preset against SB3 with the same network and
# hyperparameters (~3 min).
bench-minatar: $(VENV)/.bench-installed
	$(BIN)/python -m deepq.bench_atari --game minatar-breakout --steps 25000 --learning-starts 5000 \
		--out bench-results/$(shell date +%Y-%m-%d)-minatar-loop $(ARGS)

# Re-make the pretrained LunarLander agent shipped in src/deepq/pretrained/ (see docs/pretrained.md).
PRETRAINED_PRESET ?= lunarlander-fast
PRETRAINED_SEED ?= 7
pretrained: $(STAMP)
	rm -rf runs/pretrained-lunarlander
	$(BIN)/deepq train --preset $(PRETRAINED_PRESET) --seed $(PRETRAINED_SEED) \
		--run-dir runs/pretrained-lunarlander --no-progress
	$(BIN)/python -m deepq.outputs.pretrained runs/pretrained-lunarlander --preset $(PRETRAINED_PRESET)

# Re-make the pretrained MinAtar Breakout agent (1M frames: about half an hour on 2 cores).
pretrained-minatar: $(STAMP)
	rm -rf runs/pretrained-minatar-breakout
	$(BIN)/deepq train --preset minatar-breakout-modern --seed 0 \
		--run-dir runs/pretrained-minatar-breakout --no-progress
	$(BIN)/python -m deepq.outputs.pretrained runs/pretrained-minatar-breakout \
		--preset minatar-breakout-modern --name minatar-breakout

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
