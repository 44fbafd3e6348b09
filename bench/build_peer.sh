#!/usr/bin/env bash
# Builds the peer we compare against: llama.cpp as vendored in the
# llama-cpp-python source package on PyPI, CMake Release with native CPU flags,
# CPU only. Cached in $HL_PEER_DIR (default ~/.cache/hyperlama/peer): a second
# run does nothing. Prints the directory holding llama-bench and llama-server.
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
PEER=${HL_PEER_DIR:-$HOME/.cache/hyperlama/peer}
BIN="$PEER/build-$VERSION-noamx/bin"
if [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-server" ]; then
    echo "$BIN"
    exit 0
fi
command -v cmake >/dev/null || { echo "build_peer: cmake is required (apt-get install cmake)" >&2; exit 1; }
mkdir -p "$PEER"
cd "$PEER"
sdist="llama_cpp_python-$VERSION.tar.gz"
[ -f "$sdist" ] || python3 -m pip download --no-deps --no-binary :all: -q -d . "llama-cpp-python==$VERSION" >&2
if [ ! -d "src-$VERSION" ]; then
    rm -rf "src-$VERSION.tmp" && mkdir "src-$VERSION.tmp"
    tar -xzf "$sdist" -C "src-$VERSION.tmp" --strip-components=1
    mv "src-$VERSION.tmp" "src-$VERSION"
fi
src="src-$VERSION/vendor/llama.cpp"
# AMX off: some hosts here show amx_tile/amx_int8 (Intel Xeon), and the peer's AMX
# matmul then dies with a general protection fault in llama-bench and llama-server
# (GGML_NATIVE's -march=native enables it whatever GGML_AMX_* say: hence -mno-amx-*)
cmake -S "$src" -B "build-$VERSION-noamx" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_CUDA=OFF \
      -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
      "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
      "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
      -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
      -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "build-$VERSION-noamx" --config Release -j"$(nproc)" --target llama-bench llama-server >&2
echo "$BIN"
