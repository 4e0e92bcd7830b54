# One entry point for setup, data, training, export, the daemon and the tests.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
DATA := data
ARTIFACTS := artifacts
MODELS := models
RECORDINGS := recordings
OUT := out
export PYTHONHASHSEED := 0

.PHONY: setup lint format test smoke-edge data train export serve replay watch view status demo \
	demo-models bench fuzz soak report labels convert vectors clean calibrate-rgb lab-rgb-demo \
	calibrate elements-mistral

setup: $(VENV_STAMP)

# Reinstalls only when pyproject.toml changes; torch comes from its ==2.13.0 pin.
$(VENV_STAMP): pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -e '.[edge,train,dev,view,maps,archive]'
	touch $@

lint: setup
	.venv/bin/ruff check .

format: setup
	.venv/bin/ruff format .

test: setup
	.venv/bin/pytest -q

# The edge alone: '.[edge]' into .venv-edge (no torch), then serve/replay/watch/status there
# against bundles and a scan made by the full .venv; prints both venvs' sizes.
smoke-edge: setup
	bash .ci/edge_only.sh

# Simulated scenes (the study's two experiments), their PNGs and the realism figure.
data: setup
	$(PY) -m training.scenes --out $(DATA)
	$(PY) -m training.sim.compare_real --out $(DATA)/realism.png

# The models the edge serves: best RGB model, trust autoencoder, and the element model
# (PyMca's fast fit compiled from the instrument description + residual MLPs trained on
# the simulated scene of that instrument; issue 13).
ELEMENTS_INSTRUMENT := training/instruments/m6_jetstream.toml
train: setup
	$(PY) -m training.train default --data $(DATA) --out $(ARTIFACTS)/trained
	$(PY) -m export.element_bundle train --instrument $(ELEMENTS_INSTRUMENT) --data $(DATA) \
		--out $(ARTIFACTS)/trained

# Default bundles for the edge (rgb, elements, trust) with ONNX Runtime parity checks.
export: setup
	$(PY) -m export default --trained $(ARTIFACTS)/trained --out $(MODELS) --data $(DATA)

# Every model of both experiments, every baseline, tables and figures in reports/REPORT.md.
report: setup
	$(PY) -m training.report --data $(DATA) --out reports
	$(PY) -m export.real_spectra --out reports --models $(MODELS)
	@if test -f $(MODELS)/elements/manifest.json; then \
		$(PY) -m training.domain_report --models $(MODELS) --data $(DATA) --out reports/DOMAIN.md; \
	else echo "domain report skipped: no bundles in $(MODELS) (make export)"; fi

serve: setup
	$(PY) -m edge serve --models $(MODELS) --recordings $(RECORDINGS)

# make replay [FILE=data/m1_child.h5] [PPM=16] [DWELL=0]  (DWELL=0: as fast as allowed)
replay: setup
	$(PY) -m edge replay $(or $(FILE),$(DATA)/m1_child.h5) \
		--pixels-per-message $(or $(PPM),16) --dwell $(or $(DWELL),0)

watch: setup
	$(PY) -m edge watch --out $(OUT)/watch

# The live web page on loopback (prints its URL); needs a running daemon (`make serve`).
view: setup
	$(PY) -m edge view

status: setup
	$(PY) -m edge status

# Daemon + replay of a held-out scene + watcher; trains small real models first if none exist.
demo: setup
	@test -f $(MODELS)/rgb/manifest.json || $(MAKE) --no-print-directory demo-models
	$(PY) scripts/demo.py --models $(MODELS) --data $(DATA) --out $(OUT)/demo

# The M1 Mistral element bundle by the same path (its instrument file, trained on m1_virgin):
# models/m1/elements_m1; copy it to models/elements to serve M1 scans with it.
elements-mistral: setup
	$(PY) -m export.element_bundle train --instrument training/instruments/m1_mistral.toml \
		--data $(DATA) --scene m1_virgin --name elements_m1 --out $(ARTIFACTS)/trained
	$(PY) -m export model elements_m1 --trained $(ARTIFACTS)/trained --out $(MODELS)/m1 \
		--data $(DATA)

demo-models: setup
	$(PY) -m training.scenes --out $(DATA) --only m1_virgin --only m1_child --only m6_corpus
	$(MAKE) --no-print-directory train export

bench: setup
	$(PY) bench/bench_wire.py
	$(PY) bench/bench_models.py --models $(MODELS)
	$(PY) bench/bench_edge.py --models $(MODELS)
	$(PY) bench/bench_archive.py
	$(PY) bench/bench_view.py
	$(PY) bench/bench_fastfit.py
	$(PY) bench/bench_elements.py
	$(PY) bench/bench_calibrate.py

# A bounded fuzz of the real daemon (100,000 ingest + 10,000 request messages) beside a real
# replay: alive, RSS bounded, every message accounted for, the scan recorded pixel for pixel.
fuzz: setup
	$(PY) bench/fuzz.py

# 50 consecutive `edge replay` subprocesses of a 7,200-pixel scene: every pixel and scan_end.
soak: setup
	$(PY) bench/replay_soak.py --runs $(or $(RUNS),50)

# make labels DATASET=data/m6_ioannis.h5 [CFG=training/configs/m6.cfg]
labels: setup
	$(PY) -m training.labels $(DATASET) $(or $(CFG),training/configs/m6.cfg)

# Element bundle from an instrument description and a lab's scans (python -m export.calibrate
# --help): make calibrate [INSTRUMENT=x.toml SCANS="a.h5 b.h5"] [DETECTOR=0] [TEST_DETECTOR=1]
# [TEST="c.h5" | HELD_OUT=x0,y0,w,h] [CAL_OUT=models]. Default: the real IXRF map in
# ../shared/data, detector 0 calibrates, detector 1 judges; bundle in artifacts/calibrated.
REAL := ../shared/data
CAL_SCANS := $(or $(SCANS),$(REAL)/ixrf_atlas/ts2_01_sub_export.GeoPIXE)
CAL_DET := $(or $(DETECTOR),$(if $(SCANS),,0))
CAL_TEST_DET := $(or $(TEST_DETECTOR),$(if $(SCANS),,1))
calibrate: setup
	$(PY) -m export.calibrate $(or $(INSTRUMENT),training/instruments/ixrf_atlas.toml) \
		$(CAL_SCANS) $(if $(CAL_DET),--detector $(CAL_DET)) \
		$(if $(CAL_TEST_DET),--test-detector $(CAL_TEST_DET)) $(if $(TEST),--test $(TEST)) \
		$(if $(HELD_OUT),--held-out $(HELD_OUT)) --out $(or $(CAL_OUT),$(ARTIFACTS)/calibrated) \
		--work $(ARTIFACTS)/calibrate

# RGB models from registered lab scans (python -m training.register first), best one exported
# as the rgb bundle: make calibrate-rgb DATASETS="a.h5 b.h5" [TEST="c.h5" | HELD_OUT=x0,y0,w,h]
LAB_RGB := $(or $(LAB_OUT),$(ARTIFACTS)/lab_rgb)
calibrate-rgb: setup
	$(PY) -m training.lab_rgb $(DATASETS) $(if $(TEST),--test $(TEST)) \
		$(if $(HELD_OUT),--held-out $(HELD_OUT)) --out $(LAB_RGB)
	$(PY) -m export model rgb --trained $(LAB_RGB)/trained --out $(MODELS) --data $(LAB_RGB)

# A lab's colour workflow on the simulated scenes: convert, register, train, export, serve,
# the live RGB preview of the held-out area (out/lab_rgb_demo/png/rgb.png)
lab-rgb-demo: setup
	$(PY) scripts/lab_rgb_demo.py --data $(DATA) --out $(OUT)/lab_rgb_demo

# make convert IN=scan.bcf OUT_FILE=data/scan.h5
convert: setup
	$(PY) -m training.convert $(IN) $(OUT_FILE)

vectors: setup
	$(PY) -m tools.vectors

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
