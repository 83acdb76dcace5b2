/* params.c — every parameter in ONE flat buffer with named views (llm.c's
 * malloc_and_point_parameters). Gradients, Adam moments and the EMA copy use the same layout,
 * so an optimizer step is one loop and an MPI allreduce one call. */
#include "core.h"
#include <math.h>

typedef struct { ug_tensor t; char *name; int64_t offset; } param_entry;

struct ug_params {
    param_entry **entries; /* each entry allocated once: handed-out tensor pointers stay valid */
    int num, cap;
    int64_t total;
    float *data, *grad;
    int finalized;
    int shared;            /* data points into another set's buffer (ug_params_share_data) */
};

ug_status ug_params_create(ug_params **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return ug_fail(UG_ERR_NOMEM, "ug_params_create: out of memory");
    return UG_OK;
}

void ug_params_free(ug_params *ps) {
    if (!ps) return;
    for (int i = 0; i < ps->num; i++) {
        free(ps->entries[i]->name);
        free(ps->entries[i]);
    }
    free(ps->entries);
    if (!ps->shared) free(ps->data);
    free(ps->grad);
    free(ps);
}

ug_tensor *ug_params_add(ug_params *ps, const char *name, int ndim, const int64_t *shape) {
    if (ps->finalized) {
        ug_fail(UG_ERR_STATE, "ug_params_add: '%s' added after ug_params_finalize", name);
        return NULL;
    }
    if (ndim < 1 || ndim > UG_MAX_DIMS) {
        ug_fail(UG_ERR_SHAPE, "ug_params_add: '%s' has ndim %d, expected 1..%d", name, ndim,
                UG_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) {
            ug_fail(UG_ERR_SHAPE, "ug_params_add: '%s' dimension %d is %lld, expected > 0", name,
                    i, (long long)shape[i]);
            return NULL;
        }
    if (ug_params_find(ps, name)) {
        ug_fail(UG_ERR_INVALID_ARG, "ug_params_add: duplicate parameter name '%s'", name);
        return NULL;
    }
    if (ps->num == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 32;
        param_entry **ne = realloc(ps->entries, (size_t)cap * sizeof *ne);
        if (!ne) { ug_fail(UG_ERR_NOMEM, "ug_params_add: out of memory"); return NULL; }
        ps->entries = ne;
        ps->cap = cap;
    }
    param_entry *e = calloc(1, sizeof *e);
    char *nm = strdup(name);
    if (!e || !nm) {
        free(e);
        free(nm);
        ug_fail(UG_ERR_NOMEM, "ug_params_add: out of memory");
        return NULL;
    }
    ug_tensor *t = &e->t;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = ug_shape_numel(ndim, shape);
    t->requires_grad = 1;
    t->name = e->name = nm;
    e->offset = ps->total;
    ps->total += t->numel;
    ps->entries[ps->num++] = e;
    return t;
}

ug_status ug_params_finalize(ug_params *ps) {
    if (ps->finalized) return ug_fail(UG_ERR_STATE, "ug_params_finalize: called twice");
    size_t bytes = (size_t)(ps->total ? ps->total : 1) * sizeof(float);
    ps->data = calloc(1, bytes);
    ps->grad = calloc(1, bytes);
    if (!ps->data || !ps->grad)
        return ug_fail(UG_ERR_NOMEM, "ug_params_finalize: cannot allocate %lld parameters",
                       (long long)ps->total);
    for (int i = 0; i < ps->num; i++) {
        ps->entries[i]->t.data = ps->data + ps->entries[i]->offset;
        ps->entries[i]->t.grad = ps->grad + ps->entries[i]->offset;
    }
    ps->finalized = 1;
    return UG_OK;
}

ug_status ug_params_share_data(ug_params *ps, const ug_params *src) {
    if (ps->shared && ps->data == src->data) {   /* checked when first shared: flags only */
        for (int i = 0; i < ps->num; i++)
            ps->entries[i]->t.requires_grad = src->entries[i]->t.requires_grad;
        return UG_OK;
    }
    if (!ps->finalized || !src->finalized || ps->num != src->num || ps->total != src->total)
        return ug_fail(UG_ERR_STATE, "ug_params_share_data: %d tensors of %lld floats against %d of "
                       "%lld, both finalized expected", ps->num, (long long)ps->total, src->num,
                       (long long)src->total);
    for (int i = 0; i < ps->num; i++) {
        const param_entry *a = ps->entries[i], *b = src->entries[i];
        if (a->offset != b->offset || strcmp(a->name, b->name) ||
            !ug_tensor_same_shape(&a->t, &b->t))
            return ug_fail(UG_ERR_STATE, "ug_params_share_data: tensor %d is '%s', expected '%s' "
                           "of the same shape", i, a->name, b->name);
    }
    if (!ps->shared) free(ps->data);
    ps->data = src->data;
    ps->shared = 1;
    for (int i = 0; i < ps->num; i++) {
        ps->entries[i]->t.data = ps->data + ps->entries[i]->offset;
        ps->entries[i]->t.requires_grad = src->entries[i]->t.requires_grad;
    }
    return UG_OK;
}

int64_t ug_params_count(const ug_params *ps) { return ps->total; }
int ug_params_num_tensors(const ug_params *ps) { return ps->num; }
ug_tensor *ug_params_tensor(ug_params *ps, int i) {
    return (i >= 0 && i < ps->num) ? &ps->entries[i]->t : NULL;
}
float *ug_params_data(ug_params *ps) { return ps->data; }

ug_tensor *ug_params_find(ug_params *ps, const char *name) {
    for (int i = 0; i < ps->num; i++)
        if (strcmp(ps->entries[i]->name, name) == 0) return &ps->entries[i]->t;
    return NULL;
}

/* Zeroing is lazy: every entry is marked unset (grad_unset), and the backward's first write to
 * an entry replaces instead of adding (a node's first_write, e.g. linear's dW by sgemm with beta
 * 0) or the core zeroes that entry just before, while the kernel is about to read it (W4's 19 M
 * gradients were a 77 MB memset at the start of every step, read back from memory by each dW
 * sgemm). ug_params_grad zeroes the entries no backward reached before it hands the buffer out,
 * so every reader of the flat buffer sees exact zeros there. */
void ug_params_zero_grad(ug_params *ps) {
    if (!ps->grad) return;
    for (int i = 0; i < ps->num; i++) ps->entries[i]->t.grad_unset = 1;
}

float *ug_params_grad(ug_params *ps) {
    for (int i = 0; ps->grad && i < ps->num; i++) {
        ug_tensor *t = &ps->entries[i]->t;
        if (t->grad_unset) {
            memset(t->grad, 0, (size_t)t->numel * sizeof(float));
            t->grad_unset = 0;
        }
    }
    return ps->grad;
}

void ug_params_set_requires_grad(ug_params *ps, int on) {
    for (int i = 0; i < ps->num; i++) ps->entries[i]->t.requires_grad = on != 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

void ug_params_init_uniform(ug_params *ps, uint64_t seed) {
    for (int i = 0; i < ps->num; i++) {
        ug_tensor *t = &ps->entries[i]->t;
        const char *name = t->name;
        int is_norm = strstr(name, "norm") != NULL;
        if (is_norm && ends_with(name, ".weight")) {
            for (int64_t j = 0; j < t->numel; j++) t->data[j] = 1.0f;
            continue;
        }
        if (is_norm && ends_with(name, ".bias")) {
            memset(t->data, 0, (size_t)t->numel * sizeof(float));
            continue;
        }
        int64_t fan_in = 1;
        if (t->ndim >= 2) {
            fan_in = t->numel / t->shape[0];
        } else if (ends_with(name, ".bias")) {
            /* A bias takes the fan-in of the weight declared with the same prefix. */
            char wname[512];
            size_t plen = strlen(name) - strlen(".bias");
            if (plen + 8 < sizeof wname) {
                memcpy(wname, name, plen);
                strcpy(wname + plen, ".weight");
                ug_tensor *w = ug_params_find(ps, wname);
                if (w && w->ndim >= 2) fan_in = w->numel / w->shape[0];
            }
        }
        float bound = 1.0f / sqrtf((float)fan_in);
        ug_rng r = ug_rng_make(seed, (uint64_t)i, 0);
        ug_rng_uniform(&r, t->data, t->numel);
        for (int64_t j = 0; j < t->numel; j++) t->data[j] = (2.0f * t->data[j] - 1.0f) * bound;
    }
}
