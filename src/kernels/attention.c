/* attention.c — multi-head attention (Vaswani et al. 2017), fused with its softmax.
 *
 * Per batch b and head h (slices q_h, k_h, v_h of shape (T, Dh), scale = 1 / sqrt(Dh)):
 *   S = scale q_h k_h^T,  P = softmax_rows(S) (max subtracted),  out_h = P v_h
 * Backward, row i of the queries at a time:
 *   dv_h += P^T dO,  dP = dO v_h^T,  dS = P * (dP - rowsum(dP * P)),
 *   dq_h += scale dS k_h,  dk_h += scale dS^T q_h.
 * T is small in the U-Net (49 tokens at 7x7), so plain loops parallel over (b, h) beat sgemm
 * calls on 49 x 49 blocks, and each (b, h) writes only its own slices: no races, and the
 * summation order does not depend on the thread count. */
#include "attention.h"
#include "core/core.h"
#include <math.h>

static inline float dot(const float *a, const float *b, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
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
        for (int64_t i = 0; i < T; i++) {
            float *p = P + (bh * T + i) * T;
            float mx = -INFINITY;
            for (int64_t j = 0; j < T; j++) {
                p[j] = scale * dot(qh + i * C, kh + j * C, Dh);
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
        for (int64_t i = 0; i < T; i++) {
            const float *p = P + (bh * T + i) * T, *doi = doh + i * C;
            if (dv) {
                float *dvh = dv + off;
                for (int64_t j = 0; j < T; j++) {
                    const float pj = p[j];
                    float *dvj = dvh + j * C;
                    for (int64_t d = 0; d < Dh; d++) dvj[d] += pj * doi[d];
                }
            }
            if (!need_ds) continue;
            float rs = 0;
            for (int64_t j = 0; j < T; j++) {
                ds[j] = dot(doi, vh + j * C, Dh);
                rs += ds[j] * p[j];
            }
            for (int64_t j = 0; j < T; j++) ds[j] = scale * p[j] * (ds[j] - rs);
            if (dq) {
                float *dqi = dq + off + i * C;
                for (int64_t j = 0; j < T; j++) {
                    const float sj = ds[j], *kj = kh + j * C;
                    for (int64_t d = 0; d < Dh; d++) dqi[d] += sj * kj[d];
                }
            }
            if (dk) {
                const float *qi = qh + i * C;
                float *dkh = dk + off;
                for (int64_t j = 0; j < T; j++) {
                    const float sj = ds[j];
                    float *dkj = dkh + j * C;
                    for (int64_t d = 0; d < Dh; d++) dkj[d] += sj * qi[d];
                }
            }
        }
    }
}
