# attest: two commands do everything on a fresh machine with Python >= 3.11:
#   make demo   set up .venv and run dev build -> stg verify -> tamper rejected
#   make demo-path  two stacks dev -> stg -> prd in order, status, hotfix, rollback (docs/path.md, run as written)
#   make demo-oci   an image: pack, build + push to a local registry, stg verify + VSA, promote to a second
#                   registry, prd verify there, a plain skopeo copy refused (docs/containers.md, run as written)
#   make demo-audit a year of history audited offline: anomalies, what runs where, DORA figures, the page, the
#                   index, a forged record found (docs/audit.md, run as written)
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-path demo-oci demo-audit demo-aws test lint bench fuzz clean venv

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -c constraints.txt -e '.[test,lint]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash demo/demo.sh

demo-path: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python demo/guide.py docs/path.md

demo-oci: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python demo/guide.py docs/containers.md

demo-audit: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python demo/guide.py docs/audit.md

demo-aws: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python demo/demo_aws.py

# test: across every core (pytest-xdist; each worker starts its own local moto server and Sigstore services on
# free ports; a worker that runs out of tests takes some of another's, so neither waits alone at the end), the
# slowest ten tests listed at the end. attest and verify are byte-compiled first: the tests run the CLI in a
# thousand processes, and where PYTHONDONTWRITEBYTECODE is set each would compile them again. The install
# compiles the dependencies on every core, not on one as pip does (ten seconds of a fresh clone's set-up).
test: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 attest verify
	$(BIN)/python -m pytest -q -n auto --dist worksteal --durations=10

lint: $(STAMP)
	$(BIN)/ruff check attest verify tests benchmarks demo
	$(BIN)/mypy
	$(BIN)/mypy demo

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/sigstore.py
	$(BIN)/python benchmarks/status_bench.py
	$(BIN)/python benchmarks/image_bench.py
	$(BIN)/python benchmarks/audit_bench.py

# fuzz: each atheris target (fuzz/README.md) for FUZZ_SECONDS, by hand only (never in CI: `make test` does not
# run it). New inputs go to fuzz/.work/TARGET, findings to fuzz/.work/crashes/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= envelope statement bundle policy
fuzz: $(STAMP)
	@$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/python -m pip install -q 'atheris==3.0.0'
	@test -d fuzz/corpus || $(BIN)/python fuzz/make_corpus.py
	@set -e; for t in $(FUZZ_TARGETS); do \
	  dict=fuzz/json.dict; if [ $$t = policy ]; then dict=fuzz/policy.dict; fi; \
	  mkdir -p fuzz/.work/$$t fuzz/.work/crashes; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(BIN)/python fuzz/fuzz_$$t.py -max_total_time=$(FUZZ_SECONDS) -dict=$$dict -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=fuzz/.work/crashes/$$t- fuzz/.work/$$t fuzz/corpus/$$t; \
	done

clean:
	rm -rf $(VENV) demo-out demo-out-path demo-out-containers demo-out-audit .pytest_cache .mypy_cache .ruff_cache
