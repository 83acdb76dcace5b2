/* model.c — the public model handle: one interface over the families (STYLE: models/). */
#include "core/core.h"
#include "models/diffusion.h"
#include "models/classifier.h"
#include "models/family.h"
#include "nn/unet.h"
#include "diffusion/guidance.h"
#include <errno.h>
#include <math.h>

#define UG_DP_MAX_THREADS 64

struct ug_model {
    ug_model_cfg cfg;
    ug_params *ps;
    ug_diffusion diff;
    ug_classifier cls;   /* family classifier */
    ug_gmm gmm;          /* analytic model: gmm.K > 0 */
    ug_ctx *ctx;         /* sampling activations */
    const ug_lfamily *lf;   /* likelihood families (flow, ar, vae): their table and state */
    void *limpl;
    int64_t step;        /* training step: per-minibatch choices (MADE's mask) */
    /* Data-parallel training (ug_model_loss_backward): thread t >= 1 runs its rows on replica
     * dp_rep[t - 1] (the same model, values shared, gradients its own) in context dp_ctx[t - 1].
     * Sampling lends dp_ctx to its threads 1.. as well (ug_diffusion_denoiser_lend). */
    ug_model *dp_rep[UG_DP_MAX_THREADS - 1];
    ug_ctx *dp_ctx[UG_DP_MAX_THREADS - 1];
};

static const char *const k_family[UG_FAMILY_COUNT] = {"diffusion", "classifier", "flow", "ar",
                                                      "vae"};
const char *ug_family_name(ug_family f) { return (unsigned)f < UG_FAMILY_COUNT ? k_family[f] : "?"; }
int ug_family_from_name(const char *s, ug_family *out) {
    for (int i = 0; i < UG_FAMILY_COUNT; i++)
        if (!strcmp(s, k_family[i])) { *out = (ug_family)i; return 0; }
    return -1;
}

ug_model_cfg ug_model_cfg_default(void) {
    ug_model_cfg c;
    memset(&c, 0, sizeof c);
    c.family = UG_FAMILY_DIFFUSION;
    c.data_dim = 2;
    strcpy(c.net, "mlp-toy");
    c.hidden = 256;
    c.depth = 3;
    c.emb_dim = 32;
    c.formulation = UG_FORM_EDM;
    c.param = UG_PARAM_EDM;
    c.sigma_data = 0.5;
    c.t_sampler = UG_TS_DEFAULT;
    c.p_mean = NAN;
    c.p_std = NAN;
    c.shift = 1.0;
    c.p_uncond = 0.1;
    return c;
}

static ug_status classifier_create(const ug_model_cfg *cfg, uint64_t seed, ug_model **out) {
    ug_model *m = calloc(1, sizeof *m);
    if (!m) return ug_fail(UG_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    ug_status st = ug_params_create(&m->ps);
    if (!st) st = ug_classifier_declare(&m->cls, m->ps, cfg);
    if (!st) st = ug_params_finalize(m->ps);
    if (st) {
        ug_model_free(m);
        return st;
    }
    ug_params_init_uniform(m->ps, seed);
    *out = m;
    return UG_OK;
}

static const ug_lfamily *lfamily_of(ug_family f) {
    switch (f) {
    case UG_FAMILY_FLOW: return &ug_flow_family;
    case UG_FAMILY_AR: return &ug_ar_family;
    case UG_FAMILY_VAE: return &ug_vae_family;
    default: return NULL;
    }
}

static ug_status lfamily_create(const ug_model_cfg *cfg, uint64_t seed, ug_model **out) {
    if (cfg->data_dim < 1)
        return ug_fail(UG_ERR_INVALID_ARG, "model: data_dim %d, expected >= 1", cfg->data_dim);
    ug_model *m = calloc(1, sizeof *m);
    if (!m) return ug_fail(UG_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->lf = lfamily_of(cfg->family);
    ug_status st = ug_params_create(&m->ps);
    if (!st) st = m->lf->declare(&m->cfg, m->ps, &m->limpl);
    if (!st) st = ug_params_finalize(m->ps);
    if (!st) ug_params_init_uniform(m->ps, seed);
    if (!st && m->lf->init) st = m->lf->init(m->limpl, m->ps, seed);
    if (st) {
        ug_model_free(m);
        return st;
    }
    *out = m;
    return UG_OK;
}

ug_status ug_parse_widths(const char *field, const char *s, int dflt, int *w, int max, int *n) {
    *n = 0;
    if (!s || !*s) {
        if (dflt < 1) return ug_fail(UG_ERR_INVALID_ARG, "%s: width %d, expected >= 1", field, dflt);
        w[0] = dflt;
        *n = 1;
        return UG_OK;
    }
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > (1L << 24) || (*end && *end != ','))
            return ug_fail(UG_ERR_INVALID_ARG, "%s '%s': expected positive integers separated "
                           "by commas", field, s);
        if (*n == max)
            return ug_fail(UG_ERR_INVALID_ARG, "%s '%s': at most %d widths", field, s, max);
        w[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end && !*p)
            return ug_fail(UG_ERR_INVALID_ARG, "%s '%s': trailing comma", field, s);
    }
    return UG_OK;
}

/* Whether any option that shapes the U-Net (not dropout) is set. */
static int unet_structure_set(const ug_model_cfg *cfg) {
    return cfg->unet_ch || cfg->unet_mult[0] || cfg->unet_blocks || cfg->unet_attn[0] ||
           cfg->unet_heads;
}

/* The U-Net of net "unet-fmnist" (../shared/peers/unet.py's network: 1 channel, fixed
 * structure, only dropout may be set) or "unet" (any channel count; each structure option
 * left 0 / "" keeps the preset's value; a base width ch sets the embedding sizes as DDPM does:
 * sinusoid ch, time embedding 4 ch, which for ch 32 are the preset's 32 and 128). */
static ug_status unet_cfg_from(const ug_model_cfg *cfg, const char *net_name, ug_unet_cfg *u) {
    int preset = !strcmp(net_name, "unet-fmnist");
    int image = cfg->channels > 0 && cfg->height > 0 && cfg->width > 0;
    if (!image || (int64_t)cfg->channels * cfg->height * cfg->width != cfg->data_dim)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "model: network '%s' needs image examples: channels %d, height %d, "
                       "width %d (product %lld) must be positive with product data_dim %d",
                       net_name, cfg->channels, cfg->height, cfg->width,
                       (long long)cfg->channels * cfg->height * cfg->width, cfg->data_dim);
    if (preset && cfg->channels != 1)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "model: network 'unet-fmnist' takes 1 channel, found %d (use 'unet')",
                       cfg->channels);
    if (preset && unet_structure_set(cfg))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "model: network 'unet-fmnist' (also unet-small) is the fixed peer network; "
                       "unet_ch %d, unet_mult '%s', unet_blocks %d, unet_attn '%s', unet_heads %d "
                       "would change it (use --model unet; only --dropout applies to the preset)",
                       cfg->unet_ch, cfg->unet_mult, cfg->unet_blocks, cfg->unet_attn,
                       cfg->unet_heads);
    *u = ug_unet_fmnist_cfg(cfg->channels, cfg->height, cfg->width);
    if (cfg->unet_ch) {
        u->base = u->emb_dim = cfg->unet_ch;
        u->temb_dim = 4 * cfg->unet_ch;
    }
    ug_status st = UG_OK;
    if (cfg->unet_mult[0])
        st = ug_parse_widths("model: unet_mult", cfg->unet_mult, 1, u->mult, UG_UNET_MAX_LEVELS,
                             &u->levels);
    if (!st && cfg->unet_attn[0] && strcmp(cfg->unet_attn, "none"))
        st = ug_parse_widths("model: unet_attn", cfg->unet_attn, 1, u->attn_res,
                             UG_UNET_MAX_LEVELS, &u->n_attn);
    if (st) return st;
    if (cfg->unet_blocks) u->blocks = cfg->unet_blocks;
    if (cfg->unet_heads) u->attn_heads = cfg->unet_heads;
    u->dropout = cfg->dropout;
    int f = 1 << (u->levels - 1);
    if (cfg->height % f || cfg->width % f)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "model: network '%s' needs height and width divisible by %d "
                       "(%d stride-2 downsamplings), found %d x %d",
                       net_name, f, u->levels - 1, cfg->height, cfg->width);
    u->emb_log_fmax = ug_diffusion_emb_log_fmax(cfg->formulation, cfg->param);
    u->num_classes = cfg->num_classes;
    return UG_OK;
}

static ug_status declare_unet(ug_diffusion *d, ug_params *ps, const ug_model_cfg *cfg,
                              const ug_unet_cfg *uc) {
    ug_unet u;
    ug_net n;
    ug_status st = ug_unet_declare(&u, ps, uc);
    if (!st) st = ug_net_from_unet(&n, &u);
    if (st) return st;
    st = ug_diffusion_init(d, cfg->formulation, cfg->param, &n);
    if (st) ug_net_free(&n);
    return st;
}

ug_status ug_model_create(const ug_model_cfg *cfg, uint64_t seed, ug_model **out) {
    *out = NULL;
    if ((unsigned)cfg->family >= UG_FAMILY_COUNT)
        return ug_fail(UG_ERR_INVALID_ARG, "model: family %d unknown", (int)cfg->family);
    /* (made takes dropout too: the ar family checks it.) */
    if (cfg->family != UG_FAMILY_DIFFUSION &&
        (unet_structure_set(cfg) || (cfg->dropout != 0 && cfg->family != UG_FAMILY_AR)))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "model: unet_* options and dropout %g are for the diffusion U-Net (dropout "
                       "also for made), not family %s", cfg->dropout, ug_family_name(cfg->family));
    if (cfg->family == UG_FAMILY_CLASSIFIER) return classifier_create(cfg, seed, out);
    if (lfamily_of(cfg->family)) return lfamily_create(cfg, seed, out);
    if (cfg->data_dim < 1)
        return ug_fail(UG_ERR_INVALID_ARG, "model: data_dim %d, expected >= 1", cfg->data_dim);
    if (!(cfg->sigma_data > 0))
        return ug_fail(UG_ERR_INVALID_ARG, "model: sigma_data %g, expected > 0", cfg->sigma_data);
    if (!(cfg->shift > 0))
        return ug_fail(UG_ERR_INVALID_ARG, "model: shift %g, expected > 0", cfg->shift);
    if (!(cfg->p_uncond >= 0 && cfg->p_uncond < 1))
        return ug_fail(UG_ERR_INVALID_ARG, "model: p_uncond %g, expected in [0, 1)", cfg->p_uncond);
    /* "auto": the U-Net for images (the preset unless its structure is set), the toy MLP for
     * vectors. */
    const char *net_name = cfg->net;
    int image = cfg->channels > 0 && cfg->height > 0 && cfg->width > 0;
    if (!net_name[0] || !strcmp(net_name, "auto"))
        net_name = !image ? "mlp-toy" : unet_structure_set(cfg) ? "unet" : "unet-fmnist";
    if (!strcmp(net_name, "unet-small")) net_name = "unet-fmnist";   /* the name for it */
    int is_unet = !strcmp(net_name, "unet-fmnist") || !strcmp(net_name, "unet");
    if (!is_unet && (unet_structure_set(cfg) || cfg->dropout != 0))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "model: unet_* options and dropout %g are for the U-Net (--model unet), "
                       "not network '%s'", cfg->dropout, net_name);
    ug_mlp_cfg net = {0};
    ug_unet_cfg ucfg = {0};
    if (!strcmp(net_name, "mlp-toy")) {
        net = ug_mlp_toy_cfg(cfg->data_dim);
    } else if (!strcmp(net_name, "mlp")) {
        net = ug_mlp_toy_cfg(cfg->data_dim);
        net.hidden = cfg->hidden;
        net.depth = cfg->depth;
        net.emb_dim = cfg->emb_dim;
    } else if (is_unet) {
        ug_status st = unet_cfg_from(cfg, net_name, &ucfg);
        if (st) return st;
    } else {
        return ug_fail(UG_ERR_INVALID_ARG,
                       "model: network '%s' unknown, expected auto, mlp-toy, mlp, unet-fmnist "
                       "(also unet-small) or unet", cfg->net);
    }
    net.num_classes = cfg->num_classes;
    net.label_dim = cfg->num_classes ? 16 : 0;
    ug_model *m = calloc(1, sizeof *m);
    if (!m) return ug_fail(UG_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    snprintf(m->cfg.net, sizeof m->cfg.net, "%s", net_name);   /* "auto" resolved */
    ug_status st = ug_params_create(&m->ps);
    if (!st && is_unet) st = declare_unet(&m->diff, m->ps, cfg, &ucfg);
    else if (!st) st = ug_diffusion_declare(&m->diff, m->ps, cfg->formulation, cfg->param, &net);
    if (!st) st = ug_params_finalize(m->ps);
    if (st) {
        ug_model_free(m);
        return st;
    }
    ug_form *f = &m->diff.form;
    f->sigma_data = cfg->sigma_data;
    f->tsampler = cfg->t_sampler;
    f->p_mean = cfg->p_mean;
    f->p_std = cfg->p_std;
    f->shift = cfg->shift;
    m->diff.p_uncond = cfg->p_uncond;
    ug_params_init_uniform(m->ps, seed);
    *out = m;
    return UG_OK;
}

void ug_model_free(ug_model *m) {
    if (!m) return;
    if (m->lf && m->limpl) m->lf->free_impl(m->limpl);
    ug_diffusion_free(&m->diff);
    ug_classifier_free(&m->cls);
    ug_params_free(m->ps);
    ug_ctx_free(m->ctx);
    for (int t = 0; t < UG_DP_MAX_THREADS - 1; t++) {
        ug_model_free(m->dp_rep[t]);
        ug_ctx_free(m->dp_ctx[t]);
    }
    if (m->gmm.K) ug_gmm_free(&m->gmm);
    free(m);
}

ug_params *ug_model_params(ug_model *m) { return m->ps; }
const ug_model_cfg *ug_model_config(const ug_model *m) { return &m->cfg; }
const ug_diffusion *ug_model_diffusion(const ug_model *m) { return &m->diff; }
const ug_gmm *ug_model_gmm(const ug_model *m) { return m->gmm.K ? &m->gmm : NULL; }
ug_classifier *ug_model_classifier(ug_model *m) {
    return m->cfg.family == UG_FAMILY_CLASSIFIER ? &m->cls : NULL;
}

/* The labels of a class-conditional model or classifier: present, and each in [0, classes). */
static ug_status check_labels(const ug_model *m, const int32_t *y, int64_t B) {
    const int K = m->cfg.family == UG_FAMILY_CLASSIFIER ? m->cls.num_classes
                  : m->lf                               ? 0
                                                        : m->cfg.num_classes;
    if (!K) return UG_OK;
    if (!y)
        return ug_fail(UG_ERR_INVALID_ARG, "model: a %s needs labels",
                       m->cfg.family == UG_FAMILY_CLASSIFIER ? "classifier" : "class-conditional model");
    for (int64_t b = 0; b < B; b++)
        if (y[b] < 0 || y[b] >= K)
            return ug_fail(UG_ERR_INVALID_ARG, "model: label %d of example %lld outside [0, %d)",
                           y[b], (long long)b, K);
    return UG_OK;
}

/* ug_model_loss after its checks (the split step checks the whole batch once). */
static ug_status loss_checked(ug_model *m, ug_ctx *ctx, const float *x, int64_t B,
                              const int32_t *y, uint64_t seed, uint64_t first_stream,
                              ug_tensor **loss) {
    if (m->cfg.family == UG_FAMILY_CLASSIFIER) {
        *loss = ug_classifier_loss(ctx, &m->cls, x, B, y, seed, first_stream);
    } else if (m->lf) {
        ug_status st = m->lf->loss(m->limpl, ctx, x, B, seed, first_stream, m->step, loss);
        if (st) return st;
    } else {
        *loss = ug_diffusion_loss(ctx, &m->diff, x, B, y, seed, first_stream);
    }
    if (!isfinite((*loss)->data[0]))
        return ug_fail(UG_ERR_NUMERIC, "model: the loss is %g", (double)(*loss)->data[0]);
    return UG_OK;
}

ug_status ug_model_loss(ug_model *m, ug_ctx *ctx, const float *x, int64_t B, const int32_t *y,
                        uint64_t seed, uint64_t first_stream, ug_tensor **loss) {
    if (m->gmm.K)
        return ug_fail(UG_ERR_UNSUPPORTED, "model: an analytic Gaussian mixture has nothing to train");
    ug_status st = check_labels(m, y, B);
    return st ? st : loss_checked(m, ctx, x, B, y, seed, first_stream, loss);
}

/* ---------------------------------------------------------------- data-parallel training step */
/* Rows per thread below which a batch is not split (the replicas' gradient sum would cost
 * more than the hand-offs it saves). */
#define UG_DP_MIN_ROWS 32

/* Threads that split this batch: 1 unless the family's loss is a mean of per-example terms,
 * each drawing from its own Philox stream (diffusion and classifier models: no batch
 * statistics, no per-minibatch choices), and there are rows enough for each. */
static int dp_threads(const ug_model *m, int64_t B) {
    if (m->gmm.K || m->lf ||
        (m->cfg.family != UG_FAMILY_DIFFUSION && m->cfg.family != UG_FAMILY_CLASSIFIER))
        return 1;
    int nt = ug_get_threads();
#ifdef _OPENMP
    if (omp_in_parallel()) nt = 1;
#endif
    if (nt > UG_DP_MAX_THREADS) nt = UG_DP_MAX_THREADS;
    if (B / UG_DP_MIN_ROWS < nt) nt = (int)(B / UG_DP_MIN_ROWS);
    return nt < 1 ? 1 : nt;
}

static ug_status dp_prepare(ug_model *m, int nt) {
    for (int t = 1; t < nt; t++) {
        ug_status st = UG_OK;
        if (!m->dp_rep[t - 1]) {
            ug_model *r;
            if ((st = ug_model_create(&m->cfg, 0, &r))) return st;
            m->dp_rep[t - 1] = r;
        }
        if (!m->dp_ctx[t - 1] && (st = ug_ctx_create(&m->dp_ctx[t - 1], 0))) return st;
        /* Every call: the values stay shared, the requires_grad flags follow the model's. */
        if ((st = ug_params_share_data(m->dp_rep[t - 1]->ps, m->ps))) return st;
        m->dp_rep[t - 1]->step = m->step;
    }
    return UG_OK;
}

ug_status ug_model_loss_backward(ug_model *m, ug_ctx *ctx, const float *x, int64_t B,
                                 const int32_t *y, uint64_t seed, uint64_t first_stream,
                                 double *loss) {
    *loss = NAN;
    const int nt = dp_threads(m, B);
    ug_tensor *l = NULL;
    if (nt == 1) {
        ug_status st = ug_model_loss(m, ctx, x, B, y, seed, first_stream, &l);
        if (l) *loss = l->data[0];
        return st ? st : ug_backward(ctx, l);
    }
    /* Checked here so that a message names the example's row in the whole batch. */
    ug_status st = check_labels(m, y, B);
    if (!st) st = dp_prepare(m, nt);
    if (st) return st;
    const int64_t d = m->cfg.family == UG_FAMILY_CLASSIFIER ? m->cls.data_dim : m->diff.data_dim;
    double part[UG_DP_MAX_THREADS];
    ug_status err[UG_DP_MAX_THREADS];
    char msg[512] = "";
#pragma omp parallel num_threads(nt)
    {
        /* Rows [b0, b1) with their own Philox streams: the same noise as in one batch. */
        const int t = ug_omp_tid();
        const int64_t b0 = B * t / nt, b1 = B * (t + 1) / nt;
        ug_model *mt = t ? m->dp_rep[t - 1] : m;
        ug_ctx *ct = t ? m->dp_ctx[t - 1] : ctx;
        if (t) ug_params_zero_grad(mt->ps);
        ug_tensor *lt = NULL;
        ug_status e = loss_checked(mt, ct, x + b0 * d, b1 - b0, y ? y + b0 : NULL, seed,
                                   first_stream + (uint64_t)b0, &lt);
        part[t] = lt ? (double)lt->data[0] * (double)(b1 - b0) / (double)B : NAN;
        /* The batch mean is the row-weighted sum of the parts' means. */
        if (!e) e = ug_backward(ct, ug_affine(ct, lt, (float)((double)(b1 - b0) / (double)B), 0.0f));
        err[t] = e;
        if (e && e != UG_ERR_NUMERIC) {
#pragma omp critical(ug_dp_msg)
            if (!msg[0]) snprintf(msg, sizeof msg, "%s", ug_last_error());
        }
        if (t) ug_ctx_reset(ct);
    }
    double sum = 0;
    for (int t = 0; t < nt; t++) {
        if (err[t] && err[t] != UG_ERR_NUMERIC) return ug_fail(err[t], "%s", msg);
        sum += part[t];
    }
    *loss = sum;
    for (int t = 0; t < nt; t++)
        if (err[t]) return ug_fail(UG_ERR_NUMERIC, "model: the loss is %g", sum);
    /* The replicas' gradients into the model's. */
    float *g = ug_params_grad(m->ps);
    const float *rg[UG_DP_MAX_THREADS - 1];
    for (int t = 1; t < nt; t++) rg[t - 1] = ug_params_grad(m->dp_rep[t - 1]->ps);
    const int64_t np = ug_params_count(m->ps);
#pragma omp parallel for simd schedule(static) num_threads(nt) if (np >= UG_PAR_MIN)
    for (int64_t j = 0; j < np; j++) {
        float s = g[j];
        for (int t = 1; t < nt; t++) s += rg[t - 1][j];
        g[j] = s;
    }
    return UG_OK;
}

void ug_model_set_step(ug_model *m, int64_t step) { m->step = step; }

ug_status ug_model_data_init(ug_model *m, const float *x, int64_t B) {
    if (!m->lf || !m->lf->data_init) return UG_OK;
    if (B < 1) return ug_fail(UG_ERR_INVALID_ARG, "model: data init needs a batch, found %lld rows",
                              (long long)B);
    ug_ctx *ctx;
    ug_status st = ug_ctx_create(&ctx, 0);
    if (st) return st;
    st = m->lf->data_init(m->limpl, ctx, x, B);
    ug_ctx_free(ctx);
    return st;
}

ug_nll_cfg ug_nll_default(void) {
    ug_nll_cfg c;
    memset(&c, 0, sizeof c);
    return c;
}

ug_status ug_model_nll(ug_model *m, const ug_nll_cfg *c, int64_t n, const float *x, double *nll) {
    if (!m->lf)
        return ug_fail(UG_ERR_UNSUPPORTED, "nll: a %s model has no closed-form likelihood (use "
                       "ug_model_loglik's probability-flow ODE)", ug_family_name(m->cfg.family));
    ug_nll_cfg d = ug_nll_default();
    return m->lf->nll(m->limpl, c ? c : &d, n, x, nll);
}

ug_status ug_model_reconstruct(ug_model *m, int64_t n, const float *x, uint64_t seed,
                               uint64_t first_stream, float *out) {
    if (!m->lf || !m->lf->reconstruct)
        return ug_fail(UG_ERR_UNSUPPORTED, "reconstruct: a %s model does not reconstruct (vae does)",
                       ug_family_name(m->cfg.family));
    return m->lf->reconstruct(m->limpl, n, x, seed, first_stream, out);
}

ug_status ug_model_load_gmm(const char *path, ug_model **out) {
    *out = NULL;
    ug_model *m = calloc(1, sizeof *m);
    if (!m) return ug_fail(UG_ERR_NOMEM, "model: out of memory");
    ug_status st = ug_gmm_load(path, &m->gmm);
    if (!st) st = ug_params_create(&m->ps);
    if (!st) st = ug_params_finalize(m->ps);
    if (st) {
        ug_model_free(m);
        return st;
    }
    m->cfg = ug_model_cfg_default();
    m->cfg.data_dim = m->gmm.d;
    strcpy(m->cfg.net, "gmm");
    /* Sampled in sigma-space with EDM's range. */
    ug_form_init(&m->diff.form, UG_FORM_EDM);
    m->diff.data_dim = m->gmm.d;
    *out = m;
    return UG_OK;
}

ug_sample_cfg ug_sample_cfg_default(void) {
    ug_sample_cfg c;
    memset(&c, 0, sizeof c);
    c.eta = NAN;
    c.set_alpha_to_one = -1;
    c.cfg_scale = 1.0;
    c.classifier_scale = 1.0;
    return c;
}

/* Public sampling settings -> the sampler's own, with the model's formulation. */
static ug_status resolve_sampler(ug_model *m, const ug_sample_cfg *c, ug_sampler_cfg *sc,
                                 ug_form *scratch) {
    *sc = ug_sampler_default();
    if (c->sampler && ug_sampler_from_name(c->sampler, &sc->sampler))
        return ug_fail(UG_ERR_INVALID_ARG, "sampler '%s' unknown", c->sampler);
    const ug_form *f = &m->diff.form;
    if (m->gmm.K && c->formulation) {
        ug_form_kind k;
        if (ug_form_from_name(c->formulation, &k))
            return ug_fail(UG_ERR_INVALID_ARG, "formulation '%s' unknown", c->formulation);
        ug_form_init(scratch, k);
        f = scratch;
    }
    /* The analytic model samples in sigma-space unless a formulation is asked for. */
    sc->form = (m->gmm.K && !c->formulation) ? NULL : f;
    int discrete_or_fm = sc->sampler == UG_SAMPLER_DDIM || sc->sampler == UG_SAMPLER_DDPM ||
                         sc->sampler == UG_SAMPLER_FM_EULER || sc->sampler == UG_SAMPLER_FM_HEUN;
    sc->schedule = discrete_or_fm ? UG_SCHED_AUTO : UG_SCHED_KARRAS;
    if (c->schedule && ug_schedule_from_name(c->schedule, &sc->schedule))
        return ug_fail(UG_ERR_INVALID_ARG, "schedule '%s' unknown", c->schedule);
    if (c->steps) sc->steps = c->steps;
    if (c->sigma_min > 0) sc->sigma_min = c->sigma_min;
    else if (!m->gmm.K || c->formulation) sc->sigma_min = f->sigma_min;
    if (c->sigma_max > 0) sc->sigma_max = c->sigma_max;
    else if (!m->gmm.K || c->formulation) sc->sigma_max = fmin(f->sigma_max, 160.0);
    if (c->rho > 0) sc->rho = c->rho;
    sc->eta = c->eta;
    if (c->s_noise > 0) sc->s_noise = c->s_noise;
    sc->s_churn = c->s_churn;
    sc->s_tmin = c->s_tmin;
    if (c->s_tmax > 0) sc->s_tmax = c->s_tmax;
    if (c->solver_type && ug_sde_solver_from_name(c->solver_type, &sc->sde_solver))
        return ug_fail(UG_ERR_INVALID_ARG, "solver type '%s' unknown (midpoint, heun)", c->solver_type);
    if (c->var && ug_ddpm_var_from_name(c->var, &sc->ddpm_var))
        return ug_fail(UG_ERR_INVALID_ARG, "ddpm variance '%s' unknown (beta, beta-tilde)", c->var);
    if (c->snr > 0) sc->snr = c->snr;
    if (c->corrector_steps > 0) sc->corrector_steps = c->corrector_steps;
    sc->steps_offset = c->steps_offset;
    if (c->set_alpha_to_one >= 0) sc->set_alpha_to_one = c->set_alpha_to_one;
    if (c->shift > 0) sc->shift = c->shift;
    if (c->sigmas) {
        sc->schedule = UG_SCHED_USER;
        sc->user_sigmas = c->sigmas;
        sc->n_user = c->n_sigmas;
    }
    sc->diffusers = c->diffusers_compat;
    sc->seed = c->seed;
    sc->first_stream = c->first_stream;
    return UG_OK;
}

ug_status ug_model_sample_grid(ug_model *m, const ug_sample_cfg *c, double *sigmas, int *nsig,
                               double *eval, int64_t max, int64_t *neval) {
    ug_sampler_cfg sc;
    ug_form scratch;
    ug_status st = resolve_sampler(m, c, &sc, &scratch);
    if (st) return st;
    if (sigmas) {
        ug_grid *g = malloc(sizeof *g);
        if (!g) return ug_fail(UG_ERR_NOMEM, "sample: out of memory");
        st = ug_sampler_make_grid(&sc, g);
        if (!st) {
            for (int i = 0; i <= g->steps; i++) sigmas[i] = g->sigma[i];
            *nsig = g->steps + 1;
        }
        free(g);
        if (st) return st;
    }
    if (eval) st = ug_sampler_eval_sigmas(&sc, eval, max, neval);
    return st;
}

/* Classifier guidance's gradient: d/dx log p(y | x, sigma) from a classifier model. */
typedef struct { ug_model *cls; const int32_t *labels; } guide_grad;
static ug_status guide_grad_fn(void *self, int64_t n, const double *x, double sigma, double *grad) {
    guide_grad *g = self;
    return ug_model_class_logprob_grad(g->cls, n, x, sigma, g->labels, grad);
}

ug_status ug_model_sample(ug_model *m, const ug_sample_cfg *c, int64_t n, const int32_t *labels,
                          const double *noise, double *out, int64_t *nfe) {
    ug_sampler_cfg sc;
    ug_form scratch;
    if (m->lf) {
        double T = c->temperature > 0 ? c->temperature : 1.0;
        if (noise)
            return ug_fail(UG_ERR_UNSUPPORTED, "sample: a %s model draws its own noise",
                           ug_family_name(m->cfg.family));
        int64_t d = m->cfg.data_dim;
        float *xf = malloc((size_t)(n * d) * sizeof *xf);
        if (!xf) return ug_fail(UG_ERR_NOMEM, "sample: out of memory for %lld points", (long long)n);
        ug_status st = m->lf->sample(m->limpl, n, T, c->seed, c->first_stream, xf);
        if (!st)
            for (int64_t j = 0; j < n * d; j++) out[j] = xf[j];
        free(xf);
        if (nfe) *nfe = 0;
        return st;
    }
    if (m->cfg.family != UG_FAMILY_DIFFUSION)
        return ug_fail(UG_ERR_UNSUPPORTED, "sample: a %s model does not sample",
                       ug_family_name(m->cfg.family));
    ug_status st = resolve_sampler(m, c, &sc, &scratch);
    if (st) return st;
    int64_t d = m->cfg.data_dim;
    if (noise) {
        memcpy(out, noise, (size_t)(n * d) * sizeof *out);
    } else {
        float *z = malloc((size_t)(n * d) * sizeof *z);
        if (!z) return ug_fail(UG_ERR_NOMEM, "sample: out of memory for %lld points", (long long)n);
        /* sub 0xFFFFFFFF: the start noise, apart from the samplers' per-step draws. */
        ug_rng_normal_rows(c->seed, c->first_stream, 0xFFFFFFFFu, z, n, d);
        for (int64_t j = 0; j < n * d; j++) out[j] = z[j];
        free(z);
    }
    ug_denoiser dn;
    void *state = NULL, *ustate = NULL;
    /* cfg_scale 1: the conditional model; 0: the unconditional one, D(null); else guided. */
    int guided = labels && (c->cfg_scale != 0 && c->cfg_scale != 1.0);
    int uncond = labels && c->cfg_scale == 0;
    int cls_guided = labels && c->classifier && c->classifier_scale != 0;
    if (guided && (m->gmm.K || !m->cfg.num_classes))
        return ug_fail(UG_ERR_INVALID_ARG, "sample: classifier-free guidance needs a class-conditional model");
    if (cls_guided && c->classifier->cfg.family != UG_FAMILY_CLASSIFIER)
        return ug_fail(UG_ERR_INVALID_ARG, "sample: the guidance classifier is a %s model",
                       ug_family_name(c->classifier->cfg.family));
    if (m->gmm.K) {
        dn = ug_gmm_denoiser(&m->gmm);
    } else {
        if (!m->ctx && (st = ug_ctx_create(&m->ctx, 0))) return st;
        /* An unconditional model guided by a classifier: its denoiser ignores the labels. */
        const int32_t *own = m->cfg.num_classes && !uncond ? labels : NULL;
        if ((st = ug_diffusion_denoiser(&m->diff, m->ctx, own, &dn, &state))) return st;
        /* The training threads' contexts serve the sampling threads too (never both at once):
         * their arenas stay faulted in from call to call and no second set is kept. */
        ug_diffusion_denoiser_lend(state, m->dp_ctx, UG_DP_MAX_THREADS - 1);
    }
    ug_guided g;
    memset(&g, 0, sizeof g);
    guide_grad gg = {c->classifier, labels};
    if (guided || cls_guided) {
        g.cond = dn;
        g.w = guided ? c->cfg_scale : 1.0;
        if (guided && (st = ug_diffusion_denoiser(&m->diff, m->ctx, NULL, &g.uncond, &ustate))) {
            ug_diffusion_denoiser_free(state);
            return st;
        }
        if (guided) ug_diffusion_denoiser_lend(ustate, m->dp_ctx, UG_DP_MAX_THREADS - 1);
        if (cls_guided) {
            g.grad_logp = guide_grad_fn;
            g.grad_self = &gg;
            g.s = c->classifier_scale;
        }
        dn = ug_guided_denoiser(&g);
    }
    st = ug_sampler_run(&sc, &dn, n, out, nfe);
    ug_guided_free(&g);
    ug_diffusion_denoiser_free(state);
    ug_diffusion_denoiser_free(ustate);
    return st;
}
