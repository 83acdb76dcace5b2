/* linear.h — dense and batched matrix kernels on raw row-major floats (OpenBLAS sgemm).
 * Backward kernels accumulate into their outputs (+=). */
#ifndef UG_K_LINEAR_H
#define UG_K_LINEAR_H
#include <stdint.h>

/* out (N, O) = inp (N, Din) w^T (w: (O, Din)) + bias (O, or NULL). */
void ug_k_linear_forward(float *out, const float *inp, const float *w, const float *bias,
                         int64_t N, int64_t Din, int64_t O);
/* dinp (N, Din) += dout w; dw (O, Din) += dout^T inp; dbias (O) += colsum(dout). NULL skips one.
 * add: which of them add (UG_ADD_DX | UG_ADD_DW | UG_ADD_DB); the others are written (=), their
 * old contents unread. */
#define UG_ADD_DX 1u
#define UG_ADD_DW 2u
#define UG_ADD_DB 4u
void ug_k_linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                          const float *inp, const float *w, int64_t N, int64_t Din, int64_t O,
                          unsigned add);
/* c (M, N) (+)= op(a) op(b), op = transpose when ta/tb; a is (M, K) or (K, M), b (K, N) or
 * (N, K). beta = 0 overwrites c, 1 accumulates. */
void ug_k_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *a, const float *b,
               float beta, float *c);
/* Feature-major layers (an MLP's evaluation, nothing taped): activations stored transposed, x
 * (K, Bp) and y (O, Bp), Bp = ug_k_fm_cols(B) columns (the batch rounded up to whole register
 * blocks; the columns past B are computed like the others and ignored). y = act(W x [+ b] [+
 * add]) with W (O, K) packed by ug_k_fm_pack (ug_k_fm_packed_size floats; ldw: floats between
 * W's rows, so a block of a wider matrix's columns packs too), b (O) or NULL, add (O, Bp) or
 * NULL, act SiLU when silu is set. Each column's sums run over k in order from 0, one fma a
 * term, then b, then add: a column's result does not depend on the others or on Bp. No packing
 * of the activations; the bias, add and activation are applied in registers. */
int64_t ug_k_fm_cols(int64_t B);
int64_t ug_k_fm_packed_size(int64_t O, int64_t K);
void ug_k_fm_pack(float *wpk, const float *w, int64_t ldw, int64_t O, int64_t K);
void ug_k_fm_forward(float *y, const float *x, int64_t Bp, const float *wpk, const float *b,
                     const float *add, int64_t K, int64_t O, int silu);
/* Masked linear layers (MADE): out = w * mask, and dw *= mask in place, elementwise over n. */
void ug_k_mask_mul(float *out, const float *w, const float *mask, int64_t n);
void ug_k_mask_inplace(float *dw, const float *mask, int64_t n);
#endif

/* Prefix ("staircase") linear: a MADE layer with its input and output units sorted by degree,
 * so that row r of the masked weight, in that order, is the prefix [0, len[r]) (len
 * nondecreasing). y (N, O) = x (N, Din) Wp^T + bias[rows], Wp[r][c] = w[rows[r]][cols[c]] for
 * c < len[r], else 0. The rows are cut into panels of equal height; each panel's GEMMs stop at
 * the panel's longest prefix, so about half the multiply-adds of the dense masked layer run. */
#define UG_PREFIX_MAXP 16
typedef struct ug_prefix_plan {
    int np;                              /* panels */
    int64_t r0[UG_PREFIX_MAXP + 1];      /* panel p: rows [r0[p], r0[p + 1]) */
    int64_t k[UG_PREFIX_MAXP];           /* its longest prefix (len of its last row) */
} ug_prefix_plan;
void ug_k_prefix_plan(ug_prefix_plan *pl, const int32_t *len, int64_t O);
/* Multiply-adds of one row of the batch through the layer as the panels run it. */
int64_t ug_k_prefix_macs(const ug_prefix_plan *pl);
/* wp (O, Din): row r gathered from w on [0, len[r]) and zero on [len[r], its panel's k). */
void ug_k_prefix_pack(float *wp, const float *w, int64_t Din, const int32_t *rows,
                      const int32_t *cols, const int32_t *len, const ug_prefix_plan *pl);
void ug_k_prefix_forward(float *y, const float *x, const float *wp, const float *bias,
                         const int32_t *rows, int64_t N, int64_t Din, int64_t O,
                         const ug_prefix_plan *pl);
/* dx (N, Din) += dy Wp; dw[rows[r]][cols[c]] += (dy^T x)[r][c] for c < len[r]; dbias[rows[r]]
 * += colsum(dy)[r]. dwp is (O, Din) scratch. NULL dx / dw / dbias skips that gradient. */
void ug_k_prefix_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                          const float *wp, float *dwp, const int32_t *rows, const int32_t *cols,
                          const int32_t *len, int64_t N, int64_t Din, int64_t O,
                          const ug_prefix_plan *pl);
