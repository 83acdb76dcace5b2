/* schedule.c — learning-rate schedules, a pure function of the step (so a resumed run needs only
 * the step counter). For step s (negative s counts as 0), W = warmup_steps, T = total_steps:
 *   warm-up (every kind, when W > 0):  s < W  ->  base_lr (s + 1) / W
 *     (the first step already moves, and step W - 1 reaches base_lr exactly)
 *   constant, warmup:                  s >= W ->  base_lr
 *     (warmup is constant after its ramp; the two names exist for the CLI's sake)
 *   cosine (Loshchilov & Hutter 2017, SGDR without restarts):
 *                                      s >= W ->  min_lr + (base_lr - min_lr)(1 + cos(pi q)) / 2,
 *     q = (s - W) / (T - W) clamped to [0, 1]; q = 1 (min_lr) when T <= W. */
#include "core/core.h"
#include <math.h>

static const char *const k_lr_names[UG_LR_COUNT] = {
    [UG_LR_CONSTANT] = "constant", [UG_LR_WARMUP] = "warmup", [UG_LR_COSINE] = "cosine"};

const char *ug_lr_name(ug_lr_kind k) {
    return (unsigned)k < UG_LR_COUNT ? k_lr_names[k] : "unknown";
}

int ug_lr_from_name(const char *name, ug_lr_kind *out) {
    if (!name) return -1;
    for (int k = 0; k < UG_LR_COUNT; k++)
        if (strcmp(name, k_lr_names[k]) == 0) {
            if (out) *out = (ug_lr_kind)k;
            return 0;
        }
    return -1;
}

float ug_lr_at(const ug_lr_schedule *s, int64_t step) {
    const double base = s->base_lr;
    const int64_t W = s->warmup_steps > 0 ? s->warmup_steps : 0;
    if (step < 0) step = 0;
    if (step < W) return (float)(base * (double)(step + 1) / (double)W);
    if (s->kind != UG_LR_COSINE) return s->base_lr;
    const double lo = s->min_lr;
    const int64_t span = s->total_steps - W;
    double q = span > 0 ? (double)(step - W) / (double)span : 1.0;
    if (q > 1.0) q = 1.0;
    return (float)(lo + 0.5 * (base - lo) * (1.0 + cos(M_PI * q)));
}
