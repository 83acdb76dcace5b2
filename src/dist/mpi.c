/* mpi.c — data-parallel training and evaluation over MPI (built with `make MPI=1`, which defines
 * UG_MPI). Data parallelism as in llm.c's train_gpt2.cu and PyTorch DDP: every rank holds the
 * whole model, computes the gradient of its shard of a global batch, and one allreduce over the
 * flat gradient buffer (STYLE: parameters, gradients and moments share one layout) gives every
 * rank the same sum, hence the same optimizer step. Errors come back as ug_status (the
 * communicator returns them instead of aborting) so the caller can name the failing rank before
 * ug_dist_abort takes the job down. */
#include "core/core.h"
#include "unigen.h"
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>

static int g_rank = 0, g_world = 1, g_started = 0;

/* MPI counts are int: big buffers go in pieces of at most 2^30 elements. */
#define UG_MPI_PIECE ((int64_t)1 << 30)

static ug_status mpi_fail(const char *what, int err) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = 0;
    return ug_fail(UG_ERR_IO, "%s on rank %d of %d: %s", what, g_rank, g_world, len ? msg : "MPI error");
}

int ug_dist_available(void) { return 1; }

/* Launched by mpirun / srun: Open MPI sets OMPI_COMM_WORLD_SIZE, PMIx PMIX_RANK, MPICH's hydra
 * and Slurm's PMI PMI_RANK. A plain start skips MPI_Init (an Open MPI singleton start costs
 * most of a second). UNIGEN_MPI=1 forces it. */
static int launched(void) {
    const char *force = getenv("UNIGEN_MPI");
    if (force && *force) return atoi(force) != 0;
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

ug_status ug_dist_init(int *argc, char ***argv) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited || !launched()) return UG_OK;
    int err = MPI_Init(argc, argv);
    if (err != MPI_SUCCESS) return ug_fail(UG_ERR_IO, "MPI_Init failed (error %d)", err);
    g_started = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    return UG_OK;
}

void ug_dist_finalize(void) {
    if (g_started) MPI_Finalize();
    g_started = 0;
    g_rank = 0;
    g_world = 1;
}

int ug_dist_rank(void) { return g_rank; }
int ug_dist_world(void) { return g_world; }

static ug_status allreduce(void *buf, int64_t n, MPI_Datatype t, size_t size, MPI_Op op,
                           const char *what) {
    if (g_world == 1) return UG_OK;
    for (int64_t i = 0; i < n; i += UG_MPI_PIECE) {
        int k = (int)(n - i < UG_MPI_PIECE ? n - i : UG_MPI_PIECE);
        int err = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)i * size, k, t, op, MPI_COMM_WORLD);
        if (err != MPI_SUCCESS) return mpi_fail(what, err);
    }
    return UG_OK;
}

ug_status ug_dist_allreduce_sum_f32(float *buf, int64_t n) {
    return allreduce(buf, n, MPI_FLOAT, sizeof *buf, MPI_SUM, "allreduce (sum) of floats");
}
ug_status ug_dist_allreduce_sum_f64(double *buf, int64_t n) {
    return allreduce(buf, n, MPI_DOUBLE, sizeof *buf, MPI_SUM, "allreduce (sum) of doubles");
}
ug_status ug_dist_allreduce_max_f64(double *buf, int64_t n) {
    return allreduce(buf, n, MPI_DOUBLE, sizeof *buf, MPI_MAX, "allreduce (max) of doubles");
}

ug_status ug_dist_allgather_rows_f64(double *buf, int64_t n, int64_t row) {
    if (g_world == 1) return UG_OK;
    if (n > INT_MAX || row < 1 || row > INT_MAX)
        return ug_fail(UG_ERR_INVALID_ARG, "allgather: %lld rows of %lld doubles, expected at most "
                       "%d of each", (long long)n, (long long)row, INT_MAX);
    /* Counts in rows of a contiguous type, so n * row may exceed an int. */
    int *cnt = malloc(2 * (size_t)g_world * sizeof *cnt);
    if (!cnt) return ug_fail(UG_ERR_NOMEM, "allgather: out of memory for %d counts", g_world);
    int *disp = cnt + g_world;
    for (int r = 0; r < g_world; r++) {
        disp[r] = (int)(n * r / g_world);
        cnt[r] = (int)(n * (r + 1) / g_world) - disp[r];
    }
    MPI_Datatype rt;
    int err = MPI_Type_contiguous((int)row, MPI_DOUBLE, &rt);
    if (err == MPI_SUCCESS && (err = MPI_Type_commit(&rt)) == MPI_SUCCESS) {
        err = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, disp, rt, MPI_COMM_WORLD);
        MPI_Type_free(&rt);
    }
    free(cnt);
    return err == MPI_SUCCESS ? UG_OK : mpi_fail("allgather of rows", err);
}

ug_status ug_dist_barrier(void) {
    if (g_world == 1) return UG_OK;
    int err = MPI_Barrier(MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? UG_OK : mpi_fail("barrier", err);
}

void ug_dist_abort(int code) {
    if (g_started) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
