/* broadcast.c — NumPy broadcasting for add, sub, mul, div (forward and backward).
 *   out = a op b;   d/da: 1, 1, b, 1/b;   d/db: 1, -1, a, -a/b^2.
 * The output is walked in row-major order with an incrementing multi-index (walk.h): the last
 * plan dim is the inner loop, whose strides are always 0 or 1, so same-shape operands, rows
 * (..., C) + (C) and per-channel/per-sample scales run as plain vectorizable loops.
 * Gradients of a broadcast operand are computed per element of that operand (its kept dims
 * outside, its broadcast dims inside, summed in double): no two threads write the same
 * element, so there are no atomics and the result does not depend on the thread count. */
#include "broadcast.h"
#include "core/core.h"
#include "walk.h"

static const char *const k_names[UG_BIN_COUNT] = {"add", "sub", "mul", "div"};
const char *ug_binop_name(ug_binop op) { return (unsigned)op < UG_BIN_COUNT ? k_names[op] : "?"; }

int ug_bcast_plan(ug_bcast *p, int na, const int64_t *ashape, int nb, const int64_t *bshape,
                  int64_t *out_shape, int *out_nd) {
    int nd = na > nb ? na : nb;
    int64_t as[UG_MAX_DIMS], bs[UG_MAX_DIMS], os[UG_MAX_DIMS];
    if (nd > UG_MAX_DIMS) return 0;
    for (int d = 0; d < nd; d++) {
        as[d] = d >= nd - na ? ashape[d - (nd - na)] : 1;
        bs[d] = d >= nd - nb ? bshape[d - (nd - nb)] : 1;
        if (as[d] != bs[d] && as[d] != 1 && bs[d] != 1) return 0;
        os[d] = as[d] == 1 ? bs[d] : as[d];
        out_shape[d] = os[d];
    }
    *out_nd = nd;
    /* Strides of a and b in the right-aligned output space; 0 where broadcast. */
    int64_t sa[UG_MAX_DIMS], sb[UG_MAX_DIMS], ca = 1, cb = 1, numel = 1;
    for (int d = nd - 1; d >= 0; d--) {
        sa[d] = as[d] == 1 ? 0 : ca;
        sb[d] = bs[d] == 1 ? 0 : cb;
        ca *= as[d];
        cb *= bs[d];
        numel *= os[d];
    }
    memset(p, 0, sizeof *p);
    p->numel = numel;
    /* Drop size-1 dims, then merge dim j into the previous kept dim i when both operands step
     * through i exactly as through j * shape[j] (so one longer linear dim replaces the two). */
    int m = 0;
    for (int d = 0; d < nd; d++) {
        if (os[d] == 1) continue;
        if (m > 0 && p->sa[m - 1] == sa[d] * os[d] && p->sb[m - 1] == sb[d] * os[d]) {
            p->shape[m - 1] *= os[d];
            p->sa[m - 1] = sa[d];
            p->sb[m - 1] = sb[d];
            continue;
        }
        p->shape[m] = os[d];
        p->sa[m] = sa[d];
        p->sb[m] = sb[d];
        m++;
    }
    if (m == 0 || numel == 0) {  /* one element (strides irrelevant) or none */
        m = 1;
        p->shape[0] = numel;
        p->sa[0] = p->sb[0] = numel == 1 ? 0 : 1;
    }
    p->nd = m;
    int64_t c = 1;
    for (int d = m - 1; d >= 0; d--) {
        p->so[d] = c;
        c *= p->shape[d];
    }
    return 1;
}

/* ---------------------------------------------------------------- elementwise passes
 * One pass over the output, element e reading a and b through the plan. It serves the forward
 * and the gradient of an operand that is not broadcast (whose element index is e). */
typedef enum {
    M_ADD, M_SUB, M_MUL, M_DIV,            /* d = a op b */
    M_G, M_NEG_G, M_G_B, M_G_A, M_G_DIVB,  /* d += g, -g, g b, g a, g / b */
    M_G_DIVB2,                             /* d -= g a / b^2 */
    M_SET_G, M_SET_NEG_G                   /* d = 0 + g, 0 - g (d not yet written) */
} map_kind;

/* STMT sees av, bv, d[k], g[k]. The stride cases are spelled out so the compiler vectorizes
 * the common ones (inner strides are 0 or 1 by construction of the plan). */
#define INNER(STMT)                                                                         \
    do {                                                                                    \
        if (sa == 1 && sb == 1) {                                                           \
            for (int64_t k = 0; k < len; k++) { float av = pa[k], bv = pb[k]; (void)av; (void)bv; STMT; } \
        } else if (sb == 0) {                                                               \
            const float bv = pb[0]; (void)bv;                                               \
            for (int64_t k = 0; k < len; k++) { float av = pa[k * sa]; (void)av; STMT; }    \
        } else if (sa == 0) {                                                               \
            const float av = pa[0]; (void)av;                                               \
            for (int64_t k = 0; k < len; k++) { float bv = pb[k * sb]; (void)bv; STMT; }    \
        } else {                                                                            \
            for (int64_t k = 0; k < len; k++) {                                             \
                float av = pa[k * sa], bv = pb[k * sb]; (void)av; (void)bv; STMT;           \
            }                                                                               \
        }                                                                                   \
    } while (0)

static void map_inner(map_kind kind, float *restrict d, const float *restrict g,
                      const float *pa, int64_t sa, const float *pb, int64_t sb, int64_t len) {
    switch (kind) {
    case M_ADD: INNER(d[k] = av + bv); break;
    case M_SUB: INNER(d[k] = av - bv); break;
    case M_MUL: INNER(d[k] = av * bv); break;
    case M_DIV: INNER(d[k] = av / bv); break;
    case M_G: INNER(d[k] += g[k]); break;
    case M_NEG_G: INNER(d[k] -= g[k]); break;
    case M_G_B: INNER(d[k] += g[k] * bv); break;
    case M_G_A: INNER(d[k] += g[k] * av); break;
    case M_G_DIVB: INNER(d[k] += g[k] / bv); break;
    case M_G_DIVB2: INNER(d[k] -= g[k] * av / (bv * bv)); break;
    case M_SET_G: INNER(d[k] = 0.0f + g[k]); break;
    case M_SET_NEG_G: INNER(d[k] = 0.0f - g[k]); break;
    }
}

static void map_pass(map_kind kind, float *d, const float *g, const float *a, const float *b,
                     const ug_bcast *p) {
    int nd = p->nd, dims[UG_MAX_DIMS];
    for (int i = 0; i < nd; i++) dims[i] = i;
    int64_t inner = p->shape[nd - 1], sa = p->sa[nd - 1], sb = p->sb[nd - 1];
    const int64_t *st[2] = {p->sa, p->sb};
#pragma omp parallel if (p->numel >= UG_PAR_MIN)
    {
        int64_t lo, hi;
        ug_thread_range(p->numel, &lo, &hi);
        if (lo < hi) {
            ug_walk w;  /* over the outer dims; the last dim is the inner loop */
            ug_walk_init(&w, nd - 1, dims, p->shape, 2, st);
            ug_walk_seek(&w, lo / inner);
            int64_t col = lo % inner;
            for (int64_t e = lo; e < hi;) {
                int64_t len = inner - col < hi - e ? inner - col : hi - e;
                map_inner(kind, d + e, g ? g + e : NULL, a + w.off[0] + col * sa, sa,
                          b + w.off[1] + col * sb, sb, len);
                e += len;
                col = 0;
                ug_walk_next(&w);
            }
        }
    }
}

void ug_k_binary_forward(ug_binop op, float *out, const float *a, const float *b,
                         const ug_bcast *p) {
    static const map_kind fwd[UG_BIN_COUNT] = {M_ADD, M_SUB, M_MUL, M_DIV};
    UG_CHECK((unsigned)op < UG_BIN_COUNT, "binary op %d unknown", (int)op);
    if (p->numel == 0) return;
    map_pass(fwd[op], out, NULL, a, b, p);
}

/* ---------------------------------------------------------------- reduction for a broadcast operand */
typedef enum { R_G, R_NEG_G, R_G_B, R_G_A, R_G_DIVB, R_G_DIVB2 } red_kind;

static double red_inner(red_kind kind, const float *g, int64_t sg, const float *pa, int64_t sa,
                        const float *pb, int64_t sb, int64_t len) {
    double s = 0;
    switch (kind) {
    case R_G: for (int64_t k = 0; k < len; k++) s += g[k * sg]; break;
    case R_NEG_G: for (int64_t k = 0; k < len; k++) s -= g[k * sg]; break;
    case R_G_B: for (int64_t k = 0; k < len; k++) s += g[k * sg] * pb[k * sb]; break;
    case R_G_A: for (int64_t k = 0; k < len; k++) s += g[k * sg] * pa[k * sa]; break;
    case R_G_DIVB: for (int64_t k = 0; k < len; k++) s += g[k * sg] / pb[k * sb]; break;
    case R_G_DIVB2:
        for (int64_t k = 0; k < len; k++) {
            float bv = pb[k * sb];
            s -= g[k * sg] * pa[k * sa] / (bv * bv);
        }
        break;
    }
    return s;
}

/* dx (the operand with strides sx) += the term summed over the dims where sx is 0. Outer loop:
 * dx's own elements (its kept dims in order, so dx's index is the loop counter); inner: the
 * broadcast dims, the last of which is a strided loop. */
static void reduce_pass(red_kind kind, float *dx, const int64_t *sx, const float *g,
                        const float *a, const float *b, const ug_bcast *p, int add) {
    int kd[UG_MAX_DIMS], rd[UG_MAX_DIMS], nk = 0, nr = 0;
    for (int d = 0; d < p->nd; d++) {
        if (sx[d] != 0) kd[nk++] = d;
        else rd[nr++] = d;
    }
    int last = rd[nr - 1];  /* nr >= 1: the caller sends operands without 0 strides to map_pass */
    int64_t nx = 1, nouter = 1, len = p->shape[last];
    for (int i = 0; i < nk; i++) nx *= p->shape[kd[i]];
    for (int i = 0; i < nr - 1; i++) nouter *= p->shape[rd[i]];
    int64_t sg = p->so[last], sa = p->sa[last], sb = p->sb[last];
    const int64_t *st[3] = {p->so, p->sa, p->sb};
#pragma omp parallel if (p->numel >= UG_PAR_MIN)
    {
        int64_t lo, hi;
        ug_thread_range(nx, &lo, &hi);
        if (lo < hi) {
            ug_walk kw, rw;
            ug_walk_init(&kw, nk, kd, p->shape, 3, st);
            ug_walk_init(&rw, nr - 1, rd, p->shape, 3, st);
            ug_walk_seek(&kw, lo);
            for (int64_t j = lo; j < hi; j++) {
                double acc = 0;
                ug_walk_seek(&rw, 0);
                for (int64_t r = 0; r < nouter; r++) {
                    acc += red_inner(kind, g + kw.off[0] + rw.off[0], sg, a + kw.off[1] + rw.off[1],
                                     sa, b + kw.off[2] + rw.off[2], sb, len);
                    ug_walk_next(&rw);
                }
                dx[j] = (add ? dx[j] : 0.0f) + (float)acc;
                ug_walk_next(&kw);
            }
        }
    }
}

static int has_broadcast(const int64_t *sx, const ug_bcast *p) {
    for (int d = 0; d < p->nd; d++)
        if (sx[d] == 0 && p->shape[d] != 1) return 1;
    return 0;
}

/* add 0: dx is written, not read (a reduction writes each element once; of the maps, + and -
 * g have writing forms, the others add into a zeroed dx). */
static void grad_one(float *dx, const int64_t *sx, map_kind mk, red_kind rk, const float *dout,
                     const float *a, const float *b, const ug_bcast *p, int add) {
    if (!dx) return;
    if (has_broadcast(sx, p)) {
        reduce_pass(rk, dx, sx, dout, a, b, p, add);
        return;
    }
    if (!add && mk == M_G) mk = M_SET_G;
    else if (!add && mk == M_NEG_G) mk = M_SET_NEG_G;
    else if (!add) memset(dx, 0, (size_t)p->numel * sizeof(float));
    map_pass(mk, dx, dout, a, b, p);
}

void ug_k_binary_backward(ug_binop op, float *da, float *db, const float *dout, const float *a,
                          const float *b, const ug_bcast *p, int da_add, int db_add) {
    UG_CHECK((unsigned)op < UG_BIN_COUNT, "binary op %d unknown", (int)op);
    if (p->numel == 0) return;
    switch (op) {
    case UG_BIN_ADD:
        grad_one(da, p->sa, M_G, R_G, dout, a, b, p, da_add);
        grad_one(db, p->sb, M_G, R_G, dout, a, b, p, db_add);
        break;
    case UG_BIN_SUB:
        grad_one(da, p->sa, M_G, R_G, dout, a, b, p, da_add);
        grad_one(db, p->sb, M_NEG_G, R_NEG_G, dout, a, b, p, db_add);
        break;
    case UG_BIN_MUL:
        grad_one(da, p->sa, M_G_B, R_G_B, dout, a, b, p, da_add);
        grad_one(db, p->sb, M_G_A, R_G_A, dout, a, b, p, db_add);
        break;
    case UG_BIN_DIV:
        grad_one(da, p->sa, M_G_DIVB, R_G_DIVB, dout, a, b, p, da_add);
        grad_one(db, p->sb, M_G_DIVB2, R_G_DIVB2, dout, a, b, p, db_add);
        break;
    default: break;
    }
}
