# Two commands do all the set-up on a fresh machine:
#   make demo   -- create .venv, install, run the practice search on MNIST, write the report and the best model
#   make test   -- create .venv, install, lint, run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# in this workplace the data sets lie in ../shared/data; elsewhere set NASFORGE_DATA yourself
ifneq ($(wildcard ../shared/data),)
export NASFORGE_DATA ?= $(abspath ../shared/data)
endif
# keep library caches out of ~
export MPLCONFIGDIR ?= $(abspath .cache/matplotlib)
export XDG_CACHE_HOME ?= $(abspath .cache)

.PHONY: venv demo test lint bench clean

# the tested versions (constraints.txt) on top of the ranges pyproject.toml declares
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,bench,postgres]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/nasforge search --family lenet --dataset mnist --strategy grid \
	  --constraint "size<=0.05MiB" --epochs 2 --study practice --storage sqlite:///out/nasforge.db
	$(BIN)/nasforge show practice --storage sqlite:///out/nasforge.db
	$(BIN)/nasforge best practice --storage sqlite:///out/nasforge.db --export out/best
	$(BIN)/nasforge report practice --storage sqlite:///out/nasforge.db --out out/report.html

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

test: lint
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) .cache out
