/* util.c — comparisons, test-owned tensors and the finite-difference gradient checker. */
#include "test.h"
#include "core/core.h"
#include "kernels/linear.h"
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>

char *ug_test_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

int ug_test_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ug_test_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ug_test_allclose_f64(const char *what, const double *got, const double *ref, int64_t n,
                         double atol, double rtol) {
    int64_t worst = -1, bad = 0;
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double tol = atol + rtol * fabs(ref[i]);
        double err = fabs(got[i] - ref[i]);
        if (!(err <= tol)) {  /* NaN counts as a failure */
            bad++;
            double ex = isnan(err) ? INFINITY : err - tol;
            if (worst < 0 || ex > worst_excess) { worst = i; worst_excess = ex; }
        }
    }
    if (bad) {
        printf("    %s: %lld of %lld outside atol %g rtol %g; worst [%lld] got %.9g ref %.9g\n",
               what, (long long)bad, (long long)n, atol, rtol, (long long)worst, got[worst],
               ref[worst]);
        return 0;
    }
    return 1;
}

/* The probe: 40 rows of a (40, 96) x (96, 72)^T product on 1 and 2 threads, against the same
 * rows computed 1, 3 and 16 at a time, at every offset. Computed once. */
int ug_test_gemm_rows_invariant(void) {
    static int known = -1;
    if (known >= 0) return known;
    enum { M = 40, N = 72, K = 96 };
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * N * K),
          *ref = malloc(sizeof(float) * M * N), *c = malloc(sizeof(float) * M * N);
    ug_rng r = ug_rng_make(77, 0, 0);
    ug_rng_normal(&r, a, M * K);
    ug_rng_normal(&r, b, N * K);
    int old = ug_get_threads(), same = 1;
    ug_set_threads(1);
    ug_k_gemm(0, 1, M, N, K, a, b, 0.0f, ref);
    for (int threads = 1; threads <= 2; threads++) {
        ug_set_threads(threads);
        int chunks[4] = {M, 1, 3, 16};
        for (int q = 0; q < 4; q++) {   /* each chunking compared on its own */
            for (int i0 = 0; i0 < M; i0 += chunks[q]) {
                int m = M - i0 < chunks[q] ? M - i0 : chunks[q];
                ug_k_gemm(0, 1, m, N, K, a + i0 * K, b, 0.0f, c + i0 * N);
            }
            same &= !memcmp(c, ref, sizeof(float) * M * N);
        }
    }
    ug_set_threads(old);
    free(a); free(b); free(ref); free(c);
    known = same;
    if (!same)
        printf("    (this sgemm's rows depend on their place in the call: batch invariance "
               "checked to float rounding, not bitwise)\n");
    return known;
}

int ug_test_same_rows_f64(const char *what, const double *got, const double *ref, int64_t n,
                          double atol, double rtol) {
    if (ug_test_gemm_rows_invariant()) {
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += memcmp(&got[i], &ref[i], sizeof *got) != 0;
        if (bad) printf("    %s: %lld of %lld values not bit-identical\n", what, (long long)bad, (long long)n);
        return bad == 0;
    }
    return ug_test_allclose_f64(what, got, ref, n, atol, rtol);
}

int ug_test_same_rows(const char *what, const float *got, const float *ref, int64_t n,
                      double atol, double rtol) {
    if (ug_test_gemm_rows_invariant()) {
        int ok = !memcmp(got, ref, (size_t)n * sizeof *got);
        if (!ok) printf("    %s: not bit-identical\n", what);
        return ok;
    }
    return ug_test_allclose(what, got, ref, n, atol, rtol);
}

int ug_test_allclose(const char *what, const float *got, const float *ref, int64_t n,
                     double atol, double rtol) {
    double *g = malloc((size_t)(n ? n : 1) * sizeof *g), *r = malloc((size_t)(n ? n : 1) * sizeof *r);
    for (int64_t i = 0; i < n; i++) { g[i] = got[i]; r[i] = ref[i]; }
    int ok = ug_test_allclose_f64(what, g, r, n, atol, rtol);
    free(g);
    free(r);
    return ok;
}

ug_tensor *ug_test_tensor(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi) {
    ug_tensor *t = calloc(1, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = ug_shape_numel(ndim, shape);
    size_t n = (size_t)(t->numel ? t->numel : 1);
    t->data = malloc(n * sizeof(float));
    t->grad = calloc(n, sizeof(float));
    t->requires_grad = 1;
    ug_rng r = ug_rng_make(seed, 0xC0FFEE, 0);
    ug_rng_uniform(&r, t->data, t->numel);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = lo + (hi - lo) * t->data[i];
    return t;
}

void ug_test_tensor_free(ug_tensor *t) {
    if (!t) return;
    free(t->data);
    free(t->grad);
    free(t);
}

ug_gc_opts ug_gc_default(void) {
    ug_gc_opts o = {5e-3, 2e-3, 2e-2, 256, 0};
    return o;
}

static double eval_dot(ug_ctx *ctx, ug_gc_fn f, void *user, ug_tensor **ins, const float *R) {
    ug_ctx_reset(ctx);
    int old = ug_ctx_set_grad(ctx, 0);
    ug_tensor *out = f(ctx, ins, user);
    ug_ctx_set_grad(ctx, old);
    double s = 0;
    for (int64_t i = 0; i < out->numel; i++) s += (double)out->data[i] * (double)R[i];
    return s;
}

int ug_gradcheck(const char *name, ug_gc_fn f, void *user, ug_tensor **ins, int nin,
                 ug_gc_opts o) {
    ug_ctx *ctx;
    if (ug_ctx_create(&ctx, 0) != UG_OK) return 0;
    /* Analytic gradients of sum(out * R). */
    for (int k = 0; k < nin; k++)
        if (ins[k]->requires_grad) memset(ins[k]->grad, 0, (size_t)ins[k]->numel * sizeof(float));
    ug_tensor *out = f(ctx, ins, user);
    int64_t nout = out->numel;
    float *R = malloc((size_t)(nout ? nout : 1) * sizeof *R);
    ug_rng rr = ug_rng_make(1234, 77, 0);
    ug_rng_normal(&rr, R, nout);
    int ok = 1;
    if (ug_backward_seed(ctx, out, R) != UG_OK) {
        printf("    %s: backward failed: %s\n", name, ug_last_error());
        ok = 0;
    }
    float **an = calloc((size_t)nin, sizeof *an);
    for (int k = 0; k < nin && ok; k++) {
        if (!ins[k]->requires_grad) continue;
        an[k] = malloc((size_t)ins[k]->numel * sizeof(float));
        memcpy(an[k], ins[k]->grad, (size_t)ins[k]->numel * sizeof(float));
    }
    int checked = 0, skipped = 0;
    for (int k = 0; k < nin && ok; k++) {
        ug_tensor *t = ins[k];
        if (!t->requires_grad) continue;
        int64_t n = t->numel;
        int64_t stride = (o.max_elems > 0 && n > o.max_elems) ? (n + o.max_elems - 1) / o.max_elems : 1;
        for (int64_t j = 0; j < n; j += stride) {
            float x0 = t->data[j];
            float hp = x0 + (float)o.h, hm = x0 - (float)o.h;
            double dh = (double)hp - (double)hm;   /* the step actually taken in float */
            t->data[j] = hp;
            double fp = eval_dot(ctx, f, user, ins, R);
            t->data[j] = hm;
            double fm = eval_dot(ctx, f, user, ins, R);
            t->data[j] = x0;
            if (o.skip_kinks) {
                double f0 = eval_dot(ctx, f, user, ins, R);
                double sp = (fp - f0) / ((double)hp - x0), sm = (f0 - fm) / (x0 - (double)hm);
                if (fabs(sp - sm) > 0.05 * (1 + fabs(sp) + fabs(sm))) { skipped++; continue; }
            }
            double num = (fp - fm) / dh, a = an[k][j];
            double tol = o.atol + o.rtol * fmax(fabs(num), fabs(a));
            checked++;
            if (!(fabs(num - a) <= tol)) {
                printf("    %s: input %d index %lld: analytic %.7g numeric %.7g (tol %.3g)\n",
                       name, k, (long long)j, a, num, tol);
                ok = 0;
                break;
            }
        }
    }
    if (ok && checked == 0) {
        printf("    %s: nothing was checked (%d skipped)\n", name, skipped);
        ok = 0;
    }
    for (int k = 0; k < nin; k++) free(an[k]);
    free(an);
    free(R);
    ug_ctx_free(ctx);
    return ok;
}

int ug_test_sh(char *out, size_t outlen, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = 0;
    while (fgetc(p) != EOF) {}
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *ug_test_cli(void) {
    const char *b = getenv("UG_CLI");
    return b && *b ? b : "../build/unigen";
}

void ug_test_arena_steady(ug_model *m, const float *x, int64_t B, int steps, int settle,
                          int64_t *at_settle, int64_t *at_end) {
    ug_ctx *ctx;
    *at_settle = *at_end = -1;
    if (ug_ctx_create(&ctx, 0)) return;
    for (int s = 0; s < steps; s++) {
        ug_tensor *loss;
        ug_model_set_step(m, s);
        if (ug_model_loss(m, ctx, x, B, NULL, 0, 0, &loss)) break;
        ug_params_zero_grad(ug_model_params(m));
        if (ug_backward(ctx, loss)) break;
        ug_ctx_reset(ctx);
        if (s == settle) *at_settle = ug_ctx_arena_mallocs(ctx);
        if (s == steps - 1) *at_end = ug_ctx_arena_mallocs(ctx);
    }
    ug_ctx_free(ctx);
}
