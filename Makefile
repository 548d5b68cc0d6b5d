# casestream: the two commands are `make demo` and `make test` (see README.md).
PYTHON ?= /usr/bin/python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
N      ?= 50000

.PHONY: help install demo test test-unit test-integration lint up down status redis-install \
        chromium-install bench-analytics \
        kafka-jars bench-backbone worker serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/' | expand -t 20

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)  ## create .venv and install casestream with its pinned dependencies

demo: install  ## run the blueprint's conversations on the embedded default (no broker needed)
	$(BIN)/casestream demo

redis-install:  ## install Debian's redis-server if it is missing
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)

chromium-install:  ## install Debian's chromium (the dashboard's browser test) if it is missing
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

kafka-jars: install  ## download the Kafka broker's jars from Maven Central (cached in .cache/)
	$(BIN)/python -c "from streams.services import ensure_kafka_jars; ensure_kafka_jars()"

up: install redis-install  ## start the local Kafka broker (KRaft) and Redis on 127.0.0.1
	$(BIN)/casestream up

down: install  ## stop them
	$(BIN)/casestream down

status: install
	$(BIN)/casestream status

worker: install  ## run the live driver (Faust worker) against the local broker
	$(BIN)/casestream worker

serve: install  ## run the web-chat connector on 127.0.0.1:8080
	$(BIN)/casestream serve

lint: install  ## ruff, mypy (strict), import rules
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test-unit: install
	$(BIN)/pytest -q tests/unit

test: install redis-install chromium-install kafka-jars  ## everything: lint, unit, integration (starts and stops Kafka/Redis)
	$(MAKE) lint
	$(BIN)/pytest -q -p no:cacheprovider --junitxml=artifacts/junit.xml tests

bench-backbone: install kafka-jars  ## live-driver throughput/latency/exactly-once figures (N=50000)
	$(BIN)/python bench/backbone.py --messages $(N)

bench-analytics: install kafka-jars redis-install  ## Kafka -> ClickHouse ingest, dashboard p95, Redis updates/s (N=1000000)
	$(BIN)/python bench/analytics.py --events $(or $(EVENTS),1000000)

clean:  ## stop services and delete local data (keeps the jar cache)
	-$(BIN)/casestream down --wipe
	rm -rf artifacts .pytest_cache .mypy_cache .ruff_cache
