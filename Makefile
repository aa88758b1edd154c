# Two commands do everything on a fresh machine: `make demo` and `make test`.
# WHEELHOUSE=DIR installs mmcv from a prebuilt wheel in DIR instead of compiling it.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.setup-done

.PHONY: setup test demo clean

# pytest-xdist workers for `make test`: one per core, at most 4 (each may hold a Faster R-CNN).
TEST_WORKERS ?= $(shell n=$$(nproc); echo $$(( n < 4 ? n : 4 )))

# The demo: Faster R-CNN with PCENet (DEMO_MODEL=resnet: its ResNet-50 twin) on a small VOC
# dataset made from scikit-image's photographs. The real config, with data_root, image size
# and schedule overridden (3 epochs of 64 iterations, evaluated once by tools/test.py;
# phase 1 is the first epoch, then the routers take over, set from the switch's batch);
# 128 sampled RoIs per image instead of 512 because mmcv's CPU RoIAlign is
# single-threaded and took 35% of a step. Every epoch is checkpointed: epoch_1.pth is the end
# of phase 1, for `tools/test.py --phase 1|2` and tools/analysis/switch_gap.py.
# SEED=N seeds the run; BACKBONE_OPTS="model.backbone.KEY=VALUE ..." changes PCENet settings.
DEMO_MODEL ?= pce
SEED ?= 0
DEMO_DATA := data/demo/VOCdevkit
DEMO_WORK := work_dirs/demo/$(DEMO_MODEL)
DEMO_SIZE := '(320,256)'
BACKBONE_OPTS ?=
DEMO_OPTS := data_root=$(DEMO_DATA)/ \
	train_dataloader.dataset.times=1 \
	train_dataloader.dataset.dataset.datasets.0.pipeline.2.scale=$(DEMO_SIZE) \
	train_dataloader.dataset.dataset.datasets.1.pipeline.2.scale=$(DEMO_SIZE) \
	val_dataloader.dataset.pipeline.1.scale=$(DEMO_SIZE) \
	test_dataloader.dataset.pipeline.1.scale=$(DEMO_SIZE) \
	model.train_cfg.rcnn.sampler.num=128 randomness.seed=$(SEED) $(BACKBONE_OPTS) \
	train_cfg.max_epochs=3 train_cfg.val_begin=4 \
	param_scheduler.0.end=50 param_scheduler.1.end=3 param_scheduler.1.milestones=[2] \
	default_hooks.logger.interval=10 default_hooks.checkpoint.interval=1

setup: $(STAMP)

$(STAMP): tools/setup_env.sh setup.py requirements.txt $(wildcard requirements/*.txt)
	PYTHON=$(PYTHON) bash tools/setup_env.sh
	touch $@

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile tests

demo: $(STAMP)
	$(VENV)/bin/python tools/misc/make_demo_voc.py $(DEMO_DATA) --train 128 --test 40
	$(VENV)/bin/python tools/train.py configs/$(DEMO_MODEL)_frcnn_voc.py \
		--work-dir $(DEMO_WORK) --cfg-options $(DEMO_OPTS)
	$(VENV)/bin/python tools/test.py configs/$(DEMO_MODEL)_frcnn_voc.py \
		$(DEMO_WORK)/epoch_3.pth --work-dir $(DEMO_WORK) --cfg-options $(DEMO_OPTS)

clean:
	rm -rf $(VENV) work_dirs
