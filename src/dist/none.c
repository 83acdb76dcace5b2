/* none.c — the data-parallel interface without MPI (the plain build): one process is the whole
 * world, reductions and gathers leave their buffers as they are. See mpi.c for the real one. */
#include "unigen.h"
#include <stdlib.h>

int ug_dist_available(void) { return 0; }
ug_status ug_dist_init(int *argc, char ***argv) { return UG_OK; }
void ug_dist_finalize(void) {}
int ug_dist_rank(void) { return 0; }
int ug_dist_world(void) { return 1; }
ug_status ug_dist_allreduce_sum_f32(float *buf, int64_t n) { return UG_OK; }
ug_status ug_dist_allreduce_sum_f64(double *buf, int64_t n) { return UG_OK; }
ug_status ug_dist_allreduce_max_f64(double *buf, int64_t n) { return UG_OK; }
ug_status ug_dist_allgather_rows_f64(double *buf, int64_t n, int64_t row) { return UG_OK; }
ug_status ug_dist_barrier(void) { return UG_OK; }
void ug_dist_abort(int code) { exit(code); }
