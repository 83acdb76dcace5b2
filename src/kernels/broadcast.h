/* broadcast.h — binary ops with NumPy broadcasting (add, sub, mul, div) on raw buffers.
 * A plan describes the output as a box of nd dims (size-1 dims dropped, adjacent dims merged
 * where both operands stay linear) in which a and b are read with strides sa, sb: 0 along a dim
 * where that operand is broadcast. Backward sums the gradient over an operand's zero-stride
 * dims, which is the adjoint of broadcasting. */
#ifndef UG_K_BROADCAST_H
#define UG_K_BROADCAST_H
#include "unigen.h"
#include <stdint.h>

typedef enum { UG_BIN_ADD, UG_BIN_SUB, UG_BIN_MUL, UG_BIN_DIV, UG_BIN_COUNT } ug_binop;

typedef struct {
    int nd;                      /* >= 1 */
    int64_t numel;
    int64_t shape[UG_MAX_DIMS];
    int64_t so[UG_MAX_DIMS];     /* contiguous strides of the output (and of dout) */
    int64_t sa[UG_MAX_DIMS], sb[UG_MAX_DIMS];
} ug_bcast;

const char *ug_binop_name(ug_binop op);
/* Output shape (out_shape[0..*out_nd)) of broadcasting a (na dims) with b (nb dims), and the
 * plan. Returns 0 if the shapes do not broadcast. */
int ug_bcast_plan(ug_bcast *p, int na, const int64_t *ashape, int nb, const int64_t *bshape,
                  int64_t *out_shape, int *out_nd);
/* out = a op b over the plan's box. */
void ug_k_binary_forward(ug_binop op, float *out, const float *a, const float *b,
                         const ug_bcast *p);
/* da += d(out)/da^T dout, reduced over a's broadcast dims; likewise db. NULL skips one. da_add
 * 0: da = 0 + that, da's old contents unread (a gradient buffer not yet written, see
 * ug_grad_add); likewise db_add. da is done before db (they may be the same buffer). */
void ug_k_binary_backward(ug_binop op, float *da, float *db, const float *dout, const float *a,
                          const float *b, const ug_bcast *p, int da_add, int db_add);
#endif
