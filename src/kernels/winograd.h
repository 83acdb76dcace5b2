/* winograd.h — 3x3 stride-1 pad-1 convolution by Winograd's minimal filtering F(2x2, 3x3), for
 * conv.c's whole-image workers (the forward, and dx as the convolution of dout with the kernel
 * transposed and flipped). Raw floats; one worker per call. */
#ifndef UG_K_WINOGRAD_H
#define UG_K_WINOGRAD_H
#include <stdint.h>
#include "conv.h"

/* Floats of the transformed weights for Oc output and Ci input channels. */
int64_t ug_wino_packed_size(int64_t Oc, int64_t Ci);
/* U = G g G^T of every (output, input) channel pair of w (O, C, 3, 3), in the register blocks'
 * order; transposed: the pairs of dx (output C, input O, taps flipped). Called inside a parallel
 * region, every thread of the team must call it: they share the work (an `omp for`). */
void ug_wino_pack(float *U, const float *w, int64_t O, int64_t C, int transposed);
/* Floats of one worker's buffers for Ci input and Oc output channels of g's image size. */
int64_t ug_wino_work_size(const ug_conv_geom *g, int64_t Ci, int64_t Oc);
/* out (nimg images of (Oc, H, W), ostride floats apart) = conv3x3(in (nimg images of (Ci, H, W),
 * istride apart), pad 1) + e's terms (conv.h; e's per-image pointers at the first image, its add
 * laid out as out), with U from ug_wino_pack; work: ug_wino_work_size floats. */
void ug_wino_images(float *out, int64_t ostride, const ug_conv_epi *e, const float *in,
                    int64_t istride, int64_t nimg, int64_t Ci, int64_t Oc,
                    const float *U, const ug_conv_geom *g, float *work);
#endif
