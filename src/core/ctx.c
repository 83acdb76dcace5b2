/* ctx.c — the per-step bump arena, arena tensors and the eager tape with its reverse loop.
 * The arena keeps its high-water mark: once a step has run, later steps of the same shape
 * allocate nothing (llm.c's discipline without a static graph). */
#include "core.h"

#define UG_ALIGN 64
#define UG_MIN_BLOCK ((size_t)1 << 20)

static size_t align_up(size_t n) { return (n + UG_ALIGN - 1) & ~(size_t)(UG_ALIGN - 1); }

static ug_arena_block *block_new(ug_ctx *ctx, size_t cap) {
    /* Header padded to the alignment so the payload starts aligned. */
    size_t hdr = align_up(sizeof(ug_arena_block));
    void *mem = NULL;
    if (posix_memalign(&mem, UG_ALIGN, hdr + cap) != 0) return NULL;
    ug_arena_block *b = mem;
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    ctx->mallocs++;
    ctx->total_cap += cap;
    return b;
}

ug_status ug_ctx_create(ug_ctx **out, size_t arena_bytes) {
    *out = NULL;
    ug_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return ug_fail(UG_ERR_NOMEM, "ug_ctx_create: cannot allocate the context");
    ctx->grad_enabled = 1;
    if (arena_bytes) {
        ctx->head = block_new(ctx, align_up(arena_bytes));
        if (!ctx->head) {
            free(ctx);
            return ug_fail(UG_ERR_NOMEM, "ug_ctx_create: cannot allocate an arena of %zu bytes",
                           arena_bytes);
        }
    }
    *out = ctx;
    return UG_OK;
}

static void free_blocks(ug_arena_block *b) {
    while (b) {
        ug_arena_block *n = b->next;
        free(b);
        b = n;
    }
}

void ug_ctx_free(ug_ctx *ctx) {
    if (!ctx) return;
    free_blocks(ctx->head);
    free(ctx->nodes);
    free(ctx);
}

static size_t arena_used(const ug_ctx *ctx) {
    size_t u = 0;
    for (ug_arena_block *b = ctx->head; b; b = b->next) u += b->used;
    return u;
}

size_t ug_ctx_arena_used(const ug_ctx *ctx) { return arena_used(ctx); }
size_t ug_ctx_arena_capacity(const ug_ctx *ctx) { return ctx->total_cap; }
int64_t ug_ctx_arena_mallocs(const ug_ctx *ctx) { return ctx->mallocs; }

void ug_ctx_reset(ug_ctx *ctx) {
    size_t used = arena_used(ctx);
    if (used > ctx->high_water) ctx->high_water = used;
    if (ctx->head && ctx->head->next) {
        /* The step overflowed into several blocks: replace them by one block that holds the
         * whole step, so the next step is served from a single bump pointer. */
        size_t cap = align_up(ctx->high_water + ctx->high_water / 8);
        free_blocks(ctx->head);
        ctx->total_cap = 0;
        ctx->head = block_new(ctx, cap < UG_MIN_BLOCK ? UG_MIN_BLOCK : cap);
        /* On failure head stays NULL and the next allocation tries again. */
    }
    if (ctx->head) ctx->head->used = 0;
    ctx->nnodes = 0;
    ctx->free_grads = NULL;
}

void *ug_ctx_alloc(ug_ctx *ctx, size_t bytes) {
    bytes = align_up(bytes ? bytes : 1);
    ug_arena_block *b = ctx->head;
    if (!b || b->cap - b->used < bytes) {
        size_t want = ctx->total_cap;  /* grow geometrically */
        if (want < UG_MIN_BLOCK) want = UG_MIN_BLOCK;
        if (want < bytes) want = bytes;
        ug_arena_block *nb = block_new(ctx, want);
        UG_CHECK(nb, "arena: out of memory allocating %zu bytes", want);
        nb->next = b;
        ctx->head = b = nb;
    }
    void *p = (char *)b + align_up(sizeof(ug_arena_block)) + b->used;
    b->used += bytes;
    return p;
}

int ug_ctx_set_grad(ug_ctx *ctx, int enabled) {
    int old = ctx->grad_enabled;
    ctx->grad_enabled = enabled != 0;
    return old;
}

int ug_ctx_grad_enabled(const ug_ctx *ctx) { return ctx->grad_enabled; }

/* ---------------------------------------------------------------- tensors */
int64_t ug_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

const char *ug_shape_str(const ug_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "(");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

static ug_tensor *header_new(ug_ctx *ctx, int ndim, const int64_t *shape) {
    UG_CHECK(ndim >= 0 && ndim <= UG_MAX_DIMS, "tensor: ndim %d outside 0..%d", ndim, UG_MAX_DIMS);
    ug_tensor *t = ug_ctx_alloc(ctx, sizeof *t);
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        UG_CHECK(shape[i] >= 0, "tensor: negative dimension %lld", (long long)shape[i]);
        t->shape[i] = shape[i];
    }
    t->numel = ug_shape_numel(ndim, shape);
    return t;
}

ug_tensor *ug_tensor_new(ug_ctx *ctx, int ndim, const int64_t *shape) {
    ug_tensor *t = header_new(ctx, ndim, shape);
    t->data = ug_ctx_alloc(ctx, (size_t)t->numel * sizeof(float));
    return t;
}

ug_tensor *ug_tensor_zeros(ug_ctx *ctx, int ndim, const int64_t *shape) {
    ug_tensor *t = ug_tensor_new(ctx, ndim, shape);
    memset(t->data, 0, (size_t)t->numel * sizeof(float));
    return t;
}

ug_tensor *ug_tensor_from(ug_ctx *ctx, int ndim, const int64_t *shape, const float *data) {
    ug_tensor *t = ug_tensor_new(ctx, ndim, shape);
    memcpy(t->data, data, (size_t)t->numel * sizeof(float));
    return t;
}

void ug_tensor_requires_grad(ug_ctx *ctx, ug_tensor *t) {
    /* On an op's output: the caller wants to read its gradient after the backward, so it gets
     * a buffer of its own now instead of a pooled one. */
    t->grad_lazy = 0;
    if (t->grad) { t->requires_grad = 1; return; }
    t->grad = ug_ctx_alloc(ctx, (size_t)t->numel * sizeof(float));
    memset(t->grad, 0, (size_t)t->numel * sizeof(float));
    t->requires_grad = 1;
}

ug_tensor *ug_tensor_view(ug_ctx *ctx, ug_tensor *src, int ndim, const int64_t *shape) {
    ug_tensor *t = header_new(ctx, ndim, shape);
    UG_CHECK(t->numel == src->numel, "view: %lld elements cannot view %lld",
             (long long)t->numel, (long long)src->numel);
    t->data = src->data;
    /* Sharing the gradient buffer makes the view's backward a no-op: whatever flows into the
     * view has already landed in the source's gradient. An op's output has no buffer yet: the
     * view keeps the tensor (base) whose buffer the backward will give it. */
    if (ctx->grad_enabled && src->requires_grad) {
        t->requires_grad = 1;
        if (src->grad_lazy || src->base)
            t->base = src->base ? src->base : src;
        else
            t->grad = src->grad;
    }
    return t;
}

int ug_tensor_same_shape(const ug_tensor *a, const ug_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* ---------------------------------------------------------------- tape */
int ug_any_requires_grad(const ug_ctx *ctx, int nin, ug_tensor *const *ins) {
    if (!ctx->grad_enabled) return 0;
    for (int i = 0; i < nin; i++)
        if (ins[i] && ins[i]->requires_grad) return 1;
    return 0;
}

ug_node *ug_tape_record(ug_ctx *ctx, const char *op, ug_backward_fn fn, ug_tensor *out,
                        int nin, ug_tensor *const *ins) {
    if (!ug_any_requires_grad(ctx, nin, ins)) return NULL;
    UG_CHECK(nin <= UG_NODE_MAX_IN, "%s: %d inputs, a node holds %d", op, nin, UG_NODE_MAX_IN);
    if (ctx->nnodes == ctx->cap_nodes) {
        int64_t cap = ctx->cap_nodes ? 2 * ctx->cap_nodes : 256;
        ug_node *nn = realloc(ctx->nodes, (size_t)cap * sizeof *nn);
        UG_CHECK(nn, "tape: out of memory for %lld nodes", (long long)cap);
        ctx->nodes = nn;
        ctx->cap_nodes = cap;
        ctx->mallocs++;
    }
    ug_node *n = &ctx->nodes[ctx->nnodes++];
    memset(n, 0, sizeof *n);
    n->backward = fn;
    n->op = op;
    n->out = out;
    n->nin = nin;
    for (int i = 0; i < nin; i++) n->in[i] = ins[i];
    if (!out->grad) out->grad_lazy = 1;   /* (an output the caller gave a buffer keeps it) */
    out->requires_grad = 1;
    return n;
}

/* ---------------------------------------------------------------- gradient pool
 * The backward's gradient buffers for op outputs: a list of the arena buffers whose op has run
 * its backward, threaded through the buffers themselves; a request takes the smallest one that
 * fits (within twice the size), else bumps the arena. The same graph makes the same requests
 * every step, so after the first step the arena serves them without growing.
 * A buffer is handed out unzeroed (grad_unset): the first backward to reach it writes it when
 * its node declared first_write for that input, else the core zeroes it just before (zeroing
 * every buffer first was 1.5 % of a W2 training step, and the first add then re-read it). */
typedef struct free_grad { struct free_grad *next; size_t bytes; } free_grad;

static float *pool_get(ug_ctx *ctx, int64_t numel) {
    size_t bytes = align_up((size_t)numel * sizeof(float));
    free_grad **best = NULL;
    for (free_grad **p = (free_grad **)&ctx->free_grads; *p; p = &(*p)->next)
        if ((*p)->bytes >= bytes && (*p)->bytes <= 2 * bytes && (!best || (*p)->bytes < (*best)->bytes))
            best = p;
    float *g;
    if (best) {
        g = (float *)*best;
        *best = (*best)->next;
    } else {
        g = ug_ctx_alloc(ctx, bytes);
    }
    return g;
}

static void pool_put(ug_ctx *ctx, float *g, int64_t numel) {
    free_grad *f = (free_grad *)(void *)g;   /* 64-byte aligned, at least 64 bytes */
    f->bytes = align_up((size_t)numel * sizeof(float));
    f->next = ctx->free_grads;
    ctx->free_grads = f;
}

/* Gives t (an op's output, or a view of one) its gradient buffer before a backward writes it. */
static void grad_resolve(ug_ctx *ctx, ug_tensor *t) {
    if (!t || !t->requires_grad) return;
    ug_tensor *o = t->base ? t->base : t;
    if (o->grad_lazy && !o->grad) {
        o->grad = pool_get(ctx, o->numel);
        o->grad_unset = 1;
    }
    if (t->base) t->grad = o->grad;
}

/* Zeroes t's unwritten gradient unless the coming backward writes it: can_write (its node's
 * first_write bit) and t not a view (the flag is its base's, and ug_grad_add reads t's). */
static void grad_prepare(ug_tensor *t, int can_write) {
    if (!t || !t->requires_grad) return;
    ug_tensor *o = t->base ? t->base : t;
    if (o->grad_unset && (!can_write || t->base)) {
        memset(o->grad, 0, (size_t)o->numel * sizeof(float));
        o->grad_unset = 0;
    }
}

ug_status ug_backward(ug_ctx *ctx, ug_tensor *loss) {
    if (!loss || loss->numel != 1)
        return ug_fail(UG_ERR_SHAPE, "ug_backward: the loss must have one element, found %lld",
                       loss ? (long long)loss->numel : 0LL);
    const float one = 1.0f;
    ug_status st = ug_backward_seed(ctx, loss, &one);
    ctx->nnodes = 0;   /* consumed: a second call cannot count the same graph twice */
    return st;
}

ug_status ug_backward_seed(ug_ctx *ctx, ug_tensor *out, const float *dout) {
    grad_resolve(ctx, out);
    if (!out->requires_grad || !out->grad)
        return ug_fail(UG_ERR_STATE,
                       "ug_backward: the output does not depend on any tensor that requires grad");
    grad_prepare(out, 0);
    for (int64_t j = 0; j < out->numel; j++) out->grad[j] += dout[j];
    for (int64_t i = ctx->nnodes - 1; i >= 0; i--) {
        ug_node *n = &ctx->nodes[i];
        ug_tensor *o = n->out;
        /* No gradient reached this output (nothing after it that the output depends on read
         * it): the op adds nothing to its inputs. */
        if (o->grad_lazy && !o->grad) continue;
        grad_prepare(o, 0);   /* (a first_write backward always writes; this is a guard) */
        for (int k = 0; k < n->nin; k++) {
            grad_resolve(ctx, n->in[k]);
            grad_prepare(n->in[k], (n->first_write >> k) & 1u);
        }
        for (int k = 0; k < n->nmore; k++) {
            grad_resolve(ctx, n->more[k]);
            grad_prepare(n->more[k], n->more_first_write);
        }
        if (n->backward) n->backward(n);
        if (o->grad_lazy) {
            pool_put(ctx, o->grad, o->numel);
            o->grad = NULL;
            o->grad_unset = 0;
        }
    }
    return UG_OK;
}

void ug_tape_zero_grads(ug_ctx *ctx) {
    for (int64_t i = 0; i < ctx->nnodes; i++) {
        ug_tensor *t = ctx->nodes[i].out;
        if (t && t->grad && !t->grad_lazy) memset(t->grad, 0, (size_t)t->numel * sizeof(float));
    }
}
