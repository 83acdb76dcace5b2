/* formulation.h — SPEC sections 1-3 in one place: every diffusion-type model is
 *   x_t = s(t) (x0 + sigma(t) eps),   D(x~; sigma) = c_skip x~ + c_out F(c_in x~; c_noise)
 * (Karras et al. 2022, eq. 4 and Table 1). A formulation fixes s, sigma, the time range and
 * the default training distribution and weighting; a parameterization fixes c_skip, c_out,
 * c_in, c_noise and the regression target of F. All in double precision. */
#ifndef UG_FORMULATION_H
#define UG_FORMULATION_H
#include "unigen.h"

#define UG_FORM_MAX_T 4096

typedef struct ug_form {
    ug_form_kind kind;
    double sigma_data;         /* sd, 0.5 by default */
    double sigma_min, sigma_max;
    /* discrete VP */
    int T;
    double beta[UG_FORM_MAX_T], abar[UG_FORM_MAX_T], log_sigma[UG_FORM_MAX_T];
    /* continuous VP */
    double b_min, b_d, eps_t;
    /* training */
    ug_tsampler_kind tsampler;
    double p_mean, p_std, shift;
} ug_form;

/* 1 if SPEC defines the pair (v needs sigma_data = 1 semantics and a VP-type scaling). */
int ug_param_valid(ug_form_kind f, ug_param_kind p);

/* Fills the defaults of SPEC section 1 (and the DDPM/iDDPM beta tables). */
void ug_form_init(ug_form *f, ug_form_kind kind);

/* s(t), sigma(t), their t-derivatives, and the inverse t(sigma). For discrete VP, t is the
 * index and non-integers interpolate log sigma linearly between neighbours (k-diffusion's
 * DiscreteSchedule), so t(sigma) is exact at the grid. */
double ug_form_s(const ug_form *f, double t);
double ug_form_sigma(const ug_form *f, double t);
double ug_form_ds_dt(const ug_form *f, double t);
double ug_form_dsigma_dt(const ug_form *f, double t);
double ug_form_t(const ug_form *f, double sigma);
/* s as a function of sigma (VP: 1/sqrt(1+sigma^2), FM: 1/(1+sigma), else 1). */
double ug_form_s_of_sigma(const ug_form *f, double sigma);

/* Preconditioning (SPEC section 2). F is trained to regress a x0 + b eps, the target written
 * in closed form so that small sigma loses no precision: a = (1 - c_skip)/c_out,
 * b = -c_skip sigma / c_out. */
typedef struct { double c_skip, c_out, c_in, c_noise, a, b; } ug_precond;
ug_precond ug_precond_at(const ug_form *f, ug_param_kind p, double sigma);

/* Training: lambda(sigma) of SPEC section 3, and the weight on ||F - target||^2 it implies,
 * lambda c_out^2 (= 1 for every natural pair). */
double ug_form_lambda(const ug_form *f, double sigma);
/* Maps uniforms/normals to a training sigma (u in (0,1), n ~ N(0,1)), honouring tsampler,
 * p_mean, p_std and shift. Discrete VP with the default sampler returns the grid sigma of
 * t = floor(u T). */
double ug_form_train_sigma(const ug_form *f, double u, double n);
/* SD3 timestep shift t' = a t / (1 + (a - 1) t). */
double ug_shift_t(double t, double a);
#endif
