/* flow_layers.c — the invertible layers of flow_layers.h: NICE (Dinh et al. 2014), RealNVP
 * (Dinh et al. 2017) and Glow (Kingma & Dhariwal 2018). Forward passes are built from tape ops
 * so training differentiates them; inverses run the same conditioner networks without a tape. */
#include "nn/flow_layers.h"
#include "ops/flow_ops.h"
#include <math.h>

/* ---------------------------------------------------------------- conditioner networks */
static ug_status add_layer(ug_fl_net *n, ug_params *ps, const char *prefix, int in, int out,
                           int k) {
    char name[128];
    int l = n->nlayers;
    if (l == UG_FL_NET_MAX)
        return ug_fail(UG_ERR_INVALID_ARG, "flow: a conditioner of more than %d layers", UG_FL_NET_MAX);
    snprintf(name, sizeof name, "%s.%d.weight", prefix, 2 * l);
    n->w[l] = n->conv ? ug_params_add(ps, name, 4, (int64_t[]){out, in, k, k})
                      : ug_params_add(ps, name, 2, (int64_t[]){out, in});
    snprintf(name, sizeof name, "%s.%d.bias", prefix, 2 * l);
    n->b[l] = ug_params_add(ps, name, 1, (int64_t[]){out});
    n->ksize[l] = k;
    n->nlayers++;
    return n->w[l] && n->b[l] ? UG_OK : UG_ERR_INVALID_ARG;
}

static ug_tensor *net_forward(ug_ctx *ctx, const ug_fl_net *n, ug_tensor *h) {
    for (int l = 0; l < n->nlayers; l++) {
        ug_tensor *y = n->conv ? ug_conv2d(ctx, h, n->w[l], n->b[l], 1, n->ksize[l] / 2)
                               : ug_linear(ctx, h, n->w[l], n->b[l]);
        if (l == n->nlayers - 1) return y;
        y = n->relu ? ug_relu(ctx, y) : ug_silu(ctx, y);
        h = n->residual && l > 0 ? ug_add(ctx, h, y) : y;
    }
    return h;
}

/* ---------------------------------------------------------------- declarations */
static void layer_init(ug_fl_layer *L, ug_fl_kind kind, int image, int C, int H, int W) {
    memset(L, 0, sizeof *L);
    L->kind = kind;
    L->image = image;
    L->C = C;
    L->H = image ? H : 1;
    L->W = image ? W : 1;
}

ug_status ug_fl_declare_additive(ug_fl_layer *L, ug_params *ps, const char *prefix, int d,
                                 int parity, int hidden, int depth) {
    layer_init(L, UG_FL_ADDITIVE, 0, d, 1, 1);
    if (d < 2 || hidden < 1 || depth < 1 || depth + 1 > UG_FL_NET_MAX)
        return ug_fail(UG_ERR_INVALID_ARG, "flow: additive coupling with d %d, hidden %d, depth "
                       "%d: expected d >= 2, hidden >= 1, depth 1..%d", d, hidden, depth,
                       UG_FL_NET_MAX - 1);
    int ne = (d + 1) / 2, no = d / 2;
    L->na = parity ? no : ne;
    L->nb = parity ? ne : no;
    L->ia = malloc((size_t)L->na * sizeof *L->ia);
    L->ib = malloc((size_t)L->nb * sizeof *L->ib);
    if (!L->ia || !L->ib) return ug_fail(UG_ERR_NOMEM, "flow: out of memory");
    for (int j = 0; j < L->na; j++) L->ia[j] = 2 * j + (parity ? 1 : 0);
    for (int j = 0; j < L->nb; j++) L->ib[j] = 2 * j + (parity ? 0 : 1);
    L->net.relu = 1;
    ug_status st = add_layer(&L->net, ps, prefix, L->na, hidden, 1);
    for (int l = 1; l < depth && !st; l++) st = add_layer(&L->net, ps, prefix, hidden, hidden, 1);
    if (!st) st = add_layer(&L->net, ps, prefix, hidden, L->nb, 1);
    return st;
}

ug_status ug_fl_declare_affine(ug_fl_layer *L, ug_params *ps, const char *prefix, int image,
                               int C, int H, int W, ug_fl_mask mask, int parity, int hidden,
                               int depth, float clamp) {
    layer_init(L, UG_FL_AFFINE, image, C, H, W);
    L->clamp = clamp;
    int n = C * L->H * L->W;
    if (n < 2 || hidden < 1 || depth < 1 || depth + 1 > UG_FL_NET_MAX ||
        (mask == UG_FL_MASK_CHANNEL && C < 2))
        return ug_fail(UG_ERR_INVALID_ARG, "flow: affine coupling on (%d, %d, %d) with hidden "
                       "%d, depth %d: expected at least 2 values (2 channels for a channel "
                       "mask), hidden >= 1, depth 1..%d", C, L->H, L->W, hidden, depth,
                       UG_FL_NET_MAX - 1);
    L->mask = malloc((size_t)n * sizeof *L->mask);
    if (!L->mask) return ug_fail(UG_ERR_NOMEM, "flow: out of memory");
    for (int c = 0; c < C; c++)
        for (int i = 0; i < L->H; i++)
            for (int j = 0; j < L->W; j++) {
                int k = (c * L->H + i) * L->W + j, on;
                if (mask == UG_FL_MASK_CHANNEL) on = c < C / 2;
                else if (mask == UG_FL_MASK_CHECKER) on = (i + j) % 2 == 0;
                else on = k % 2 == 0;
                L->mask[k] = (float)(on ^ (parity & 1));
            }
    L->net.conv = image;
    L->net.residual = image;
    L->net.relu = 1;
    ug_status st = add_layer(&L->net, ps, prefix, image ? C : n, hidden, 3);
    for (int l = 1; l < depth && !st; l++) st = add_layer(&L->net, ps, prefix, hidden, hidden, 3);
    if (!st) st = add_layer(&L->net, ps, prefix, hidden, 2 * (image ? C : n), 3);
    return st;
}

ug_status ug_fl_declare_affine_split(ug_fl_layer *L, ug_params *ps, const char *prefix, int C,
                                     int H, int W, int hidden, float clamp) {
    layer_init(L, UG_FL_AFFINE_SPLIT, 1, C, H, W);
    L->clamp = clamp;
    if (C < 2 || hidden < 1)
        return ug_fail(UG_ERR_INVALID_ARG, "flow: glow coupling on %d channels with hidden %d: "
                       "expected >= 2 channels and hidden >= 1", C, hidden);
    int ca = C / 2, cb = C - ca;
    L->net.conv = 1;
    L->net.relu = 1;
    ug_status st = add_layer(&L->net, ps, prefix, ca, hidden, 3);
    if (!st) st = add_layer(&L->net, ps, prefix, hidden, hidden, 1);
    if (!st) st = add_layer(&L->net, ps, prefix, hidden, 2 * cb, 3);
    return st;
}

ug_status ug_fl_declare_scale(ug_fl_layer *L, ug_params *ps, const char *name, int d) {
    layer_init(L, UG_FL_SCALE, 0, d, 1, 1);
    L->logs = ug_params_add(ps, name, 1, (int64_t[]){d});
    return L->logs ? UG_OK : UG_ERR_INVALID_ARG;
}

static ug_tensor *add_named(ug_params *ps, const char *prefix, const char *what, int ndim,
                            const int64_t *shape) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    return ug_params_add(ps, name, ndim, shape);
}

ug_status ug_fl_declare_actnorm(ug_fl_layer *L, ug_params *ps, const char *prefix, int C, int H,
                                int W) {
    layer_init(L, UG_FL_ACTNORM, 1, C, H, W);
    L->loc = add_named(ps, prefix, "loc", 1, (int64_t[]){C});
    L->logs = add_named(ps, prefix, "logs", 1, (int64_t[]){C});
    return L->loc && L->logs ? UG_OK : UG_ERR_INVALID_ARG;
}

ug_status ug_fl_declare_invconv(ug_fl_layer *L, ug_params *ps, const char *prefix, int C, int H,
                                int W) {
    layer_init(L, UG_FL_INVCONV, 1, C, H, W);
    L->lower = add_named(ps, prefix, "lower", 2, (int64_t[]){C, C});
    L->upper = add_named(ps, prefix, "upper", 2, (int64_t[]){C, C});
    L->logs = add_named(ps, prefix, "logs", 1, (int64_t[]){C});
    L->perm = malloc((size_t)C * sizeof *L->perm);
    L->sign = malloc((size_t)C * sizeof *L->sign);
    if (!L->perm || !L->sign) return ug_fail(UG_ERR_NOMEM, "flow: out of memory");
    return L->lower && L->upper && L->logs ? UG_OK : UG_ERR_INVALID_ARG;
}

ug_status ug_fl_declare_squeeze(ug_fl_layer *L, int C, int H, int W) {
    layer_init(L, UG_FL_SQUEEZE, 1, C, H, W);
    if (H % 2 || W % 2)
        return ug_fail(UG_ERR_INVALID_ARG, "flow: squeeze of a %d x %d image, expected even "
                       "height and width (fewer levels?)", H, W);
    return UG_OK;
}

ug_status ug_fl_declare_factor(ug_fl_layer *L, int C, int H, int W) {
    layer_init(L, UG_FL_FACTOR, 1, C, H, W);
    if (C < 2) return ug_fail(UG_ERR_INVALID_ARG, "flow: factor-out of %d channel(s), expected >= 2", C);
    return UG_OK;
}

void ug_fl_out_shape(const ug_fl_layer *L, int *C, int *H, int *W) {
    *C = L->C;
    *H = L->H;
    *W = L->W;
    if (L->kind == UG_FL_SQUEEZE) {
        *C = 4 * L->C;
        *H = L->H / 2;
        *W = L->W / 2;
    } else if (L->kind == UG_FL_FACTOR) {
        *C = L->C - L->C / 2;
    }
}

/* ---------------------------------------------------------------- init */
/* A random rotation (Gram-Schmidt on Gaussian columns, in double), LU-factored with partial
 * pivoting: rows perm[i] of Q are row i of L U. */
static void init_invconv(ug_fl_layer *L, uint64_t key, uint64_t stream) {
    int C = L->C;
    double *q = malloc((size_t)(C * C) * sizeof *q);
    float *g = malloc((size_t)(C * C) * sizeof *g);
    if (!q || !g) { free(q); free(g); return; }
    ug_rng r = ug_rng_make(key, stream, 0);
    ug_rng_normal(&r, g, C * C);
    for (int j = 0; j < C; j++) {       /* column j of q */
        for (int i = 0; i < C; i++) q[i * C + j] = g[i * C + j];
        for (int k = 0; k < j; k++) {
            double dot = 0;
            for (int i = 0; i < C; i++) dot += q[i * C + j] * q[i * C + k];
            for (int i = 0; i < C; i++) q[i * C + j] -= dot * q[i * C + k];
        }
        double nrm = 0;
        for (int i = 0; i < C; i++) nrm += q[i * C + j] * q[i * C + j];
        nrm = sqrt(nrm);
        for (int i = 0; i < C; i++) q[i * C + j] /= nrm;
    }
    for (int i = 0; i < C; i++) L->perm[i] = i;
    for (int k = 0; k < C; k++) {
        int p = k;
        for (int i = k + 1; i < C; i++)
            if (fabs(q[i * C + k]) > fabs(q[p * C + k])) p = i;
        if (p != k) {
            for (int j = 0; j < C; j++) {
                double t = q[k * C + j];
                q[k * C + j] = q[p * C + j];
                q[p * C + j] = t;
            }
            int32_t t = L->perm[k];
            L->perm[k] = L->perm[p];
            L->perm[p] = t;
        }
        for (int i = k + 1; i < C; i++) {
            q[i * C + k] /= q[k * C + k];
            for (int j = k + 1; j < C; j++) q[i * C + j] -= q[i * C + k] * q[k * C + j];
        }
    }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            L->lower->data[i * C + j] = j < i ? (float)q[i * C + j] : 0.0f;
            L->upper->data[i * C + j] = j > i ? (float)q[i * C + j] : 0.0f;
        }
    for (int i = 0; i < C; i++) {
        L->sign[i] = q[i * C + i] < 0 ? -1.0f : 1.0f;
        L->logs->data[i] = (float)log(fabs(q[i * C + i]));
    }
    free(q);
    free(g);
}

static void zero(ug_tensor *t) {
    if (t) memset(t->data, 0, (size_t)t->numel * sizeof(float));
}

void ug_fl_init(ug_fl_layer *L, uint64_t key, uint64_t stream, int zero_last) {
    switch (L->kind) {
    case UG_FL_AFFINE:
    case UG_FL_AFFINE_SPLIT:
    case UG_FL_ADDITIVE:
        if (zero_last && L->net.nlayers) {
            zero(L->net.w[L->net.nlayers - 1]);
            zero(L->net.b[L->net.nlayers - 1]);
        }
        break;
    case UG_FL_SCALE: zero(L->logs); break;
    case UG_FL_ACTNORM: zero(L->loc); zero(L->logs); break;
    case UG_FL_INVCONV: init_invconv(L, key, stream); break;
    default: break;
    }
}

void ug_fl_free(ug_fl_layer *L) {
    free(L->mask);
    free(L->ia);
    free(L->ib);
    free(L->perm);
    free(L->sign);
    L->mask = L->sign = NULL;
    L->ia = L->ib = L->perm = NULL;
}

/* ---------------------------------------------------------------- forward and inverse */
static ug_tensor *add_logdet(ug_ctx *ctx, ug_tensor *ld, ug_tensor *term) {
    if (term->ndim == 0) term = ug_reshape(ctx, term, 1, (int64_t[]){1});
    return ug_add(ctx, ld, term);
}

/* (1, C, 1, 1) view of a per-channel parameter (images), (1, C) for vectors. */
static ug_tensor *per_channel(ug_ctx *ctx, const ug_fl_layer *L, ug_tensor *p) {
    return L->image ? ug_reshape(ctx, p, 4, (int64_t[]){1, L->C, 1, 1})
                    : ug_reshape(ctx, p, 2, (int64_t[]){1, L->C});
}

static ug_tensor *mask_tensor(ug_ctx *ctx, const ug_fl_layer *L) {
    return L->image ? ug_tensor_from(ctx, 4, (int64_t[]){1, L->C, L->H, L->W}, L->mask)
                    : ug_tensor_from(ctx, 2, (int64_t[]){1, L->C}, L->mask);
}

static void actnorm_data_init(const ug_fl_layer *L, const ug_tensor *x) {
    int64_t N = x->shape[0], C = L->C, HW = (int64_t)L->H * L->W;
    for (int64_t c = 0; c < C; c++) {
        double s = 0, s2 = 0;
        for (int64_t b = 0; b < N; b++)
            for (int64_t k = 0; k < HW; k++) {
                double v = x->data[(b * C + c) * HW + k];
                s += v;
                s2 += v * v;
            }
        double mean = s / (double)(N * HW), var = s2 / (double)(N * HW) - mean * mean;
        L->loc->data[c] = (float)-mean;
        L->logs->data[c] = (float)-log(sqrt(var > 0 ? var : 0) + 1e-6);
    }
}

static ug_tensor *squeeze(ug_ctx *ctx, ug_tensor *x, int C, int H, int W) {
    int64_t N = x->shape[0];
    ug_tensor *t = ug_reshape(ctx, x, 6, (int64_t[]){N, C, H / 2, 2, W / 2, 2});
    t = ug_permute(ctx, t, (int[]){0, 1, 3, 5, 2, 4});
    return ug_reshape(ctx, t, 4, (int64_t[]){N, 4 * C, H / 2, W / 2});
}

static ug_tensor *unsqueeze(ug_ctx *ctx, ug_tensor *y, int C, int H, int W) {
    int64_t N = y->shape[0];
    ug_tensor *t = ug_reshape(ctx, y, 6, (int64_t[]){N, C, 2, 2, H / 2, W / 2});
    t = ug_permute(ctx, t, (int[]){0, 1, 4, 2, 5, 3});
    return ug_reshape(ctx, t, 4, (int64_t[]){N, C, H, W});
}

/* W (C, C) of the 1x1 convolution as a (C, C, 1, 1) kernel. */
static ug_tensor *invconv_weight(ug_ctx *ctx, const ug_fl_layer *L) {
    ug_tensor *w = ug_flow_lu_weight(ctx, L->lower, L->upper, L->logs, L->perm, L->sign);
    return ug_reshape(ctx, w, 4, (int64_t[]){L->C, L->C, 1, 1});
}

ug_tensor *ug_fl_additive_halves(ug_ctx *ctx, const ug_fl_layer *L, ug_tensor *xa,
                                 ug_tensor *xb, int inverse) {
    ug_tensor *m = net_forward(ctx, &L->net, xa);
    return inverse ? ug_sub(ctx, xb, m) : ug_add(ctx, xb, m);
}

ug_tensor *ug_fl_forward(ug_ctx *ctx, ug_fl_layer *L, ug_tensor *x, ug_tensor **logdet,
                         ug_tensor **zout, int data_init) {
    int64_t HW = (int64_t)L->H * L->W;
    switch (L->kind) {
    case UG_FL_ADDITIVE: {
        ug_tensor *xa = ug_flow_gather(ctx, x, L->ia, L->na), *xb = ug_flow_gather(ctx, x, L->ib, L->nb);
        return ug_flow_merge(ctx, xa, L->ia, ug_fl_additive_halves(ctx, L, xa, xb, 0), L->ib);
    }
    case UG_FL_AFFINE: {
        ug_tensor *h = net_forward(ctx, &L->net, ug_mul(ctx, x, mask_tensor(ctx, L)));
        *logdet = ug_add(ctx, *logdet, ug_flow_affine_logdet(ctx, h, L->mask, L->clamp));
        return ug_flow_affine(ctx, x, h, L->mask, L->clamp);
    }
    case UG_FL_AFFINE_SPLIT: {
        ug_tensor *p[2];
        ug_split(ctx, x, 1, (int64_t[]){L->C / 2, L->C - L->C / 2}, 2, p);
        ug_tensor *h = net_forward(ctx, &L->net, p[0]);
        *logdet = ug_add(ctx, *logdet, ug_flow_affine_logdet(ctx, h, NULL, L->clamp));
        p[1] = ug_flow_affine(ctx, p[1], h, NULL, L->clamp);
        return ug_concat(ctx, p, 2, 1);
    }
    case UG_FL_SCALE:
        *logdet = add_logdet(ctx, *logdet, ug_sum_all(ctx, L->logs));
        return ug_mul(ctx, x, ug_exp(ctx, L->logs));
    case UG_FL_ACTNORM:
        if (data_init) actnorm_data_init(L, x);
        *logdet = add_logdet(ctx, *logdet, ug_affine(ctx, ug_sum_all(ctx, L->logs), (float)HW, 0));
        return ug_mul(ctx, ug_add(ctx, x, per_channel(ctx, L, L->loc)),
                      ug_exp(ctx, per_channel(ctx, L, L->logs)));
    case UG_FL_INVCONV:
        *logdet = add_logdet(ctx, *logdet, ug_affine(ctx, ug_sum_all(ctx, L->logs), (float)HW, 0));
        return ug_conv2d(ctx, x, invconv_weight(ctx, L), NULL, 1, 0);
    case UG_FL_SQUEEZE: return squeeze(ctx, x, L->C, L->H, L->W);
    case UG_FL_FACTOR: {
        ug_tensor *p[2];
        ug_split(ctx, x, 1, (int64_t[]){L->C / 2, L->C - L->C / 2}, 2, p);
        *zout = p[0];
        return p[1];
    }
    default: UG_CHECK(0, "flow: layer kind %d", (int)L->kind);
    }
    return NULL;
}

/* W^-1 by Gauss-Jordan elimination with partial pivoting, in double. */
static void invert(const float *w, float *out, int C) {
    double *a = malloc((size_t)(2 * C * C) * sizeof *a);
    UG_CHECK(a, "flow: out of memory inverting a %d x %d matrix", C, C);
    for (int i = 0; i < C; i++)
        for (int j = 0; j < 2 * C; j++) a[i * 2 * C + j] = j < C ? w[i * C + j] : (j - C == i);
    for (int k = 0; k < C; k++) {
        int p = k;
        for (int i = k + 1; i < C; i++)
            if (fabs(a[i * 2 * C + k]) > fabs(a[p * 2 * C + k])) p = i;
        for (int j = 0; j < 2 * C && p != k; j++) {
            double t = a[k * 2 * C + j];
            a[k * 2 * C + j] = a[p * 2 * C + j];
            a[p * 2 * C + j] = t;
        }
        double piv = a[k * 2 * C + k];
        for (int j = 0; j < 2 * C; j++) a[k * 2 * C + j] /= piv;
        for (int i = 0; i < C; i++) {
            if (i == k) continue;
            double f = a[i * 2 * C + k];
            for (int j = 0; j < 2 * C; j++) a[i * 2 * C + j] -= f * a[k * 2 * C + j];
        }
    }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) out[i * C + j] = (float)a[i * 2 * C + C + j];
    free(a);
}

ug_tensor *ug_fl_inverse(ug_ctx *ctx, const ug_fl_layer *L, ug_tensor *y, ug_tensor *zin) {
    int old = ug_ctx_set_grad(ctx, 0);
    ug_tensor *x = NULL;
    switch (L->kind) {
    case UG_FL_ADDITIVE: {
        ug_tensor *ya = ug_flow_gather(ctx, y, L->ia, L->na), *yb = ug_flow_gather(ctx, y, L->ib, L->nb);
        x = ug_flow_merge(ctx, ya, L->ia, ug_fl_additive_halves(ctx, L, ya, yb, 1), L->ib);
        break;
    }
    case UG_FL_AFFINE: {
        /* The conditioning half passes unchanged, so the network sees the same input. */
        ug_tensor *h = net_forward(ctx, &L->net, ug_mul(ctx, y, mask_tensor(ctx, L)));
        x = ug_flow_affine_inverse(ctx, y, h, L->mask, L->clamp);
        break;
    }
    case UG_FL_AFFINE_SPLIT: {
        ug_tensor *p[2];
        ug_split(ctx, y, 1, (int64_t[]){L->C / 2, L->C - L->C / 2}, 2, p);
        p[1] = ug_flow_affine_inverse(ctx, p[1], net_forward(ctx, &L->net, p[0]), NULL, L->clamp);
        x = ug_concat(ctx, p, 2, 1);
        break;
    }
    case UG_FL_SCALE:
        x = ug_mul(ctx, y, ug_exp(ctx, ug_affine(ctx, L->logs, -1, 0)));
        break;
    case UG_FL_ACTNORM:
        x = ug_sub(ctx, ug_mul(ctx, y, ug_exp(ctx, ug_affine(ctx, per_channel(ctx, L, L->logs), -1, 0))),
                   per_channel(ctx, L, L->loc));
        break;
    case UG_FL_INVCONV: {
        ug_tensor *w = invconv_weight(ctx, L);
        ug_tensor *wi = ug_tensor_new(ctx, 4, w->shape);
        invert(w->data, wi->data, L->C);
        x = ug_conv2d(ctx, y, wi, NULL, 1, 0);
        break;
    }
    case UG_FL_SQUEEZE: x = unsqueeze(ctx, y, L->C, L->H, L->W); break;
    case UG_FL_FACTOR: {
        ug_tensor *p[2] = {zin, y};
        x = ug_concat(ctx, p, 2, 1);
        break;
    }
    default: UG_CHECK(0, "flow: layer kind %d", (int)L->kind);
    }
    ug_ctx_set_grad(ctx, old);
    return x;
}
