/* core.h — internals shared by every layer: the context (arena + tape), error reporting,
 * the always-on check for programmer errors, and the tape node every op records.
 * Design: eager tape of coarse ops (STYLE.md); backward kernels accumulate (+=). */
#ifndef UG_CORE_H
#define UG_CORE_H

#include "unigen.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define UG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define UG_NORETURN __attribute__((noreturn))
#else
#define UG_PRINTF(a, b)
#define UG_NORETURN
#endif

/* Sets the thread-local message and returns s, so callers write `return ug_fail(...)`. */
ug_status ug_fail(ug_status s, const char *fmt, ...) UG_PRINTF(2, 3);
void ug_clear_error(void);
void ug_log_msg(ug_log_level level, const char *fmt, ...) UG_PRINTF(2, 3);

/* Programmer errors inside the library (wrong shapes passed between internal layers). Stays on
 * in release builds: a wrong shape must never silently compute garbage. */
UG_NORETURN void ug_check_failed(const char *file, int line, const char *fmt, ...) UG_PRINTF(3, 4);
#define UG_CHECK(cond, ...) \
    do { if (!(cond)) ug_check_failed(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* Work below this many elements runs on one thread: waking the pool costs more. */
#define UG_PAR_MIN 32768

/* The calling thread's number and the team size (0 and 1 outside OpenMP). */
#ifdef _OPENMP
#include <omp.h>
static inline int ug_omp_tid(void) { return omp_get_thread_num(); }
static inline int ug_omp_nthreads(void) { return omp_get_num_threads(); }
#else
static inline int ug_omp_tid(void) { return 0; }
static inline int ug_omp_nthreads(void) { return 1; }
#endif

/* ---------------------------------------------------------------- tape */
#define UG_NODE_MAX_IN 5
typedef struct ug_node ug_node;
typedef void (*ug_backward_fn)(ug_node *n);
struct ug_node {
    ug_backward_fn backward;
    const char *op;                 /* name, for debugging and error messages */
    ug_tensor *out;
    ug_tensor *in[UG_NODE_MAX_IN];  /* NULL entries allowed (e.g. no bias) */
    int nin;
    ug_tensor **more;               /* inputs beyond in[] (concat's list), nmore of them */
    int nmore;
    unsigned first_write;           /* bit k: the backward writes all of in[k]'s gradient when
                                       ug_grad_add(in[k]) is 0 (else the core zeroes it first) */
    int more_first_write;           /* the same for every more[k] */
    void *saved[4];                 /* arena buffers kept for backward (mean, rstd, masks...) */
    int64_t i[8];                   /* integer arguments */
    double f[4];                    /* real arguments */
};

typedef struct ug_arena_block { struct ug_arena_block *next; size_t cap, used; } ug_arena_block;

struct ug_ctx {
    ug_arena_block *head;           /* current block; older blocks chained behind it */
    size_t total_cap;
    size_t high_water;              /* bytes used in the largest step so far */
    int64_t mallocs;
    ug_node *nodes;
    int64_t nnodes, cap_nodes;
    int grad_enabled;
    void *free_grads;               /* gradient buffers the backward has finished with */
    struct ug_pack_cache *packs;    /* packed weights kept across calls, or NULL (not owned;
                                       packs.c): set only while the weights cannot change */
};

/* ---------------------------------------------------------------- packed weights (packs.c) */
typedef struct ug_pack_cache ug_pack_cache;
typedef void (*ug_pack_fn)(float *dst, const void *arg);
ug_pack_cache *ug_pack_cache_new(void);   /* NULL when out of memory */
void ug_pack_cache_free(ug_pack_cache *c);
/* The packed copy (n floats, 64-byte aligned) keyed by (key, tag, n), made by pack(dst, arg) on
 * first use. NULL when c is NULL or memory runs out: the caller then packs for itself. Safe to
 * call from several threads. */
const float *ug_pack_cache_get(ug_pack_cache *c, const float *key, int tag, int64_t n,
                               ug_pack_fn pack, const void *arg);
/* The layouts' tags: the direct convolution's and Winograd's packed kernels (kernels/conv.h),
 * feature-major linear layers (kernels/linear.h; FM_COL: a block of the weight's columns after
 * the first). */
enum { UG_PACK_TAG_DIRECT = 1, UG_PACK_TAG_WINO = 2, UG_PACK_TAG_FM = 3, UG_PACK_TAG_FM_COL = 4 };

/* The gradient buffer a backward kernel may accumulate into: NULL for tensors that do not
 * require grad (frozen parameters keep their buffer but must not receive anything). */
static inline float *ug_grad_of(const ug_tensor *t) {
    return t && t->requires_grad ? t->grad : NULL;
}

/* For a backward that declared first_write for t: 0 if t's gradient buffer holds nothing yet
 * (the caller must then write every element, as if adding to zeros: 0 + v), else 1 (add; also
 * for a t without gradient). Call it once per write, just before it (an input given twice gets
 * 0, then 1). */
static inline int ug_grad_add(ug_tensor *t) {
    if (!t->requires_grad || !t->grad_unset) return 1;
    t->grad_unset = 0;
    return 0;
}

/* 1 if an op with these inputs must record a node (grad mode on and any input needs grad). */
int ug_any_requires_grad(const ug_ctx *ctx, int nin, ug_tensor *const *ins);
/* Records a node if needed: marks out as requiring grad, its gradient buffer to be allocated
 * (zeroed) by the backward. Returns the node (to fill saved/i/f) or NULL when nothing is
 * recorded. */
ug_node *ug_tape_record(ug_ctx *ctx, const char *op, ug_backward_fn fn, ug_tensor *out,
                        int nin, ug_tensor *const *ins);

/* Backward seeded with an arbitrary output gradient dout (out->numel values), as ug_backward
 * with a loss of sum(out * dout). Used by the gradient checker and vector-Jacobian products. */
ug_status ug_backward_seed(ug_ctx *ctx, ug_tensor *out, const float *dout);
/* Zeroes the gradient of every recorded node output that has a buffer of its own, so one
 * forward tape can be run backward again (ug_backward_seed keeps the tape): d vector-Jacobian
 * products for an exact divergence. (Outputs' pooled gradients start at zero in every pass.)
 * Leaf inputs (x, parameters) are the caller's to zero. */
void ug_tape_zero_grads(ug_ctx *ctx);

/* A tensor header in the arena that aliases existing storage (reshape views, params). */
ug_tensor *ug_tensor_view(ug_ctx *ctx, ug_tensor *src, int ndim, const int64_t *shape);
int64_t ug_shape_numel(int ndim, const int64_t *shape);

/* Points ps's tensors at src's values (ps's own value buffer is freed) and copies their
 * requires_grad flags; ps keeps its own gradients. The two sets must have the same layout (the
 * same model declared twice). Calling it again only copies the flags. For data-parallel
 * replicas (ug_model_loss_backward). */
ug_status ug_params_share_data(ug_params *ps, const ug_params *src);
/* "(2, 3, 4)" into buf, for messages. */
const char *ug_shape_str(const ug_tensor *t, char *buf, size_t n);

#endif
