/* guidance.h — classifier-free and classifier guidance as a denoiser (see guidance.c). */
#ifndef UG_GUIDANCE_H
#define UG_GUIDANCE_H
#include "diffusion/sampler.h"

typedef struct ug_guided {
    ug_denoiser cond;      /* D(x; sigma, y) */
    ug_denoiser uncond;    /* D(x; sigma, null); fn NULL: no classifier-free guidance */
    double w;              /* classifier-free scale (1: none) */
    /* grad_x log p(y | x, sigma) on n points (n, d); NULL: no classifier guidance */
    ug_status (*grad_logp)(void *self, int64_t n, const double *x, double sigma, double *grad);
    void *grad_self;
    double s;              /* classifier scale */
    double *scratch;       /* grown once to the largest call, reused every step */
    int64_t scratch_n;
} ug_guided;

ug_denoiser ug_guided_denoiser(ug_guided *g);
void ug_guided_free(ug_guided *g);
#endif
