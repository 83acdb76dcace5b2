/* vae.c — the VAE family (SPEC section 9): Kingma & Welling 2014 trained on the ELBO, evaluated
 * with the importance-weighted bound of Burda, Grosse & Salakhutdinov 2016 (IWAE).
 *
 *   encoder   q(z | x) = N(mu(x), diag exp(logvar(x))),  prior p(z) = N(0, I)
 *   decoder   bernoulli: p(x | z) = prod_j Bernoulli(x_j; sigmoid(a_j(z)))   (binary data)
 *             gaussian:  p(x | z) = N(x; m(z), diag exp(lv)), lv ONE learned log-variance per
 *                        dimension ("decoder_logvar", starts at 0), not a function of z: it
 *                        cannot collapse on one training example, and dequantized data bound
 *                        it from below by their noise
 *   loss      -ELBO = -log p(x | z) + KL(q || p) with ONE reparameterized z = mu + e^(lv/2) eps,
 *             KL = 0.5 sum_l (mu_l^2 + e^lv_l - lv_l - 1) analytic; batch mean
 *   nll       -log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x) (IWAE bound, k = 5000)
 *
 * Networks as in the IWAE paper's MNIST models: tanh MLPs, the encoder d -> h_1 -> ... -> h_n
 * -> (mu, logvar), the decoder its mirror L -> h_n -> ... -> h_1 -> d. PyTorch-style names:
 * encoder.0, encoder.2, ... (Tanh modules in between), encoder_mu, encoder_logvar,
 * decoder.0, decoder.2, ..., decoder.{2n} (the output layer), decoder_logvar (gaussian).
 *
 * Randomness: example i's eps comes from Philox (seed, first_stream + i); sub 0 is the one
 * sample of the loss, of reconstruct and of sample, sub j the j-th importance sample of the
 * bound (so the bound's first sample is the loss's sample). Evaluation runs the networks on
 * row counts that depend only on k (never on n), so an example's results do not depend on its
 * batch mates. */
#include "models/family.h"
#include "kernels/loglik.h"
#include <math.h>

#define VAE_MAX_HIDDEN 8
#define VAE_TILE 64       /* examples per encoder call (and per decoder call in sample) */
#define VAE_CHUNK 1024     /* importance samples per decoder call in the bound */

typedef struct vae {
    int d, L, nh, gaussian;
    int h[VAE_MAX_HIDDEN];
    ug_tensor *ew[VAE_MAX_HIDDEN], *eb[VAE_MAX_HIDDEN];           /* encoder hidden layers */
    ug_tensor *mu_w, *mu_b, *lv_w, *lv_b;                          /* encoder heads */
    ug_tensor *dw[VAE_MAX_HIDDEN + 1], *db[VAE_MAX_HIDDEN + 1];   /* decoder, output last */
    ug_tensor *out_lv;                                             /* gaussian: (d) */
    ug_ctx *ctx;                                                   /* evaluation activations */
} vae;

static ug_status add_linear(ug_params *ps, const char *mod, int in, int out, ug_tensor **w,
                            ug_tensor **b) {
    char name[64];
    snprintf(name, sizeof name, "%s.weight", mod);
    *w = ug_params_add(ps, name, 2, (int64_t[]){out, in});
    snprintf(name, sizeof name, "%s.bias", mod);
    *b = ug_params_add(ps, name, 1, (int64_t[]){out});
    return *w && *b ? UG_OK : UG_ERR_INVALID_ARG;   /* ug_params_add set the message */
}

static void vae_free(void *impl) {
    vae *v = impl;
    if (!v) return;
    ug_ctx_free(v->ctx);
    free(v);
}

static ug_status vae_declare(const ug_model_cfg *cfg, ug_params *ps, void **impl) {
    *impl = NULL;
    if (cfg->net[0] && strcmp(cfg->net, "vae") && strcmp(cfg->net, "auto"))
        return ug_fail(UG_ERR_INVALID_ARG, "model: vae network '%s' unknown, expected vae",
                       cfg->net);
    if (cfg->latent_dim < 0)
        return ug_fail(UG_ERR_INVALID_ARG, "model: vae latent_dim %d, expected >= 1 (0: 50)",
                       cfg->latent_dim);
    int gaussian = 0;
    if (cfg->decoder[0] && !strcmp(cfg->decoder, "gaussian")) gaussian = 1;
    else if (cfg->decoder[0] && strcmp(cfg->decoder, "bernoulli"))
        return ug_fail(UG_ERR_INVALID_ARG, "model: vae decoder '%s' unknown, expected "
                       "bernoulli or gaussian", cfg->decoder);
    vae *v = calloc(1, sizeof *v);
    if (!v) return ug_fail(UG_ERR_NOMEM, "model: out of memory");
    v->d = cfg->data_dim;
    v->L = cfg->latent_dim ? cfg->latent_dim : 50;
    v->gaussian = gaussian;
    ug_status st = ug_parse_widths("hidden_list", cfg->hidden_list,
                                   cfg->hidden > 0 ? cfg->hidden : 500, v->h, VAE_MAX_HIDDEN,
                                   &v->nh);
    char mod[32];
    int in = v->d;
    for (int l = 0; l < v->nh && !st; l++) {
        snprintf(mod, sizeof mod, "encoder.%d", 2 * l);
        st = add_linear(ps, mod, in, v->h[l], &v->ew[l], &v->eb[l]);
        in = v->h[l];
    }
    if (!st) st = add_linear(ps, "encoder_mu", in, v->L, &v->mu_w, &v->mu_b);
    if (!st) st = add_linear(ps, "encoder_logvar", in, v->L, &v->lv_w, &v->lv_b);
    in = v->L;
    for (int l = 0; l <= v->nh && !st; l++) {
        int out = l < v->nh ? v->h[v->nh - 1 - l] : v->d;
        snprintf(mod, sizeof mod, "decoder.%d", 2 * l);
        st = add_linear(ps, mod, in, out, &v->dw[l], &v->db[l]);
        in = out;
    }
    if (!st && gaussian) {
        v->out_lv = ug_params_add(ps, "decoder_logvar", 1, (int64_t[]){v->d});
        if (!v->out_lv) st = UG_ERR_INVALID_ARG;
    }
    if (st) {
        vae_free(v);
        return st;
    }
    *impl = v;
    return UG_OK;
}

static ug_status vae_init(void *impl, ug_params *ps, uint64_t seed) {
    vae *v = impl;
    if (v->out_lv) memset(v->out_lv->data, 0, (size_t)v->d * sizeof(float));   /* unit variance */
    return UG_OK;
}

/* ---------------------------------------------------------------- networks */
static ug_tensor *tanh_layers(ug_ctx *ctx, ug_tensor *h, ug_tensor *const *w,
                              ug_tensor *const *b, int n) {
    for (int l = 0; l < n; l++) h = ug_tanh(ctx, ug_linear(ctx, h, w[l], b[l]));
    return h;
}

/* x (B, d) -> mu, logvar (B, L). */
static void encode(ug_ctx *ctx, const vae *v, ug_tensor *x, ug_tensor **mu, ug_tensor **lv) {
    ug_tensor *h = tanh_layers(ctx, x, v->ew, v->eb, v->nh);
    *mu = ug_linear(ctx, h, v->mu_w, v->mu_b);
    *lv = ug_linear(ctx, h, v->lv_w, v->lv_b);
}

/* z (B, L) -> the decoder's output (B, d): Bernoulli logits or Gaussian means. */
static ug_tensor *decode(ug_ctx *ctx, const vae *v, ug_tensor *z) {
    ug_tensor *h = tanh_layers(ctx, z, v->dw, v->db, v->nh);
    return ug_linear(ctx, h, v->dw[v->nh], v->db[v->nh]);
}

/* The data a decoder can score: Bernoulli targets in [0, 1], Gaussian ones finite. */
static ug_status check_data(const vae *v, const char *what, const float *x, int64_t n) {
    for (int64_t j = 0; j < n * v->d; j++) {
        int ok = v->gaussian ? isfinite(x[j]) : (x[j] >= 0.0f && x[j] <= 1.0f);
        if (!ok)
            return ug_fail(UG_ERR_INVALID_ARG, "%s: value %g at example %lld, dimension %lld: "
                           "the %s decoder takes %s", what, (double)x[j],
                           (long long)(j / v->d), (long long)(j % v->d),
                           v->gaussian ? "gaussian" : "bernoulli",
                           v->gaussian ? "finite values" : "values in [0, 1] (binarize first)");
    }
    return UG_OK;
}

static ug_status ensure_ctx(vae *v) {
    return v->ctx ? UG_OK : ug_ctx_create(&v->ctx, 0);
}

/* ---------------------------------------------------------------- training loss */
static ug_status vae_loss(void *impl, ug_ctx *ctx, const float *x, int64_t B, uint64_t seed,
                          uint64_t first_stream, int64_t step, ug_tensor **loss) {
    vae *v = impl;
    if (B < 1) return ug_fail(UG_ERR_INVALID_ARG, "vae loss: batch of %lld, expected >= 1",
                              (long long)B);
    ug_status st = check_data(v, "vae loss", x, B);
    if (st) return st;
    int64_t d = v->d, L = v->L;
    ug_tensor *xt = ug_tensor_from(ctx, 2, (int64_t[]){B, d}, x);
    ug_tensor *mu, *lv;
    encode(ctx, v, xt, &mu, &lv);
    ug_tensor *eps = ug_tensor_new(ctx, 2, (int64_t[]){B, L});
    ug_rng_normal_rows(seed, first_stream, 0, eps->data, B, L);
    ug_tensor *z = ug_add(ctx, mu, ug_mul(ctx, ug_exp(ctx, ug_affine(ctx, lv, 0.5f, 0.0f)), eps));
    ug_tensor *out = decode(ctx, v, z), *rec;
    if (v->gaussian) {
        /* (B, d) + (d): the one log-variance per dimension, broadcast over the batch. */
        ug_tensor *lvb = ug_add(ctx, ug_tensor_zeros(ctx, 2, (int64_t[]){B, d}), v->out_lv);
        rec = ug_gaussian_nll(ctx, xt, out, lvb);
    } else {
        rec = ug_bce_logits(ctx, out, xt);
    }
    /* KL(N(mu, e^lv) || N(0, 1)) = 0.5 sum_l (mu^2 + e^lv - lv) - L/2 */
    ug_tensor *kl = ug_sub(ctx, ug_add(ctx, ug_square(ctx, mu), ug_exp(ctx, lv)), lv);
    kl = ug_affine(ctx, ug_sum(ctx, kl, 1, 0), 0.5f, -0.5f * (float)L);
    *loss = ug_mean_all(ctx, ug_add(ctx, rec, kl));
    return UG_OK;
}

/* ---------------------------------------------------------------- evaluation
 * Encodes examples [i0, i0 + cnt) on a zero-padded tile of VAE_TILE rows into mu, lv
 * (VAE_TILE, L) host buffers. */
static void encode_tile(vae *v, const float *x, int64_t cnt, float *mu, float *lv) {
    ug_tensor *xt = ug_tensor_zeros(v->ctx, 2, (int64_t[]){VAE_TILE, v->d});
    memcpy(xt->data, x, (size_t)(cnt * v->d) * sizeof *x);
    ug_tensor *m, *l;
    encode(v->ctx, v, xt, &m, &l);
    memcpy(mu, m->data, (size_t)(VAE_TILE * v->L) * sizeof *mu);
    memcpy(lv, l->data, (size_t)(VAE_TILE * v->L) * sizeof *lv);
    ug_ctx_reset(v->ctx);
}

/* The decoder's mean (n, d): sigmoid of the logits, or the Gaussian mean, at z (VAE_TILE, L);
 * the first cnt rows go to out. */
static void decode_mean_tile(vae *v, ug_tensor *z, int64_t cnt, float *out) {
    ug_tensor *o = decode(v->ctx, v, z);
    if (!v->gaussian) o = ug_sigmoid(v->ctx, o);
    memcpy(out, o->data, (size_t)(cnt * v->d) * sizeof *out);
    ug_ctx_reset(v->ctx);
}

static ug_status vae_nll(void *impl, const ug_nll_cfg *c, int64_t n, const float *x,
                         double *nll) {
    vae *v = impl;
    if (c->iwae_k < 0)
        return ug_fail(UG_ERR_INVALID_ARG, "nll: iwae_k %d, expected >= 1 (0: 5000)", c->iwae_k);
    if (n < 0) return ug_fail(UG_ERR_INVALID_ARG, "nll: n = %lld", (long long)n);
    ug_status st = check_data(v, "nll", x, n);
    if (!st) st = ensure_ctx(v);
    if (st) return st;
    int64_t k = c->iwae_k ? c->iwae_k : 5000, L = v->L, d = v->d;
    int64_t S = k < VAE_CHUNK ? k : VAE_CHUNK;
    float *mu = malloc((size_t)(2 * VAE_TILE * L + L) * sizeof *mu);
    double *logw = malloc((size_t)(k + S) * sizeof *logw);
    if (!mu || !logw) {
        free(mu);
        free(logw);
        return ug_fail(UG_ERR_NOMEM, "nll: out of memory for %lld importance weights",
                       (long long)k);
    }
    float *lv = mu + VAE_TILE * L, *sd = lv + VAE_TILE * L;
    double *lpart = logw + k;   /* (S) log p(z) - log q(z | x) of a chunk */
    int old = ug_ctx_set_grad(v->ctx, 0);
    for (int64_t i0 = 0; i0 < n; i0 += VAE_TILE) {
        int64_t cnt = n - i0 < VAE_TILE ? n - i0 : VAE_TILE;
        encode_tile(v, x + i0 * d, cnt, mu, lv);
        for (int64_t b = 0; b < cnt; b++) {
            const float *mb = mu + b * L, *lb = lv + b * L, *xb = x + (i0 + b) * d;
            for (int64_t l = 0; l < L; l++) sd[l] = expf(0.5f * lb[l]);
            uint64_t stream = c->first_stream + (uint64_t)(i0 + b);
            for (int64_t j0 = 0; j0 < k; j0 += S) {
                int64_t s = k - j0 < S ? k - j0 : S;
                ug_tensor *z = ug_tensor_new(v->ctx, 2, (int64_t[]){s, L});
                /* z = mu + sd eps;  log p(z) - log q(z | x) = 0.5 sum_l (eps^2 + lv - z^2)
                 * (the 2 pi terms cancel). */
#pragma omp parallel for schedule(static) if (s * L >= UG_PAR_MIN / 8)
                for (int64_t r = 0; r < s; r++) {
                    float *zr = z->data + r * L;
                    ug_rng g = ug_rng_make(c->seed, stream, (uint32_t)(j0 + r));
                    ug_rng_normal(&g, zr, L);
                    double acc = 0;
                    for (int64_t l = 0; l < L; l++) {
                        double e = zr[l];
                        zr[l] = mb[l] + sd[l] * zr[l];
                        acc += e * e + (double)lb[l] - (double)zr[l] * zr[l];
                    }
                    lpart[r] = 0.5 * acc;
                }
                ug_tensor *o = decode(v->ctx, v, z);
                if (v->gaussian) ug_k_gaussian_loglik_rows(logw + j0, o->data, v->out_lv->data, xb, s, d);
                else ug_k_bernoulli_loglik_rows(logw + j0, o->data, xb, s, d);
                for (int64_t r = 0; r < s; r++) logw[j0 + r] += lpart[r];
                ug_ctx_reset(v->ctx);
            }
            /* -log (1/k) sum_j w_j by log-sum-exp in double */
            double mx = -INFINITY, acc = 0;
            for (int64_t j = 0; j < k; j++) mx = logw[j] > mx ? logw[j] : mx;
            for (int64_t j = 0; j < k; j++) acc += exp(logw[j] - mx);
            nll[i0 + b] = -(mx + log(acc) - log((double)k));
            if (!isfinite(nll[i0 + b]) && !st)
                st = ug_fail(UG_ERR_NUMERIC, "nll: the IWAE bound of example %lld is %g",
                             (long long)(i0 + b), nll[i0 + b]);
        }
    }
    ug_ctx_set_grad(v->ctx, old);
    free(mu);
    free(logw);
    return st;
}

static ug_status vae_sample(void *impl, int64_t n, double temperature, uint64_t seed,
                            uint64_t first_stream, float *out) {
    vae *v = impl;
    if (!(temperature > 0))
        return ug_fail(UG_ERR_INVALID_ARG, "sample: temperature %g, expected > 0", temperature);
    ug_status st = ensure_ctx(v);
    if (st) return st;
    int old = ug_ctx_set_grad(v->ctx, 0);
    for (int64_t i0 = 0; i0 < n; i0 += VAE_TILE) {
        int64_t cnt = n - i0 < VAE_TILE ? n - i0 : VAE_TILE;
        /* z ~ N(0, T^2 I); padding rows stay 0. */
        ug_tensor *z = ug_tensor_zeros(v->ctx, 2, (int64_t[]){VAE_TILE, v->L});
        ug_rng_normal_rows(seed, first_stream + (uint64_t)i0, 0, z->data, cnt, v->L);
        for (int64_t j = 0; j < cnt * v->L; j++) z->data[j] *= (float)temperature;
        decode_mean_tile(v, z, cnt, out + i0 * v->d);
    }
    ug_ctx_set_grad(v->ctx, old);
    return UG_OK;
}

static ug_status vae_reconstruct(void *impl, int64_t n, const float *x, uint64_t seed,
                                 uint64_t first_stream, float *out) {
    vae *v = impl;
    if (n < 0) return ug_fail(UG_ERR_INVALID_ARG, "reconstruct: n = %lld", (long long)n);
    for (int64_t j = 0; j < n * v->d; j++)
        if (!isfinite(x[j]))
            return ug_fail(UG_ERR_INVALID_ARG, "reconstruct: value %g at example %lld, "
                           "expected finite", (double)x[j], (long long)(j / v->d));
    ug_status st = ensure_ctx(v);
    if (st) return st;
    int64_t L = v->L;
    float *mu = malloc((size_t)(2 * VAE_TILE * L) * sizeof *mu);
    if (!mu) return ug_fail(UG_ERR_NOMEM, "reconstruct: out of memory");
    float *lv = mu + VAE_TILE * L;
    int old = ug_ctx_set_grad(v->ctx, 0);
    for (int64_t i0 = 0; i0 < n; i0 += VAE_TILE) {
        int64_t cnt = n - i0 < VAE_TILE ? n - i0 : VAE_TILE;
        encode_tile(v, x + i0 * v->d, cnt, mu, lv);
        /* z = mu + e^(lv/2) eps with the loss's eps (sub 0); padding rows stay 0. */
        ug_tensor *z = ug_tensor_zeros(v->ctx, 2, (int64_t[]){VAE_TILE, L});
        ug_rng_normal_rows(seed, first_stream + (uint64_t)i0, 0, z->data, cnt, L);
        for (int64_t j = 0; j < cnt * L; j++) z->data[j] = mu[j] + expf(0.5f * lv[j]) * z->data[j];
        decode_mean_tile(v, z, cnt, out + i0 * v->d);
    }
    ug_ctx_set_grad(v->ctx, old);
    free(mu);
    return UG_OK;
}

const ug_lfamily ug_vae_family = {
    .name = "vae",
    .models = "vae",
    .declare = vae_declare,
    .init = vae_init,
    .loss = vae_loss,
    .nll = vae_nll,
    .sample = vae_sample,
    .reconstruct = vae_reconstruct,
    .free_impl = vae_free,
};
