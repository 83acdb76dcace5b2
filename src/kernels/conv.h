/* conv.h — spatial kernels on raw (N, C, H, W) floats: 2-D convolution (im2col + sgemm; for
 * 3x3 stride-1 pad-1 with whole images across threads, the direct convolution or Winograd's
 * F(2x2, 3x3), winograd.c), nearest 2x upsampling and average pooling. Backward kernels
 * accumulate (+=); a NULL gradient pointer skips that input. */
#ifndef UG_K_CONV_H
#define UG_K_CONV_H
#include <stddef.h>
#include <stdint.h>

/* Geometry of one convolution: input (N, C, H, W), weight (O, C, kh, kw), output (N, O, Ho, Wo)
 * with Ho = (H + 2 pad - kh) / stride + 1 (and likewise Wo). */
typedef struct ug_conv_geom {
    int64_t N, C, H, W, O, kh, kw, stride, pad, Ho, Wo;
} ug_conv_geom;

/* What a forward adds to the convolution's sums, in this order (each term when non-NULL):
 * out[n][o] = ((conv + bias[o]) + ibias[n][o]) + add[n][o] (a ResBlock's time embedding and its
 * residual, fused into the pass that writes out). add is laid out as out; add == out adds to
 * out's old contents (dx's accumulation). */
typedef struct ug_conv_epi {
    const float *bias;    /* (O) */
    const float *ibias;   /* (N, O) */
    const float *add;     /* (N, O, Ho, Wo) */
} ug_conv_epi;
/* e moved to image n (O channels, images ostride floats apart). */
static inline ug_conv_epi ug_conv_epi_at(const ug_conv_epi *e, int64_t n, int64_t O,
                                         int64_t ostride) {
    ug_conv_epi r = {e->bias, e->ibias ? e->ibias + n * O : NULL,
                     e->add ? e->add + n * ostride : NULL};
    return r;
}

/* Fills Ho and Wo; returns 0 when the kernel does not fit the padded input. */
int ug_conv_geom_init(ug_conv_geom *g);
/* 1 when the columns of an image are the image itself (1x1, stride 1, no padding): no scratch. */
int ug_conv_is_pointwise(const ug_conv_geom *g);
/* 1 for 3x3, stride 1, pad 1: with whole images across threads, the forward and dx run the
 * direct convolution (no columns); dw still goes through the columns and sgemm. */
int ug_conv_is_direct(const ug_conv_geom *g);
/* 1 where the direct path's forward and dx run by Winograd F(2x2, 3x3) instead (winograd.c):
 * images of at least UG_WINO_MIN x UG_WINO_MIN with C O >= UG_WINO_MIN_CO; dw stays direct.
 * Below those the transforms cost more than the 2.25x fewer products save. With the tiles
 * dense across tile rows and images (session 21; bench_conv's kernels at 32 images on 2
 * workers, best of 3, Winograd / direct GFLOP/s): 64 -> 64 at 7, 6, 5, 4 pixels square 222 /
 * 160, 201 / 154, 142 / 156, 154 / 132; 32 -> 32 160 / 144, 140 / 138, 100 / 137, 100 / 116;
 * 16 -> 32 and 32 -> 16 at 28 x 28 (C O 512) 175 / 186 and 170 / 194 (bench/NOTES.md). */
#define UG_WINO_MIN 6
#define UG_WINO_MIN_CO 1024
int ug_conv_is_winograd(const ug_conv_geom *g);
/* Floats of the per-image column scratch: C kh kw Ho Wo (0 when pointwise). */
int64_t ug_conv_col_size(const ug_conv_geom *g);

/* col (C kh kw, Ho Wo) from one image (C, H, W); zero where the window hits padding. */
void ug_k_im2col(float *col, const float *img, const ug_conv_geom *g);
/* img (C, H, W) += the columns folded back (each input pixel sums every window it fed). */
void ug_k_col2im(float *img, const float *col, const ug_conv_geom *g);

/* Threads that take whole images (the thread count when N >= threads), or 1: one image at a
 * time with OpenBLAS threading each sgemm. */
int ug_conv_workers(const ug_conv_geom *g);
/* Floats of scratch for `workers`: per worker one image's columns, plus (with_dw, workers > 1)
 * a private dw accumulator (O C kh kw). */
int64_t ug_conv_scratch_size(const ug_conv_geom *g, int workers, int with_dw);

/* out (N, O, Ho, Wo) = conv(inp, w) + e's terms (e NULL: none). scratch: ug_conv_scratch_size
 * floats for `workers` (with_dw may be 0 for the forward alone). packed: w as ug_k_conv2d_pack
 * left it for this geometry and `workers`, or NULL (the forward packs it into scratch). */
void ug_k_conv2d_forward(float *out, float *scratch, int workers, const float *inp,
                         const float *w, const ug_conv_epi *e, const ug_conv_geom *g,
                         const float *packed);
/* Floats of the weights as the forward packs them for `workers` (the direct and Winograd
 * paths), 0 where it packs nothing; ug_k_conv2d_pack writes them (on a team of its own, so one
 * thread of a parallel region may call it). A caller whose weights stay the same over many
 * calls packs once (a sampling run, core/packs.c). */
int64_t ug_conv_packed_size(const ug_conv_geom *g, int workers);
void ug_k_conv2d_pack(float *dst, const float *w, const ug_conv_geom *g);
/* dinp += conv^T(dout, w) (dx_add 0: dinp = conv^T(dout, w), dinp's old contents unread: a
 * gradient buffer not yet written, see ug_grad_add); dw += sum_n dout_n col_n^T; dbias += sum
 * over N, Ho, Wo.
 * scratch: ug_conv_scratch_size(g, workers, dw != NULL) floats (the columns are recomputed per
 * image rather than kept from the forward: keeping them would cost N C kh kw Ho Wo floats per
 * layer). The result does not depend on timing: dw sums the workers in worker order. */
void ug_k_conv2d_backward(float *dinp, float *dw, float *dbias, float *scratch, int workers,
                          const float *dout, const float *inp, const float *w,
                          const ug_conv_geom *g, int dx_add);

/* The gradients of e's per-image terms (ug_conv_epi): dibias (N, O) += sum over Ho Wo of dout;
 * dadd [+]= dout (add_add 0: written, its old contents unread). NULL skips either. */
void ug_k_conv2d_epi_backward(float *dibias, float *dadd, int add_add, const float *dout,
                              int64_t N, int64_t O, int64_t L);

/* out (N, C, 2H, 2W)[.., 2i + a, 2j + b] = inp[.., i, j]; backward sums the 2x2 block. */
void ug_k_upsample2x_forward(float *out, const float *inp, int64_t NC, int64_t H, int64_t W);
void ug_k_upsample2x_backward(float *dinp, const float *dout, int64_t NC, int64_t H, int64_t W);
/* out (NC, H/k, W/k) = mean of each k x k block (trailing rows/columns dropped, as PyTorch). */
void ug_k_avg_pool2d_forward(float *out, const float *inp, int64_t NC, int64_t H, int64_t W,
                             int64_t k);
void ug_k_avg_pool2d_backward(float *dinp, const float *dout, int64_t NC, int64_t H, int64_t W,
                              int64_t k);
#endif
