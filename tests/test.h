/* test.h — the test runner: TEST(name) registers itself (no shared list to edit), EXPECT
 * records a failure and goes on, ASSERT records it and leaves the test. */
#ifndef UG_TEST_H
#define UG_TEST_H
#include "unigen.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*ug_test_fn)(void);
void ug_test_register(const char *name, const char *file, ug_test_fn fn);
void ug_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
__attribute__((noreturn)) void ug_test_abort(void);

#define TEST(name)                                                                   \
    static void test_##name(void);                                                   \
    __attribute__((constructor)) static void test_register_##name(void) {            \
        ug_test_register(#name, __FILE__, test_##name);                              \
    }                                                                                \
    static void test_##name(void)

#define EXPECT(cond, ...) \
    do { if (!(cond)) ug_test_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define ASSERT(cond, ...) \
    do { if (!(cond)) { ug_test_fail(__FILE__, __LINE__, __VA_ARGS__); ug_test_abort(); } } while (0)
#define ASSERT_OK(expr)                                                                \
    do { ug_status st_ = (expr);                                                       \
         if (st_ != UG_OK) { ug_test_fail(__FILE__, __LINE__, "%s -> %s: %s", #expr,   \
                                          ug_status_str(st_), ug_last_error());        \
                             ug_test_abort(); } } while (0)

/* |got - ref| <= atol + rtol |ref| everywhere; on failure reports the worst index. */
int ug_test_allclose(const char *what, const float *got, const float *ref, int64_t n,
                     double atol, double rtol);
int ug_test_allclose_f64(const char *what, const double *got, const double *ref, int64_t n,
                         double atol, double rtol);

/* 1 if this machine's sgemm gives each row of A B^T the same bits whatever the number of rows,
 * the row's place among them and the thread count. OpenBLAS's SkylakeX kernels do; its
 * Haswell / Zen kernels do not (rows differ in the last bits with their place in the call).
 * The batch-invariance tests compare bitwise where it holds, else to float rounding. */
int ug_test_gemm_rows_invariant(void);
/* got == ref bitwise where ug_test_gemm_rows_invariant(), else allclose within atol/rtol. */
int ug_test_same_rows(const char *what, const float *got, const float *ref, int64_t n,
                      double atol, double rtol);
int ug_test_same_rows_f64(const char *what, const double *got, const double *ref, int64_t n,
                          double atol, double rtol);

/* Whole file as a NUL-terminated string (free() it), or NULL. */
char *ug_test_read_file(const char *path);
/* Runs a shell command line with stdout and stderr captured into out (NUL-terminated; the rest
 * of a longer output is drained); returns its exit status, -1 when it has none. */
int ug_test_sh(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The unigen program under test: $UG_CLI, else ../build/unigen. */
const char *ug_test_cli(void);
/* STYLE "nothing is malloc'd per step": runs `steps` training steps (set_step, loss on x (B
 * rows), zero_grad, backward, reset) of m on a fresh context and reports the context's arena
 * allocation count after step `settle` and at the end; equal counts pass. */
void ug_test_arena_steady(ug_model *m, const float *x, int64_t B, int steps, int settle,
                          int64_t *at_settle, int64_t *at_end);
/* qsort comparator of doubles; monotonic seconds. */
int ug_test_cmp_double(const void *a, const void *b);
double ug_test_now_s(void);
/* The larger of a running worst error e and err, where a NaN err wins and stays (fmax would
 * drop it: a NaN result would pass a `worst < tol` check). */
static inline double ug_test_worst(double e, double err) { return err > e || err != err ? err : e; }

/* Tensors owned by the test (malloc'd data and zeroed grad), filled U(lo, hi) from seed. */
ug_tensor *ug_test_tensor(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi);
void ug_test_tensor_free(ug_tensor *t);

/* Finite-difference gradient check of an op. f builds the output from the inputs on ctx.
 * Checks d sum(out * R) / d input for every input that requires grad, against central
 * differences accumulated in double. At most max_elems entries per input are probed (all when
 * 0). Inputs with skip_kinks: entries where the one-sided slopes disagree are skipped.
 * Returns 1 on success; on failure reports the input, index, analytic and numeric values. */
typedef ug_tensor *(*ug_gc_fn)(ug_ctx *ctx, ug_tensor **in, void *user);
typedef struct {
    double h, atol, rtol;
    int max_elems, skip_kinks;
} ug_gc_opts;
ug_gc_opts ug_gc_default(void);   /* h 5e-3, atol 2e-3, rtol 2e-2, 256 probes, no kink skip */
int ug_gradcheck(const char *name, ug_gc_fn f, void *user, ug_tensor **ins, int nin,
                 ug_gc_opts o);
#endif
