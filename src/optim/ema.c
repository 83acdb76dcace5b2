/* ema.c — exponential moving average of the weights (Polyak & Juditsky 1992; the EMA every
 * diffusion model samples from, Ho et al. 2020): ema = decay ema + (1 - decay) p after each
 * optimizer step, one flat loop over the parameter arena. Starts from the current weights, so
 * after k updates ema_k = decay^k p_0 + (1 - decay) sum_{j=1..k} decay^(k-j) p_j. */
#include "core/core.h"

ug_status ug_ema_init(ug_ema *e, const ug_params *ps, float decay) {
    if (!e) return ug_fail(UG_ERR_INVALID_ARG, "ug_ema_init: ema is NULL");
    memset(e, 0, sizeof *e);
    if (!ps) return ug_fail(UG_ERR_INVALID_ARG, "ug_ema_init: params is NULL");
    const float *p = ug_params_data((ug_params *)ps);
    if (!p)
        return ug_fail(UG_ERR_STATE, "ug_ema_init: parameters are not finalized (call "
                                     "ug_params_finalize before creating the EMA)");
    if (!(decay >= 0.0f && decay <= 1.0f))   /* NaN fails too */
        return ug_fail(UG_ERR_INVALID_ARG, "ug_ema_init: decay must be in [0, 1], found %g",
                       (double)decay);
    int64_t n = ug_params_count(ps);
    e->w = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!e->w)
        return ug_fail(UG_ERR_NOMEM, "ug_ema_init: cannot allocate the EMA copy (%lld floats)",
                       (long long)n);
    memcpy(e->w, p, (size_t)n * sizeof(float));
    e->n = n;
    e->decay = decay;
    return UG_OK;
}

void ug_ema_update(ug_ema *e, const ug_params *ps) {
    int64_t n = ug_params_count(ps);
    UG_CHECK(e->w && e->n == n, "ug_ema_update: EMA made for %lld parameters, given %lld",
             (long long)e->n, (long long)n);
    const float *restrict p = ug_params_data((ug_params *)ps);
    float *restrict w = e->w;
    const float d = e->decay, one_d = (float)(1.0 - (double)e->decay);
#pragma omp parallel for simd schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) w[i] = d * w[i] + one_d * p[i];
}

void ug_ema_swap(ug_ema *e, ug_params *ps) {
    int64_t n = ug_params_count(ps);
    UG_CHECK(e->w && e->n == n, "ug_ema_swap: EMA made for %lld parameters, given %lld",
             (long long)e->n, (long long)n);
    /* Element swap, not pointer swap: parameter tensors are views into the flat buffer. */
    float *restrict p = ug_params_data(ps);
    float *restrict w = e->w;
#pragma omp parallel for simd schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float t = p[i];
        p[i] = w[i];
        w[i] = t;
    }
}

void ug_ema_free(ug_ema *e) {
    if (!e) return;
    free(e->w);
    memset(e, 0, sizeof *e);
}
