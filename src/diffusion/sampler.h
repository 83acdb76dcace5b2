/* sampler.h — samplers and time grids (SPEC section 4). Samplers see a denoiser callback,
 * never a network: D(x~; sigma) on n points of dimension d, in double. The state is kept in
 * double so the analytic mixture reproduces the reference implementations to rounding. */
#ifndef UG_SAMPLER_H
#define UG_SAMPLER_H
#include "diffusion/formulation.h"
#include "unigen.h"

typedef struct ug_denoiser {
    int64_t dim;
    ug_status (*fn)(void *self, int64_t n, const double *x, double sigma, double *out);
    void *self;
} ug_denoiser;

/* The exact denoiser of a mixture (gmm_denoiser.c). */
void ug_gmm_denoise(const ug_gmm *g, const double *x, double sigma, double *out);
ug_denoiser ug_gmm_denoiser(const ug_gmm *g);

typedef enum {
    UG_SAMPLER_EULER, UG_SAMPLER_HEUN, UG_SAMPLER_COUNT
} ug_sampler_kind;

typedef enum {
    UG_SCHED_KARRAS, UG_SCHED_EXPONENTIAL, UG_SCHED_COUNT
} ug_schedule_kind;

typedef struct ug_sampler_cfg {
    ug_sampler_kind sampler;
    ug_schedule_kind schedule;
    int steps;
    double sigma_min, sigma_max, rho;
} ug_sampler_cfg;

const char *ug_sampler_name(ug_sampler_kind k);
int ug_sampler_from_name(const char *name, ug_sampler_kind *out);
const char *ug_schedule_name(ug_schedule_kind k);
int ug_schedule_from_name(const char *name, ug_schedule_kind *out);
/* EDM's defaults: Heun, Karras, 18 steps, 0.002..80, rho 7. */
ug_sampler_cfg ug_sampler_default(void);

/* The noise levels sigma_0 > ... > sigma_{N-1} and the appended sigma_N = 0 (steps + 1 values
 * written to sigmas). */
ug_status ug_sampler_grid(const ug_sampler_cfg *c, double *sigmas);

/* Runs the sampler on n points: x holds (n, d) standard normal noise on entry and the samples
 * on return. *nfe receives the number of denoiser evaluations (per batch). */
ug_status ug_sampler_run(const ug_sampler_cfg *c, const ug_denoiser *dn, int64_t n, double *x,
                         int64_t *nfe);
#endif
