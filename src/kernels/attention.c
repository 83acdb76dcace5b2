/* attention.c — multi-head attention (Vaswani et al. 2017), fused with its softmax.
 *
 * Per batch b and head h (slices q_h, k_h, v_h of shape (T, Dh), scale = 1 / sqrt(Dh)):
 *   S = scale q_h k_h^T,  P = softmax_rows(S) (max subtracted),  out_h = P v_h
 * Backward, row i of the queries at a time:
 *   dv_h += P^T dO,  dP = dO v_h^T,  dS = P * (dP - rowsum(dP * P)),
 *   dq_h += scale dS k_h,  dk_h += scale dS^T q_h.
 * T is small in the U-Net (49 tokens at 7x7), so plain loops parallel over (b, h) beat sgemm
 * calls on 49 x 49 blocks, and each (b, h) writes only its own slices: no races, and the
 * summation order does not depend on the thread count.
 *
 * The dot products of S and dP (q_i . k_j, dO_i . v_j) run with k_h (or v_h) transposed into a
 * per-thread buffer, so that one row's T products advance together along the vector lanes, each
 * summed over d in order from 0 as a plain dot would (the same floats): one dot at a time was a
 * chain of dependent adds, 4.2 % of a W2 training step at about 5 GFLOP/s. The row updates
 * along d carry `omp simd`: at -O2 GCC left them scalar (it would not version the loops for the
 * possible overlap of the rows). */
#include "attention.h"
#include "core/core.h"
#include <math.h>

static inline float dot(const float *a, const float *b, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Floats of the per-thread transposed head (T Dh at most; larger heads take the plain dots). */
#define UG_ATT_TBUF 16384
static _Thread_local float t_headT[UG_ATT_TBUF];

/* The head's T rows of Dh (row stride C) as Dh rows of T in t_headT, or NULL if too large. */
static const float *head_transposed(const float *x, int64_t T, int64_t Dh, int64_t C) {
    if (T * Dh > UG_ATT_TBUF) return NULL;
    for (int64_t j = 0; j < T; j++)
        for (int64_t d = 0; d < Dh; d++) t_headT[d * T + j] = x[j * C + d];
    return t_headT;
}

/* s[j] = a . x_j for the T rows of the head x (row stride C), xt its transpose or NULL: each sum
 * over d in order, as dot's. */
static void dots_row(float *s, const float *a, const float *x, const float *xt, int64_t T,
                     int64_t Dh, int64_t C) {
    if (!xt) {
        for (int64_t j = 0; j < T; j++) s[j] = dot(a, x + j * C, Dh);
        return;
    }
    for (int64_t j = 0; j < T; j++) s[j] = 0.0f;
    for (int64_t d = 0; d < Dh; d++) {
        const float ad = a[d], *r = xt + d * T;
#pragma omp simd
        for (int64_t j = 0; j < T; j++) s[j] += ad * r[j];
    }
}

void ug_k_attention_forward(float *out, float *P, const float *q, const float *k, const float *v,
                            int64_t B, int64_t T, int64_t C, int64_t heads) {
    const int64_t Dh = C / heads;
    const float scale = 1.0f / sqrtf((float)Dh);
#pragma omp parallel for schedule(static) if (B * heads * T * T * Dh >= UG_PAR_MIN)
    for (int64_t bh = 0; bh < B * heads; bh++) {
        const int64_t b = bh / heads, off = b * T * C + (bh % heads) * Dh;
        const float *qh = q + off, *kh = k + off, *vh = v + off;   /* row stride C */
        float *oh = out + off;
        const float *kt = head_transposed(kh, T, Dh, C);
        for (int64_t i = 0; i < T; i++) {
            float *p = P + (bh * T + i) * T;
            float mx = -INFINITY;
            dots_row(p, qh + i * C, kh, kt, T, Dh, C);
            for (int64_t j = 0; j < T; j++) {
                p[j] = scale * p[j];
                if (p[j] > mx) mx = p[j];
            }
            float sum = 0;
            for (int64_t j = 0; j < T; j++) {
                p[j] = expf(p[j] - mx);
                sum += p[j];
            }
            const float inv = 1.0f / sum;
            float *o = oh + i * C;
            for (int64_t d = 0; d < Dh; d++) o[d] = 0.0f;
            for (int64_t j = 0; j < T; j++) {
                p[j] *= inv;
                const float pj = p[j], *vj = vh + j * C;
#pragma omp simd
                for (int64_t d = 0; d < Dh; d++) o[d] += pj * vj[d];
            }
        }
    }
}

void ug_k_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                             const float *q, const float *k, const float *v, const float *P,
                             int64_t B, int64_t T, int64_t C, int64_t heads) {
    const int64_t Dh = C / heads;
    const float scale = 1.0f / sqrtf((float)Dh);
    const int need_ds = dq || dk;
#pragma omp parallel for schedule(static) if (B * heads * T * T * Dh >= UG_PAR_MIN)
    for (int64_t bh = 0; bh < B * heads; bh++) {
        const int64_t b = bh / heads, off = b * T * C + (bh % heads) * Dh;
        const float *qh = q + off, *kh = k + off, *vh = v + off, *doh = dout + off;
        float *ds = scratch + bh * T;   /* dP, then dS, of query row i */
        const float *vt = need_ds ? head_transposed(vh, T, Dh, C) : NULL;
        for (int64_t i = 0; i < T; i++) {
            const float *p = P + (bh * T + i) * T, *doi = doh + i * C;
            if (dv) {
                float *dvh = dv + off;
                for (int64_t j = 0; j < T; j++) {
                    const float pj = p[j];
                    float *dvj = dvh + j * C;
#pragma omp simd
                    for (int64_t d = 0; d < Dh; d++) dvj[d] += pj * doi[d];
                }
            }
            if (!need_ds) continue;
            float rs = 0;
            dots_row(ds, doi, vh, vt, T, Dh, C);
            for (int64_t j = 0; j < T; j++) rs += ds[j] * p[j];
            for (int64_t j = 0; j < T; j++) ds[j] = scale * p[j] * (ds[j] - rs);
            if (dq) {
                float *dqi = dq + off + i * C;
                for (int64_t j = 0; j < T; j++) {
                    const float sj = ds[j], *kj = kh + j * C;
#pragma omp simd
                    for (int64_t d = 0; d < Dh; d++) dqi[d] += sj * kj[d];
                }
            }
            if (dk) {
                const float *qi = qh + i * C;
                float *dkh = dk + off;
                for (int64_t j = 0; j < T; j++) {
                    const float sj = ds[j];
                    float *dkj = dkh + j * C;
#pragma omp simd
                    for (int64_t d = 0; d < Dh; d++) dkj[d] += sj * qi[d];
                }
            }
        }
    }
}
