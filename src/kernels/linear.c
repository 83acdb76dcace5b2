/* linear.c — fully connected layers as OpenBLAS sgemm calls. sgemm already runs on the shared
 * OpenMP pool; the bias is folded in by pre-filling the output and calling sgemm with beta = 1.
 * The untaped MLP's feature-major layers (ug_k_fm_*) and MADE's prefix layers are below. */
#include "linear.h"
#include "conv_simd.h"
#include "vmath.h"
#include "core/core.h"
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* c (M, N) with leading dimensions: the one call to OpenBLAS's sgemm (the prefix linear's panels
 * are sub-blocks of larger matrices). */
static void sgemm_ld(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0) {
        if (beta == 0)
            for (int64_t i = 0; i < M; i++) memset(c + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, 1.0f, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

void ug_k_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *a, const float *b,
               float beta, float *c) {
    sgemm_ld(ta, tb, M, N, K, a, ta ? M : K, b, tb ? K : N, beta, c, N);
}

/* The forward of a large layer with no more rows than outputs splits the outputs among the
 * threads itself, one single-threaded sgemm each on its block of w's rows (OpenBLAS's own split
 * of such a product synchronizes inside it). First the batch was split (each thread packing all
 * of w): W4 (200 x 1000 -> 1000 layers) 5.02 / 5.09 -> 5.51 / 5.63 steps/s in one A/B, 5.89 /
 * 5.89 / 5.79 -> 5.94 / 6.01 / 6.22 in another (bench/NOTES.md, session 12); the outputs' split
 * packs half of w a thread, 3-7 % faster on those GEMMs (session 15). With more rows than
 * outputs (W1: 1024 x 256 -> 256) the batch split was slower (143 / 134 / 114 -> 133 / 101 /
 * 108 steps/s), so those keep OpenBLAS's split. */
#define UG_LINEAR_SPLIT_MIN ((int64_t)1 << 22)

void ug_k_linear_forward(float *out, const float *inp, const float *w, const float *bias,
                         int64_t N, int64_t Din, int64_t O) {
    if (N * Din * O >= UG_LINEAR_SPLIT_MIN && N >= 64 && O >= N && ug_get_threads() > 1) {
#pragma omp parallel
        {
            /* Blocks of whole 16-column panels (the kernel's width), the last takes the rest. */
            int nt = ug_omp_nthreads(), id = ug_omp_tid();
            int64_t o0 = O * id / nt / 16 * 16, o1 = id == nt - 1 ? O : O * (id + 1) / nt / 16 * 16;
            if (bias && o1 > o0)
                for (int64_t n = 0; n < N; n++)
                    memcpy(out + n * O + o0, bias + o0, (size_t)(o1 - o0) * sizeof(float));
            sgemm_ld(0, 1, N, o1 - o0, Din, inp, Din, w + o0 * Din, Din, bias ? 1.0f : 0.0f,
                     out + o0, O);
        }
        return;
    }
    if (bias) {
#pragma omp parallel for schedule(static) if (N * O >= UG_PAR_MIN)
        for (int64_t n = 0; n < N; n++) memcpy(out + n * O, bias, (size_t)O * sizeof(float));
    }
    ug_k_gemm(0, 1, N, O, Din, inp, w, bias ? 1.0f : 0.0f, out);
}

/* Multiply-adds of one backward GEMM above which the pair runs side by side. */
#define UG_LINEAR_PAIR_MIN ((int64_t)1 << 22)

void ug_k_linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                          const float *inp, const float *w, int64_t N, int64_t Din, int64_t O,
                          unsigned add) {
    /* beta 0: sgemm writes its output without reading it */
    const float bx = add & UG_ADD_DX ? 1.0f : 0.0f, bw = add & UG_ADD_DW ? 1.0f : 0.0f;
    /* Two threads and both gradients of a large layer: the two GEMMs (equal FLOPs) run side by
     * side, one sgemm per thread (OpenBLAS's OpenMP build runs single-threaded inside a parallel
     * region), instead of one after the other on both threads: no synchronisation or partition
     * losses inside each sgemm (bench/NOTES.md, session 8). */
    if (dinp && dw && ug_get_threads() == 2 && N * Din * O >= UG_LINEAR_PAIR_MIN) {
#pragma omp parallel num_threads(2)
        {
            /* A team of one (called inside another parallel region: no nesting) does both. */
            int nt = ug_omp_nthreads(), id = ug_omp_tid();
            if (id == 0) ug_k_gemm(0, 0, N, Din, O, dout, w, bx, dinp);
            if (id == nt - 1) ug_k_gemm(1, 0, O, Din, N, dout, inp, bw, dw);
        }
    } else {
        if (dinp) ug_k_gemm(0, 0, N, Din, O, dout, w, bx, dinp);
        if (dw) ug_k_gemm(1, 0, O, Din, N, dout, inp, bw, dw);
    }
    if (dbias) {
        const int64_t n0 = add & UG_ADD_DB ? 0 : 1;   /* written: the first row is the start */
        /* Column sums: split the columns across threads, each sums its slice over all rows. */
#pragma omp parallel if (N * O >= UG_PAR_MIN)
        {
#ifdef _OPENMP
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
#else
            int nt = 1, id = 0;
#endif
            int64_t lo = O * id / nt, hi = O * (id + 1) / nt;
            if (n0)
                for (int64_t o = lo; o < hi; o++) dbias[o] = N > 0 ? dout[o] : 0.0f;
            for (int64_t n = n0; n < N; n++) {
                const float *row = dout + n * O;
                for (int64_t o = lo; o < hi; o++) dbias[o] += row[o];
            }
        }
    }
}

/* ---------------------------------------------------------------- feature-major layers
 * The direct convolution's register block (conv_simd.h) with one tap: DB_O outputs x DB_P
 * columns, the weights broadcast, the columns loaded as vectors. Column strips outer, output
 * blocks inner: a strip of x (K x DB_P floats) stays in L1 while every block of W passes. */
int64_t ug_k_fm_cols(int64_t B) { return round_up(B, DB_P); }
int64_t ug_k_fm_packed_size(int64_t O, int64_t K) { return round_up(O, DB_O) * K; }

/* wpk[ob][k][j] = w[ob + j][k] (zero past O). */
void ug_k_fm_pack(float *wpk, const float *w, int64_t ldw, int64_t O, int64_t K) {
    for (int64_t ob = 0; ob < O; ob += DB_O)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < DB_O; j++)
                wpk[ob * K + k * DB_O + j] = ob + j < O ? w[(ob + j) * ldw + k] : 0.0f;
}

/* *v = SiLU(*v) (by pointer: a vector returned by value changes the ABI where the build has
 * no vector registers of its width, as LOADV). */
static inline __attribute__((always_inline)) void fm_silu(ug_vf *v) {
#if defined(__AVX512F__) && VW == 16
    *v = (ug_vf)ug_siluf_v16((__m512)*v);
#else
    float t[VW];
    memcpy(t, v, sizeof t);
    for (int l = 0; l < VW; l++) t[l] = ug_siluf(t[l]);
    memcpy(v, t, sizeof t);
#endif
}

void ug_k_fm_forward(float *y, const float *x, int64_t Bp, const float *wpk, const float *b,
                     const float *add, int64_t K, int64_t O, int silu) {
#pragma omp parallel for schedule(static) if (Bp > DB_P && K * O * Bp >= ((int64_t)1 << 22))
    for (int64_t c0 = 0; c0 < Bp; c0 += DB_P)
        for (int64_t ob = 0; ob < O; ob += DB_O) {
            ug_vf a[DB_O][NV];
            block_zero(a);
            const float *wk = wpk + ob * K, *xk = x + c0;
            for (int64_t k = 0; k < K; k++, wk += DB_O, xk += Bp) {
                ug_vf xv[NV];
                block_load(xv, xk);
                block_fma(a, wk, xv);
            }
            for (int64_t j = 0; j < DB_O && ob + j < O; j++) {
                const int64_t at = (ob + j) * Bp + c0;
                ug_vf bj = {0};
                bj += b ? b[ob + j] : 0.0f;
                for (int v = 0; v < NV; v++) {
                    ug_vf t = a[j][v], r;
                    if (b) t += bj;
                    if (add) {
                        LOADV(r, add + at + v * VW);
                        t += r;
                    }
                    if (silu) fm_silu(&t);
                    memcpy(y + at + v * VW, &t, sizeof t);
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

/* ---------------------------------------------------------------- prefix (staircase) linear */
/* Panels of at least this many rows (the GEMMs of thinner ones run far below the kernel's rate). */
#define UG_PREFIX_MIN_ROWS 48

void ug_k_prefix_plan(ug_prefix_plan *pl, const int32_t *len, int64_t O) {
    int64_t np = O / UG_PREFIX_MIN_ROWS;
    np = np < 1 ? 1 : np > UG_PREFIX_MAXP ? UG_PREFIX_MAXP : np;
    pl->np = (int)np;
    for (int p = 0; p <= pl->np; p++) pl->r0[p] = O * p / np;
    for (int p = 0; p < pl->np; p++) pl->k[p] = pl->r0[p + 1] > pl->r0[p] ? len[pl->r0[p + 1] - 1] : 0;
}

int64_t ug_k_prefix_macs(const ug_prefix_plan *pl) {
    int64_t s = 0;
    for (int p = 0; p < pl->np; p++) s += (pl->r0[p + 1] - pl->r0[p]) * pl->k[p];
    return s;
}

/* Panels to threads, largest first to the least loaded (the same answer on every thread). */
static void prefix_owner(const ug_prefix_plan *pl, int nt, int *owner) {
    int64_t load[64] = {0}, cost[UG_PREFIX_MAXP];
    int done[UG_PREFIX_MAXP] = {0};
    nt = nt < 1 ? 1 : nt > 64 ? 64 : nt;
    for (int p = 0; p < pl->np; p++) cost[p] = (pl->r0[p + 1] - pl->r0[p]) * pl->k[p];
    for (int i = 0; i < pl->np; i++) {
        int best = -1, t = 0;
        for (int p = 0; p < pl->np; p++)
            if (!done[p] && (best < 0 || cost[p] > cost[best])) best = p;
        for (int u = 1; u < nt; u++)
            if (load[u] < load[t]) t = u;
        done[best] = 1;
        owner[best] = t;
        load[t] += cost[best];
    }
}

/* Work (multiply-adds) above which the panels are shared out among the threads, each running
 * single-threaded GEMMs (OpenBLAS's OpenMP build does inside a parallel region). */
#define UG_PREFIX_PAR_MIN ((int64_t)1 << 20)

/* The rows are gathered from and scattered to in a random column order, which defeats the
 * hardware prefetcher: with the gather straight from memory the loads stalled (5 cycles an
 * entry, a fifth of a 1 x 8000 MADE step). So a row is first copied in order into a per-thread
 * buffer that stays in L1/L2, and gathered from (or scattered into, then copied back) there. */
#define UG_PREFIX_ROWBUF 16384
static _Thread_local float t_rowbuf[UG_PREFIX_ROWBUF];

/* Columns in w's own order (a natural-order MADE's inputs, its deterministic degrees): the rows
 * are plain copies and adds. */
static int is_identity(const int32_t *cols, int64_t n) {
    for (int64_t c = 0; c < n; c++)
        if (cols[c] != c) return 0;
    return 1;
}

void ug_k_prefix_pack(float *wp, const float *w, int64_t Din, const int32_t *rows,
                      const int32_t *cols, const int32_t *len, const ug_prefix_plan *pl) {
    const int ident = is_identity(cols, Din);
#pragma omp parallel if (pl->r0[pl->np] * Din >= UG_PAR_MIN)
    for (int p = 0; p < pl->np; p++) {
        int64_t k = pl->k[p];
#pragma omp for schedule(static) nowait
        for (int64_t r = pl->r0[p]; r < pl->r0[p + 1]; r++) {
            const float *src = w + (int64_t)rows[r] * Din;
            float *dst = wp + r * Din;
            int64_t l = len[r];
            if (ident) {
                memcpy(dst, src, (size_t)l * sizeof(float));
            } else {
                if (Din <= UG_PREFIX_ROWBUF) {
                    memcpy(t_rowbuf, src, (size_t)Din * sizeof(float));
                    src = t_rowbuf;
                }
                for (int64_t c = 0; c < l; c++) dst[c] = src[cols[c]];
            }
            for (int64_t c = l; c < k; c++) dst[c] = 0.0f;
        }
    }
}

void ug_k_prefix_forward(float *y, const float *x, const float *wp, const float *bias,
                         const int32_t *rows, int64_t N, int64_t Din, int64_t O,
                         const ug_prefix_plan *pl) {
    if (bias) {
#pragma omp parallel for schedule(static) if (N * O >= UG_PAR_MIN)
        for (int64_t n = 0; n < N; n++)
            for (int64_t r = 0; r < O; r++) y[n * O + r] = bias[rows[r]];
    }
#pragma omp parallel if (N * ug_k_prefix_macs(pl) >= UG_PREFIX_PAR_MIN)
    {
        int owner[UG_PREFIX_MAXP], id = ug_omp_tid();
        prefix_owner(pl, ug_omp_nthreads(), owner);
        for (int p = 0; p < pl->np; p++) {
            int64_t r0 = pl->r0[p];
            if (owner[p] == id)
                sgemm_ld(0, 1, N, pl->r0[p + 1] - r0, pl->k[p], x, Din, wp + r0 * Din, Din,
                         bias ? 1.0f : 0.0f, y + r0, O);
        }
    }
}

void ug_k_prefix_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                          const float *wp, float *dwp, const int32_t *rows, const int32_t *cols,
                          const int32_t *len, int64_t N, int64_t Din, int64_t O,
                          const ug_prefix_plan *pl) {
    /* dx: every thread its share of the batch through all the panels (the panels' columns of dx
     * overlap); dw and dbias: whole panels, each scattered back to w's layout as it is done. */
    const int ident = dw ? is_identity(cols, Din) : 0;
#pragma omp parallel if (N * ug_k_prefix_macs(pl) >= UG_PREFIX_PAR_MIN)
    {
        int owner[UG_PREFIX_MAXP], id = ug_omp_tid(), nt = ug_omp_nthreads();
        prefix_owner(pl, nt, owner);
        if (dx) {
            int64_t n0 = N * id / nt, n1 = N * (id + 1) / nt;
            for (int p = 0; p < pl->np && n1 > n0; p++) {
                int64_t r0 = pl->r0[p];
                sgemm_ld(0, 0, n1 - n0, pl->k[p], pl->r0[p + 1] - r0, dy + n0 * O + r0, O,
                         wp + r0 * Din, Din, 1.0f, dx + n0 * Din, Din);
            }
        }
        for (int p = 0; p < pl->np; p++) {
            int64_t r0 = pl->r0[p], r1 = pl->r0[p + 1];
            if (owner[p] != id) continue;
            if (dw) {
                sgemm_ld(1, 0, r1 - r0, pl->k[p], N, dy + r0, O, x, Din, 0.0f, dwp + r0 * Din, Din);
                for (int64_t r = r0; r < r1; r++) {
                    float *g = dw + (int64_t)rows[r] * Din, *acc = g;
                    const float *s = dwp + r * Din;
                    int64_t l = len[r];
                    if (ident) {
#pragma omp simd
                        for (int64_t c = 0; c < l; c++) g[c] += s[c];
                        continue;
                    }
                    if (Din <= UG_PREFIX_ROWBUF) {
                        memcpy(t_rowbuf, g, (size_t)Din * sizeof(float));
                        acc = t_rowbuf;
                    }
                    for (int64_t c = 0; c < l; c++) acc[cols[c]] += s[c];
                    if (acc != g) memcpy(g, t_rowbuf, (size_t)Din * sizeof(float));
                }
            }
            if (dbias) {
                for (int64_t c0 = r0; c0 < r1; c0 += 256) {
                    int64_t c1 = r1 - c0 < 256 ? r1 : c0 + 256;
                    float acc[256] = {0};
                    for (int64_t n = 0; n < N; n++) {
                        const float *row = dy + n * O;
                        for (int64_t r = c0; r < c1; r++) acc[r - c0] += row[r];
                    }
                    for (int64_t r = c0; r < c1; r++) dbias[rows[r]] += acc[r - c0];
                }
            }
        }
    }
}
