# Two commands do everything on a fresh machine: `make demo` and `make test`.
# WHEELHOUSE=DIR installs mmcv from a prebuilt wheel in DIR instead of compiling it.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.setup-done

.PHONY: setup test demo clean

# pytest-xdist workers for `make test`: one per core, at most 4 (each may hold a Faster R-CNN).
TEST_WORKERS ?= $(shell n=$$(nproc); echo $$(( n < 4 ? n : 4 )))

# The demo: Faster R-CNN with PCENet (DEMO_MODEL=resnet: its ResNet-50 twin) on a small VOC
# dataset made from scikit-image's photographs, trained by tools/train.py and evaluated by
# tools/test.py: configs/demo/<model>_frcnn_demo.py. DEMO_TASK=seg trains and evaluates
# UperNet instead (configs/demo/<model>_upernet_demo.py, mIoU). SEED=N seeds the run;
# BACKBONE_OPTS="model.backbone.KEY=VALUE ..." changes backbone settings.
DEMO_MODEL ?= pce
DEMO_TASK ?= det
SEED ?= 0
BACKBONE_OPTS ?=
DEMO_DATA := data/demo/VOCdevkit
DEMO_CONFIG := configs/demo/$(DEMO_MODEL)_$(if $(filter seg,$(DEMO_TASK)),upernet,frcnn)_demo.py
DEMO_WORK := work_dirs/demo/$(DEMO_MODEL)_$(DEMO_TASK)

setup: $(STAMP)

$(STAMP): tools/setup_env.sh setup.py requirements.txt $(wildcard requirements/*.txt)
	PYTHON=$(PYTHON) bash tools/setup_env.sh
	touch $@

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile tests

demo: $(STAMP)
	$(VENV)/bin/python tools/misc/make_demo_voc.py $(DEMO_DATA) --train 128 --test 40 --val 40
	$(VENV)/bin/python tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_WORK) \
		--cfg-options randomness.seed=$(SEED) $(BACKBONE_OPTS)
	$(VENV)/bin/python tools/test.py $(DEMO_CONFIG) $$(cat $(DEMO_WORK)/last_checkpoint) \
		--work-dir $(DEMO_WORK) $(if $(BACKBONE_OPTS),--cfg-options $(BACKBONE_OPTS))

clean:
	rm -rf $(VENV) work_dirs
