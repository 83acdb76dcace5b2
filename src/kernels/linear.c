/* linear.c — fully connected layers as OpenBLAS sgemm calls. sgemm already runs on the shared
 * OpenMP pool; the bias is folded in by pre-filling the output and calling sgemm with beta = 1. */
#include "linear.h"
#include "core/core.h"
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void ug_k_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *a, const float *b,
               float beta, float *c) {
    if (M == 0 || N == 0) return;
    if (K == 0) {
        if (beta == 0) memset(c, 0, (size_t)(M * N) * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, 1.0f, a, ta ? (int)M : (int)K, b, tb ? (int)K : (int)N,
                beta, c, (int)N);
}

void ug_k_linear_forward(float *out, const float *inp, const float *w, const float *bias,
                         int64_t N, int64_t Din, int64_t O) {
    if (bias) {
#pragma omp parallel for schedule(static) if (N * O >= UG_PAR_MIN)
        for (int64_t n = 0; n < N; n++) memcpy(out + n * O, bias, (size_t)O * sizeof(float));
    }
    ug_k_gemm(0, 1, N, O, Din, inp, w, bias ? 1.0f : 0.0f, out);
}

/* Multiply-adds of one backward GEMM above which the pair runs side by side. */
#define UG_LINEAR_PAIR_MIN ((int64_t)1 << 22)

void ug_k_linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                          const float *inp, const float *w, int64_t N, int64_t Din, int64_t O) {
    /* Two threads and both gradients of a large layer: the two GEMMs (equal FLOPs) run side by
     * side, one sgemm per thread (OpenBLAS's OpenMP build runs single-threaded inside a parallel
     * region), instead of one after the other on both threads: no synchronisation or partition
     * losses inside each sgemm (bench/NOTES.md, session 8). */
    if (dinp && dw && ug_get_threads() == 2 && N * Din * O >= UG_LINEAR_PAIR_MIN) {
#pragma omp parallel num_threads(2)
        {
            /* A team of one (called inside another parallel region: no nesting) does both. */
            int nt = ug_omp_nthreads(), id = ug_omp_tid();
            if (id == 0) ug_k_gemm(0, 0, N, Din, O, dout, w, 1.0f, dinp);
            if (id == nt - 1) ug_k_gemm(1, 0, O, Din, N, dout, inp, 1.0f, dw);
        }
    } else {
        if (dinp) ug_k_gemm(0, 0, N, Din, O, dout, w, 1.0f, dinp);
        if (dw) ug_k_gemm(1, 0, O, Din, N, dout, inp, 1.0f, dw);
    }
    if (dbias) {
        /* Column sums: split the columns across threads, each sums its slice over all rows. */
#pragma omp parallel if (N * O >= UG_PAR_MIN)
        {
#ifdef _OPENMP
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
#else
            int nt = 1, id = 0;
#endif
            int64_t lo = O * id / nt, hi = O * (id + 1) / nt;
            for (int64_t n = 0; n < N; n++) {
                const float *row = dout + n * O;
                for (int64_t o = lo; o < hi; o++) dbias[o] += row[o];
            }
        }
    }
}

void ug_k_mask_mul(float *out, const float *w, const float *mask, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t j = 0; j < n; j++) out[j] = w[j] * mask[j];
}

void ug_k_mask_inplace(float *dw, const float *mask, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t j = 0; j < n; j++) dw[j] *= mask[j];
}
