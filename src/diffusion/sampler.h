/* sampler.h — samplers and time grids (SPEC section 4). Samplers see a denoiser callback,
 * never a network: D(x~; sigma) on n points of dimension d, in double. The state is kept in
 * double so the analytic mixture reproduces the reference implementations (k-diffusion,
 * NVlabs/edm, diffusers) to rounding; tests/ref/samplers/README.md lists what is copied.
 *
 * Where each formula lives:
 *   grids.c          every time grid (karras, exponential, vp, ve, linear, iddpm, leading,
 *                    trailing, linspace, fm, user), names, defaults, the diffusers float32 tables
 *   sampler.c        ug_sampler_run: set-up, noise streams, and the EDM family in a general time
 *                    variable (euler, heun, edm-sde = NVlabs/edm ablation_sampler), em, pc
 *   sampler_kdiff.c  k-diffusion's sigma-space solvers: euler-a, dpm2, lms, dpmpp-2s-a,
 *                    dpmpp-2m, dpmpp-2m-sde, dpmpp-3m-sde
 *   sampler_vp.c     discrete VP: ddim (Song, Meng, Ermon 2021), ddpm (Ho et al. 2020)
 *   sampler_fm.c     flow matching: fm-euler, fm-heun in t (x_t = (1-t) x0 + t eps)
 *
 * Which space a sampler integrates in:
 *   - sigma-space, x~ = x0 + sigma eps (s = 1), start x = noise * sigma_0: every k-diffusion
 *     solver, em, pc, and euler/heun/edm-sde when the formulation is NULL, edm, vp, vp-cosine
 *     or fm (k-diffusion applies its solvers to any model this way).
 *   - EDM eq. 4 in the formulation's t: euler, heun, edm-sde when the formulation is vp-cont
 *     or ve (s(t) != 1 or sigma(t) != t), start x = noise * sigma(t_0) s(t_0), as NVlabs/edm's
 *     ablation_sampler; the result is at t = 0 where s = 1.
 *   - x_t of discrete VP (x_t = sqrt(abar_t) x~), start x_T = noise: ddim, ddpm. The result is
 *     the last x_prev, at abar = final_alpha_cumprod (1 with set_alpha_to_one).
 *   - x_t of flow matching, t from 1 to 0, start x = noise: fm-euler, fm-heun.
 *
 * Noise: sample i's draws come from Philox stream first_stream + i, counter block
 * sub = 64 * step + k (k < 64 distinct draws within a step), so a sample never depends on the
 * batch size, on how the batch is chunked (pass first_stream = index of the chunk's first
 * sample) or on the thread count. */
#ifndef UG_SAMPLER_H
#define UG_SAMPLER_H
#include "diffusion/formulation.h"
#include "unigen.h"

typedef struct ug_denoiser {
    int64_t dim;
    /* D(x~; sigma) = E[x0 | x0 + sigma eps = x~] for n points x (n, dim) into out (n, dim). */
    ug_status (*fn)(void *self, int64_t n, const double *x, double sigma, double *out);
    void *self;
    /* Optional: E[x0 | x_t] for flow matching's x_t = (1-t) x0 + t eps, defined at t = 1
     * (sigma = inf) too. NULL: the flow-matching samplers call fn(x_t/(1-t), t/(1-t)) and
     * refuse t = 1. */
    ug_status (*fm_fn)(void *self, int64_t n, const double *x_t, double t, double *out);
} ug_denoiser;

/* Responsibilities r_k (K values, summing to 1) of x under sum_k w_k N(a mu_k, (a^2 s_k^2 + c^2) I),
 * by a log-sum-exp in double. a = 1, c = sigma: the noisy mixture of SPEC section 6. */
void ug_gmm_responsibilities(const ug_gmm *g, const double *x, double a, double c, double *r);
/* The exact denoiser of a mixture (gmm_denoiser.c). sigma = inf gives sum_k w_k mu_k. */
void ug_gmm_denoise(const ug_gmm *g, const double *x, double sigma, double *out);
/* E[x0 | x_t] for x_t = (1-t) x0 + t eps, t in [0, 1]. */
void ug_gmm_denoise_fm(const ug_gmm *g, const double *x_t, double t, double *out);
ug_denoiser ug_gmm_denoiser(const ug_gmm *g);

typedef enum {
    UG_SAMPLER_EULER,        /* "euler" */
    UG_SAMPLER_HEUN,         /* "heun" (EDM Algorithm 1) */
    UG_SAMPLER_EDM_SDE,      /* "edm-sde" (EDM Algorithm 2: churn + Heun) */
    UG_SAMPLER_EULER_A,      /* "euler-a" */
    UG_SAMPLER_DPM2,         /* "dpm2" */
    UG_SAMPLER_LMS,          /* "lms" (order 4) */
    UG_SAMPLER_DPMPP_2S_A,   /* "dpmpp-2s-a" */
    UG_SAMPLER_DPMPP_2M,     /* "dpmpp-2m" */
    UG_SAMPLER_DPMPP_2M_SDE, /* "dpmpp-2m-sde" (solver type midpoint | heun) */
    UG_SAMPLER_DPMPP_3M_SDE, /* "dpmpp-3m-sde" */
    UG_SAMPLER_DDIM,         /* "ddim" */
    UG_SAMPLER_DDPM,         /* "ddpm" */
    UG_SAMPLER_EM,           /* "em" Euler-Maruyama on the reverse SDE */
    UG_SAMPLER_PC,           /* "pc" reverse-diffusion predictor + Langevin corrector */
    UG_SAMPLER_FM_EULER,     /* "fm-euler" */
    UG_SAMPLER_FM_HEUN,      /* "fm-heun" */
    UG_SAMPLER_COUNT
} ug_sampler_kind;

typedef enum {
    UG_SCHED_KARRAS,      /* (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho */
    UG_SCHED_EXPONENTIAL, /* log-uniform from smax to smin */
    UG_SCHED_VP,          /* continuous VP: t uniform from 1 to eps_s, sigma(t) */
    UG_SCHED_VE,          /* t = sigma^2 geometric: smax^2 (smin^2/smax^2)^(i/(N-1)) */
    UG_SCHED_LINEAR,      /* linear in sigma from smax to smin */
    UG_SCHED_IDDPM,       /* improved DDPM's cosine grid as NVlabs/edm builds it */
    UG_SCHED_LEADING,     /* discrete timesteps (diffusers timestep_spacing) */
    UG_SCHED_TRAILING,
    UG_SCHED_LINSPACE,
    UG_SCHED_FM,          /* flow matching: t uniform from 1, shifted */
    UG_SCHED_USER,        /* cfg.user_sigmas */
    UG_SCHED_AUTO,        /* the sampler's / formulation's natural grid */
    UG_SCHED_COUNT
} ug_schedule_kind;

typedef enum { UG_DDPM_VAR_BETA, UG_DDPM_VAR_BETA_TILDE, UG_DDPM_VAR_COUNT } ug_ddpm_var;
typedef enum { UG_SDE_MIDPOINT, UG_SDE_HEUN, UG_SDE_SOLVER_COUNT } ug_sde_solver;

typedef struct ug_sampler_cfg {
    ug_sampler_kind sampler;
    ug_schedule_kind schedule;
    int steps;                    /* N: network steps; the grid has N + 1 points */
    double sigma_min, sigma_max, rho;   /* karras, exponential, linear, ve, iddpm */
    const ug_form *form;          /* NULL: sigma-space with s = 1 (EDM) */
    /* Stochasticity of the ancestral / SDE samplers (euler-a, dpmpp-2s-a, dpmpp-2m-sde,
     * dpmpp-3m-sde, ddim, ddpm, em): 0 = deterministic. NAN = the sampler's default
     * (ddim 0, all others 1). */
    double eta;
    double s_noise;               /* noise inflation of every stochastic sampler (1) */
    double s_churn, s_tmin, s_tmax;   /* edm-sde: churn 0 makes it heun */
    ug_sde_solver sde_solver;     /* dpmpp-2m-sde */
    ug_ddpm_var ddpm_var;         /* ddpm: sigma_t^2 = beta_t or beta~_t */
    double snr;                   /* pc: Langevin signal-to-noise ratio r (0.16) */
    int corrector_steps;          /* pc: Langevin steps per noise level (1) */
    /* discrete timesteps (leading | trailing | linspace) */
    int steps_offset;             /* 0 */
    int set_alpha_to_one;         /* 1: the last step goes to abar = 1 */
    double shift;                 /* fm grid: t' = shift t / (1 + (shift-1) t) (1) */
    double fm_t_min;              /* fm grid: lowest t before shifting (1e-3) */
    /* 1: copy diffusers' float32 parts exactly (DDIM's float32 betas/alphas_cumprod and step
     * coefficients; FlowMatchEuler's float32 grid shifted twice at the low end and its float32
     * cast of x before each step). 0 (default): all in double from the formulation. */
    int diffusers;
    const double *user_sigmas;    /* schedule user: descending sigmas; a final 0 is appended if */
    int n_user;                   /* the last is not 0 (steps = the number of nonzero values) */
    uint64_t seed, first_stream;  /* noise of sample i: Philox (seed, first_stream + i) */
} ug_sampler_cfg;

#define UG_SAMPLER_MAX_STEPS 2048

/* Everything a grid determines. sigma: the noise level of each point, sigma_N the end point
 * (0, or the discrete final sigma). t: the sampler's own time variable at each point (sigma in
 * sigma-space; the formulation's t for vp-cont/ve; the integer timestep for discrete grids, -1
 * marking the final point; flow matching's t, whose sigma = t/(1-t) is inf at t = 1). */
typedef struct ug_grid {
    int steps;
    int space;   /* UG_SPACE_* below */
    double sigma[UG_SAMPLER_MAX_STEPS + 1];
    double t[UG_SAMPLER_MAX_STEPS + 1];
    /* discrete VP only: the step from timestep[i] goes to prev_timestep[i] = timestep[i] - T/N
     * (diffusers), which is not always timestep[i+1]; abar_prev = final_alpha_cumprod below 0. */
    int timestep[UG_SAMPLER_MAX_STEPS], prev_timestep[UG_SAMPLER_MAX_STEPS];
    double abar[UG_SAMPLER_MAX_STEPS], abar_prev[UG_SAMPLER_MAX_STEPS];
} ug_grid;
enum { UG_SPACE_SIGMA, UG_SPACE_T, UG_SPACE_DISCRETE, UG_SPACE_FM };

const char *ug_sampler_name(ug_sampler_kind k);
int ug_sampler_from_name(const char *name, ug_sampler_kind *out);
const char *ug_schedule_name(ug_schedule_kind k);
int ug_schedule_from_name(const char *name, ug_schedule_kind *out);
const char *ug_ddpm_var_name(ug_ddpm_var k);
int ug_ddpm_var_from_name(const char *name, ug_ddpm_var *out);
const char *ug_sde_solver_name(ug_sde_solver k);
int ug_sde_solver_from_name(const char *name, ug_sde_solver *out);

/* EDM's defaults: Heun, Karras, 18 steps, 0.002..80, rho 7, no formulation (sigma-space);
 * eta NAN (the sampler's default), s_noise 1, churn 0 over [0, inf), midpoint, beta-tilde,
 * snr 0.16 with 1 corrector step, steps_offset 0, set_alpha_to_one 1, shift 1, fm_t_min 1e-3,
 * seed 0, first_stream 0. */
ug_sampler_cfg ug_sampler_default(void);

/* The resolved schedule (UG_SCHED_AUTO replaced). */
ug_schedule_kind ug_sampler_schedule(const ug_sampler_cfg *c);
/* Builds the full grid. */
ug_status ug_sampler_make_grid(const ug_sampler_cfg *c, ug_grid *g);
/* The noise levels sigma_0 > ... > sigma_{N-1} and the end sigma_N (steps + 1 values written
 * to sigmas). */
ug_status ug_sampler_grid(const ug_sampler_cfg *c, double *sigmas);
/* The sigma of every network evaluation in order (for --print-grid / --json), at most max
 * values; *count receives the NFE. Found by running the sampler on one point with a recording
 * denoiser, so it is exact for every sampler (edm-sde's raised sigma included). */
ug_status ug_sampler_eval_sigmas(const ug_sampler_cfg *c, double *out, int64_t max,
                                 int64_t *count);

/* Runs the sampler on n points: x holds (n, d) standard normal noise on entry and the samples
 * on return. *nfe receives the number of denoiser evaluations (per batch). */
ug_status ug_sampler_run(const ug_sampler_cfg *c, const ug_denoiser *dn, int64_t n, double *x,
                         int64_t *nfe);
#endif
