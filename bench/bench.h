/* bench.h — timing helpers shared by the benchmark programs: a monotonic clock, the median
 * of repeated timings (the figure every benchmark reports) and the peak resident set size
 * (getrusage ru_maxrss, as the PyTorch peers report theirs). */
#ifndef UG_BENCH_H
#define UG_BENCH_H
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static inline double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place. */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Peak RSS of this process so far, MiB (ru_maxrss is in KiB on Linux). */
static inline double bench_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}
#endif
