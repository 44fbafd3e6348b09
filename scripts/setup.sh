#!/usr/bin/env bash
# Installs what HyperLlama needs, idempotently and cached:
#   scripts/setup.sh          build dependencies (Debian packages, only those missing)
#   scripts/setup.sh --test   + the Python test tooling in .venv and the test models
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PKGS=(build-essential pkg-config libmicrohttpd-dev libjson-c-dev libsqlite3-dev
            libcurl4-openssl-dev libssl-dev libxxhash-dev libpcre2-dev libutf8proc-dev libedit-dev
            libvulkan-dev glslc python3 python3-pip)
TEST_PKGS=(clang libclang-rt-dev tmux golang-go python3-venv mesa-vulkan-drivers)

want=("${BUILD_PKGS[@]}")
[ "${1:-}" = "--test" ] && want+=("${TEST_PKGS[@]}")

missing=()
for p in "${want[@]}"; do
    # python3 may come from pyenv rather than Debian: accept a working one
    case "$p" in
        python3) command -v python3 >/dev/null && continue ;;
        python3-pip) python3 -m pip --version >/dev/null 2>&1 && continue ;;
        python3-venv) python3 -c 'import venv, ensurepip' >/dev/null 2>&1 && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    stamp=.venv/.requirements-installed
    if [ ! -f "$stamp" ] || ! cat requirements-test.txt requirements-test-nodeps.txt | cmp -s - "$stamp"; then
        echo "setup: installing Python test packages into .venv" >&2
        .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt
        .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-test-nodeps.txt
        cat requirements-test.txt requirements-test-nodeps.txt > "$stamp"
    fi
    python3 scripts/fetch_models.py smollm2 qwen2.5-coder qwen2.5-coder-0.5b gemma3 >&2  # every model the tests use
fi
