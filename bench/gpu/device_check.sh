#!/usr/bin/env bash
# The GPU device check (issue 9): on a machine with a Vulkan GPU, nothing
# reachable on the network and only this working tree, in one go:
#   1. builds (make: the binary, the Vulkan kernel tests, bench_random_gguf);
#   2. runs the Vulkan kernel tests on the device (every weight type and op
#      against the scalar oracle) unless --no-tests;
#   3. writes random-weight GGUF files of real shapes with our own writer
#      (bench/model/bench_random_gguf.c): Qwen2.5-1.5B-shaped Q4_K_M,
#      Llama-3-8B-shaped Q4_K_M and Q8_0, and a mixture of experts (qwen3moe
#      of Qwen3-30B-A3B's proportions at ~1 GB, Q4_K_M: decode reads 8 of
#      its 64 experts, so its size column is the active bytes);
#   4. benchmarks each on the vulkan backend with `hyperlama bench`: batch-1
#      decode (tg128), prefill (pp512) and aggregate decode of 8 / 32 / 64
#      concurrent streams, and prints tokens/s with the fraction of the
#      device's memory bandwidth (decode: weight bytes read per step) and of
#      its fp16 peak (prefill: 2 x parameters FLOPs per token), once per
#      matrix-product kernel path (HYPERLAMA_VULKAN_MATVEC: the subgroup
#      kernels of matvec.comp, then (real shapes) the same without their
#      tiled prefill pipelines (`direct`: HYPERLAMA_VULKAN_TILED=off), then
#      the shared-memory ones of matmul.comp; --kernels subgroup,direct,shared
#      chooses; in real shapes only the first
#      model gets every path, the others the first, unless --all-kernels:
#      the 10 minutes), one row per model and path;
#   5. writes everything under $OUT (or --out DIR): summary.txt, one JSON per
#      model, the kernel tests' output, the build log.
# --small: tiny shapes (a few MiB) and short runs, for lavapipe (CI, no GPU):
# the same steps in a few minutes. Peak figures come from the table below by
# device name, or --bw GB/s and --fp16 TFLOPS. HYPERLAMA_VULKAN_DEVICE picks
# the device (default: the GPU with the most memory; in --small, device 0).
# Big model files go to --work DIR (default /tmp/hl_device_check), not $OUT.
# Documented in docs/performance.md ("GPU device check").
set -u
cd "$(dirname "$0")/../.."

SMALL=0 TESTS=1 BW="" FP16="" OUTDIR="${OUT:-$PWD/device_check_out}" WORK=/tmp/hl_device_check STEP_TIMEOUT=150
KERNELS="" ALL_KERNELS=0
while [ $# -gt 0 ]; do
    case "$1" in
    --small) SMALL=1; TESTS=0 ;;
    --tests) TESTS=1 ;;
    --no-tests) TESTS=0 ;;
    --bw) BW="$2"; shift ;;
    --fp16) FP16="$2"; shift ;;
    --out) OUTDIR="$2"; shift ;;
    --work) WORK="$2"; shift ;;
    --step-timeout) STEP_TIMEOUT="$2"; shift ;;
    --kernels) KERNELS="$2"; shift ;;
    --all-kernels) ALL_KERNELS=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "device_check: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$OUTDIR" "$WORK"
SUMMARY="$OUTDIR/summary.txt"
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }

JOBS=$(nproc 2>/dev/null || echo 4)
say "== device check ($( [ $SMALL = 1 ] && echo small shapes || echo real shapes )), $(date -u +%FT%TZ), $JOBS cores"
say "-- build"
if ! make -s -j"$JOBS" all build/release/bench/bench_random_gguf > "$OUTDIR/build.log" 2>&1; then
    say "build failed (see build.log)"; tail -20 "$OUTDIR/build.log"; exit 1
fi
HL=build/release/hyperlama GEN=build/release/bench/bench_random_gguf
if [ $SMALL = 1 ]; then
    BACKEND="vulkan:${HYPERLAMA_VULKAN_DEVICE:-0}"
    PP=32 TG=8 REPS=1 STREAMS=2,4,8 KERNELS=${KERNELS:-subgroup,shared}
    MODELS="qwen2.5-1.5b:small-qwen:q4_k_m llama3-8b:small:q4_k_m llama3-8b:small:q8_0 qwen3moe:small-moe:q4_k_m"
else
    BACKEND=vulkan
    PP=512 TG=128 REPS=2 STREAMS=8,32,64 KERNELS=${KERNELS:-subgroup,direct,shared}
    MODELS="qwen2.5-1.5b:qwen2.5-1.5b:q4_k_m llama3-8b:llama3-8b:q4_k_m llama3-8b:llama3-8b:q8_0 qwen3moe:qwen3moe-1g:q4_k_m"
fi
say "   done in $(elapsed) s"

if [ $TESTS = 1 ]; then
    say "-- Vulkan kernel tests on the device"
    if make -s -j"$JOBS" build/release/tests/backend/vulkan/test_vk_matmul build/release/tests/backend/vulkan/test_ops_vulkan \
        build/release/tests/backend/vulkan/test_ops_kv_vulkan build/release/tests/backend/vulkan/test_vk_memory \
        build/release/tests/backend/vulkan/test_ops_moe_vulkan build/release/tests/backend/vulkan/test_ops_attn_vulkan \
        >> "$OUTDIR/build.log" 2>&1; then
        for t in test_vk_memory test_ops_vulkan test_ops_kv_vulkan test_ops_attn_vulkan test_ops_moe_vulkan test_vk_matmul; do
            HYPERLAMA_TEST_REQUIRE_VULKAN=1 timeout "$STEP_TIMEOUT" build/release/tests/backend/vulkan/$t > "$OUTDIR/$t.txt" 2>&1
            trc=$?
            say "   $t: $(tail -1 "$OUTDIR/$t.txt") (rc $trc)"
        done
    else
        say "   building the kernel tests failed (see build.log)"
    fi
fi

# peak figures by device name: memory bandwidth GB/s, dense fp16 tensor TFLOPS (vendor data sheets)
peaks() {
    case "$1" in
    *H200*) echo "4800 989" ;;
    *H100*PCIe*) echo "2000 756" ;;
    *H100*) echo "3350 989" ;;
    *A100*) echo "2039 312" ;;
    *L40S*) echo "864 362" ;;
    *L4*) echo "300 121" ;;
    *"RTX 4090"*) echo "1008 165" ;;
    *"RTX 3090"*) echo "936 71" ;;
    *MI300X*) echo "5300 1307" ;;
    *) echo "" ;;
    esac
}

# the number after "key": in a one-line JSON object (first match after an optional anchor)
jnum() { grep -o "\"$2\":[-0-9.e+]*" <<< "$1" | head -1 | cut -d: -f2; }
jstr() { grep -o "\"$2\":\"[^\"]*\"" <<< "$1" | head -1 | cut -d'"' -f4; }
result_of() { grep -o "{\"test\":\"$2\",\"mean\":[-0-9.e+]*,\"stddev\":[-0-9.e+]*,\"median\":[-0-9.e+]*" <<< "$1" | head -1 | sed 's/.*"median"://'; }

say "-- models (random weights, our GGUF writer) and benchmarks on $BACKEND"
printf -v HDR "%-36s %9s %10s %10s %10s %10s %10s %8s %8s %8s" "model [matmul kernels]" "size" "pp$PP t/s" "tg$TG t/s" \
    "s${STREAMS%%,*} t/s" "s$(echo $STREAMS | cut -d, -f2) t/s" "s${STREAMS##*,} t/s" "tg %bw" "s-max %bw" "pp %fp16"
ROWS=()
for spec in $MODELS; do
    label=${spec%%:*} rest=${spec#*:} shape=${rest%%:*} type=${rest#*:}
    [ $SMALL = 1 ] && label="$label-small"
    f="$WORK/$label-$type.gguf"
    info=$($GEN "$shape" "$type" "$f" 2>&1) || { say "   $label $type: writing failed: $info"; continue; }
    # prefill FLOPs: a mixture of experts multiplies by its active share (active / all bytes)
    params=$(echo "$info" | awk '/^params/ {print ($6 > 0 && $4 > 0) ? int($2 * $6 / $4) : $2}')
    kerns=$KERNELS
    [ $SMALL = 0 ] && [ $ALL_KERNELS = 0 ] && [ -n "${FIRST_DONE:-}" ] && kerns=${KERNELS%%,*}
    FIRST_DONE=1
    for kern in ${kerns//,/ }; do
    tag="$label-$type-$kern"
    # direct: the subgroup kernels without their tiled prefill pipelines (the before of the tiling)
    case $kern in
    direct) kenv="HYPERLAMA_VULKAN_MATVEC=subgroup HYPERLAMA_VULKAN_TILED=off" ;;
    *) kenv="HYPERLAMA_VULKAN_MATVEC=$kern" ;;
    esac
    json=$(env $kenv timeout "$STEP_TIMEOUT" $HL bench "$f" -p $PP -n $TG -r $REPS --streams $STREAMS \
        --backend "$BACKEND" --json 2> "$OUTDIR/$tag.stderr")
    rc=$?
    echo "$json" > "$OUTDIR/$tag.json"
    if [ $rc -ne 0 ] || [ -z "$json" ]; then
        say "   $label $type [$kern]: bench failed (rc $rc): $(tail -3 "$OUTDIR/$tag.stderr")"
        continue
    fi
    dev=$(jstr "$json" device) be=$(jstr "$json" backend) wbytes=$(jnum "$json" weight_bytes)
    # the kernels the backend says it used (its description ends "; matmul: ...")
    used=$(sed -n 's/.*; matmul: \([a-z]*\).*/\1/p' <<< "$dev")
    [ "$kern" = direct ] && used=direct
    [ -n "${DEVICE_SAID:-}" ] || { say "   device: ${dev%%; matmul:*}"; say "   backend: $be"; DEVICE_SAID=1; }
    say "   $label $type [$kern]: matmul ${dev##*; matmul: }"
    read -r bw fp <<< "$( [ -n "$BW" ] && echo "$BW ${FP16:-0}" || peaks "$dev")"
    [ -n "$FP16" ] && fp=$FP16
    pp=$(result_of "$json" "pp$PP") tg=$(result_of "$json" "tg$TG")
    s=(); for n in ${STREAMS//,/ }; do s+=("$(result_of "$json" "s$n")"); done
    smax=${STREAMS##*,}
    # decode reads the weights once per step: steps/s * bytes / bandwidth; prefill does 2 * params FLOPs per token
    fr=$(awk -v tg="$tg" -v sm="${s[2]:-0}" -v n="$smax" -v pp="$pp" -v wb="$wbytes" -v np="$params" -v bw="${bw:-0}" -v fp="${fp:-0}" 'BEGIN {
        if (bw > 0) printf "%7.2f%% %8.2f%% ", 100 * tg * wb / (bw * 1e9), 100 * (sm / n) * wb / (bw * 1e9); else printf "%8s %9s ", "n/a", "n/a";
        if (fp > 0) printf "%7.2f%%", 100 * pp * 2 * np / (fp * 1e12); else printf "%8s", "n/a" }')
    printf -v row "%-36s %7.1fMi %10.1f %10.1f %10.1f %10.1f %10.1f %s" "$label $type [${used:-$kern}]" \
        "$(awk -v b="$wbytes" 'BEGIN{print b/1048576}')" "$pp" "$tg" "${s[0]:-0}" "${s[1]:-0}" "${s[2]:-0}" "$fr"
    ROWS+=("$row")
    done
    [ $SMALL = 1 ] || rm -f "$f" # the next file needs the disk
done
say ""
say "$HDR"
for r in "${ROWS[@]}"; do say "$r"; done
say ""
say "peaks: ${BW:+--bw $BW GB/s }${FP16:+--fp16 $FP16 TFLOPS }(else the table by device name; n/a when unknown)"
say "size: weight bytes one decode step reads; tg %bw = tg t/s x size / bandwidth; s-max %bw = (s${STREAMS##*,} t/s / ${STREAMS##*,}) x size / bandwidth"
say "pp %fp16 = pp t/s x 2 x parameters / fp16 peak (a mixture of experts: its active share of them)"
say "[kernels]: the matrix products the backend used (subgroup: matvec.comp, one subgroup per weight row, tiled prefill where the matmul line says so; direct: the same without the tiles; shared: matmul.comp)"
say "goals on an H200 (issue 9): 8B Q4_K_M tg128 >= 60% of bandwidth (~590 tok/s), pp512 >= 5000 tok/s, s64 >= 4000 tok/s"
say "== finished in $(elapsed) s; results in $OUTDIR"
