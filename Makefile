# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench system-deps viewer clean ohif pacs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Runtime dependencies only: `make run` needs nothing but Python.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

## run: start the PACS on the embedded default (SQLite + ./data): DICOM :11112, HTTP 127.0.0.1:8080
run: $(VENV)/.installed-run
	$(BIN)/pacs serve

## pacs: any `pacs` command on this folder's archive, e.g. make pacs ARGS="ae list"
pacs: $(VENV)/.installed-run
	$(BIN)/pacs $(ARGS)

## system-deps: Debian packages the tests talk to (DCMTK, Chromium for the viewer tests, DejaVu fonts
##              and SoftHSM2 for the reports), installed when missing
system-deps:
	@command -v storescu >/dev/null 2>&1 || { \
		echo "installing DCMTK (Debian package dcmtk)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk; }
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Chromium (Debian package chromium) for the viewer tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || { \
		echo "installing DejaVu fonts (Debian fonts-dejavu-core) for the Vietnamese report PDF"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core; }
	@command -v softhsm2-util >/dev/null 2>&1 || { \
		echo "installing SoftHSM2 (Debian softhsm2) for the PKCS#11 signing test"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2; }

## viewer: rebuild viewer/dist from the locked npm dependencies (needs Node.js; `make run` does not)
viewer:
	cd viewer/app && npm ci --no-audit --no-fund && npm run build

## lint: ruff, mypy and the import contracts (import-linter), configured in pyproject.toml
lint: $(VENV)/.installed-test
	$(BIN)/ruff check app admin pacs dicomweb viewer storage hl7v2 ehr tests bench
	$(BIN)/ruff format --check app admin pacs dicomweb viewer storage hl7v2 ehr tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: install what the tests need, check lint, run the suite, then every test that crosses
##       the DIMSE door again on stock pynetdicom (PACS_DIMSE_FASTPATH=false, pacs/dimse/fastpath.py).
##       Left out of that second run: the worker-process tests (process lifecycle, which the switch
##       does not change) and the rendering corpus (DICOMweb only); tests of the shims themselves
##       (marker fastpath) deselect themselves. The second pass runs on SQLite only: the
##       receive path does not depend on the index, and the first pass runs every DIMSE test
##       on both databases (the PostgreSQL copies were 87 of its 264 tests).
DIMSE_TESTS := tests/dimse tests/query_dimse tests/retrieve_dimse tests/interop/test_store_syntaxes.py \
	tests/interop/test_duplicates.py tests/interop/test_reasons.py tests/security/test_dicom_port.py
test: $(VENV)/.installed-test system-deps lint
	$(BIN)/pytest
	PACS_DIMSE_FASTPATH=false $(BIN)/pytest -m "not slow" -k "not postgresql" \
		--ignore=tests/dimse/test_workers.py $(DIMSE_TESTS)

## bench: one benchmark, printing figures (never fails on time): BENCH=ingest|query|retrieve|viewer
##        e.g. make bench BENCH=retrieve BENCH_ARGS="--instances 100"
BENCH ?= ingest
bench: $(VENV)/.installed-test system-deps
	$(BIN)/python -m bench.$(BENCH) $(BENCH_ARGS)

## ohif: install OHIF Viewer (npm @ohif/app, ~50 MB) for /ohif/; not needed for `make run`
ohif: $(VENV)/.installed-run
	$(BIN)/pacs ohif install

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
