#!/usr/bin/env bash
# benches/gpu.sh — GPU benchmark and correctness check for whatif, meant to
# run unattended, in one go, on a bare GPU machine with NO Rust toolchain
# and no network.
#
# It needs, next to the repository root it is run from:
#   - a stripped release binary: $WHATIF_BIN (default .gpu/whatif)
#   - the Vulkan loader packages in .gl/*.deb (libvulkan1, ...), unpacked
#     here only when the machine has no libvulkan of its own
#   - benches/w1.toml (W1: 20-node linear-Gaussian chain, metric mean(x19))
#
# What it does:
#   1. makes the Vulkan loader available, lists the adapters (`whatif devices`);
#   2. correctness: W1 at N=1e6 on cpu, wgpu (fused) and wgpu-tensor; the
#      estimates of mean(x19) must agree within TOL (same Philox numbers on
#      every backend, so they differ only by f32 rounding: ~1e-7 expected);
#   3. a table of node-samples/s (20 nodes × N / wall seconds of the whole
#      command, process start and kernel compilation included) per backend
#      for N = 1e6, 1e7, 1e8.
# Exit status: 0 when every correctness check passed, 1 otherwise.
#
# Environment: WHATIF_BIN, TOL (default 1e-4), NS (default "1000000
# 10000000 100000000"), BACKENDS (default "wgpu wgpu-tensor cpu"),
# RUN_TIMEOUT seconds per run (default 300), OUT (a folder to copy the
# JSON reports and the table to, when set).

set -u
cd "$(dirname "$0")/.."

BIN=${WHATIF_BIN:-.gpu/whatif}
TOL=${TOL:-1e-4}
NS=${NS:-"1000000 10000000 100000000"}
BACKENDS=${BACKENDS:-"wgpu wgpu-tensor cpu"}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
SCEN=benches/w1.toml
NODES=20
WORK=$(mktemp -d)
status=0

log() { printf '%s\n' "$*" >&2; }

# --- 1. Vulkan loader and driver -------------------------------------------
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so'; then
    if ls .gl/*.deb >/dev/null 2>&1; then
        log "no libvulkan on this machine: unpacking .gl/*.deb"
        for f in .gl/*.deb; do dpkg -x "$f" / || log "cannot unpack $f"; done
        ldconfig
    else
        log "WARNING: no libvulkan and no .gl/*.deb: the GPU backends will find no adapter"
    fi
fi
# NVIDIA containers keep the ICD outside the default search path.
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] \
    && ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    log "using VK_DRIVER_FILES=$VK_DRIVER_FILES"
fi

if [ ! -x "$BIN" ]; then
    log "ERROR: no whatif binary at $BIN (set WHATIF_BIN)"
    exit 1
fi
chmod +x "$BIN" 2>/dev/null || true

echo "== host: $(uname -srm), $(nproc) cores"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== whatif devices"
"$BIN" devices || log "whatif devices failed"
DEVICE=$("$BIN" devices 2>/dev/null | head -1)

# --- helpers ----------------------------------------------------------------
# estimate FILE: the first metric estimate in a JSON report (W1 has one
# world and one metric). python3 when present, else a regex.
estimate() {
    if command -v python3 >/dev/null; then
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["worlds"][0]["metrics"][0]["estimate"])' "$1" 2>/dev/null && return
    fi
    grep -o '"estimate"[[:space:]]*:[[:space:]]*[-0-9.eE+]*' "$1" | head -1 | sed 's/.*:[[:space:]]*//'
}

# field FILE KEY: a top-level-ish string field of the manifest (best effort).
field() { grep -o "\"$2\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" "$1" | head -1 | sed 's/.*:[[:space:]]*"//; s/"$//'; }

# run BACKEND N: runs W1, leaves $WORK/BACKEND-N.json, prints wall seconds.
run() {
    local b=$1 n=$2 out=$WORK/$1-$2.json t0 t1 rc
    t0=$(date +%s.%N)
    timeout "$RUN_TIMEOUT" "$BIN" run "$SCEN" --backend "$b" --samples "$n" --format json >"$out" 2>"$WORK/$b-$n.err"
    rc=$?
    t1=$(date +%s.%N)
    if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
        log "run $b N=$n failed (exit $rc): $(tail -3 "$WORK/$b-$n.err")"
        echo "FAIL"
        return
    fi
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

# --- 2. correctness ------------------------------------------------------------
echo "== correctness: W1, N=1e6, mean(x19) per backend (tolerance $TOL)"
declare -A EST
for b in cpu $BACKENDS; do
    [ -n "${EST[$b]:-}" ] && continue
    w=$(run "$b" 1000000)
    if [ "$w" = FAIL ]; then EST[$b]=FAIL; status=1; continue; fi
    EST[$b]=$(estimate "$WORK/$b-1000000.json")
    printf '  %-12s mean(x19) = %s   (device: %s, kernel: %s)\n' "$b" "${EST[$b]}" \
        "$(field "$WORK/$b-1000000.json" device)" "$(field "$WORK/$b-1000000.json" kernel)"
done
for b in $BACKENDS; do
    [ "$b" = cpu ] && continue
    if [ "${EST[$b]}" = FAIL ] || [ "${EST[cpu]}" = FAIL ] || [ -z "${EST[$b]}" ]; then
        echo "  CHECK $b vs cpu: FAIL (no estimate)"; status=1; continue
    fi
    if awk -v a="${EST[$b]}" -v c="${EST[cpu]}" -v t="$TOL" 'BEGIN { d = a - c; if (d < 0) d = -d; exit !(d <= t) }'; then
        echo "  CHECK $b vs cpu: PASS (|diff| <= $TOL)"
    else
        echo "  CHECK $b vs cpu: FAIL (${EST[$b]} vs ${EST[cpu]})"; status=1
    fi
done
# Sanity against the closed form: mean 0, sd(x19) = sqrt((1-0.81^20)/0.19),
# SE at 1e6 samples ~ 0.0023; 5 SE.
if [ "${EST[cpu]}" != FAIL ] && awk -v a="${EST[cpu]}" 'BEGIN { exit !(a < 0.0115 && a > -0.0115) }'; then
    echo "  CHECK cpu vs closed form (mean 0 within 5 SE): PASS"
else
    echo "  CHECK cpu vs closed form: FAIL (${EST[cpu]})"; status=1
fi

# --- 3. throughput table --------------------------------------------------------
echo "== W1 throughput on: ${DEVICE:-unknown device}"
printf '| %-12s | %12s | %10s | %16s |\n' backend N "wall s" "M node-samples/s" | tee "$WORK/table.md"
printf '|%s|%s|%s|%s|\n' "--------------" "--------------" "------------" "------------------" | tee -a "$WORK/table.md"
for n in $NS; do
    for b in $BACKENDS; do
        # N=1e6 runs again here: the correctness run above paid the
        # driver's first shader compilation.
        w=$(run "$b" "$n")
        if [ "$w" = FAIL ]; then
            printf '| %-12s | %12s | %10s | %16s |\n' "$b" "$n" FAIL - | tee -a "$WORK/table.md"
            continue
        fi
        r=$(awk -v n="$n" -v k="$NODES" -v w="$w" 'BEGIN { if (w > 0) printf "%.1f", k * n / w / 1e6; else print "-" }')
        printf '| %-12s | %12s | %10s | %16s |\n' "$b" "$n" "$w" "$r" | tee -a "$WORK/table.md"
    done
done

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT" && cp "$WORK"/*.json "$WORK/table.md" "$OUT"/ 2>/dev/null
fi
echo "== done: $([ $status -eq 0 ] && echo 'all checks passed' || echo 'SOME CHECKS FAILED')"
exit $status
