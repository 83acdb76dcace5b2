/* norm.c — group norm (Wu & He 2018) and layer norm (Ba et al. 2016) on raw floats.
 *
 * Both normalize contiguous slices: group norm the (C/G, S) block of group g of sample n,
 * layer norm one row of D values. Layer norm is group norm with G = 1 and S = 1 (channel = the
 * position in the row), so one pair of kernels serves both.
 *   forward:  xhat = (x - mean) rstd, rstd = 1 / sqrt(var + eps) (biased var), y = xhat w + b
 *   backward: g = dy w;  dx = rstd (g - mean(g) - xhat mean(g xhat))   (means over the slice)
 *             dw[c] += sum dy xhat,  db[c] += sum dy   (over samples and positions of c)
 * Statistics are two-pass in double: one-pass E[x^2] - E[x]^2 cancels when |mean| >> std. */
#include "norm.h"
#include "core/core.h"
#include <math.h>

/* Slice (n, g) covers channels [g Cg, (g + 1) Cg), each S contiguous values. */
static void norm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                         const float *b, int64_t N, int64_t C, int64_t S, int64_t G, float eps) {
    const int64_t Cg = C / G, M = Cg * S;
#pragma omp parallel for schedule(static) if (N * C * S >= UG_PAR_MIN)
    for (int64_t ng = 0; ng < N * G; ng++) {
        const float *x = inp + ng * M;
        float *y = out + ng * M;
        double sum = 0;
        for (int64_t i = 0; i < M; i++) sum += x[i];
        double mu = sum / (double)M, ss = 0;
        for (int64_t i = 0; i < M; i++) {
            double d = x[i] - mu;
            ss += d * d;
        }
        double rs = 1.0 / sqrt(ss / (double)M + (double)eps);
        float muf = (float)mu, rsf = (float)rs;
        mean[ng] = muf;
        rstd[ng] = rsf;
        int64_t c0 = (ng % G) * Cg;
        for (int64_t j = 0; j < Cg; j++) {
            float scale = w ? rsf * w[c0 + j] : rsf, shift = b ? b[c0 + j] : 0.0f;
            const float *xs = x + j * S;
            float *ys = y + j * S;
            for (int64_t s = 0; s < S; s++) ys[s] = (xs[s] - muf) * scale + shift;
        }
    }
}

static void norm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, const float *mean, const float *rstd, int64_t N,
                          int64_t C, int64_t S, int64_t G) {
    const int64_t Cg = C / G, M = Cg * S;
    const int par = N * C * S >= UG_PAR_MIN;
    if (dinp) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t ng = 0; ng < N * G; ng++) {
            const float *x = inp + ng * M, *dy = dout + ng * M;
            float *dx = dinp + ng * M;
            const float mu = mean[ng], rs = rstd[ng];
            const int64_t c0 = (ng % G) * Cg;
            double sg = 0, sgx = 0;   /* sum g, sum g xhat */
            for (int64_t j = 0; j < Cg; j++) {
                float wc = w ? w[c0 + j] : 1.0f;
                for (int64_t s = 0; s < S; s++) {
                    int64_t i = j * S + s;
                    double gv = (double)dy[i] * wc;
                    sg += gv;
                    sgx += gv * ((x[i] - mu) * rs);
                }
            }
            const float a = (float)(sg / (double)M), c = (float)(sgx / (double)M);
            for (int64_t j = 0; j < Cg; j++) {
                float wc = w ? w[c0 + j] : 1.0f;
                for (int64_t s = 0; s < S; s++) {
                    int64_t i = j * S + s;
                    float xhat = (x[i] - mu) * rs;
                    dx[i] += rs * (dy[i] * wc - a - xhat * c);
                }
            }
        }
    }
    if (dw || db) {
        /* Split over channels so every channel's sums have one owner and a fixed order. */
#pragma omp parallel for schedule(static) if (par)
        for (int64_t c = 0; c < C; c++) {
            double sw = 0, sb = 0;
            for (int64_t n = 0; n < N; n++) {
                const int64_t ng = n * G + c / Cg;
                const float mu = mean[ng], rs = rstd[ng];
                const float *x = inp + (n * C + c) * S, *dy = dout + (n * C + c) * S;
                for (int64_t s = 0; s < S; s++) {
                    sw += (double)dy[s] * ((x[s] - mu) * rs);
                    sb += dy[s];
                }
            }
            if (dw) dw[c] += (float)sw;
            if (db) db[c] += (float)sb;
        }
    }
}

void ug_k_group_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, int64_t N, int64_t C, int64_t S,
                             int64_t G, float eps) {
    norm_forward(out, mean, rstd, inp, w, b, N, C, S, G, eps);
}

void ug_k_group_norm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int64_t N, int64_t C, int64_t S, int64_t G) {
    norm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C, S, G);
}

void ug_k_layer_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, int64_t R, int64_t D, float eps) {
    norm_forward(out, mean, rstd, inp, w, b, R, D, 1, 1, eps);
}

void ug_k_layer_norm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int64_t R, int64_t D) {
    norm_backward(dinp, dw, db, dout, inp, w, mean, rstd, R, D, 1, 1);
}
