/* dist.c — the one rule both builds share: how n rows split over the ranks. Rank r of w takes
 * rows [floor(n r / w), floor(n (r + 1) / w)): contiguous, in order, sizes differing by at most
 * one, so a gather of the ranks' rows is the rows of a one-process run in their order. */
#include "unigen.h"

void ug_dist_range(int64_t n, int64_t *lo, int64_t *hi) {
    int64_t r = ug_dist_rank(), w = ug_dist_world();
    /* n r overflows only beyond 2^63 / world rows. */
    *lo = n * r / w;
    *hi = n * (r + 1) / w;
}
