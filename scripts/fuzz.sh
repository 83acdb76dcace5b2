#!/usr/bin/env bash
# fuzz.sh — builds the libFuzzer harnesses of tests/fuzz/ with clang (ASan + UBSan + libFuzzer)
# into BUILD-fuzz/ and runs each one for SECONDS on a scratch copy of its seed corpus, then
# prints executions/s, coverage (cov: edges, ft: features) and crashes per harness.
#   scripts/fuzz.sh [BUILD [SECONDS [HARNESS...]]]   (make fuzz FUZZ_SECONDS=N)
#   scripts/fuzz.sh --seeds [BUILD]                    rewrite tests/fuzz/corpus/ (gen_corpus.c)
# The committed corpus is never grown: new inputs stay in BUILD-fuzz/corpus/<harness>/, and
# crashes, leaks and timeouts in BUILD-fuzz/artifacts/<harness>/ (replay one with
# BUILD-fuzz/fuzz_<harness> FILE). Exits 1 when any harness found something.
# The normal build never needs clang: only this script does.
set -u
cd "$(dirname "$0")/.."

SEEDS=0
if [ "${1:-}" = "--seeds" ]; then SEEDS=1; shift; fi
BUILD=${1:-build}
SECS=${2:-60}
shift 2 2>/dev/null || shift $#
FB=$BUILD-fuzz
FCC=${FUZZ_CC:-clang}
BLAS_LIB=/usr/lib/x86_64-linux-gnu/openblas-openmp
LIBS=${FUZZ_LDLIBS:--L$BLAS_LIB -Wl,-rpath,$BLAS_LIB -llapacke -lopenblas -lcjson -lpng -lz -lm -fopenmp}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
OPT="-O1 -g -fno-omit-frame-pointer $SAN"

if ! command -v "$FCC" >/dev/null || ! "$FCC" --version | grep -q clang; then
    echo "fuzz: needs clang with libFuzzer (set FUZZ_CC); found none at '$FCC'" >&2
    exit 2
fi

# The library, instrumented for coverage, through the Makefile's own rules (incremental).
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -j"${FUZZ_JOBS:-2}" BUILD="$FB" CC="$FCC" \
    OPT="$OPT -fsanitize=fuzzer-no-link" EXTRA_CFLAGS=-Wno-pass-failed "$FB/libunigen.a" || exit 2

CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Werror $OPT -Iinclude -Isrc -Icli -Itests/fuzz"

if [ $SEEDS = 1 ]; then
    "$FCC" $CFLAGS -fsanitize=fuzzer-no-link -o "$FB/gen_corpus" tests/fuzz/gen_corpus.c \
        cli/options.c cli/check.c "$FB/libunigen.a" $LIBS || exit 2
    ASAN_OPTIONS=detect_leaks=1 "$FB/gen_corpus" tests/fuzz/corpus || exit 1
    echo "fuzz: seed corpora written under tests/fuzz/corpus/"
    exit 0
fi

HARNESSES=${*:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')}

# Extra seeds from the malformed-file corpus of tests/test_io_malformed.c.
extra_seeds() {
    case $1 in
    safetensors|checkpoint) ls tests/malformed/*.safetensors ;;
    npy) ls tests/malformed/*.npy ;;
    idx) ls tests/malformed/*.idx tests/malformed/*.idx.gz 2>/dev/null ;;
    png) ls tests/malformed/*.png 2>/dev/null ;;
    gmm) ls tests/malformed/*.json 2>/dev/null ;;
    esac
}

mkdir -p "$FB/logs"
for h in $HARNESSES; do
    src=tests/fuzz/fuzz_$h.c bin=$FB/fuzz_$h extra=
    # The option parser and its range table (cli/check.c, run at the end of every parse).
    case $h in cli*) extra="cli/options.c cli/check.c" ;; esac
    if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ tests/fuzz/fuzz.h -nt "$bin" ] ||
       [ "$FB/libunigen.a" -nt "$bin" ] || [ cli/options.c -nt "$bin" ] || [ cli/check.c -nt "$bin" ]; then
        "$FCC" $CFLAGS -fsanitize=fuzzer -o "$bin" "$src" $extra "$FB/libunigen.a" $LIBS || exit 2
    fi
done

printf '%-12s %10s %10s %8s %8s %9s %8s  %s\n' harness execs exec/s cov ft new_units crashes "artifacts"
found=0
for h in $HARNESSES; do
    scratch=$FB/corpus/$h art=$FB/artifacts/$h/ log=$FB/logs/$h.log
    rm -rf "$scratch" "$art"
    mkdir -p "$scratch" "$art"
    cp tests/fuzz/corpus/"$h"/* "$scratch"/ 2>/dev/null
    for f in $(extra_seeds "$h"); do
        # fuzz_idx and fuzz_png read a form byte first; 0 hands the rest over as is.
        case $h in
        idx|png) { printf '\0'; cat "$f"; } >"$scratch/malformed_$(basename "$f")" ;;
        *) cp "$f" "$scratch/malformed_$(basename "$f")" ;;
        esac
    done
    OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        UBSAN_OPTIONS=print_stacktrace=1 "$FB/fuzz_$h" -max_total_time="$SECS" \
        -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$art" \
        "$scratch" >"$log" 2>&1 </dev/null
    rc=$?
    final() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
    cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    ncrash=$(ls "$art" | wc -l)
    [ $rc != 0 ] && [ "$ncrash" = 0 ] && ncrash="rc=$rc"
    printf '%-12s %10s %10s %8s %8s %9s %8s  %s\n' "$h" "$(final number_of_executed_units)" \
        "$(final average_exec_per_sec)" "${cov:-?}" "${ft:-?}" "$(final new_units_added)" "$ncrash" \
        "$(ls "$art" | tr '\n' ' ')"
    if [ $rc != 0 ] || [ "$(ls "$art" | wc -l)" != 0 ]; then
        found=1
        grep -m1 -E 'ERROR: |runtime error|fuzz invariant' "$log" | sed 's/^/    /'
    fi
done
[ $found = 0 ] || { echo "fuzz: findings above; logs in $FB/logs/, inputs in $FB/artifacts/"; exit 1; }
