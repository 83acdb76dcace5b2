/* unigen.h — the public interface of unigen, a C11 library for generative models on CPUs.
 *
 * Worked example: train a tiny regression MLP with the engine.
 *
 *   #include <unigen.h>
 *
 *   ug_ctx *ctx; ug_params *ps; ug_status st;
 *   if ((st = ug_ctx_create(&ctx, 0)) != UG_OK) { fprintf(stderr, "%s\n", ug_last_error()); ... }
 *   ug_params_create(&ps);
 *   ug_tensor *w = ug_params_add(ps, "fc.weight", 2, (int64_t[]){1, 3});   // (out, in)
 *   ug_tensor *b = ug_params_add(ps, "fc.bias", 1, (int64_t[]){1});
 *   ug_params_finalize(ps);                      // one flat buffer; views point into it
 *   ug_params_init_uniform(ps, 42);              // PyTorch-style default init
 *   ug_adam adam; ug_adam_init(&adam, ps, ug_adam_default());
 *   for (int step = 0; step < 100; step++) {
 *       ug_tensor *x = ug_tensor_new(ctx, 2, (int64_t[]){8, 3});     // arena, reset each step
 *       ...fill x->data, y...
 *       ug_tensor *loss = ug_mean_all(ctx, ug_mse(ctx, ug_linear(ctx, x, w, b), y, NULL));
 *       ug_params_zero_grad(ps);
 *       ug_backward(ctx, loss);                  // reverse loop over the eager tape
 *       ug_adam_step(&adam, ps, 1e-3f);
 *       ug_ctx_reset(ctx);                       // frees the step's activations at once
 *   }
 *   ug_adam_free(&adam); ug_params_free(ps); ug_ctx_free(ctx);
 *
 * Conventions: every fallible call returns ug_status (UG_OK = 0); ug_last_error() holds a
 * thread-local message naming the file, the field, the expected and the found value.
 * The library never exits, aborts on bad input or prints.
 */
#ifndef UNIGEN_H
#define UNIGEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UG_VERSION_MAJOR 0
#define UG_VERSION_MINOR 1
#define UG_VERSION_PATCH 0
#define UG_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- status and errors */
typedef enum ug_status {
    UG_OK = 0,
    UG_ERR_INVALID_ARG,  /* a caller passed a value outside the documented range */
    UG_ERR_SHAPE,        /* tensor shapes do not fit the operation */
    UG_ERR_NOMEM,        /* an allocation failed */
    UG_ERR_IO,           /* a file could not be opened, read or written */
    UG_ERR_FORMAT,       /* a file or string is malformed */
    UG_ERR_UNSUPPORTED,  /* well formed, but not something unigen handles */
    UG_ERR_NUMERIC,      /* NaN or Inf where a finite number was required */
    UG_ERR_STATE,        /* call made in the wrong order (e.g. params not finalized) */
    UG_STATUS_COUNT
} ug_status;

const char *ug_status_str(ug_status s);
/* Message of the last failing call on this thread ("" if none). */
const char *ug_last_error(void);
const char *ug_version(void);

/* Log callback: the library reports progress and warnings only through this. */
typedef enum { UG_LOG_DEBUG, UG_LOG_INFO, UG_LOG_WARN, UG_LOG_ERROR, UG_LOG_COUNT } ug_log_level;
typedef void (*ug_log_fn)(ug_log_level level, const char *msg, void *user);
void ug_set_log(ug_log_fn fn, void *user);

/* ---------------------------------------------------------------- threads */
/* Sets OpenMP and OpenBLAS thread counts together (n <= 0: UNIGEN_THREADS, else all cores). */
void ug_set_threads(int n);
int ug_get_threads(void);

/* ---------------------------------------------------------------- tensors */
#define UG_MAX_DIMS 6

/* float32, contiguous, PyTorch shape order (last dimension contiguous). */
typedef struct ug_tensor {
    float *data;
    float *grad;          /* NULL unless requires_grad; an op's output gets its gradient
                             buffer only while ug_backward runs (below) */
    int64_t shape[UG_MAX_DIMS];
    int64_t numel;
    int ndim;
    int requires_grad;
    int grad_lazy;        /* an op's output: gradient allocated in the backward, freed after */
    int grad_unset;       /* that buffer not yet written since ug_backward handed it out (an op's
                             output) or ug_params_zero_grad (a parameter): the first backward to
                             reach it writes instead of adding (ug_grad_add), or it is zeroed */
    struct ug_tensor *base; /* a view of such an output: the tensor whose gradient it shares */
    const char *name;     /* parameters only */
} ug_tensor;

typedef struct ug_ctx ug_ctx;

/* A context owns the per-step activation arena and the tape. arena_bytes = 0: grow on demand
 * (after the first steps nothing more is allocated: the arena keeps its high-water mark). */
ug_status ug_ctx_create(ug_ctx **out, size_t arena_bytes);
void ug_ctx_free(ug_ctx *ctx);
/* Forget the tape and every activation; keeps memory for the next step. */
void ug_ctx_reset(ug_ctx *ctx);
/* No-grad mode: ops record nothing and outputs never require grad. Returns the old mode. */
int ug_ctx_set_grad(ug_ctx *ctx, int enabled);
int ug_ctx_grad_enabled(const ug_ctx *ctx);
size_t ug_ctx_arena_used(const ug_ctx *ctx);
size_t ug_ctx_arena_capacity(const ug_ctx *ctx);
/* Number of mallocs the arena has made since creation (tests assert it stops growing). */
int64_t ug_ctx_arena_mallocs(const ug_ctx *ctx);

/* Arena tensors (valid until ug_ctx_reset). Data are zeroed for _zeros, uninitialized for _new. */
ug_tensor *ug_tensor_new(ug_ctx *ctx, int ndim, const int64_t *shape);
ug_tensor *ug_tensor_zeros(ug_ctx *ctx, int ndim, const int64_t *shape);
/* Copy of data into a new arena tensor. */
ug_tensor *ug_tensor_from(ug_ctx *ctx, int ndim, const int64_t *shape, const float *data);
/* Marks an arena tensor as needing d/dx (allocates its zeroed gradient). On an op's output it
 * keeps that gradient readable after the backward (instead of a pooled buffer). */
void ug_tensor_requires_grad(ug_ctx *ctx, ug_tensor *t);
int ug_tensor_same_shape(const ug_tensor *a, const ug_tensor *b);
/* Arena scratch memory, 64-byte aligned (for ops and samplers). */
void *ug_ctx_alloc(ug_ctx *ctx, size_t bytes);

/* Backward from a scalar (numel == 1) loss: seeds d loss = 1 and runs the tape in reverse.
 * Gradients ACCUMULATE into parameter and input grad buffers (the tensors given
 * ug_tensor_requires_grad). The gradient of an op's output exists only during the backward:
 * allocated when the first op that reads the output runs its backward, returned to the
 * context's pool once the op that made it has run its own, so the backward holds the live
 * gradients only. The tape is consumed: build the graph again (after ug_ctx_reset) for
 * another backward. */
ug_status ug_backward(ug_ctx *ctx, ug_tensor *loss);

/* ---------------------------------------------------------------- random numbers */
/* Philox4x32-10 (Salmon et al. 2011), counter-based: the value at (seed, stream, counter) is a
 * pure function of them, so the noise of sample i at step k never depends on the batch size,
 * the thread count or the MPI rank. A ug_rng is a cursor: (seed, stream) plus a block counter. */
typedef struct ug_rng {
    uint64_t seed;     /* key */
    uint64_t stream;   /* counter words 2-3: e.g. the global sample index */
    uint64_t block;    /* counter words 0-1: the next 128-bit block */
} ug_rng;

void ug_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* Cursor at (seed, stream), counter starting at block (sub << 32): sub separates uses
 * (e.g. the sampler step) inside one stream. */
ug_rng ug_rng_make(uint64_t seed, uint64_t stream, uint32_t sub);
/* Each call consumes whole 128-bit blocks (4 uniforms, 4 normals): results of a call depend
 * only on the cursor and n. */
void ug_rng_uniform(ug_rng *r, float *out, int64_t n);          /* (0, 1): midpoints of a 2^-23 grid */
void ug_rng_uniform_f64(ug_rng *r, double *out, int64_t n);     /* (0, 1), 53-bit resolution */
void ug_rng_normal(ug_rng *r, float *out, int64_t n);           /* N(0, 1), Box-Muller in double */
void ug_rng_bernoulli(ug_rng *r, float p, float *out, int64_t n);   /* 0/1 */
void ug_rng_rademacher(ug_rng *r, float *out, int64_t n);       /* +-1 */
/* Categorical over k unnormalized nonnegative weights, n draws into out (indices). */
void ug_rng_categorical(ug_rng *r, const double *weights, int k, int32_t *out, int64_t n);
/* Fill a (rows, cols) buffer where row i uses stream first_stream + i: rows are independent
 * of how many rows are drawn at once and of the thread count. */
void ug_rng_normal_rows(uint64_t seed, uint64_t first_stream, uint32_t sub,
                        float *out, int64_t rows, int64_t cols);

/* ---------------------------------------------------------------- ops
 * Every op runs at once; when grad mode is on and an input requires grad it records itself on
 * the tape. Shapes follow PyTorch. Wrong shapes are programmer errors: an always-on check
 * stops with a message naming the op and both shapes. Outputs live in the context's arena. */

/* y = x W^T + b. x (..., in), w (out, in), b (out) or NULL -> (..., out). */
ug_tensor *ug_linear(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b);
/* MADE's masked linear: y = x (W * M)^T + b, mask (out, in) of 0/1 held by the caller. */
ug_tensor *ug_masked_linear(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, const float *mask,
                            ug_tensor *b);
/* The same layer with its units sorted by degree, so that every masked row is a prefix:
 * y[:, r] = b[rows[r]] + sum_{c < len[r]} x[:, c] w[rows[r], cols[c]]. x (..., in) holds the
 * inputs in the sorted order (input c is w's column cols[c]), y (..., out) the outputs in it
 * (output r is w's row rows[r]); rows and cols are permutations, len nondecreasing in
 * [0, in]. It skips the masked-out blocks: about half the multiply-adds of ug_masked_linear. */
ug_tensor *ug_prefix_linear(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b,
                            const int32_t *rows, const int32_t *cols, const int32_t *len);
/* Batched matrix product. a (B, M, K) [or (B, K, M) when ta], b (B, K, N) [or (B, N, K) when
 * tb] -> (B, M, N). 2-D operands are a batch of one. */
ug_tensor *ug_matmul(ug_ctx *ctx, ug_tensor *a, ug_tensor *b, int ta, int tb);
/* 2-D convolution. x (N, C, H, W), w (O, C, kh, kw), b (O) or NULL -> (N, O, H', W'). */
ug_tensor *ug_conv2d(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, int stride, int pad);
/* ug_conv2d(x, w, b) + ib + r in one pass: ib (N, O) a per-image bias, broadcast over H', W'
 * (a ResBlock's time embedding); r (N, O, H', W') added last (its residual). Either may be NULL.
 * The same values as ug_add(ug_add(conv, reshaped ib), r), bit for bit. */
ug_tensor *ug_conv2d_add(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, int stride,
                         int pad, ug_tensor *ib, ug_tensor *r);
/* Nearest-neighbour upsampling by 2: (N, C, H, W) -> (N, C, 2H, 2W). */
ug_tensor *ug_upsample2x(ug_ctx *ctx, ug_tensor *x);
/* Average pooling with kernel = stride = k: (N, C, H, W) -> (N, C, H/k, W/k). */
ug_tensor *ug_avg_pool2d(ug_ctx *ctx, ug_tensor *x, int k);
/* Group norm over (N, C, *): groups divide C; w, b (C) or NULL. */
ug_tensor *ug_group_norm(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, int groups,
                         float eps);
/* silu(group_norm(x)) in one op, bit for bit the pair, without storing the normalized tensor. */
ug_tensor *ug_group_norm_silu(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, int groups,
                              float eps);
/* Layer norm over the last dimension; w, b (last dim) or NULL. */
ug_tensor *ug_layer_norm(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, float eps);
/* Fused multi-head attention, softmax inside: q, k, v (B, T, C) -> (B, T, C), heads divide C,
 * scores scaled by 1/sqrt(C/heads). Spatial attention: permute (B, C, H, W) -> (B, HW, C). */
ug_tensor *ug_attention(ug_ctx *ctx, ug_tensor *q, ug_tensor *k, ug_tensor *v, int heads);

/* Over the last dimension. logsumexp drops it: (..., n) -> (...). */
ug_tensor *ug_softmax(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_log_softmax(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_logsumexp(ug_ctx *ctx, ug_tensor *x);

/* Elementwise. GELU is the exact (erf) form, PyTorch's default. */
ug_tensor *ug_silu(ug_ctx *ctx, ug_tensor *x);
/* SiLU over x itself, returning x, where the tape records nothing for it (grad off, or x needs
 * none): no new buffer (W1 sampling 1.7 % faster, bench/NOTES.md session 17); x's old values
 * are gone. Where the tape records, the same as ug_silu. */
ug_tensor *ug_silu_inplace(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_gelu(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_relu(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_tanh(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_sigmoid(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_softplus(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_exp(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_log(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_square(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_sqrt(ug_ctx *ctx, ug_tensor *x);
/* a * x + b with scalars a, b. */
ug_tensor *ug_affine(ug_ctx *ctx, ug_tensor *x, float a, float b);

/* Broadcasting binary ops (NumPy/PyTorch rules: shapes right-aligned, size-1 dims stretch),
 * e.g. (B, C, H, W) * (1, C, 1, 1) per channel or * (B, 1, 1, 1) per sample. */
ug_tensor *ug_add(ug_ctx *ctx, ug_tensor *a, ug_tensor *b);
ug_tensor *ug_sub(ug_ctx *ctx, ug_tensor *a, ug_tensor *b);
ug_tensor *ug_mul(ug_ctx *ctx, ug_tensor *a, ug_tensor *b);
ug_tensor *ug_div(ug_ctx *ctx, ug_tensor *a, ug_tensor *b);

/* Reductions over one axis (negative counts from the end) or over everything (-> shape ()). */
ug_tensor *ug_sum(ug_ctx *ctx, ug_tensor *x, int axis, int keepdim);
ug_tensor *ug_mean(ug_ctx *ctx, ug_tensor *x, int axis, int keepdim);
ug_tensor *ug_sum_all(ug_ctx *ctx, ug_tensor *x);
ug_tensor *ug_mean_all(ug_ctx *ctx, ug_tensor *x);

/* Shape ops. reshape is a view (no copy); permute copies; concat/split along one axis. */
ug_tensor *ug_reshape(ug_ctx *ctx, ug_tensor *x, int ndim, const int64_t *shape);
ug_tensor *ug_permute(ug_ctx *ctx, ug_tensor *x, const int *perm);
ug_tensor *ug_concat(ug_ctx *ctx, ug_tensor *const *xs, int n, int axis);
/* Splits x into n parts of sizes[i] along axis, written to outs[0..n-1]. */
void ug_split(ug_ctx *ctx, ug_tensor *x, int axis, const int64_t *sizes, int n, ug_tensor **outs);
/* Columns of the last axis: y[..., j] = x[..., idx[j]] for j < m (idx held by the caller until
 * the backward; repeats allowed, their gradients add). */
ug_tensor *ug_gather_cols(ug_ctx *ctx, ug_tensor *x, const int32_t *idx, int64_t m);
/* Same data, no gradient flows back (stop-gradient). */
ug_tensor *ug_detach(ug_ctx *ctx, ug_tensor *x);

/* Embedding lookup: weight (V, D), n indices in [0, V) -> (n, D). */
ug_tensor *ug_embedding(ug_ctx *ctx, ug_tensor *weight, const int32_t *idx, int64_t n);
/* Sinusoidal embedding of x (B) -> (B, dim), dim even, half = dim/2:
 * f_k = exp(log_fmax * k / (half - 1)), k = 0..half-1; [sin(x f_k)..., cos(x f_k)...]
 * (cosines first if cos_first). toy2d: log_fmax = ln 1000; DDPM U-Net: log_fmax = -ln 10000. */
ug_tensor *ug_sinusoidal(ug_ctx *ctx, ug_tensor *x, int dim, float log_fmax, int cos_first);
/* Inverted dropout: zero with probability p, scale the rest by 1/(1-p). */
ug_tensor *ug_dropout(ug_ctx *ctx, ug_tensor *x, float p, ug_rng *rng);

/* Losses return one value per sample (B), so NLLs stay per example; ug_mean_all finishes. */
/* w_b * mean_j (x_bj - y_bj)^2 with w (B) or NULL (= 1); gradient flows to x and y. */
ug_tensor *ug_mse(ug_ctx *ctx, ug_tensor *x, ug_tensor *y, ug_tensor *w);
/* sum_j BCE(sigmoid(logit_bj), target_bj), stable form; targets in [0, 1]. */
ug_tensor *ug_bce_logits(ug_ctx *ctx, ug_tensor *logits, ug_tensor *targets);
/* -log softmax(logits)_label: logits (B, K), labels in [0, K). */
ug_tensor *ug_cross_entropy(ug_ctx *ctx, ug_tensor *logits, const int32_t *labels);
/* sum_j 0.5 (ln 2pi + logvar_bj + (x_bj - mean_bj)^2 exp(-logvar_bj)); gradients to all three. */
ug_tensor *ug_gaussian_nll(ug_ctx *ctx, ug_tensor *x, ug_tensor *mean, ug_tensor *logvar);

/* ---------------------------------------------------------------- parameters */
/* One flat float buffer holds every parameter; grads, Adam moments and EMA share its layout. */
typedef struct ug_params ug_params;
ug_status ug_params_create(ug_params **out);
void ug_params_free(ug_params *ps);
/* Declare a parameter (before finalize). The returned tensor's data pointer is valid after
 * ug_params_finalize. Returns NULL (and sets the last error) on a duplicate name or bad shape. */
ug_tensor *ug_params_add(ug_params *ps, const char *name, int ndim, const int64_t *shape);
ug_status ug_params_finalize(ug_params *ps);
int64_t ug_params_count(const ug_params *ps);      /* total number of floats */
int ug_params_num_tensors(const ug_params *ps);
ug_tensor *ug_params_tensor(ug_params *ps, int i);
ug_tensor *ug_params_find(ug_params *ps, const char *name);
float *ug_params_data(ug_params *ps);
/* The flat gradient buffer, every entry valid: read gradients here, not through a tensor's grad
 * pointer, which holds stale values for a parameter no backward reached since zero_grad. */
float *ug_params_grad(ug_params *ps);
/* Every gradient to zero, lazily (the backward writes or zeroes each entry when it first reaches
 * it; ug_params_grad zeroes the rest). */
void ug_params_zero_grad(ug_params *ps);
/* Turn gradients for every parameter on or off (off: d/dx of a frozen network, e.g. guidance). */
void ug_params_set_requires_grad(ug_params *ps, int on);
/* PyTorch default init: weights of ndim >= 2 U(-1/sqrt(fan_in), +), 1-D tensors named *.bias
 * likewise with the fan_in of the matching weight, *norm*.weight = 1, *norm*.bias = 0. */
void ug_params_init_uniform(ug_params *ps, uint64_t seed);

/* ---------------------------------------------------------------- optimizers */
typedef struct ug_sgd_cfg { float momentum, weight_decay; int nesterov; } ug_sgd_cfg;
typedef struct ug_adam_cfg {
    float beta1, beta2, eps, weight_decay;
    int decoupled;     /* 0: Adam (L2 added to the gradient), 1: AdamW (decoupled decay) */
} ug_adam_cfg;
ug_sgd_cfg ug_sgd_default(void);     /* momentum 0, wd 0 */
ug_adam_cfg ug_adam_default(void);   /* 0.9, 0.999, 1e-8, wd 0, Adam */
ug_adam_cfg ug_adamw_default(void);  /* 0.9, 0.999, 1e-8, wd 1e-2, AdamW (PyTorch defaults) */

typedef struct ug_sgd { ug_sgd_cfg cfg; float *buf; int64_t n; int64_t t; } ug_sgd;
typedef struct ug_adam { ug_adam_cfg cfg; float *m, *v; int64_t n; int64_t t; } ug_adam;
ug_status ug_sgd_init(ug_sgd *o, const ug_params *ps, ug_sgd_cfg cfg);
void ug_sgd_step(ug_sgd *o, ug_params *ps, float lr);
void ug_sgd_free(ug_sgd *o);
ug_status ug_adam_init(ug_adam *o, const ug_params *ps, ug_adam_cfg cfg);
void ug_adam_step(ug_adam *o, ug_params *ps, float lr);
void ug_adam_free(ug_adam *o);

/* Global L2 norm of all gradients; if max_norm > 0 and the norm exceeds it, gradients are scaled
 * by max_norm / (norm + 1e-6) as torch.nn.utils.clip_grad_norm_ does. Returns the norm before. */
double ug_clip_grad_norm(ug_params *ps, double max_norm);

typedef enum { UG_LR_CONSTANT, UG_LR_WARMUP, UG_LR_COSINE, UG_LR_COUNT } ug_lr_kind;
typedef struct ug_lr_schedule {
    ug_lr_kind kind;
    float base_lr;
    int64_t warmup_steps;   /* linear from 0 over this many steps (all kinds) */
    int64_t total_steps;    /* cosine: decays to min_lr at total_steps */
    float min_lr;
} ug_lr_schedule;
float ug_lr_at(const ug_lr_schedule *s, int64_t step);
const char *ug_lr_name(ug_lr_kind k);
int ug_lr_from_name(const char *name, ug_lr_kind *out);   /* 0 ok, -1 unknown */

/* Exponential moving average of the parameters: ema = decay ema + (1 - decay) p. */
typedef struct ug_ema { float *w; int64_t n; float decay; } ug_ema;
ug_status ug_ema_init(ug_ema *e, const ug_params *ps, float decay);
void ug_ema_update(ug_ema *e, const ug_params *ps);
/* Swap EMA and live weights (sample with EMA, then swap back). */
void ug_ema_swap(ug_ema *e, ug_params *ps);
void ug_ema_free(ug_ema *e);

/* ================================================================ diffusion formulations
 * Every diffusion-type model is x_t = s(t) (x0 + sigma(t) eps) with a denoiser
 * D = c_skip x + c_out F(c_in x; c_noise) (../shared/SPEC.md sections 1-3). */
typedef enum {
    UG_FORM_VP,         /* DDPM, discrete, linear betas 1e-4..0.02, T = 1000 */
    UG_FORM_VP_COSINE,  /* improved DDPM cosine schedule, discrete */
    UG_FORM_VP_CONT,    /* continuous VP SDE, b_min 0.1, b_d 19.9, t in [1e-3, 1] */
    UG_FORM_VE,         /* SMLD / NCSN as EDM writes it: t = sigma^2 */
    UG_FORM_EDM,        /* sigma(t) = t, s = 1 */
    UG_FORM_FM,         /* flow matching / rectified flow: x_t = (1-t) x0 + t eps */
    UG_FORM_COUNT
} ug_form_kind;

typedef enum {
    UG_PARAM_EPS, UG_PARAM_X0, UG_PARAM_V, UG_PARAM_EDM, UG_PARAM_VELOCITY, UG_PARAM_COUNT
} ug_param_kind;

typedef enum {
    UG_TS_DEFAULT,      /* the formulation's own (SPEC section 3) */
    UG_TS_UNIFORM,      /* uniform in the formulation's t */
    UG_TS_LOGNORMAL,    /* ln sigma ~ N(p_mean, p_std^2) */
    UG_TS_LOGITNORMAL,  /* t_fm = sigmoid(N(p_mean, p_std^2)), sigma = t/(1-t) (SD3) */
    UG_TS_COUNT
} ug_tsampler_kind;

const char *ug_form_name(ug_form_kind k);
int ug_form_from_name(const char *name, ug_form_kind *out);          /* 0 ok, -1 unknown */
const char *ug_param_name(ug_param_kind k);
int ug_param_from_name(const char *name, ug_param_kind *out);
const char *ug_tsampler_name(ug_tsampler_kind k);
int ug_tsampler_from_name(const char *name, ug_tsampler_kind *out);
/* The natural parameterization of a formulation (vp*: eps, ve: eps, edm: edm, fm: velocity). */
ug_param_kind ug_form_natural_param(ug_form_kind k);

/* ================================================================ models
 * Every family behind one handle: build from a configuration, train with ug_model_loss, save
 * and load checkpoints. */
typedef enum {
    UG_FAMILY_DIFFUSION,
    UG_FAMILY_CLASSIFIER,
    UG_FAMILY_FLOW,       /* normalizing flows: nice, nice-mnist, realnvp, glow (SPEC section 7) */
    UG_FAMILY_AR,         /* autoregressive models of binary vectors: fvsbn, nade, made (section 8) */
    UG_FAMILY_VAE,        /* variational autoencoders: vae (section 9) */
    UG_FAMILY_COUNT
} ug_family;
const char *ug_family_name(ug_family f);
int ug_family_from_name(const char *name, ug_family *out);

typedef struct ug_model_cfg {
    ug_family family;
    int data_dim;            /* d (flattened example size) */
    int num_classes;         /* 0: unconditional */
    int channels, height, width;   /* image examples (C, H, W); 0 for vectors */
    /* network */
    char net[32];            /* "mlp-toy" (../shared/peers/toy2d.py's net), "mlp" */
    int hidden, depth, emb_dim;
    /* diffusion */
    ug_form_kind formulation;
    ug_param_kind param;
    double sigma_data;
    ug_tsampler_kind t_sampler;
    double p_mean, p_std;    /* NAN: the sampler's default */
    double shift;            /* SD3 timestep shift (1: none) */
    double p_uncond;         /* classifier-free guidance label dropout */
    /* diffusion U-Net, net "unet" (0 / "": the unet-fmnist preset's value; the preset itself
     * takes none of them but dropout) */
    int unet_ch;             /* base channels (32) */
    char unet_mult[32];      /* channel multiplier per level, "1,2,2" */
    int unet_blocks;         /* ResBlocks per level going down (1); blocks + 1 going up */
    char unet_attn[32];      /* feature-map sizes with attention after every ResBlock, e.g.
                                "14,7"; "" or "none": only the middle one */
    int unet_heads;          /* attention heads (1) */
    double dropout;          /* dropout while training, [0, 1) (0): U-Net ResBlocks, made hidden */
    /* classifier */
    int noisy;               /* 1: trained on x + sigma eps and conditioned on sigma (guidance) */
    /* likelihood families (flow, ar, vae); net names the model ("nice", "made", "vae", ...).
     * 0 / "" everywhere: the model's own default. */
    char hidden_list[64];    /* hidden widths, "500" or "500,500" (made, vae); "": hidden */
    char prior[16];          /* flow: gaussian | logistic */
    int couplings;           /* flow: coupling layers (nice, realnvp) / steps per level (glow) */
    int levels;              /* flow on images: scales (multi-scale factor-out) */
    int masks;               /* made: connectivity masks trained over (1: one fixed mask) */
    int mask_cycle;          /* made: 1 = cycle through the masks, 0 = resample per minibatch */
    int order_random;        /* made: 1 = random input orderings, 0 = natural */
    int direct;              /* made: 1 = direct input-output connections */
    int latent_dim;          /* vae */
    char decoder[16];        /* vae: bernoulli | gaussian */
} ug_model_cfg;

ug_model_cfg ug_model_cfg_default(void);   /* diffusion, edm/edm, mlp-toy */
typedef struct ug_model ug_model;
/* Builds the model and initializes its weights (PyTorch defaults) from seed. */
ug_status ug_model_create(const ug_model_cfg *cfg, uint64_t seed, ug_model **out);
void ug_model_free(ug_model *m);
ug_params *ug_model_params(ug_model *m);
const ug_model_cfg *ug_model_config(const ug_model *m);
/* The training loss on a batch x (B, d) with labels (or NULL). Example b draws its noise from
 * Philox stream first_stream + b. The loss tensor lives in ctx. */
ug_status ug_model_loss(ug_model *m, ug_ctx *ctx, const float *x, int64_t B, const int32_t *y,
                        uint64_t seed, uint64_t first_stream, ug_tensor **loss);

/* ug_model_loss and ug_backward in one call, for a training step: the gradient of the batch's
 * mean loss ACCUMULATES into ug_model_params(m)'s gradients and *loss gets that mean (NaN
 * when none; UG_ERR_NUMERIC for a non-finite loss, as ug_model_loss). Diffusion and classifier
 * models split large batches among the threads: each runs the forward and backward of its rows
 * (with their own Philox streams, so the same noise) in its own context, on a replica of the
 * model that shares the values and keeps its own gradients, with every kernel inside serial;
 * the replicas' gradients are then added. No hand-offs between threads inside the step; the
 * gradient equals one batch's up to float summation order. ctx holds thread 0's activations
 * until the caller resets it. */
ug_status ug_model_loss_backward(ug_model *m, ug_ctx *ctx, const float *x, int64_t B,
                                 const int32_t *y, uint64_t seed, uint64_t first_stream,
                                 double *loss);

/* The training step of the next ug_model_loss calls: choices made once per minibatch (MADE's
 * connectivity mask) follow it, the same on every rank. Training loops set it every step. */
void ug_model_set_step(ug_model *m, int64_t step);
/* Data-dependent initialization (Glow's actnorm) from a first batch x (B, d); a no-op for
 * models without one. Call once, before the first training step. */
ug_status ug_model_data_init(ug_model *m, const float *x, int64_t B);

/* Negative log-likelihood of the likelihood families, per example, in nats of x as given:
 * exact for flows and autoregressive models (MADE: the ensemble -log((1/K) sum_k p_k(x)) over
 * K = ensemble masks), the IWAE bound with iwae_k importance samples for VAEs. */
typedef struct ug_nll_cfg {
    int ensemble;            /* made: masks averaged (0: the model's masks) */
    int iwae_k;              /* vae: importance samples (0: 5000) */
    uint64_t seed;           /* example i: Philox stream first_stream + i */
    uint64_t first_stream;
} ug_nll_cfg;
ug_nll_cfg ug_nll_default(void);
ug_status ug_model_nll(ug_model *m, const ug_nll_cfg *c, int64_t n, const float *x, double *nll);
/* VAE reconstructions: out (n, d) = the decoder's mean at z ~ q(z | x) (stream first_stream + i). */
ug_status ug_model_reconstruct(ug_model *m, int64_t n, const float *x, uint64_t seed,
                               uint64_t first_stream, float *out);

/* The exact denoiser of a Gaussian mixture as a model (SPEC section 6): sampled and
 * evaluated like a trained one, computed in double. */
ug_status ug_model_load_gmm(const char *path, ug_model **out);

/* ---------------------------------------------------------------- sampling */
typedef struct ug_sample_cfg {
    const char *sampler;     /* euler, heun, edm-sde, euler-a, dpm2, lms, dpmpp-2s-a, dpmpp-2m,
                                dpmpp-2m-sde, dpmpp-3m-sde, ddim, ddpm, em, pc, fm-euler,
                                fm-heun; NULL: heun */
    const char *schedule;    /* karras, exponential, vp, ve, linear, iddpm, leading, trailing,
                                linspace, fm, auto; NULL: karras (auto for ddim/ddpm/fm-*) */
    const char *formulation; /* analytic models only: the formulation to sample in (NULL: edm) */
    int steps;               /* 0: 18 */
    double sigma_min, sigma_max;   /* 0: the formulation's range (sigma_max capped at 160) */
    double rho;              /* 0: 7 */
    double eta;              /* NAN: the sampler's default (ddim 0, others 1); 0: deterministic */
    double s_noise;          /* 0: 1 */
    double s_churn, s_tmin, s_tmax;   /* edm-sde (s_tmax 0: inf) */
    const char *solver_type; /* dpmpp-2m-sde: midpoint | heun (NULL: midpoint) */
    const char *var;         /* ddpm: beta | beta-tilde (NULL: beta-tilde) */
    double snr;              /* pc (0: 0.16) */
    int corrector_steps;     /* pc (0: 1) */
    int steps_offset;        /* leading spacing offset (diffusers steps_offset) */
    int set_alpha_to_one;    /* -1 default (1), 0, 1 */
    double shift;            /* fm grid shift (0: 1) */
    int diffusers_compat;    /* 1: copy diffusers' float32 tables and casts (ddim, ddpm, fm-euler) */
    const double *sigmas;    /* explicit grid (descending; final 0 appended) or NULL */
    int n_sigmas;
    uint64_t seed;           /* sample i draws from Philox stream first_stream + i */
    uint64_t first_stream;
    /* Guidance (SPEC section 5), for class-conditional sampling (labels given):
     * classifier-free D_w = D(null) + cfg_scale (D(y) - D(null)) (default 1: the conditional
     * model D(y); 0: the unconditional D(null), the labels still go to a guiding classifier),
     * and/or
     * classifier guidance D + classifier_scale sigma^2 grad log p(y | x, sigma) with a noisy
     * classifier (a UG_FAMILY_CLASSIFIER model trained with noisy = 1). */
    double cfg_scale;
    ug_model *classifier;
    double classifier_scale;
    /* Flows: z ~ N(0, T^2 I) (the logistic prior: T times a logistic draw); VAE: z ~ N(0, T^2 I).
     * 0: 1. Autoregressive models ignore it. */
    double temperature;
} ug_sample_cfg;
ug_sample_cfg ug_sample_cfg_default(void);
/* n samples (n, d) into out. noise: (n, d) standard normal start, or NULL to draw it from the
 * seed (per-sample streams). *nfe: network evaluations per batch. */
ug_status ug_model_sample(ug_model *m, const ug_sample_cfg *c, int64_t n, const int32_t *labels,
                          const double *noise, double *out, int64_t *nfe);
/* The grid a configuration resolves to (steps + 1 sigmas, the last usually 0) and the sigma of
 * every network evaluation (eval, up to max; *neval = NFE). Either output may be NULL. */
ug_status ug_model_sample_grid(ug_model *m, const ug_sample_cfg *c, double *sigmas, int *nsig,
                               double *eval, int64_t max, int64_t *neval);

typedef struct ug_dataset ug_dataset;   /* defined with the data sets below */

/* ---------------------------------------------------------------- classifiers (family classifier)
 * Logits (n, K) and, if features is not NULL, features (n, F) of n inputs x (n, d), without
 * gradients. sigma: the noise level of each input (noisy classifiers; NULL: clean, i.e. the
 * formulation's sigma_min); ignored by clean classifiers. The network runs on tiles of a fixed
 * row count, so an input's outputs never depend on the other inputs of the call. */
ug_status ug_model_classify(ug_model *m, int64_t n, const float *x, const double *sigma,
                            float *logits, float *features);
/* Width F of the feature layer (0 unless a classifier). */
int ug_model_feature_dim(const ug_model *m);
/* Share of a labelled data set the classifier gets right (clean inputs, argmax of the logits). */
ug_status ug_model_accuracy(ug_model *m, const ug_dataset *ds, double *acc);
/* grad (n, d) = d/dx log p(labels_i | x_i, sigma) at the points x (n, d), for classifier
 * guidance. Parameters are frozen during the call (their requires-grad flags are restored). */
ug_status ug_model_class_logprob_grad(ug_model *m, int64_t n, const double *x, double sigma,
                                      const int32_t *labels, double *grad);

/* ---------------------------------------------------------------- checkpoints
 * A safetensors file: weights under their PyTorch-style names, "ema.<name>", Adam moments
 * "optim.m.<name>" / "optim.v.<name>", and __metadata__ {"format": "unigen-checkpoint-1",
 * "step", "adam_t", "ema_decay", "config": <the resolved configuration as JSON>}. */
ug_status ug_ckpt_save(const char *path, ug_params *ps, const ug_ema *ema, const ug_adam *adam,
                       int64_t step, const char *config_json);
/* ug_ckpt_save plus __metadata__ "train_state": the training loop's own state as JSON (data
 * loader epoch and position, ...) so a run resumes exactly; read it back with ug_st_meta. */
ug_status ug_ckpt_save_state(const char *path, ug_params *ps, const ug_ema *ema,
                             const ug_adam *adam, int64_t step, const char *config_json,
                             const char *train_state_json);
/* Loads into an already built ps (names and shapes must match: the message names the first
 * tensor that does not); ema / adam / step may be NULL. */
ug_status ug_ckpt_load(const char *path, ug_params *ps, ug_ema *ema, ug_adam *adam,
                       int64_t *step);
/* The "config" metadata of a checkpoint (malloc'd; free() it). */
ug_status ug_ckpt_config(const char *path, char **config_json);

/* ================================================================ files
 * safetensors (https://github.com/huggingface/safetensors) and NumPy .npy, validated like the
 * reference readers; writers go to a temporary file, fsync and rename, so no reader ever sees
 * a half-written file. */
/* ---------------------------------------------------------------- element types */
/* Names are the safetensors spellings ("F32"). */
typedef enum ug_dtype {
    UG_DT_BOOL, UG_DT_U8, UG_DT_I8, UG_DT_I16, UG_DT_U16, UG_DT_F16, UG_DT_BF16,
    UG_DT_I32, UG_DT_U32, UG_DT_F32, UG_DT_I64, UG_DT_U64, UG_DT_F64,
    UG_DT_COUNT
} ug_dtype;

const char *ug_dtype_name(ug_dtype d);                 /* "F32"; "?" when out of range */
ug_status ug_dtype_from_name(const char *name, ug_dtype *out);   /* UG_ERR_UNSUPPORTED if unknown */
size_t ug_dtype_size(ug_dtype d);                      /* bytes per element; 0 when out of range */
/* Converts n little-endian elements of type d at src (any alignment) to float / double. */
void ug_dtype_to_f32(ug_dtype d, const void *src, int64_t n, float *dst);
void ug_dtype_to_f64(ug_dtype d, const void *src, int64_t n, double *dst);

/* ---------------------------------------------------------------- safetensors: reading */
/* Header limit of the reference implementation. */
#define UG_ST_MAX_HEADER 100000000u

typedef struct ug_st_file ug_st_file;

/* Reads and validates the whole file: see safetensors.c for the full list of checks.
 * UG_ERR_IO (cannot read), UG_ERR_FORMAT (malformed), UG_ERR_UNSUPPORTED (valid safetensors
 * dtype unigen does not handle, such as F8_E4M3), UG_ERR_NOMEM. */
ug_status ug_st_open(const char *path, ug_st_file **out);
void ug_st_close(ug_st_file *f);
int ug_st_count(const ug_st_file *f);
/* Tensors are indexed in data-offset order; NULL when i is out of range. */
const char *ug_st_name(const ug_st_file *f, int i);
int ug_st_find(const ug_st_file *f, const char *name);            /* index or -1 */
/* shape must hold UG_MAX_DIMS entries; tensors of more dimensions give UG_ERR_UNSUPPORTED.
 * Any out-param may be NULL. UG_ERR_INVALID_ARG when name is absent. */
ug_status ug_st_info(const ug_st_file *f, const char *name, ug_dtype *dtype, int *ndim,
                     int64_t *shape);
int64_t ug_st_numel(const ug_st_file *f, const char *name);        /* -1 when absent */
/* Converts the tensor to float / double. n must equal its element count (UG_ERR_SHAPE). */
ug_status ug_st_read_f32(const ug_st_file *f, const char *name, float *dst, int64_t n);
ug_status ug_st_read_f64(const ug_st_file *f, const char *name, double *dst, int64_t n);
/* The stored little-endian bytes, valid until ug_st_close; not necessarily aligned. */
ug_status ug_st_raw(const ug_st_file *f, const char *name, const void **data, size_t *nbytes);
/* __metadata__: the value for key, or NULL. */
const char *ug_st_meta(const ug_st_file *f, const char *key);
int ug_st_meta_count(const ug_st_file *f);
const char *ug_st_meta_key(const ug_st_file *f, int i);           /* file order; NULL if out of range */

/* ---------------------------------------------------------------- safetensors: writing */
typedef struct ug_st_writer ug_st_writer;

ug_status ug_st_writer_create(ug_st_writer **out);
void ug_st_writer_free(ug_st_writer *w);
/* Borrows data (ndim dims, little-endian dtype elements) until ug_st_write; copies name and
 * shape. Names must be unique, valid UTF-8, non-empty and not "__metadata__". */
ug_status ug_st_writer_add(ug_st_writer *w, const char *name, ug_dtype dtype, int ndim,
                           const int64_t *shape, const void *data);
/* Copies key and value (valid UTF-8); a key set twice keeps the last value. */
ug_status ug_st_writer_set_meta(ug_st_writer *w, const char *key, const char *value);
/* Metadata first, then tensors in insertion order, contiguous; the header is padded with
 * spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned in the file. */
ug_status ug_st_write(const ug_st_writer *w, const char *path);

/* ---------------------------------------------------------------- NumPy .npy */
typedef struct ug_npy_array {
    ug_dtype dtype;
    int ndim;                       /* 0 for a scalar array, shape () */
    int64_t shape[UG_MAX_DIMS];
    int64_t numel;
    void *data;                     /* numel elements of dtype, native layout, owned */
} ug_npy_array;

/* Reads versions 1.0, 2.0 and 3.0 of little-endian (or byte-order free) bool, u1/i1, i2/u2,
 * f2, i4/u4, f4, i8/u8, f8 C-order arrays. On failure *out is zeroed and owns nothing. */
ug_status ug_npy_read(const char *path, ug_npy_array *out);
void ug_npy_free(ug_npy_array *a);
/* Converts a->numel elements into dst. */
void ug_npy_to_f32(const ug_npy_array *a, float *dst);
void ug_npy_to_f64(const ug_npy_array *a, double *dst);
/* Writes a version 1.0 file whose data starts 64-byte aligned (numpy's convention). */
ug_status ug_npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data);
ug_status ug_npy_write_f64(const char *path, int ndim, const int64_t *shape, const double *data);

/* ================================================================ data sets and pictures */
/* data.h — data sets: seeded 2-D toys (FFJORD's toy_data.py), a Gaussian mixture read from JSON
 * with its exact log-density, IDX files (MNIST, Fashion-MNIST), folders of PNG images, pixel
 * transforms (binarization, dequantization) and a shuffling, rank-sharded batch loader.
 *
 * Every random draw goes through Philox (ug_rng) keyed by the seed with the EXAMPLE INDEX as the
 * stream, so example i is the same whatever n, batch, thread count or MPI rank.
 * Written so the whole header can move into unigen.h as is: ug_ prefix, ug_status returns,
 * out-params, messages through ug_fail naming the file, the field, the expected and found value.
 */


/* ---------------------------------------------------------------- 2-D toys */
typedef enum ug_toy2d {
    UG_TOY_MOONS,        /* sklearn make_moons(noise 0.1) * 2 + (-1, -0.2) */
    UG_TOY_CIRCLES,      /* sklearn make_circles(factor 0.5, noise 0.08) * 3 */
    UG_TOY_8GAUSSIANS,   /* centres 4 (cos, sin)(k pi/4), std 0.5, all / 1.414 */
    UG_TOY_25GAUSSIANS,  /* WGAN-GP: centres 2 (i, j), i, j in -2..2, std 0.05, all / 2.828 */
    UG_TOY_CHECKERBOARD, /* uniform on the 8 dark unit squares of [-2,2]^2, then * 2 */
    UG_TOY_SWISSROLL,    /* sklearn make_swiss_roll(noise 1.0), coordinates (x, z) / 5 */
    UG_TOY_PINWHEEL,     /* 5 arms, radial std 0.3, tangential std 0.1, rate 0.25, * 2 */
    UG_TOY_2SPIRALS,     /* two arms of 540 degrees, uniform jitter 0.5, / 3, + N(0, 0.1^2) */
    UG_TOY_COUNT
} ug_toy2d;

const char *ug_toy2d_name(ug_toy2d t);   /* "moons", ...; "?" out of range */
/* Exact name; an unknown one fails with UG_ERR_INVALID_ARG listing every valid name. */
ug_status ug_toy2d_from_name(const char *name, ug_toy2d *out);
/* Examples first_index .. first_index + n - 1 into out (n, 2); example i uses the Philox stream
 * i, so a point never depends on n or on which call drew it. */
ug_status ug_toy2d_sample_at(ug_toy2d t, int64_t first_index, int64_t n, uint64_t seed,
                             float *out);
/* By name, examples 0 .. n-1. */
ug_status ug_toy2d_sample(const char *name, int64_t n, uint64_t seed, float *out);

/* Test splits of generated sets draw from streams starting here: disjoint from any train set
 * smaller than 2^62 examples, so train and test never share a point. */
#define UG_DATA_TEST_STREAM ((uint64_t)1 << 62)
#define UG_DATA_VALID_STREAM ((uint64_t)3 << 61)
/* The split argument of ug_dataset_load. */
enum { UG_SPLIT_TEST = 0, UG_SPLIT_TRAIN = 1, UG_SPLIT_VALID = 2 };

/* ---------------------------------------------------------------- Gaussian mixture */
/* p(x) = sum_k w_k N(x; mu_k, s_k^2 I). Weights are normalized to sum to 1 on load. */
typedef struct ug_gmm {
    int K, d;
    double *w;    /* (K) */
    double *mu;   /* (K, d) */
    double *s;    /* (K) isotropic standard deviations */
} ug_gmm;

/* JSON object, required keys "weights" [K], "means" [K][d], "stds" [K]; optional "name",
 * "description" (strings), "dim", "num_components" (must match). Any other key is an error. */
ug_status ug_gmm_load(const char *path, ug_gmm *out);
/* Same, from a JSON text; `what` names the source in messages. */
ug_status ug_gmm_parse(const char *json, const char *what, ug_gmm *out);
void ug_gmm_free(ug_gmm *g);
/* Examples first_index .. first_index + n - 1 into out (n, d); labels (n) the component, or
 * NULL. Example i uses stream i: a categorical draw for the component, then mu + s * z. */
ug_status ug_gmm_sample(const ug_gmm *g, int64_t first_index, int64_t n, uint64_t seed,
                        float *out, int32_t *labels);
/* log p_sigma(x) of the mixture convolved with N(0, sigma^2 I) (the diffusion marginal):
 * log sum_k w_k N(x; mu_k, (s_k^2 + sigma^2) I), by log-sum-exp in double. x (d). */
double ug_gmm_logpdf(const ug_gmm *g, const double *x, double sigma);

/* ---------------------------------------------------------------- IDX files */
/* IDX (LeCun's MNIST format): 0, 0, dtype byte, ndim byte, ndim big-endian uint32 sizes, data.
 * Read through zlib, so gzip-compressed and raw files both work. Only dtype 0x08 (ubyte). */
typedef struct ug_idx {
    int ndim;
    int64_t dims[4];
    uint8_t *data;    /* prod(dims) bytes */
} ug_idx;
ug_status ug_idx_read(const char *path, ug_idx *out);
void ug_idx_free(ug_idx *f);

/* ---------------------------------------------------------------- data sets */
typedef struct ug_dataset {
    int64_t n;            /* examples */
    int ndim;             /* dims per example: 1 for vectors (d), 3 for images (C, H, W) */
    int64_t shape[4];
    float *x;             /* (n, shape...), or NULL when u8 holds the examples */
    uint8_t *u8;          /* 8-bit pixels (n, shape...) of value u8 / 255, as ug_dataset_load_bytes
                             keeps them; NULL otherwise. ug_dataset_rows reads either. */
    int32_t *y;           /* (n) labels, or NULL */
    int num_classes;      /* 0 when y is NULL */
} ug_dataset;

#define UG_DATA_TOY_TRAIN_N 65536
#define UG_DATA_TOY_TEST_N 8192
#define UG_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Loads a data set from a spec string:
 *   moons, circles, 8gaussians, 25gaussians, checkerboard, swissroll, pinwheel, 2spirals
 *                   n examples (n <= 0: 65536 train, 8192 test or validation); the test and
 *                   validation splits draw from streams UG_DATA_TEST_STREAM + i and
 *                   UG_DATA_VALID_STREAM + i, so they are disjoint from the train split
 *   gmm:FILE.json   n examples of the mixture (defaults as above), y = component, K classes
 *   fashion-mnist   Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)
 *   mnist:DIR       train-images-idx3-ubyte[.gz] / t10k-... or test-... / valid-... (the
 *                   validation split, e.g. binarized MNIST) in DIR; labels when their file is there
 *   idx:PATH        one IDX file of n examples (first dimension), no labels; train ignored
 *   png:DIR         every *.png in DIR (sorted by name), same size and channels; train ignored
 * Pixels are stored as pixel / 255 in [0, 1]; images have shape (C, H, W). For file sets,
 * n > 0 keeps only the first n examples. The seed only affects generated sets. */
ug_status ug_dataset_load(const char *spec, int split, int64_t n, uint64_t seed,
                          ug_dataset *out);
/* As ug_dataset_load, but the 8-bit sources (fashion-mnist, mnist:, idx:, png:) keep their
 * pixels as bytes in u8 (a quarter of the memory) with x NULL; generated sets come as floats. */
ug_status ug_dataset_load_bytes(const char *spec, int split, int64_t n, uint64_t seed,
                                ug_dataset *out);
/* Replaces u8 by the floats u8 / 255 in x (nothing to do when x is set). */
ug_status ug_dataset_to_float(ug_dataset *ds);
/* Rows ids[0..n) (ids NULL: rows 0..n) as floats into out (n x dim), from x or from u8. */
void ug_dataset_rows(const ug_dataset *ds, const int64_t *ids, int64_t n, float *out);
void ug_dataset_free(ug_dataset *ds);
/* Floats per example (product of shape). */
int64_t ug_dataset_dim(const ug_dataset *ds);
/* Splits src by a seeded permutation: the last round(test_frac * n) shuffled examples go to
 * test, the rest to train (both keep the permuted order). For sets with no test split of
 * their own (png:, idx:); src is unchanged. */
ug_status ug_dataset_split(const ug_dataset *src, double test_frac, uint64_t seed,
                           ug_dataset *train, ug_dataset *test);

/* ---------------------------------------------------------------- transforms */
/* [0, 1] -> [-1, 1]. */
void ug_data_scale_pm1(float *x, int64_t n);
/* x > threshold -> 1, else 0. */
void ug_data_binarize_fixed(float *x, int64_t n, float threshold);
/* In place on a batch x (n, d) of intensities in [0, 1]: x <- 1 with probability x (Salakhutdinov
 * & Murray 2008). Row i uses stream ids[i] (the example's index in the data set; ids NULL means
 * 0..n-1) and the epoch, so each example is re-binarized every epoch, reproducibly. */
void ug_data_binarize_stochastic(float *x, int64_t n, int64_t d, const int64_t *ids,
                                 uint64_t seed, uint32_t epoch);
/* In place on a batch x (n, d) stored as pixel / 255: x <- (pixel + u) / 256, u ~ U(0, 1)
 * (uniform dequantization, NICE / RealNVP; Theis et al. 2016). Streams as above. */
void ug_data_dequantize(float *x, int64_t n, int64_t d, const int64_t *ids, uint64_t seed,
                        uint32_t epoch);

/* ---------------------------------------------------------------- batch loader */
/* perm <- a uniformly random permutation of 0..n-1: Fisher-Yates (Durstenfeld 1964) driven by
 * Philox at (seed, stream), so it is the same on every rank and thread count. */
void ug_data_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t stream);

/* Each epoch is a Philox-seeded Fisher-Yates permutation of 0..n-1 (stream = epoch). Rank r of
 * world w takes positions r, r + w, r + 2w, ... of it, so the ranks' shards partition the epoch.
 * Batches are gathered into caller buffers: nothing is allocated after init. */
typedef struct ug_loader {
    const ug_dataset *ds;
    int64_t batch;
    uint64_t seed;
    int rank, world;
    int shuffle;          /* 0: identity order every epoch */
    int drop_last;        /* 1: skip the last incomplete batch */
    int64_t *perm;        /* (n) this epoch's order */
    uint32_t epoch;
    int64_t pos;          /* next position in this rank's shard */
    int64_t shard_n;      /* examples in this rank's shard */
} ug_loader;

ug_status ug_loader_init(ug_loader *L, const ug_dataset *ds, int64_t batch, uint64_t seed,
                         int rank, int world, int shuffle, int drop_last);
void ug_loader_free(ug_loader *L);
/* Starts epoch e (builds its permutation, rewinds). */
void ug_loader_start_epoch(ug_loader *L, uint32_t epoch);
/* Next batch of this rank's shard into x (batch, dim), y (batch) and ids (batch) — each may be
 * NULL. Returns the number of examples written, 0 when the epoch is over. */
int64_t ug_loader_next(ug_loader *L, float *x, int32_t *y, int64_t *ids);
/* Batches every rank can take this epoch (the smallest shard's count): under MPI all ranks
 * stop after this many so their allreduces stay paired. */
int64_t ug_loader_batches_per_epoch(const ug_loader *L);

/* image.h — pictures: 8-bit PNG files (libpng), image grids of samples, and plots (2-D scatter
 * over reference data, loss curves) drawn with a built-in 5x7 bitmap font. Files are written to
 * a temporary name and renamed, so a reader never sees half a picture. */


/* pix (h, w, c) interleaved bytes, c = 1 (gray) or 3 (RGB). */
ug_status ug_png_write(const char *path, const uint8_t *pix, int w, int h, int c);
/* Reads any PNG as 8-bit gray (c = 1) or RGB (c = 3): gray(+alpha) -> gray, others -> RGB
 * (alpha composited on black, palettes expanded, 16-bit reduced). *pix is malloc'd (h, w, c). */
ug_status ug_png_read(const char *path, uint8_t **pix, int *w, int *h, int *c);

/* imgs (n, C, H, W) with values in [lo, hi] (clamped; NaN shows as lo), C = 1 or 3. Cells of
 * rows x cols (<= 0: chosen near-square), separated and framed by `pad` pixels of neutral gray;
 * cells past n stay gray. One row per class: pass rows = classes, cols = per class. */
ug_status ug_image_grid(const char *path, const float *imgs, int64_t n, int C, int H, int W,
                        int rows, int cols, int pad, float lo, float hi);
/* The same with every pixel drawn as a zoom x zoom block (1..16), for legible small images. */
ug_status ug_image_grid_zoom(const char *path, const float *imgs, int64_t n, int C, int H, int W,
                             int rows, int cols, int pad, float lo, float hi, int zoom);

/* Scatter of pts (n, 2) in a strong colour over ref (m, 2) in light gray (ref NULL: none), with
 * axes, ticks, tick labels and a title (may be NULL). range {xmin, xmax, ymin, ymax}, or NULL to
 * fit the points (ref and pts, ignoring 0.1% outliers of pts) with a margin at equal aspect.
 * Points shrink and fade as n grows so dense regions read as density. */
ug_status ug_plot_scatter(const char *path, const float *pts, int64_t n, const float *ref,
                          int64_t m, int width, int height, const char *title,
                          const float *range);

/* Line plot of y against x (n points; non-finite points skipped, and y <= 0 with log_y) on a
 * 640 x 400 canvas; log_y puts y on a log10 axis. Beyond 50 points a moving average is drawn
 * strong over the raw curve in a light tint, as loss curves are noisy. */
ug_status ug_plot_curve(const char *path, const double *x, const double *y, int64_t n,
                        const char *title, int log_y);


/* ================================================================ evaluation
 * Likelihoods through the probability-flow ODE (SPEC section 6), bits/dim, and two-sample
 * metrics (SPEC section 10). */
/* ================================================================ ODE integrator */
/* dy/dt = f(t, y) for a state of n doubles. A non-OK status stops the solve. */
typedef ug_status (*ug_ode_fn)(void *self, double t, const double *y, double *dydt);

typedef struct ug_rk45_cfg {
    double rtol, atol;      /* 1e-5, 1e-5 (score_sde's likelihood.py) */
    double first_step;      /* 0: chosen as scipy / Hairer (one extra evaluation) */
    double max_step;        /* 0: unbounded */
    int64_t max_nfe;        /* 0: 1,000,000; beyond it UG_ERR_NUMERIC */
} ug_rk45_cfg;
ug_rk45_cfg ug_rk45_default(void);

typedef struct ug_ode_stats {
    int64_t nfe;            /* evaluations of f (one per batch call) */
    int64_t steps;          /* accepted steps */
    int64_t rejected;       /* rejected steps */
} ug_ode_stats;

/* Integrates y from t0 to t1 (either direction) in place with Dormand-Prince 5(4), FSAL,
 * scipy.integrate.RK45's step control: error norm = RMS over the state of
 * err / (atol + rtol max(|y|, |y_new|)), factor safety 0.9 err^(-1/5) clipped to [0.2, 10]
 * (<= 1 right after a rejection). stats may be NULL. */
ug_status ug_rk45_solve(const ug_rk45_cfg *c, ug_ode_fn f, void *self, int64_t n, double *y,
                        double t0, double t1, ug_ode_stats *stats);

/* ================================================================ divergence of a denoiser */
/* D(x~; sigma) and div_x D on n points of dimension dim, in double (the sampler's ug_denoiser
 * plus the divergence). div may be NULL when only D is needed. */
typedef struct ug_div_denoiser {
    int64_t dim;
    ug_status (*fn)(void *self, int64_t n, const double *x, double sigma, double *D, double *div);
    void *self;
} ug_div_denoiser;

/* The exact mixture (SPEC section 6): with v_k = s_k^2 + sigma^2, f_k = s_k^2 / v_k,
 * m_k = mu_k + f_k (x - mu_k), responsibilities r_k and grad r_k = r_k (g_k - sum_l r_l g_l),
 * g_k = -(x - mu_k) / v_k:
 *   div D = d sum_k r_k f_k - sum_k r_k (m_k - D) . (x - mu_k) / v_k.
 * x (d) -> D (d), *div. */
void ug_gmm_denoise_div(const ug_gmm *g, const double *x, double sigma, double *D, double *div);
ug_div_denoiser ug_gmm_div_denoiser(const ug_gmm *g);

typedef enum {
    UG_DIV_AUTO,        /* exact for d <= 64, Hutchinson above */
    UG_DIV_EXACT,       /* d vector-Jacobian products on one forward tape */
    UG_DIV_HUTCHINSON,  /* mean over probes of v^T (dD/dx) v, Rademacher v */
    UG_DIV_COUNT
} ug_div_kind;
const char *ug_div_name(ug_div_kind k);
int ug_div_from_name(const char *name, ug_div_kind *out);   /* 0 ok, -1 unknown */

typedef struct ug_div_cfg {
    ug_div_kind kind;
    int probes;             /* Hutchinson probes per point (0: 1, as score_sde) */
    uint64_t seed;          /* probe k of point i: Philox (seed, first_stream + i), K*d draws */
    uint64_t first_stream;
} ug_div_cfg;
ug_div_cfg ug_div_default(void);    /* auto, 1 probe, seed 0, stream 0 */

/* A trained diffusion model's D and divergence. The probes are drawn once and kept for the whole
 * solve (as score_sde does): the adaptive solver needs one smooth vector field. The network
 * runs with its parameters frozen (their requires-grad flags are restored after each call).
 * labels: one per point or NULL; they and m must outlive the denoiser. The point count is
 * fixed by the first call (n); calls with another n fail. Release with ug_model_div_free. */
ug_status ug_model_div_denoiser(ug_model *m, const int32_t *labels, const ug_div_cfg *c,
                                ug_div_denoiser *out, void **state);
void ug_model_div_free(void *state);

/* ================================================================ likelihood */
typedef struct ug_lik_cfg {
    double sigma_min, sigma_max;   /* 0.002, 80 */
    ug_rk45_cfg ode;               /* rtol = atol = 1e-5 */
} ug_lik_cfg;
ug_lik_cfg ug_lik_default(void);

/* log p_{sigma_min}(x) by the probability-flow ODE in sigma-space (s = 1):
 *   dx/dsigma = (x - D(x; sigma)) / sigma,   d delta/dsigma = (d - div_x D) / sigma,
 *   log p_{smin}(x) = log N(x(smax); 0, smax^2 I) + delta(smax),   delta(smin) = 0,
 * integrated from sigma_min up to sigma_max. The n points form ONE ODE of n (d + 1) unknowns
 * with one step size and scipy's RMS error norm over the whole augmented state, exactly as
 * score_sde flattens its batch into solve_ivp: a point's value moves with its batch mates
 * by at most the tolerance. Models whose formulation has s != 1 are evaluated in the scaled-out
 * variable x~ = x_t / s(t) (the denoiser's own input), i.e. this is the density of x0 + sigma_min
 * eps. x (n, d); logp (n) out; z (n, d) = x(sigma_max) and delta (n) may be NULL. */
ug_status ug_likelihood_ode(const ug_lik_cfg *c, const ug_div_denoiser *dn, int64_t n,
                            const double *x, double *logp, double *z, double *delta,
                            ug_ode_stats *stats);

/* Bits per dimension of an NLL in nats of d-dimensional data, on the 8-bit scale when the data
 * are pixel values mapped affinely with `levels` 8-bit steps per data unit:
 *   bpd = (nll + d ln(levels)) / (d ln 2).
 * levels: 1 (no change of scale), 127.5 (data in [-1, 1]: x = p / 127.5 - 1), 255 (p / 255),
 * 256 (uniformly dequantized (p + u) / 256). */
double ug_bits_per_dim(double nll_nats, int64_t d, double levels);
typedef enum {
    UG_SCALE_RAW,        /* levels 1 */
    UG_SCALE_PM1,        /* [-1, 1]: 127.5 (SPEC section 6) */
    UG_SCALE_UNIT,       /* pixel / 255: 255 */
    UG_SCALE_DEQUANT256, /* (pixel + u) / 256: 256 */
    UG_SCALE_COUNT
} ug_data_scale;
double ug_data_scale_levels(ug_data_scale s);

/* ================================================================ two-sample metrics
 * x (m, d) and y (n, d) in float, row-major; sums in double, O(mn d) loops over OpenMP threads. */

/* Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with k(a, b) = exp(-|a - b|^2 / (2 h^2)), h the
 * median pairwise distance of the pooled sample (median heuristic; pairs i < j, on at most 1024
 * evenly strided points of each set). bandwidth: NULL, or in: > 0 to use that h; out: the h used
 * when *bandwidth <= 0. m, n >= 2. Can be slightly negative. */
ug_status ug_mmd2(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                  double *bandwidth, double *out);
/* Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Székely & Rizzo 2013), within-set means
 * over i != j (unbiased). m, n >= 2. */
ug_status ug_energy_distance(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                             double *out);
/* Sliced Wasserstein-2: sqrt of the mean over K directions theta_k (uniform on the sphere,
 * normals from Philox stream k of seed, normalized) of W2^2 between the projected empirical
 * measures. W2^2 in 1-D is the exact integral of (F^-1 - G^-1)^2 over the merged quantile
 * breakpoints, so unequal sizes need no resampling. */
ug_status ug_sliced_w2(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                       int K, uint64_t seed, double *out);
/* Fréchet distance between N(mu1, S1) and N(mu2, S2):
 *   ||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr (S1^{1/2} S2 S1^{1/2})^{1/2}
 * (equal to Tr (S1 S2)^{1/2}), both roots from symmetric eigendecompositions (LAPACK dsyevd),
 * negative eigenvalues from rounding clipped to 0. S (d, d) row-major. */
ug_status ug_frechet_from_stats(int64_t d, const double *mu1, const double *S1,
                                const double *mu2, const double *S2, double *out);
/* Mean and covariance (divisor n - 1, as numpy.cov / pytorch-fid) of each set, then the above. */
ug_status ug_frechet_distance(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                              double *out);
/* Improved precision and recall (Kynkäänniemi et al. 2019): the manifold of a set is the union
 * of balls around its points with radius the distance to the k-th nearest other point of the
 * set. precision = share of y inside the manifold of x (real), recall = share of x inside the
 * manifold of y (generated). k = 3 in the paper; k < m, k < n. Either out may be NULL. */
ug_status ug_precision_recall(const float *real, int64_t m, const float *fake, int64_t n,
                              int64_t d, int k, double *precision, double *recall);

/* log-likelihood in nats of n points x (n, d) under a model (trained or analytic): the
 * probability-flow ODE (lc; NULL: defaults) with the exact mixture divergence, or the network's
 * (div config c; NULL: auto). logp out (n); stats may be NULL. */
ug_status ug_model_loglik(ug_model *m, const ug_lik_cfg *lc, const ug_div_cfg *c, int64_t n,
                          const double *x, double *logp, ug_ode_stats *stats);

/* ---------------------------------------------------------------- DDPM variational bound (vlb.c)
 * (Ho et al. 2020 eq. 5, the discretized Gaussian decoder of improved-diffusion), for discrete
 * VP models: src/eval/vlb.c. */
typedef enum {
    UG_VLB_DISCRETIZED,   /* 8-bit data scaled to [-1, 1]: bins of width 2/255, ends to +-inf */
    UG_VLB_GAUSSIAN,      /* continuous data: log N(x0; x0_hat, sigma_1^2 I) */
    UG_VLB_DECODER_COUNT
} ug_vlb_decoder;
typedef enum {
    UG_VLB_VAR_BETA_TILDE, /* p(x_{t-1} | x_t) variance beta~_t (beta~_2 at t = 1) */
    UG_VLB_VAR_BETA,       /* beta_t (beta_1 at t = 1) */
    UG_VLB_VAR_COUNT
} ug_vlb_var;
typedef struct ug_vlb_cfg {
    ug_vlb_decoder decoder;   /* discretized */
    ug_vlb_var var;           /* beta~ */
    /* 0: every step t = 1..T once per example (improved-diffusion's calc_bpd_loop). k > 0: the
     * decoder term (t = 1) once and k steps per example drawn uniformly from 2..T, their sum
     * estimated as (T - 1) / k times theirs (unbiased; L_T is always exact). */
    int t_samples;
    uint64_t seed;            /* example i: Philox stream first_stream + i; block 0 the step */
    uint64_t first_stream;    /* draws, block j (T + 1) + t the noise of its j-th draw of t
                               * (block t in the full sum) */
    ug_form_kind schedule;    /* analytic mixtures only: vp | vp-cosine; UG_FORM_COUNT (default):
                               * the model's own (vp when that is not a discrete VP) */
} ug_vlb_cfg;
ug_vlb_cfg ug_vlb_default(void);

/* A model's bound: analytic mixtures with c->schedule, trained models with their own discrete
 * VP formulation (unconditional / null label). cfg NULL: defaults. */
ug_status ug_model_vlb(ug_model *m, const ug_vlb_cfg *cfg, int64_t n, const double *x0,
                       double *nats, double *terms);

/* ---------------------------------------------------------------- data-parallel runs (MPI)
 * `make MPI=1` builds these over MPI_COMM_WORLD (src/dist/mpi.c); otherwise every process is a
 * world of one and the collectives copy nothing (src/dist/none.c). ug_dist_init starts MPI only
 * when a launcher (mpirun, srun) started the process, so an MPI build also runs as a plain
 * program. Every rank must make the same collective calls in the same order. */
int ug_dist_available(void);              /* 1 when built with MPI */
ug_status ug_dist_init(int *argc, char ***argv);
void ug_dist_finalize(void);
int ug_dist_rank(void);
int ug_dist_world(void);
/* This rank's rows [lo, hi) of n: lo = floor(n rank / world), the split the gathers assume. */
void ug_dist_range(int64_t n, int64_t *lo, int64_t *hi);
/* In place: every rank ends with the elementwise sum (max) over the ranks. */
ug_status ug_dist_allreduce_sum_f32(float *buf, int64_t n);
ug_status ug_dist_allreduce_sum_f64(double *buf, int64_t n);
ug_status ug_dist_allreduce_max_f64(double *buf, int64_t n);
/* buf (n, row): each rank has filled its rows of ug_dist_range(n); after the call every rank
 * holds all n rows. */
ug_status ug_dist_allgather_rows_f64(double *buf, int64_t n, int64_t row);
ug_status ug_dist_barrier(void);
/* Ends every process of the job with this exit status (MPI_Abort): for a rank that failed
 * while the others wait in a collective. In a world of one it exits the process. */
void ug_dist_abort(int code);

#ifdef __cplusplus
}
#endif
#endif /* UNIGEN_H */
