# tileswap: `make demo` sets everything up and runs the bundled example; `make test` runs the test suite.
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
NATIVE  := $(wildcard native/*.c native/*.h) native/build_cffi.py

.PHONY: all venv native demo test test-fast clean

all: venv

$(VPY):
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip setuptools wheel

# Install the package (editable) with its test, example and device extras; this also builds the cffi
# kernel extension into host/. Re-run when pyproject.toml, setup.py or the C sources change.
$(STAMP): $(VPY) pyproject.toml setup.py $(NATIVE)
	$(VPY) -m pip install --quiet cffi setuptools wheel
	$(VPY) -m pip install --quiet --no-build-isolation -e '.[test,examples,device]'
	@touch $@

venv: $(STAMP)
native: $(STAMP)

demo: $(STAMP)
	$(VPY) examples/digits/demo.py

test: $(STAMP)
	$(VPY) -m pytest -q

clean:
	rm -rf build *.egg-info host/_tskernels*.so out .pytest_cache
