/* sampler_impl.h — what the sampler files share (not installed): one run's state, the counted
 * denoiser call, per-sample noise streams, and each sampler's entry point. */
#ifndef UG_SAMPLER_IMPL_H
#define UG_SAMPLER_IMPL_H
#include "diffusion/sampler.h"

typedef struct ug_smp {
    const ug_sampler_cfg *c;
    const ug_denoiser *dn;
    const ug_grid *g;
    int64_t n, d, nd;
    int64_t *nfe;
    double eta;       /* resolved: the sampler's default when cfg.eta is NAN */
    float *zbuf;      /* (n, d) scratch for the float normals of ug_rng_normal_rows */
} ug_smp;

/* D(x; sigma) in sigma-space, counted in *nfe. */
ug_status ug_smp_denoise(ug_smp *s, const double *x, double sigma, double *out);
/* z (n, d) standard normal: row i from stream first_stream + i, block 64 * step + k. */
void ug_smp_normal(ug_smp *s, int step, int k, double *z);
/* k buffers of (n, d) doubles in one block (free the first); NULL when out of memory. */
double *ug_smp_alloc(const ug_smp *s, int k);
ug_status ug_smp_nomem(const ug_smp *s);

/* The discrete VP table a grid and ddim/ddpm use: abar (T values). */
const double *ug_sampler_abar_table(const ug_sampler_cfg *c, int *T, double *buf);
/* diffusers' DDPM-linear float32 alphas_cumprod (T = 1000), widened to double. */
void ug_diffusers_abar(double abar[1000]);

/* sampler_kdiff.c */
ug_status ug_run_euler_a(ug_smp *s, double *x);
ug_status ug_run_dpm2(ug_smp *s, double *x);
ug_status ug_run_lms(ug_smp *s, double *x);
ug_status ug_run_dpmpp_2s_a(ug_smp *s, double *x);
ug_status ug_run_dpmpp_2m(ug_smp *s, double *x);
ug_status ug_run_dpmpp_2m_sde(ug_smp *s, double *x);
ug_status ug_run_dpmpp_3m_sde(ug_smp *s, double *x);
/* The order-`order` Adams coefficient: integral over [t[i], t[i+1]] of the Lagrange basis
 * polynomial j on the nodes t[i], t[i-1], ..., t[i-order+1], in closed form. */
double ug_lms_coeff(int order, const double *t, int i, int j);
/* sampler_vp.c */
ug_status ug_run_ddim(ug_smp *s, double *x);
ug_status ug_run_ddpm(ug_smp *s, double *x);
/* sampler_fm.c */
ug_status ug_run_fm(ug_smp *s, double *x);
#endif
