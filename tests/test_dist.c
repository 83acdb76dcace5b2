/* test_dist.c — data-parallel unigen (issue 11): `mpirun -np N unigen train | sample | eval` gives
 * the one-process results. Training: the same parameters after 50 steps within float
 * summation-order error (the gradient of a global batch summed in two halves plus one allreduce
 * instead of one GEMM reduction), and clearly not those of a run whose global batch differs (the
 * check can fail). Sampling: bit for bit, each sample being independent of the others. A rank
 * that fails ends the job with its message.
 *
 * The mpirun tests need the binary of UG_CLI built with `make MPI=1` (its `--version` says
 * "mpi: yes") and mpirun on the PATH (UG_MPIRUN names another launcher); otherwise they print
 * why they are skipped. Run them with `make test MPI=1 BUILD=build-mpi T=dist`. */
#include "test.h"
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#define sh ug_test_sh
#define cli_bin ug_test_cli

/* The launcher line, or NULL (after saying why) when the mpirun tests cannot run here. */
static const char *mpirun_line(void) {
    static char line[512];
    char out[4096];
    if (sh(out, sizeof out, "%s --version", cli_bin()) != 0 || !strstr(out, "mpi: yes")) {
        printf("    skipped: %s was built without MPI (make MPI=1 BUILD=build-mpi test)\n", cli_bin());
        return NULL;
    }
    const char *run = getenv("UG_MPIRUN");
    if (!run || !*run) {
        if (sh(out, sizeof out, "command -v mpirun") != 0) {
            printf("    skipped: no mpirun on the PATH (Debian: openmpi-bin)\n");
            return NULL;
        }
        /* Open MPI refuses root without the flag; two ranks may outnumber the cores. */
        snprintf(line, sizeof line, "env OMP_NUM_THREADS=1 mpirun --oversubscribe%s",
                 geteuid() == 0 ? " --allow-run-as-root" : "");
        run = line;
    }
    return run;
}

static void tmpdir(char *buf, size_t n) {
    snprintf(buf, n, "/tmp/unigen-dist-XXXXXX");
    if (!mkdtemp(buf)) buf[0] = 0;
}

/* Largest |a - b| over every tensor of two checkpoints with the same tensors, and the largest
 * excess over atol + rtol |a| (> 0: outside the tolerance). Optimizer moments included. */
static int ckpt_diff(const char *pa, const char *pb, double atol, double rtol, double *maxabs,
                     double *excess) {
    ug_st_file *fa = NULL, *fb = NULL;
    *maxabs = 0;
    *excess = -INFINITY;
    if (ug_st_open(pa, &fa) || ug_st_open(pb, &fb)) {
        ug_test_fail(__FILE__, __LINE__, "%s", ug_last_error());
        if (fa) ug_st_close(fa);
        return 0;
    }
    int ok = ug_st_count(fa) == ug_st_count(fb) && ug_st_count(fa) > 0;
    for (int i = 0; ok && i < ug_st_count(fa); i++) {
        const char *name = ug_st_name(fa, i);
        int64_t n = ug_st_numel(fa, name);
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        ok = a && b && n == ug_st_numel(fb, name) && !ug_st_read_f32(fa, name, a, n) &&
             !ug_st_read_f32(fb, name, b, n);
        for (int64_t j = 0; ok && j < n; j++) {
            double e = fabs((double)a[j] - b[j]);
            if (e > *maxabs) *maxabs = e;
            double over = e - (atol + rtol * fabs((double)a[j]));
            if (over > *excess) *excess = over;
        }
        free(a);
        free(b);
    }
    ug_st_close(fa);
    ug_st_close(fb);
    if (!ok) ug_test_fail(__FILE__, __LINE__, "%s and %s: different or unreadable tensors", pa, pb);
    return ok;
}

TEST(dist_world_of_one_without_a_launcher) {
    /* The test binary is not started by mpirun: MPI stays off, collectives leave buffers alone. */
    ASSERT_OK(ug_dist_init(NULL, NULL));
    EXPECT(ug_dist_world() == 1 && ug_dist_rank() == 0, "world %d rank %d", ug_dist_world(), ug_dist_rank());
    int64_t lo = -1, hi = -1;
    ug_dist_range(7, &lo, &hi);
    EXPECT(lo == 0 && hi == 7, "range of 7 rows: [%lld, %lld)", (long long)lo, (long long)hi);
    float f[3] = {1, 2, 3};
    double g[4] = {1, 2, 3, 4};
    ASSERT_OK(ug_dist_allreduce_sum_f32(f, 3));
    ASSERT_OK(ug_dist_allreduce_sum_f64(g, 2));
    ASSERT_OK(ug_dist_allreduce_max_f64(g + 2, 2));
    ASSERT_OK(ug_dist_allgather_rows_f64(g, 2, 2));
    ASSERT_OK(ug_dist_barrier());
    EXPECT(f[0] == 1 && f[2] == 3 && g[0] == 1 && g[3] == 4, "a world of one changed the buffers");
    ug_dist_finalize();
}

/* One training configuration: EDM on two moons, the default mlp-toy network (141,058 parameters),
 * EMA, 50 steps, --batch the global batch. */
#define TRAIN_ARGS "train --data moons --steps 50 --log-every 10 --threads 1 --seed 3"

TEST(dist_mpirun_train_matches_one_process) {
    const char *mpirun = mpirun_line();
    if (!mpirun) return;
    char dir[64], out[16384], a[160], b[160], c[160];
    tmpdir(dir, sizeof dir);
    ASSERT(sh(out, sizeof out, "%s " TRAIN_ARGS " --batch 256 --out %s/one", cli_bin(), dir) == 0,
           "one process: %s", out);
    ASSERT(sh(out, sizeof out, "%s -np 2 %s " TRAIN_ARGS " --batch 256 --out %s/two", mpirun,
              cli_bin(), dir) == 0, "two ranks: %s", out);
    EXPECT(strstr(out, "data-parallel over 2 ranks: global batch 256, 128..128"), "banner: %s", out);
    /* Rank 1's progress is muted: each log line once. */
    const char *p = strstr(out, "step 50/50");
    EXPECT(p && !strstr(p + 1, "step 50/50"), "rank 0 alone reports: %s", out);
    /* A global batch of 512: what a per-rank --batch would have trained. */
    ASSERT(sh(out, sizeof out, "%s " TRAIN_ARGS " --batch 512 --out %s/big", cli_bin(), dir) == 0,
           "batch 512: %s", out);
    snprintf(a, sizeof a, "%s/one/checkpoint.safetensors", dir);
    snprintf(b, sizeof b, "%s/two/checkpoint.safetensors", dir);
    snprintf(c, sizeof c, "%s/big/checkpoint.safetensors", dir);
    /* Adam divides by sqrt(v): a summation-order change of 1e-7 relative in a gradient moves a
     * weight by far less than lr = 1e-3 per step; 2e-5 + 1e-4 |w| leaves room and stays a
     * thousand times below what a different batch does. */
    const double atol = 2e-5, rtol = 1e-4;
    double dmax, excess, dbig, ebig;
    if (ckpt_diff(a, b, atol, rtol, &dmax, &excess))
        EXPECT(excess <= 0, "2 ranks vs 1 process: max |diff| %.3g, over the tolerance by %.3g", dmax, excess);
    if (ckpt_diff(a, c, atol, rtol, &dbig, &ebig))
        EXPECT(ebig > 0 && dbig > 100 * dmax, "global batch 512 vs 256: max |diff| %.3g only (2 ranks: %.3g)",
               dbig, dmax);
    printf("    parameters after 50 steps, 2 ranks vs 1 process: max |diff| %.3g (tolerance %.0e + "
           "%.0e |w|); global batch 512 instead: %.3g\n", dmax, atol, rtol, dbig);
    /* The logged loss, a global-batch mean allreduced from the ranks' shards. */
    char *m1, *m2;
    snprintf(a, sizeof a, "%s/one/metrics.jsonl", dir);
    snprintf(b, sizeof b, "%s/two/metrics.jsonl", dir);
    m1 = ug_test_read_file(a);
    m2 = ug_test_read_file(b);
    ASSERT(m1 && m2, "metrics files");
    const char *q1 = m1, *q2 = m2;
    int lines = 0;
    while ((q1 = strstr(q1, "\"loss\": ")) && (q2 = strstr(q2, "\"loss\": "))) {
        double l1 = strtod(q1 + 8, NULL), l2 = strtod(q2 + 8, NULL);
        EXPECT(fabs(l1 - l2) <= 1e-5 * fabs(l1), "logged loss %g vs %g", l1, l2);
        q1++, q2++, lines++;
    }
    EXPECT(lines == 5, "%d loss lines", lines);
    free(m1);
    free(m2);
}

TEST(dist_mpirun_sample_and_eval_match_one_process) {
    const char *mpirun = mpirun_line();
    if (!mpirun) return;
    char dir[64], out[16384], a[160], b[160];
    tmpdir(dir, sizeof dir);
    ASSERT(sh(out, sizeof out, "%s train --data moons --steps 20 --batch 128 --threads 1 --out %s/r",
              cli_bin(), dir) == 0, "train: %s", out);
    /* 1000 samples in chunks of 300: one process, then 3 ranks (rows 0..332, 333..665, ...). */
    const char *args = "sample --ckpt %s/r/checkpoint.safetensors --n 1000 --batch 300 --steps 10 "
                       "--sampler euler-a --threads 1 --out %s/%s";
    char fmt[512];
    snprintf(fmt, sizeof fmt, "%%s %s", args);
    ASSERT(sh(out, sizeof out, fmt, cli_bin(), dir, dir, "one.npy") == 0, "one process: %s", out);
    snprintf(fmt, sizeof fmt, "%%s -np 3 %%s %s", args);
    ASSERT(sh(out, sizeof out, fmt, mpirun, cli_bin(), dir, dir, "three.npy") == 0, "3 ranks: %s", out);
    snprintf(a, sizeof a, "%s/one.npy", dir);
    snprintf(b, sizeof b, "%s/three.npy", dir);
    ASSERT(sh(out, sizeof out, "cmp %s %s", a, b) == 0, "samples differ: %s", out);
    /* Sample-based metrics (the samples split over the ranks) print the same numbers. */
    const char *ev = "eval --ckpt %s/r/checkpoint.safetensors --data moons --n 400 --metrics mmd,energy "
                     "--steps 8 --threads 1";
    char o1[4096], o2[4096];
    snprintf(fmt, sizeof fmt, "%%s %s", ev);
    ASSERT(sh(o1, sizeof o1, fmt, cli_bin(), dir) == 0, "eval: %s", o1);
    snprintf(fmt, sizeof fmt, "%%s -np 2 %%s %s", ev);
    ASSERT(sh(o2, sizeof o2, fmt, mpirun, cli_bin(), dir) == 0, "eval, 2 ranks: %s", o2);
    const char *e1 = strstr(o1, "mmd2"), *e2 = strstr(o2, "mmd2");
    ASSERT(e1 && e2, "no mmd2 line: %s / %s", o1, o2);
    EXPECT(!strcmp(e1, e2), "metrics differ:\n%s\nvs\n%s", e1, e2);
}

TEST(dist_mpirun_failing_rank_ends_the_job) {
    const char *mpirun = mpirun_line();
    if (!mpirun) return;
    char dir[64], out[16384];
    tmpdir(dir, sizeof dir);
    /* Rank 0 cannot create its run directory (a file is in the way) while rank 1 goes on to wait
     * in the first allreduce: rank 0's error must end both, promptly. */
    ASSERT(sh(out, sizeof out, "touch %s/file", dir) == 0, "touch: %s", out);
    double t0 = ug_test_now_s();
    int rc = sh(out, sizeof out, "timeout 60 %s -np 2 %s train --data moons --steps 100000 --threads 1 "
                "--out %s/file/run", mpirun, cli_bin(), dir);
    EXPECT(rc != 0 && rc != 124, "exit status %d: %s", rc, out);
    EXPECT(strstr(out, "rank 0 of 2") && strstr(out, "cannot create directory") &&
           strstr(out, "ending all 2 ranks"), "message: %s", out);
    EXPECT(ug_test_now_s() - t0 < 30, "took %.1f s", ug_test_now_s() - t0);
}

/* Issue 11: a run resumed with a different number of ranks continues the same run. 25 steps
 * on one process, resumed to 50 on two ranks (and the other way round), against 50
 * uninterrupted steps on one process: the same tolerance as above. */
TEST(dist_mpirun_resume_with_another_rank_count) {
    const char *mpirun = mpirun_line();
    if (!mpirun) return;
    char dir[64], out[16384], a[160], b[160];
    tmpdir(dir, sizeof dir);
#define RESUME_ARGS "train --data moons --log-every 25 --threads 1 --seed 5 --batch 256"
    ASSERT(sh(out, sizeof out, "%s " RESUME_ARGS " --steps 50 --out %s/one", cli_bin(), dir) == 0,
           "uninterrupted: %s", out);
    ASSERT(sh(out, sizeof out, "%s " RESUME_ARGS " --steps 25 --out %s/up", cli_bin(), dir) == 0,
           "first half, 1 process: %s", out);
    ASSERT(sh(out, sizeof out, "%s -np 2 %s " RESUME_ARGS " --steps 50 --resume %s/up --out %s/up",
              mpirun, cli_bin(), dir, dir) == 0, "second half, 2 ranks: %s", out);
    ASSERT(sh(out, sizeof out, "%s -np 2 %s " RESUME_ARGS " --steps 25 --out %s/down", mpirun,
              cli_bin(), dir) == 0, "first half, 2 ranks: %s", out);
    ASSERT(sh(out, sizeof out, "%s " RESUME_ARGS " --steps 50 --resume %s/down --out %s/down",
              cli_bin(), dir, dir) == 0, "second half, 1 process: %s", out);
    const double atol = 2e-5, rtol = 1e-4;
    const char *runs[2] = {"up", "down"};
    snprintf(a, sizeof a, "%s/one/checkpoint.safetensors", dir);
    for (int r = 0; r < 2; r++) {
        double dmax, excess;
        snprintf(b, sizeof b, "%s/%s/checkpoint.safetensors", dir, runs[r]);
        if (ckpt_diff(a, b, atol, rtol, &dmax, &excess)) {
            EXPECT(excess <= 0, "resumed %s vs uninterrupted: max |diff| %.3g over the tolerance by %.3g",
                   runs[r], dmax, excess);
            printf("    %s ranks at step 25: max |diff| %.3g after 50 steps\n",
                   r ? "2 -> 1" : "1 -> 2", dmax);
        }
    }
    snprintf(a, sizeof a, "rm -rf %s", dir);
    EXPECT(system(a) == 0, "cleanup");
}
