/* diffusion.h — the diffusion family: one model for DDPM, score SDEs, EDM and flow matching
 * (SPEC sections 1-3). A formulation + a parameterization + a network F:
 *   D(x~; sigma) = c_skip x~ + c_out F(c_in x~; c_noise [, label])
 * Training minimizes lambda(sigma) ||D - x0||^2, computed as lambda c_out^2 ||F - (a x0 + b eps)||^2
 * (the same number, without the cancellation D - x0 suffers at small sigma). */
#ifndef UG_MODELS_DIFFUSION_H
#define UG_MODELS_DIFFUSION_H
#include "diffusion/formulation.h"
#include "diffusion/sampler.h"
#include "nn/net.h"

typedef struct ug_diffusion {
    ug_form form;
    ug_param_kind param;
    ug_net net;
    int data_dim;
    int num_classes;     /* 0: unconditional */
    double p_uncond;     /* classifier-free guidance: label dropped with this probability */
} ug_diffusion;

/* Sets up the model around an already declared network (its parameters live in the caller's
 * ug_params). The model takes over net (ug_diffusion_free releases it). */
ug_status ug_diffusion_init(ug_diffusion *m, ug_form_kind form, ug_param_kind param,
                            const ug_net *net);
void ug_diffusion_free(ug_diffusion *m);
/* The frequency range of the sinusoidal noise embedding that resolves this model's c_noise
 * (see ug_sinusoidal): ln 1000 for ln(sigma)/4 or t in [0, 1], -ln 10000 (DDPM) for a time
 * index in 0..999. */
double ug_diffusion_emb_log_fmax(ug_form_kind form, ug_param_kind param);
/* Convenience for MLP models: declares the MLP in ps (finalize afterwards) and sets up m. */
ug_status ug_diffusion_declare(ug_diffusion *m, ug_params *ps, ug_form_kind form,
                               ug_param_kind param, const ug_mlp_cfg *net);

/* Training loss on a batch x0 (B, d) with optional labels. Sample b draws its sigma, noise and
 * label dropout from Philox stream first_stream + b (so it does not depend on B or threads);
 * the network runs in training mode (its dropout masks from the same streams, ug_net_train).
 * Returns the scalar loss tensor (backward-ready) in *loss. */
ug_tensor *ug_diffusion_loss(ug_ctx *ctx, const ug_diffusion *m, const float *x0, int64_t B,
                             const int32_t *labels, uint64_t seed, uint64_t first_stream);

/* D(x; sigma) for x (B, d) in the scaled-out variable x~ (x may require grad: d/dx flows).
 * labels NULL: unconditional (or the null label of a conditional model). */
ug_tensor *ug_diffusion_denoise(ug_ctx *ctx, const ug_diffusion *m, ug_tensor *x, double sigma,
                                const int32_t *labels);
/* A sampler's view of the model (no grad; ctx is reset after every call; tiles of rows run on
 * the threads side by side, threads beyond the first in arenas of their own). Free *state with
 * ug_diffusion_denoiser_free when done. labels: one per point, or NULL. The network's weights
 * must stay the same while the denoiser lives: its convolutions pack them on the first call and
 * reuse the packed copies (core/packs.c). */
ug_status ug_diffusion_denoiser(const ug_diffusion *m, ug_ctx *ctx, const int32_t *labels,
                                ug_denoiser *out, void **state);
void ug_diffusion_denoiser_free(void *state);
/* Run threads 1..n on the caller's contexts extra[0..n-1] (created on first use, owned and
 * freed by the caller) instead of contexts of the denoiser's own: a model lends the same ones
 * to every sampling call, so their arenas are not faulted in again on every call. */
void ug_diffusion_denoiser_lend(void *state, ug_ctx **extra, int n);
/* Internal accessors of the public model handle (models/model.c). */
const ug_diffusion *ug_model_diffusion(const ug_model *m);
const ug_gmm *ug_model_gmm(const ug_model *m);   /* NULL unless an analytic mixture */
#endif
