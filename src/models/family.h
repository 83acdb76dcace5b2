/* family.h — what a likelihood family (normalizing flows, autoregressive models, VAEs) provides
 * behind the public model handle: models/model.c builds, trains, samples and evaluates every
 * such family through this table, so a family lives in its own file (models/flow.c, ar.c,
 * vae.c) and the handle never learns its insides.
 *
 * Lifetime: declare -> (model.c: ug_params_finalize, PyTorch-default uniform init from the
 * seed) -> init -> [data_init on the first batch] -> loss / nll / sample ... -> free_impl. */
#ifndef UG_MODELS_FAMILY_H
#define UG_MODELS_FAMILY_H
#include "core/core.h"

typedef struct ug_lfamily {
    const char *name;        /* "flow" */
    const char *models;      /* the names cfg->net may take, for messages: "nice, realnvp, glow" */
    /* Validates cfg (messages name the field and the expected value), declares the parameters
     * in ps and returns the family's state in *impl. cfg->net is the model name. */
    ug_status (*declare)(const ug_model_cfg *cfg, ug_params *ps, void **impl);
    /* After ps is finalized and drawn with PyTorch's default init: the family's own init
     * (zeroed last layers, scales at 0, LU factors, masks from the seed). NULL: none. */
    ug_status (*init)(void *impl, ug_params *ps, uint64_t seed);
    /* Data-dependent init from a first batch x (B, d) (Glow's actnorm). NULL: none. */
    ug_status (*data_init)(void *impl, ug_ctx *ctx, const float *x, int64_t B);
    /* Training objective on a batch x (B, d): a scalar tensor on ctx, the batch mean of the
     * per-example NLL in nats (the negative ELBO for VAEs). Example b's randomness comes from
     * Philox (seed, first_stream + b); step picks per-minibatch choices (MADE's mask). */
    ug_status (*loss)(void *impl, ug_ctx *ctx, const float *x, int64_t B, uint64_t seed,
                      uint64_t first_stream, int64_t step, ug_tensor **loss);
    /* Per-example NLL in nats of n examples, without gradients (exact, the MADE mask ensemble,
     * or the IWAE bound: see ug_nll_cfg). Works through its own scratch context. */
    ug_status (*nll)(void *impl, const ug_nll_cfg *c, int64_t n, const float *x, double *nll);
    /* n samples (n, d) into out; example i draws from Philox (seed, first_stream + i), so a
     * sample does not depend on n. temperature > 0 (1: the model). */
    ug_status (*sample)(void *impl, int64_t n, double temperature, uint64_t seed,
                        uint64_t first_stream, float *out);
    /* VAE reconstructions (see ug_model_reconstruct). NULL: unsupported. */
    ug_status (*reconstruct)(void *impl, int64_t n, const float *x, uint64_t seed,
                             uint64_t first_stream, float *out);
    void (*free_impl)(void *impl);
} ug_lfamily;

extern const ug_lfamily ug_flow_family;   /* models/flow.c */
extern const ug_lfamily ug_ar_family;     /* models/ar.c */
extern const ug_lfamily ug_vae_family;    /* models/vae.c */

/* Parses a width list "500" / "500,1000" (used by ar and vae): n <= max widths >= 1 into w.
 * "" gives the single width dflt. Errors name field and value. */
ug_status ug_parse_widths(const char *field, const char *s, int dflt, int *w, int max, int *n);

#endif
