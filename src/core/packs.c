/* packs.c — a cache of kernel-ready copies of weights (the convolutions' packed weights) for
 * runs in which the weights do not change: one sampling call makes hundreds of network calls
 * with the same weights, and the direct and Winograd convolutions would otherwise repack them
 * on every call (2.3 % of W2's sampling, bench/NOTES.md, session 18).
 *
 * An entry is keyed by the weight's address, a tag naming the layout (the caller's) and the
 * packed size; it is made by the caller's pack function on first use and kept until the cache
 * is freed. The owner guarantees that no keyed weight changes while the cache is attached to a
 * context (ug_ctx.packs). Lookups are safe from several threads at once: a critical section
 * covers the lookup and the first packing (the others wait for it once per entry). */
#include "core/core.h"

typedef struct pack_entry {
    const float *key;
    int tag;
    int64_t n;
    float *data;
} pack_entry;

struct ug_pack_cache {
    pack_entry *e;
    int64_t n, cap;
};

ug_pack_cache *ug_pack_cache_new(void) { return calloc(1, sizeof(ug_pack_cache)); }

void ug_pack_cache_free(ug_pack_cache *c) {
    if (!c) return;
    for (int64_t i = 0; i < c->n; i++) free(c->e[i].data);
    free(c->e);
    free(c);
}

/* 64-byte aligned, n floats (a multiple of 64 bytes requested, as aligned_alloc wants). */
static float *alloc_floats(int64_t n) {
    size_t bytes = ((size_t)n * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

const float *ug_pack_cache_get(ug_pack_cache *c, const float *key, int tag, int64_t n,
                               ug_pack_fn pack, const void *arg) {
    const float *out = NULL;
    if (!c || n <= 0) return NULL;
#pragma omp critical(ug_pack_cache)
    {
        for (int64_t i = 0; i < c->n && !out; i++)
            if (c->e[i].key == key && c->e[i].tag == tag && c->e[i].n == n) out = c->e[i].data;
        if (!out) {
            if (c->n == c->cap) {
                int64_t cap = c->cap ? 2 * c->cap : 32;
                pack_entry *e = realloc(c->e, (size_t)cap * sizeof *e);
                if (e) {
                    c->e = e;
                    c->cap = cap;
                }
            }
            float *d = c->n < c->cap ? alloc_floats(n) : NULL;
            if (d) {
                pack(d, arg);
                c->e[c->n++] = (pack_entry){key, tag, n, d};
                out = d;
            }
        }
    }
    return out;   /* NULL when out of memory: the caller packs into its own scratch */
}
