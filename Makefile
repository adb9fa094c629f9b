# The two commands of the README:
#   make demo   set up, then build fma-clicks from the built-in synth corpus, score SigClick and a
#               reference model, render the leaderboard (the main job)
#   make test   set up, then run the test suite (what CI runs, via .ci/run)
# Setup is idempotent (a stamp file): Debian's sox, FFmpeg 5.1 libraries (for torchcodec) and
# chromium (for the leaderboard page test), then the package with its extras.

SHELL := /bin/bash
PYTHON ?= python3
PIP := PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip
# torch 2.13.0: the CPU build this workplace's machines hold; torchcodec 0.12 pairs with it.
TORCH ?= torch==2.13.0
STAMP := .setup-done
APT_PACKAGES := sox libsox-fmt-all libavcodec59 libavformat59 libavutil57 libswresample4 libswscale6 \
	libavdevice59 libavfilter8 chromium chromium-driver

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@if command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	else \
		echo "apt-get not found: install sox, FFmpeg 5.1 libraries and chromium with your package manager"; \
	fi
	$(PIP) install -q --disable-pip-version-check "$(TORCH)"
	$(PIP) install -q --disable-pip-version-check -e '.[decode,dask,test]'
	@touch $(STAMP)

demo: setup
	defectbench demo

test: setup
	$(PYTHON) -m pytest -q -p no:cacheprovider

bench: setup
	$(PYTHON) benchmarks/run_all.py

clean:
	rm -rf $(STAMP) datasets results checkpoints test-artifacts
