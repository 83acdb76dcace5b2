/* classifier.c — the classifier family (see classifier.h): networks, the cross-entropy loss
 * on clean or noisy inputs, batch-invariant evaluation (logits and features) and
 * d/dx log p(y | x~, sigma) for classifier guidance (Dhariwal & Nichol 2021, eq. 12 in
 * EDM's sigma-space: D_w = D + w sigma^2 grad log p). Parameter names follow PyTorch modules:
 * MLP nn.Sequential(Linear, SiLU, ..., Linear) as net.0, net.2, ...; CNN conv1, conv2, conv3,
 * fc, head; the noise embedding's projection noise_emb. */
#include "classifier.h"
#include "core/core.h"
#include <math.h>

#define CNN_C1 32
#define CNN_C2 64
#define CNN_FEAT 128

static ug_tensor *add_param(ug_params *ps, const char *mod, const char *what, int ndim,
                            const int64_t *shape) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", mod, what);
    return ug_params_add(ps, name, ndim, shape);
}

static ug_status add_linear(ug_params *ps, const char *mod, int in, int out, ug_tensor **w,
                            ug_tensor **b) {
    *w = add_param(ps, mod, "weight", 2, (int64_t[]){out, in});
    *b = add_param(ps, mod, "bias", 1, (int64_t[]){out});
    return *w && *b ? UG_OK : UG_ERR_INVALID_ARG;
}

static ug_status add_conv(ug_params *ps, const char *mod, int in, int out, ug_tensor **w,
                          ug_tensor **b) {
    *w = add_param(ps, mod, "weight", 4, (int64_t[]){out, in, 3, 3});
    *b = add_param(ps, mod, "bias", 1, (int64_t[]){out});
    return *w && *b ? UG_OK : UG_ERR_INVALID_ARG;
}

ug_status ug_classifier_declare(ug_classifier *c, ug_params *ps, const ug_model_cfg *cfg) {
    memset(c, 0, sizeof *c);
    if (cfg->num_classes < 2)
        return ug_fail(UG_ERR_INVALID_ARG, "classifier: num_classes %d, expected >= 2",
                       cfg->num_classes);
    c->data_dim = cfg->data_dim;
    c->num_classes = cfg->num_classes;
    c->noisy = cfg->noisy != 0;
    c->image = cfg->channels > 0 || cfg->height > 0 || cfg->width > 0;
    ug_form_init(&c->form, UG_FORM_EDM);
    ug_status st = UG_OK;
    char mod[32];
    if (c->image) {
        if (cfg->channels < 1 || cfg->height < 4 || cfg->width < 4 || cfg->height % 4 ||
            cfg->width % 4 || (int64_t)cfg->channels * cfg->height * cfg->width != cfg->data_dim)
            return ug_fail(UG_ERR_INVALID_ARG,
                           "classifier: image (%d, %d, %d) with data_dim %d: expected H and W "
                           "divisible by 4 and C H W = data_dim",
                           cfg->channels, cfg->height, cfg->width, cfg->data_dim);
        c->channels = cfg->channels;
        c->height = cfg->height;
        c->width = cfg->width;
        c->feat_dim = CNN_FEAT;
        c->nlayers = 5;
        c->tile = 64;
        if (!st) st = add_conv(ps, "conv1", c->channels, CNN_C1, &c->w[0], &c->b[0]);
        if (!st) st = add_conv(ps, "conv2", CNN_C1, CNN_C2, &c->w[1], &c->b[1]);
        if (!st) st = add_conv(ps, "conv3", CNN_C2, CNN_C2, &c->w[2], &c->b[2]);
        if (!st) st = add_linear(ps, "fc", CNN_C2, CNN_FEAT, &c->w[3], &c->b[3]);
        if (!st) st = add_linear(ps, "head", CNN_FEAT, c->num_classes, &c->w[4], &c->b[4]);
        if (!st && c->noisy) st = add_linear(ps, "noise_emb", UG_CLS_EMB_DIM, CNN_C1, &c->emb_w, &c->emb_b);
    } else {
        if (cfg->data_dim < 1 || cfg->hidden < 1 || cfg->depth < 1 ||
            cfg->depth > UG_CLS_MAX_LAYERS - 1)
            return ug_fail(UG_ERR_INVALID_ARG,
                           "classifier: data_dim %d, hidden %d, depth %d: expected >= 1, >= 1, "
                           "1..%d", cfg->data_dim, cfg->hidden, cfg->depth, UG_CLS_MAX_LAYERS - 1);
        c->hidden = cfg->hidden;
        c->depth = cfg->depth;
        c->feat_dim = cfg->hidden;
        c->nlayers = cfg->depth + 1;
        c->tile = 256;
        int in = cfg->data_dim;
        for (int l = 0; l < c->nlayers && !st; l++) {
            int out = l == c->nlayers - 1 ? c->num_classes : c->hidden;
            snprintf(mod, sizeof mod, "net.%d", 2 * l);   /* SiLU modules sit in between */
            st = add_linear(ps, mod, in, out, &c->w[l], &c->b[l]);
            in = out;
        }
        if (!st && c->noisy) st = add_linear(ps, "noise_emb", UG_CLS_EMB_DIM, c->hidden, &c->emb_w, &c->emb_b);
    }
    return st;
}

void ug_classifier_free(ug_classifier *c) {
    if (!c) return;
    ug_ctx_free(c->ctx);
    c->ctx = NULL;
}

/* Projected sinusoidal embedding of c_noise: (B) -> (B, width). */
static ug_tensor *noise_embedding(ug_ctx *ctx, const ug_classifier *c, ug_tensor *c_noise) {
    ug_tensor *e = ug_sinusoidal(ctx, c_noise, UG_CLS_EMB_DIM, (float)log(1000.0), 0);
    return ug_linear(ctx, e, c->emb_w, c->emb_b);
}

ug_tensor *ug_classifier_forward(ug_ctx *ctx, const ug_classifier *c, ug_tensor *x,
                                 const double *sigma, ug_tensor **features) {
    int64_t B = x->shape[0];
    char sb[64];
    UG_CHECK(x->ndim == 2 && x->shape[1] == c->data_dim, "classifier: input %s, expected (B, %d)",
             ug_shape_str(x, sb, sizeof sb), c->data_dim);
    UG_CHECK(!c->noisy || sigma, "classifier: a noisy classifier needs sigma");
    ug_tensor *c_noise = NULL;
    if (c->noisy) {
        /* EDM's input scaling c_in = 1 / sqrt(sigma^2 + sd^2) keeps x~ of order one at every
         * noise level, so very noisy inputs are no far extrapolation of the network. */
        ug_tensor *c_in = ug_tensor_new(ctx, 2, (int64_t[]){B, 1});
        c_noise = ug_tensor_new(ctx, 1, (int64_t[]){B});
        double sd = c->form.sigma_data;
        for (int64_t b = 0; b < B; b++) {
            c_in->data[b] = (float)(1.0 / sqrt(sigma[b] * sigma[b] + sd * sd));
            c_noise->data[b] = (float)(0.25 * log(sigma[b]));
        }
        x = ug_mul(ctx, x, c_in);
    }
    ug_tensor *h;
    if (c->image) {
        h = ug_reshape(ctx, x, 4, (int64_t[]){B, c->channels, c->height, c->width});
        h = ug_conv2d(ctx, h, c->w[0], c->b[0], 1, 1);
        if (c->noisy)
            h = ug_add(ctx, h, ug_reshape(ctx, noise_embedding(ctx, c, c_noise), 4,
                                          (int64_t[]){B, CNN_C1, 1, 1}));
        h = ug_silu(ctx, h);
        h = ug_silu(ctx, ug_conv2d(ctx, h, c->w[1], c->b[1], 2, 1));
        h = ug_silu(ctx, ug_conv2d(ctx, h, c->w[2], c->b[2], 2, 1));
        int64_t hw = h->shape[2] * h->shape[3];
        h = ug_mean(ctx, ug_reshape(ctx, h, 3, (int64_t[]){B, CNN_C2, hw}), -1, 0);   /* (B, 64) */
        h = ug_silu(ctx, ug_linear(ctx, h, c->w[3], c->b[3]));                         /* (B, 128) */
    } else {
        h = x;
        for (int l = 0; l < c->nlayers - 1; l++) {
            h = ug_linear(ctx, h, c->w[l], c->b[l]);
            if (l == 0 && c->noisy) h = ug_add(ctx, h, noise_embedding(ctx, c, c_noise));
            h = ug_silu(ctx, h);
        }
    }
    if (features) *features = h;
    return ug_linear(ctx, h, c->w[c->nlayers - 1], c->b[c->nlayers - 1]);
}

ug_tensor *ug_classifier_loss(ug_ctx *ctx, const ug_classifier *c, const float *x, int64_t B,
                              const int32_t *labels, uint64_t seed, uint64_t first_stream) {
    int64_t d = c->data_dim;
    ug_tensor *xin = ug_tensor_new(ctx, 2, (int64_t[]){B, d});
    double *sig = NULL;
    if (!c->noisy) {
        memcpy(xin->data, x, (size_t)(B * d) * sizeof *x);
    } else {
        sig = ug_ctx_alloc(ctx, (size_t)B * sizeof *sig);
#pragma omp parallel for schedule(static) if (B * d >= UG_PAR_MIN / 4)
        for (int64_t b = 0; b < B; b++) {
            ug_rng r = ug_rng_make(seed, first_stream + (uint64_t)b, 0);
            double u;
            float nz[4];
            ug_rng_uniform_f64(&r, &u, 1);
            ug_rng_normal(&r, nz, 1);
            double sigma = ug_form_train_sigma(&c->form, u, nz[0]);
            sig[b] = sigma;
            float *xi = xin->data + b * d;
            ug_rng_normal(&r, xi, d);   /* eps, overwritten in place */
            for (int64_t j = 0; j < d; j++) xi[j] = (float)(x[b * d + j] + sigma * xi[j]);
        }
    }
    ug_tensor *logits = ug_classifier_forward(ctx, c, xin, sig, NULL);
    return ug_mean_all(ctx, ug_cross_entropy(ctx, logits, labels));
}

/* ---------------------------------------------------------------- the public model functions */
static ug_status need_classifier(ug_model *m, ug_classifier **c) {
    *c = ug_model_classifier(m);
    if (!*c)
        return ug_fail(UG_ERR_INVALID_ARG, "classifier: the model is a %s model, not a classifier",
                       ug_family_name(ug_model_config(m)->family));
    if (!(*c)->ctx) return ug_ctx_create(&(*c)->ctx, 0);
    return UG_OK;
}

int ug_model_feature_dim(const ug_model *m) {
    const ug_classifier *c = ug_model_classifier((ug_model *)m);
    return c ? c->feat_dim : 0;
}

/* Every call runs on exactly c->tile rows (the last tile padded with zeros): OpenBLAS picks its
 * kernels by matrix size, so with a varying row count a row's logits would change in the last
 * bits with the number of its batch mates. */
ug_status ug_model_classify(ug_model *m, int64_t n, const float *x, const double *sigma,
                            float *logits, float *features) {
    ug_classifier *c;
    ug_status st = need_classifier(m, &c);
    if (st) return st;
    if (n < 0) return ug_fail(UG_ERR_INVALID_ARG, "classify: n = %lld", (long long)n);
    int64_t d = c->data_dim, K = c->num_classes, F = c->feat_dim, T = c->tile;
    ug_ctx *ctx = c->ctx;
    int old = ug_ctx_set_grad(ctx, 0);
    for (int64_t i = 0; i < n; i += T) {
        int64_t k = n - i < T ? n - i : T;
        ug_tensor *xt = ug_tensor_zeros(ctx, 2, (int64_t[]){T, d});
        memcpy(xt->data, x + i * d, (size_t)(k * d) * sizeof *x);
        double *sig = ug_ctx_alloc(ctx, (size_t)T * sizeof *sig);
        for (int64_t b = 0; b < T; b++) sig[b] = sigma && b < k ? sigma[i + b] : c->form.sigma_min;
        ug_tensor *feat;
        ug_tensor *lg = ug_classifier_forward(ctx, c, xt, sig, &feat);
        memcpy(logits + i * K, lg->data, (size_t)(k * K) * sizeof *logits);
        if (features) memcpy(features + i * F, feat->data, (size_t)(k * F) * sizeof *features);
        ug_ctx_reset(ctx);
    }
    ug_ctx_set_grad(ctx, old);
    for (int64_t j = 0; j < n * K; j++)
        if (!isfinite(logits[j]))
            return ug_fail(UG_ERR_NUMERIC, "classify: logit %lld of example %lld is %g",
                           (long long)(j % K), (long long)(j / K), (double)logits[j]);
    return UG_OK;
}

ug_status ug_model_accuracy(ug_model *m, const ug_dataset *ds, double *acc) {
    ug_classifier *c;
    ug_status st = need_classifier(m, &c);
    if (st) return st;
    if (!ds->y || ds->n < 1)
        return ug_fail(UG_ERR_INVALID_ARG, "accuracy: the data set has %s",
                       ds->y ? "no examples" : "no labels");
    if (ug_dataset_dim(ds) != c->data_dim)
        return ug_fail(UG_ERR_SHAPE, "accuracy: examples of %lld floats, the classifier takes %d",
                       (long long)ug_dataset_dim(ds), c->data_dim);
    int64_t K = c->num_classes, chunk = 16 * (int64_t)c->tile, right = 0;
    float *lg = malloc((size_t)(chunk * K) * sizeof *lg);
    if (!lg) return ug_fail(UG_ERR_NOMEM, "accuracy: out of memory");
    for (int64_t i = 0; i < ds->n && !st; i += chunk) {
        int64_t k = ds->n - i < chunk ? ds->n - i : chunk;
        st = ug_model_classify(m, k, ds->x + i * c->data_dim, NULL, lg, NULL);
        for (int64_t b = 0; b < k && !st; b++) {
            int64_t best = 0;
            for (int64_t j = 1; j < K; j++)
                if (lg[b * K + j] > lg[b * K + best]) best = j;
            right += best == ds->y[i + b];
        }
    }
    free(lg);
    if (!st) *acc = (double)right / (double)ds->n;
    return st;
}

ug_status ug_model_class_logprob_grad(ug_model *m, int64_t n, const double *x, double sigma,
                                      const int32_t *labels, double *grad) {
    ug_classifier *c;
    ug_status st = need_classifier(m, &c);
    if (st) return st;
    if (!(sigma > 0) && c->noisy)
        return ug_fail(UG_ERR_INVALID_ARG, "class log-prob gradient: sigma %g, expected > 0", sigma);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= c->num_classes)
            return ug_fail(UG_ERR_INVALID_ARG, "class log-prob gradient: label %d of point %lld "
                           "outside [0, %d)", labels[i], (long long)i, c->num_classes);
    int64_t d = c->data_dim, T = c->tile;
    ug_ctx *ctx = c->ctx;
    ug_params *ps = ug_model_params(m);
    int was = ug_params_num_tensors(ps) > 0 && ug_params_tensor(ps, 0)->requires_grad;
    ug_params_set_requires_grad(ps, 0);
    int old = ug_ctx_set_grad(ctx, 1);
    for (int64_t i = 0; i < n && !st; i += T) {
        int64_t k = n - i < T ? n - i : T;
        ug_tensor *xt = ug_tensor_zeros(ctx, 2, (int64_t[]){T, d});
        for (int64_t j = 0; j < k * d; j++) xt->data[j] = (float)x[i * d + j];
        ug_tensor_requires_grad(ctx, xt);
        double *sig = ug_ctx_alloc(ctx, (size_t)T * sizeof *sig);
        for (int64_t b = 0; b < T; b++) sig[b] = sigma;
        int32_t *lab = ug_ctx_alloc(ctx, (size_t)T * sizeof *lab);
        memset(lab, 0, (size_t)T * sizeof *lab);
        memcpy(lab, labels + i, (size_t)k * sizeof *lab);
        /* Rows are independent, so d/dx_b of the summed -log p is row b's own gradient; the
         * padding rows only add terms that do not touch the real rows. */
        ug_tensor *nll = ug_sum_all(ctx, ug_cross_entropy(ctx, ug_classifier_forward(ctx, c, xt, sig, NULL), lab));
        st = ug_backward(ctx, nll);
        for (int64_t j = 0; j < k * d && !st; j++) grad[i * d + j] = -(double)xt->grad[j];
        ug_ctx_reset(ctx);
    }
    ug_ctx_set_grad(ctx, old);
    ug_params_set_requires_grad(ps, was);
    return st;
}
