# Two commands do everything on a fresh machine: `make demo` and `make test`.
# WHEELHOUSE=DIR installs mmcv from a prebuilt wheel in DIR instead of compiling it.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.setup-done

.PHONY: setup test demo clean

setup: $(STAMP)

$(STAMP): tools/setup_env.sh setup.py requirements.txt $(wildcard requirements/*.txt)
	PYTHON=$(PYTHON) bash tools/setup_env.sh
	touch $@

test: $(STAMP)
	$(VENV)/bin/python -m pytest tests

clean:
	rm -rf $(VENV) work_dirs
