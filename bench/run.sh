#!/usr/bin/env bash
# bench/run.sh — issue 10's side-by-side benchmark: unigen against the PyTorch peers of
# ../shared/peers (README there) on W5 gemm, W1 toy2d, W2 unet, W3 made, W4 nice, with the
# peers' architectures, batch sizes and step protocols. Each round runs, workload by workload,
# the unigen program (build/bench_<w>) and right after it the peer script (PyTorch's best
# configuration: OMP_WAIT_POLICY=PASSIVE ATEN_CPU_CAPABILITY=avx512, --threads 2; the AVX-512
# setting only where the CPU has AVX-512F: elsewhere ATen would die of SIGILL); the rounds
# alternate unigen, peer, unigen, peer, ... and the table reports per-figure medians over rounds.
# GFLOP/s = counted FLOPs (bench/NOTES.md) / measured time; the ceiling is the best 2048^3 sgemm
# figure of this run (W5: unigen's cblas_sgemm or the peer's torch.mm, any round: noise only
# lowers a measurement, and a median ceiling let a noisy W5 round inflate every fraction).
# Peak RSS: ru_maxrss of each process (the bench programs and the peers both read getrusage).
#
# Usage: bench/run.sh [--peers]       (make bench runs it with --peers)
#   --peers      also run the PyTorch peers (needs /usr/bin/python3 with torch and $PEERS);
#                without it, or without torch, the PyTorch columns say "skipped"
# Environment: ROUNDS (3), QUICK (0; 1 = a few steps per workload: checks the pipeline, the
#   figures mean nothing), WORKLOADS ("gemm toy2d unet made nice"), THREADS (2), BUILD (build),
#   PEERS (../shared/peers), OUT ($BUILD/bench: bench.json, table.txt, logs/), TABLE_ONLY (1 =
#   run nothing, make the table again from OUT's raw.tsv; ROUNDS must be that run's).
set -u
cd "$(dirname "$0")/.."

WITH_PEERS=0
for a in "$@"; do
    case "$a" in
        --peers) WITH_PEERS=1 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/run.sh: unknown argument '$a' (expected --peers)" >&2; exit 2 ;;
    esac
done
BUILD=${BUILD:-build}
PEERS=${PEERS:-../shared/peers}
ROUNDS=${ROUNDS:-3}
QUICK=${QUICK:-0}
THREADS=${THREADS:-2}
WORKLOADS=${WORKLOADS:-"gemm toy2d unet made nice"}
OUT=${OUT:-$BUILD/bench}
PY=/usr/bin/python3

progs=""
for w in $WORKLOADS; do
    case "$w" in
        gemm) progs="$progs $BUILD/bench_engine" ;;
        toy2d|unet|made|nice) progs="$progs $BUILD/bench_$w" ;;
        *) echo "bench/run.sh: unknown workload '$w' (gemm toy2d unet made nice)" >&2; exit 2 ;;
    esac
done
make -s BUILD="$BUILD" $progs || exit 1

peer_note=""
if [ "$WITH_PEERS" = 1 ]; then
    if [ ! -d "$PEERS" ]; then
        WITH_PEERS=0; peer_note="no peers folder $PEERS"
    elif ! [ -x "$PY" ] || ! "$PY" -c 'import torch' 2>/dev/null; then
        WITH_PEERS=0; peer_note="$PY has no torch"
    fi
else
    peer_note="run without --peers"
fi

# The commands of one workload: unigen's and the peer's, same protocol (QUICK cuts both alike,
# with the peers' own options; made.py always trains its full 600-step epoch, so both do).
ug_cmd() {
    local q=$QUICK
    case "$1" in
        gemm)  [ "$q" = 1 ] && echo "$BUILD/bench_engine $THREADS 3" || echo "$BUILD/bench_engine $THREADS 10" ;;
        toy2d) [ "$q" = 1 ] && echo "$BUILD/bench_toy2d $THREADS 2 10 1" || echo "$BUILD/bench_toy2d $THREADS 20 200 5" ;;
        unet)  [ "$q" = 1 ] && echo "$BUILD/bench_unet $THREADS 1 3 1" || echo "$BUILD/bench_unet $THREADS 5 30 3" ;;
        made)  echo "$BUILD/bench_made $THREADS 20 600" ;;
        nice)  [ "$q" = 1 ] && echo "$BUILD/bench_nice $THREADS 12 2" || echo "$BUILD/bench_nice $THREADS 300 10" ;;
    esac
}
pt_cmd() {
    local q=$QUICK p="$PY $PEERS"
    case "$1" in
        gemm)  [ "$q" = 1 ] && echo "$p/gemm.py --threads $THREADS --reps 3" || echo "$p/gemm.py --threads $THREADS --reps 10" ;;
        toy2d) [ "$q" = 1 ] && echo "$p/toy2d.py --threads $THREADS --warmup 2 --steps 10 --extra-steps 0 --sample-runs 1" \
                            || echo "$p/toy2d.py --threads $THREADS --warmup 20 --steps 200 --extra-steps 0 --sample-runs 5" ;;
        unet)  [ "$q" = 1 ] && echo "$p/unet.py --threads $THREADS --warmup 1 --steps 3 --sample-runs 1" \
                            || echo "$p/unet.py --threads $THREADS --warmup 5 --steps 30 --sample-runs 3" ;;
        made)  echo "$p/made.py --threads $THREADS --warmup 20" ;;
        nice)  [ "$q" = 1 ] && echo "$p/nice.py --threads $THREADS --warmup 2 --max-steps 12" \
                            || echo "$p/nice.py --threads $THREADS --warmup 10" ;;
    esac
}

# jnum FILE KEY: the number after "KEY": on the JSON line in FILE (empty if absent).
jnum() { sed -n "s/.*\"$2\": *\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" "$1" | head -n 1; }
# The peer's torch matmul GFLOP/s at THREADS threads (gemm.py's "torch_gemm" list).
torch_gemm() {
    grep -o '"torch_gemm": \[[^]]*\]' "$1" | grep -o '{[^}]*}' | grep "\"threads\": $THREADS," |
        sed -n 's/.*"gflops_median": *\([0-9.eE+-]*\).*/\1/p' | head -n 1
}

mkdir -p "$OUT/logs"
RAW="$OUT/raw.tsv"
[ "${TABLE_ONLY:-0}" = 1 ] || : > "$RAW"
# record ROUND SIDE WORKLOAD JSONFILE: one "round side figure value" line per figure.
record() {
    local r=$1 side=$2 w=$3 f=$4 v
    emit() { [ -n "$2" ] && printf '%s\t%s\t%s\t%s\n' "$r" "$side" "$1" "$2" >> "$RAW"; }
    emit "$w.rss" "$(jnum "$f" peak_rss_mib)"
    case "$w" in
        gemm)
            if [ "$side" = unigen ]; then v=$(jnum "$f" sgemm_2048_gflops); else v=$(torch_gemm "$f"); fi
            emit gemm.gflops "$v" ;;
        toy2d|unet)
            emit "$w.train" "$(jnum "$f" train_steps_per_s)"
            emit "$w.sample" "$(jnum "$f" sample_s_median)" ;;
        made|nice)
            emit "$w.train" "$(jnum "$f" train_steps_per_s)" ;;
    esac
}
# PyTorch's best configuration (../shared/peers/README.md), AVX-512 kernels where the CPU has them.
PEER_ENV="OMP_WAIT_POLICY=PASSIVE"
grep -qw avx512f /proc/cpuinfo 2>/dev/null && PEER_ENV="$PEER_ENV ATEN_CPU_CAPABILITY=avx512"
run_one() {   # run_one ROUND SIDE WORKLOAD COMMAND...
    local r=$1 side=$2 w=$3; shift 3
    local log="$OUT/logs/r${r}_${w}_$side.log" js="$OUT/logs/r${r}_${w}_$side.json"
    echo "# round $r: $w, $side: $*"
    local t0=$SECONDS
    if [ "$side" = pytorch ]; then
        env $PEER_ENV "$@" > "$log" 2>&1
    else
        "$@" > "$log" 2>&1
    fi
    local rc=$?
    grep '^{' "$log" | tail -n 1 > "$js"
    if [ $rc -ne 0 ] || [ ! -s "$js" ]; then
        echo "#   FAILED (exit $rc), see $log"
        return
    fi
    echo "#   $((SECONDS - t0)) s: $(cut -c1-150 "$js")"
    record "$r" "$side" "$w" "$js"
}

echo "# bench: rounds $ROUNDS, quick $QUICK, threads $THREADS, workloads: $WORKLOADS; peers: $([ "$WITH_PEERS" = 1 ] && echo "on ($PEERS)" || echo "skipped ($peer_note)")"
for r in $(seq 1 "$ROUNDS"); do
    [ "${TABLE_ONLY:-0}" = 1 ] && break
    for w in $WORKLOADS; do
        # shellcheck disable=SC2046
        run_one "$r" unigen "$w" $(ug_cmd "$w")
        # shellcheck disable=SC2046
        [ "$WITH_PEERS" = 1 ] && run_one "$r" pytorch "$w" $(pt_cmd "$w")
    done
done

# Table and JSON from raw.tsv. FLOPs per unit of each figure (bench/NOTES.md): per training step,
# per sampling run, per sgemm call (a GFLOP/s figure: its own GFLOP/s).
awk -F'\t' -v rounds="$ROUNDS" -v quick="$QUICK" -v threads="$THREADS" -v peers="$WITH_PEERS" \
    -v note="$peer_note" -v json="$OUT/bench.json" -v wl="$WORKLOADS" -v penv="$PEER_ENV" '
function median(key,   n, i, j, t, a) {
    n = cnt[key]; if (n == 0) return ""
    for (i = 1; i <= n; i++) a[i] = val[key, i] + 0
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function maxv(key,   n, i, m) {
    n = cnt[key]; m = ""
    for (i = 1; i <= n; i++) if (m == "" || val[key, i] + 0 > m) m = val[key, i] + 0
    return m
}
function runs(key,   n, i, s) {
    n = cnt[key]; s = ""
    for (i = 1; i <= n; i++) s = s (i > 1 ? ", " : "") val[key, i]
    return "[" s "]"
}
function jv(x) { return x == "" ? "null" : sprintf("%.6g", x) }
function tv(x, fmt) { return x == "" ? "-" : sprintf(fmt, x) }
{ k = $2 SUBSEP $3; cnt[k]++; val[k, cnt[k]] = $4 }
END {
    nf = split("gemm.gflops toy2d.train toy2d.sample unet.train unet.sample made.train nice.train", figs, " ")
    label["gemm.gflops"] = "sgemm 2048^3 GFLOP/s";       gf["gemm.gflops"] = 0
    label["toy2d.train"] = "train steps/s (B 1024)";    gf["toy2d.train"] = 0.844103680
    label["toy2d.sample"] = "sample 10k pts 35 NFE, s";  gf["toy2d.sample"] = 98.2016
    label["unet.train"] = "train steps/s (B 64)";       gf["unet.train"] = 71.69664
    label["unet.sample"] = "sample 64 imgs 35 NFE, s";  gf["unet.sample"] = 836.4608
    label["made.train"] = "train steps/s (B 100)";      gf["made.train"] = 0.392
    label["nice.train"] = "train steps/s (B 200)";      gf["nice.train"] = 22.8064
    wname["gemm"] = "W5 gemm"; wname["toy2d"] = "W1 toy2d"; wname["unet"] = "W2 unet"
    wname["made"] = "W3 made"; wname["nice"] = "W4 nice"
    ceil = maxv("unigen" SUBSEP "gemm.gflops")
    pc = maxv("pytorch" SUBSEP "gemm.gflops")
    if (pc != "" && (ceil == "" || pc > ceil)) ceil = pc
    printf "%-9s %-27s %9s %9s %6s %8s %6s %8s %6s %7s %7s\n", "workload", "figure", "unigen", "PyTorch",
        "ratio", "GFLOP/s", "%ceil", "GFLOP/s", "%ceil", "RSS MiB", "RSS MiB"
    printf "%-9s %-27s %9s %9s %6s %8s %6s %8s %6s %7s %7s\n", "", "", "", "", "ug/pt", "unigen", "unigen",
        "PyTorch", "PyTorch", "unigen", "PyTorch"
    rows = ""
    for (i = 1; i <= nf; i++) {
        f = figs[i]; split(f, parts, "."); w = parts[1]
        if (index(" " wl " ", " " w " ") == 0) continue
        u = median("unigen" SUBSEP f); p = median("pytorch" SUBSEP f)
        ur = median("unigen" SUBSEP w ".rss"); pr = median("pytorch" SUBSEP w ".rss")
        secs = (f ~ /sample/)
        ratio = ""; ug_g = ""; pt_g = ""; uf = ""; pf = ""
        if (u != "" && p != "" && u > 0 && p > 0) ratio = secs ? p / u : u / p
        if (u != "" && u > 0) ug_g = gf[f] == 0 ? u : (secs ? gf[f] / u : gf[f] * u)
        if (p != "" && p > 0) pt_g = gf[f] == 0 ? p : (secs ? gf[f] / p : gf[f] * p)
        if (ug_g != "" && ceil > 0) uf = ug_g / ceil
        if (pt_g != "" && ceil > 0) pf = pt_g / ceil
        pcol = peers ? tv(p, "%9.3f") : "skipped"
        printf "%-9s %-27s %9s %9s %6s %8s %6s %8s %6s %7s %7s\n", wname[w], label[f],
            u == "" ? "failed" : sprintf("%9.3f", u), pcol, tv(ratio, "%6.2f"),
            tv(ug_g, "%8.1f"), tv(uf == "" ? "" : 100 * uf, "%5.1f%%"),
            peers ? tv(pt_g, "%8.1f") : "skipped", peers ? tv(pf == "" ? "" : 100 * pf, "%5.1f%%") : "-",
            tv(ur, "%7.0f"), peers ? tv(pr, "%7.0f") : "skipped"
        row = sprintf("    {\"workload\": \"%s\", \"figure\": \"%s\", \"lower_is_better\": %s, " \
            "\"gflop_per_unit\": %s, \"unigen\": %s, \"pytorch\": %s, \"ratio_speed\": %s, " \
            "\"unigen_gflops\": %s, \"unigen_ceiling_frac\": %s, \"pytorch_gflops\": %s, " \
            "\"pytorch_ceiling_frac\": %s, \"unigen_peak_rss_mib\": %s, \"pytorch_peak_rss_mib\": %s, " \
            "\"unigen_rounds\": %s, \"pytorch_rounds\": %s}",
            w, label[f], secs ? "true" : "false", gf[f] == 0 ? "null" : jv(gf[f]), jv(u), jv(p), jv(ratio),
            jv(ug_g), jv(uf), jv(pt_g), jv(pf), jv(ur), jv(pr),
            runs("unigen" SUBSEP f), runs("pytorch" SUBSEP f))
        rows = rows (rows == "" ? "" : ",\n") row
    }
    printf "# ratio = unigen speed / PyTorch speed (>1: unigen faster; for seconds PyTorch s / unigen s); " \
        "medians over %d round(s); ceiling = best sgemm 2048^3 of the run = %s GFLOP/s%s\n", rounds,
        ceil == "" ? "unmeasured" : sprintf("%.1f", ceil), quick ? "; QUICK=1: pipeline check, not a measurement" : ""
    if (!peers) printf "# PyTorch peers skipped: %s\n", note
    printf "{\n  \"rounds\": %d, \"quick\": %s, \"threads\": %d, \"peers\": %s, \"peer_env\": " \
        "\"%s\", \"sgemm_ceiling_gflops\": %s,\n" \
        "  \"rows\": [\n%s\n  ]\n}\n", rounds, quick ? "true" : "false", threads, peers ? "true" : "false",
        penv, jv(ceil), rows > json
}' "$RAW" | tee "$OUT/table.txt"
echo "# wrote $OUT/bench.json, $OUT/table.txt, logs in $OUT/logs"
