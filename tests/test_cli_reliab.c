/* test_cli_reliab.c — `unigen train` under hostile conditions, run as a user would (UG_CLI
 * names the binary): SIGKILL at random moments then --resume must end bit for bit where an
 * uninterrupted run ends, with every checkpoint readable at every moment; SIGTERM/SIGINT save
 * and exit 143/130; non-finite steps are skipped and too many stop the run with the last good
 * state saved; every misuse gets one "unigen: error:" line, exit status 2 (usage) or 1, and
 * leaves no run directory; a memory limit (ulimit -v) is refused up front. */
#include "test.h"
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define cli_bin ug_test_cli
/* `unigen ARGS` at one thread with stdout+stderr captured; returns the exit status. */
#define run_sh(out, outlen, fmt, ...) \
    ug_test_sh(out, outlen, "UNIGEN_THREADS=1 %s " fmt, ug_test_cli(), ##__VA_ARGS__)

/* Starts `unigen train ARGS... --out DIR` (one thread, output to DIR.log); returns the pid. */
static pid_t spawn_train(const char *const *args, const char *log) {
    pid_t pid = fork();
    if (pid == 0) {
        const char *argv[64];
        int k = 0;
        argv[k++] = cli_bin();
        argv[k++] = "train";
        for (int i = 0; args[i] && k < 62; i++) argv[k++] = args[i];
        argv[k] = NULL;
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        setenv("UNIGEN_THREADS", "1", 1);
        setenv("OMP_NUM_THREADS", "1", 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid, int *sig) {
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    *sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int is_ckpt_name(const char *n) {
    return !strncmp(n, "checkpoint", 10) && strlen(n) > 12 &&
           !strcmp(n + strlen(n) - 12, ".safetensors");
}

static int exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0;
}

/* Opens every checkpoint of dir and reads all its tensors. A file may vanish between the
 * listing and the open (--keep prunes it); one that exists and does not read is a failure.
 * Returns the number read, or -1 (message in why). */
static int read_all_ckpts(const char *dir, char *why, size_t wn) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0;
    char p[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_ckpt_name(e->d_name)) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        ug_st_file *f;
        if (ug_st_open(p, &f)) {
            if (!exists(p)) continue;
            snprintf(why, wn, "%s", ug_last_error());
            closedir(d);
            return -1;
        }
        int ok = 1;
        for (int i = 0; ok && i < ug_st_count(f); i++) {
            const void *raw;
            size_t nb;
            ok = ug_st_raw(f, ug_st_name(f, i), &raw, &nb) == UG_OK;
        }
        ok = ok && ug_st_meta(f, "step") && ug_st_meta(f, "train_state");
        ug_st_close(f);
        if (!ok) {
            snprintf(why, wn, "%s: tensors or metadata unreadable", p);
            closedir(d);
            return -1;
        }
        count++;
    }
    closedir(d);
    return count;
}

/* Every tensor of a and b byte for byte, and the same step and Adam t. */
static int same_ckpt(const char *a, const char *b, char *why, size_t wn) {
    ug_st_file *fa, *fb;
    if (ug_st_open(a, &fa)) { snprintf(why, wn, "%s", ug_last_error()); return 0; }
    if (ug_st_open(b, &fb)) { snprintf(why, wn, "%s", ug_last_error()); ug_st_close(fa); return 0; }
    int ok = ug_st_count(fa) == ug_st_count(fb) && ug_st_count(fa) > 0;
    if (!ok) snprintf(why, wn, "%d vs %d tensors", ug_st_count(fa), ug_st_count(fb));
    for (int i = 0; ok && i < ug_st_count(fa); i++) {
        const char *name = ug_st_name(fa, i);
        const void *ra, *rb;
        size_t na, nb;
        ok = ug_st_raw(fa, name, &ra, &na) == UG_OK && ug_st_raw(fb, name, &rb, &nb) == UG_OK &&
             na == nb && memcmp(ra, rb, na) == 0;
        if (!ok) snprintf(why, wn, "tensor %s differs", name);
    }
    const char *keys[] = {"step", "adam_t", "train_state"};
    for (int k = 0; ok && k < 3; k++) {
        const char *va = ug_st_meta(fa, keys[k]), *vb = ug_st_meta(fb, keys[k]);
        ok = va && vb && !strcmp(va, vb);
        if (!ok) snprintf(why, wn, "%s: %s vs %s", keys[k], va ? va : "-", vb ? vb : "-");
    }
    ug_st_close(fa);
    ug_st_close(fb);
    return ok;
}

/* The "step" values of a metrics.jsonl, in file order. */
static int metric_steps(const char *path, long long *steps, int cap) {
    FILE *f = fopen(path, "r");
    int n = 0;
    char line[1024];
    while (f && n < cap && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"step\": ");
        if (p) steps[n++] = strtoll(p + 8, NULL, 10);
    }
    if (f) fclose(f);
    return n;
}

static void tmpdir(char *buf, size_t n) {
    snprintf(buf, n, "/tmp/unigen-reliab-XXXXXX");
    if (!mkdtemp(buf)) buf[0] = 0;
}

static double now_s(void) { return ug_test_now_s(); }

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

#define TRAIN_ARGS "--data", "moons", "--n", "2000", "--model", "mlp", "--hidden", "64", \
                   "--depth", "2", "--batch", "64", "--log-every", "25", "--save-every", "5", \
                   "--keep", "3", "--ema", "0.99"

TEST(cli_resume_after_sigkill_is_bitwise) {
    char dir[64], ref[128], run[128], log[160], why[1024] = "", path[300], rpath[300];
    tmpdir(dir, sizeof dir);
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    const char *steps = "1500";
    /* The uninterrupted run, timed so the kills land inside the later runs. */
    const char *ref_args[] = {TRAIN_ARGS, "--steps", steps, "--out", ref, NULL};
    double t0 = now_s();
    int sig, rc = wait_status(spawn_train(ref_args, log), &sig);
    double t_ref = now_s() - t0;
    ASSERT(rc == 0, "uninterrupted run: status %d (signal %d); see %s", rc, sig, log);

    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    const char *first_args[] = {TRAIN_ARGS, "--steps", steps, "--out", run, NULL};
    const char *resume_args[] = {"--resume", run, NULL};
    int kills = 0, readable = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        pid_t pid = spawn_train(attempt ? resume_args : first_args, log);
        /* Wait for a first checkpoint (a kill before it would leave nothing to resume), reading
         * every checkpoint the run shows meanwhile and then until the kill. */
        double t_kill = -1, t_start = now_s();
        int done = 0;
        while (!done) {
            int n = read_all_ckpts(run, why, sizeof why);
            ASSERT(n >= 0, "a checkpoint could not be read while training (seed %u): %s", seed, why);
            readable += n;
            if (t_kill < 0 && n > 0) t_kill = now_s() + (0.03 + 0.22 * rand() / (double)RAND_MAX) * t_ref;
            if (attempt < 3 && t_kill >= 0 && now_s() >= t_kill) break;
            if (waitpid(pid, &rc, WNOHANG) == pid) done = 1;
            ASSERT(now_s() - t_start < 60, "training %d hangs", attempt);
            sleep_s(0.002);
        }
        if (!done) {
            kill(pid, SIGKILL);
            waitpid(pid, &rc, 0);
            if (WIFSIGNALED(rc)) kills++;
        } else {
            EXPECT(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "run %d ended with %d; see %s", attempt,
                   rc, log);
        }
        int n = read_all_ckpts(run, why, sizeof why);
        ASSERT(n > 0, "after kill %d (seed %u): %s", attempt, seed, n < 0 ? why : "no checkpoint");
        if (done) break;
    }
    fprintf(stderr, "    [sigkill] %d kills at random moments (seed %u), %d checkpoint reads; "
            "uninterrupted run %.2f s\n", kills, seed, readable, t_ref);
    EXPECT(kills >= 2, "only %d of 3 kills landed before the run ended (seed %u)", kills, seed);
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", run);
    snprintf(rpath, sizeof rpath, "%s/checkpoint.safetensors", ref);
    EXPECT(same_ckpt(path, rpath, why, sizeof why), "resumed vs uninterrupted (seed %u): %s", seed, why);
    /* metrics.jsonl: every logged step exactly once, in order, as in the uninterrupted run. */
    long long s1[128], s2[128];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    snprintf(rpath, sizeof rpath, "%s/metrics.jsonl", ref);
    int n1 = metric_steps(path, s1, 128), n2 = metric_steps(rpath, s2, 128);
    int increasing = 1;
    for (int i = 1; i < n1; i++) increasing &= s1[i] > s1[i - 1];
    EXPECT(increasing && n1 >= n2 && n1 > 0 && s1[n1 - 1] == 1500,
           "metrics steps: %d lines, increasing %d, last %lld", n1, increasing, n1 ? s1[n1 - 1] : -1);
    /* --keep 3: at most three snapshots left beside checkpoint.safetensors. */
    DIR *d = opendir(run);
    int snaps = 0, tmps = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        snaps += !strncmp(e->d_name, "checkpoint-", 11) && is_ckpt_name(e->d_name);
        tmps += strstr(e->d_name, ".tmp.") != NULL;
    }
    if (d) closedir(d);
    EXPECT(snaps >= 1 && snaps <= 3 && tmps == 0, "%d snapshots, %d temporary files left", snaps, tmps);
    char out[4096];
    EXPECT(run_sh(out, sizeof out, "train --resume %s", run) == 0 && strstr(out, "already at step 1500"),
           "resuming a finished run: %s", out);
}

/* SIGTERM (and SIGINT) mid-run: the step finishes, checkpoint.safetensors is saved, one line,
 * exit 143 (130); resuming to N steps equals an uninterrupted run of N steps. */
TEST(cli_sigterm_saves_and_resumes) {
    char dir[64], run[128], ref[128], log[160], path[300], rpath[300], why[512] = "";
    tmpdir(dir, sizeof dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    int sigs[2] = {SIGTERM, SIGINT};
    for (int k = 0; k < 2; k++) {
        snprintf(run, sizeof run, "%s/run%d", dir, k);
        const char *args[] = {TRAIN_ARGS, "--steps", "1000000", "--out", run, NULL};
        pid_t pid = spawn_train(args, log);
        snprintf(path, sizeof path, "%s/metrics.jsonl", run);
        double t0 = now_s();
        while (!exists(path) && now_s() - t0 < 20) sleep_s(0.005);
        sleep_s(0.15);
        kill(pid, sigs[k]);
        int sig, rc = wait_status(pid, &sig);
        EXPECT(rc == 128 + sigs[k], "signal %d: exit status %d (killed by %d)", sigs[k], rc, sig);
        snprintf(path, sizeof path, "%s/checkpoint.safetensors", run);
        ug_st_file *f;
        ASSERT(ug_st_open(path, &f) == UG_OK, "no checkpoint after signal %d: %s", sigs[k], ug_last_error());
        long long step = strtoll(ug_st_meta(f, "step"), NULL, 10);
        ug_st_close(f);
        EXPECT(step > 0 && step < 1000000, "saved step %lld", step);
        if (k == 1) break;
        /* Continue to step + 37 and compare with a run that went there directly. */
        char total[32], out[8192];
        snprintf(total, sizeof total, "%lld", step + 37);
        EXPECT(run_sh(out, sizeof out, "train --resume %s --steps %s", run, total) == 0,
               "resume after SIGTERM: %s", out);
        snprintf(ref, sizeof ref, "%s/ref", dir);
        const char *ref_args[] = {TRAIN_ARGS, "--steps", total, "--out", ref, NULL};
        int sig2;
        EXPECT(wait_status(spawn_train(ref_args, log), &sig2) == 0, "reference run");
        snprintf(rpath, sizeof rpath, "%s/checkpoint.safetensors", ref);
        /* The stored configuration differs in --steps; the state must not. */
        EXPECT(same_ckpt(path, rpath, why, sizeof why), "after SIGTERM + resume: %s", why);
    }
}

/* Non-finite steps. (1) --lr 1e30: step 1 is finite, every later loss overflows; after 3 the
 * run stops with status 1, and the saved state is exactly that of a 1-step run: the skipped
 * steps touched neither weights, Adam nor EMA. (2) data with +Inf examples (a mixture
 * component at 1e300, beyond float): the batches that draw one are skipped, training goes on
 * and ends with finite weights. */
TEST(cli_nonfinite_steps_are_skipped) {
    char dir[64], out[16384], path[300], rpath[300], why[512] = "";
    tmpdir(dir, sizeof dir);
    const char *net = "--data moons --n 2000 --model mlp --hidden 32 --depth 2 --batch 64";
    int rc = run_sh(out, sizeof out, "train %s --lr 1e30 --steps 50 --max-bad-steps 3 --out %s/bad",
                    net, dir);
    EXPECT(rc == 1 && strstr(out, "unigen: error: step 4: 3 consecutive steps with a non-finite loss") &&
           strstr(out, "last good state (step 1)"), "stop after 3 bad steps: rc %d: %s", rc, out);
    EXPECT(run_sh(out, sizeof out, "train %s --lr 1e30 --steps 1 --out %s/one", net, dir) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/bad/checkpoint.safetensors", dir);
    snprintf(rpath, sizeof rpath, "%s/one/checkpoint.safetensors", dir);
    EXPECT(same_ckpt(path, rpath, why, sizeof why), "state after skipped steps: %s", why);

    snprintf(path, sizeof path, "%s/inf.json", dir);
    FILE *f = fopen(path, "w");
    ASSERT(f, "cannot write %s", path);
    fputs("{\"weights\": [0.995, 0.005], \"means\": [[0, 0], [1e300, 0]], \"stds\": [1, 1]}", f);
    fclose(f);
    rc = run_sh(out, sizeof out, "train --data gmm:%s --n 4000 --model mlp --hidden 32 --depth 2 "
                "--batch 32 --steps 200 --max-bad-steps 20 --out %s/inf", path, dir);
    EXPECT(rc == 0 && strstr(out, "non-finite loss") && strstr(out, "step skipped"),
           "sporadic Inf data: rc %d: %s", rc, out);
    snprintf(path, sizeof path, "%s/inf/checkpoint.safetensors", dir);
    ug_st_file *sf;
    ASSERT(ug_st_open(path, &sf) == UG_OK, "%s", ug_last_error());
    int finite = 1;
    for (int i = 0; i < ug_st_count(sf); i++) {
        int64_t n = ug_st_numel(sf, ug_st_name(sf, i));
        float *buf = malloc((size_t)n * sizeof *buf);
        ug_st_read_f32(sf, ug_st_name(sf, i), buf, n);
        for (int64_t j = 0; j < n; j++) finite &= isfinite(buf[j]) != 0;
        free(buf);
    }
    ug_st_close(sf);
    EXPECT(finite, "non-finite weights, moments or EMA after skipped steps");
}

/* One line "unigen: error: ...", the expected status, and no run directory left behind. */
static void expect_refusal(const char *dir, int want, const char *expect, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void expect_refusal(const char *dir, int want, const char *expect, const char *fmt, ...) {
    char args[1024], out[8192], rundir[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(rundir, sizeof rundir, "%s/fresh", dir);
    int rc = run_sh(out, sizeof out, "%s", args);
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    EXPECT(rc == want && !strncmp(out, "unigen: error: ", 15) && lines == 1 && strstr(out, expect),
           "`%s`: status %d (want %d), %d lines, want \"%s\": %s", args, rc, want, lines, expect, out);
    EXPECT(!exists(rundir), "`%s` left %s behind", args, rundir);
}

TEST(cli_misuse_one_line_and_status) {
    char dir[64], out[8192], path[300];
    tmpdir(dir, sizeof dir);
    const char *T = "train --data moons --n 500 --model mlp --hidden 16 --depth 1 --batch 32";
    /* usage: status 2 */
    expect_refusal(dir, 2, "unknown option --stpes (did you mean --steps?)", "%s --stpes 3 --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--steps expects an integer, found 'abc'", "%s --steps abc --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--steps 0: expected an integer >= 1", "%s --steps 0 --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--batch -4: expected an integer in [1, 1000000000]", "train --data moons --batch -4 --out %s/fresh", dir);
    expect_refusal(dir, 2, "--lr 0: expected a number > 0", "%s --lr 0 --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--lr -0.1: expected a number > 0", "%s --lr -0.1 --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--lr expects a finite number, found 'inf'", "%s --lr inf --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--threads expects 0..1024, found -1", "%s --threads -1 --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--ema 1: expected a number in [0, 1)", "%s --ema 1 --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--n -5: expected an integer", "%s --n -5 --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--save-every -1", "%s --save-every -1 --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--max-bad-steps 0", "%s --max-bad-steps 0 --out %s/fresh", T, dir);
    expect_refusal(dir, 2, "--steps needs a value", "%s --out %s/fresh --steps", T, dir);
    expect_refusal(dir, 2, "unexpected argument 'moons'", "%s --out %s/fresh moons", T, dir);
    expect_refusal(dir, 2, "--steps 0: expected an integer >= 1", "sample --model gmm:ref/samplers/mix2d.json --steps 0 --out %s/s.npy", dir);
    expect_refusal(dir, 2, "--probes 0", "eval --model gmm:ref/samplers/mix2d.json --data moons --nll --probes 0");
    /* runtime: status 1 */
    expect_refusal(dir, 1, "nothing.json", "%s --config %s/nothing.json --out %s/fresh", T, dir, dir);
    expect_refusal(dir, 1, "/nonexistent-dir", "train --data idx:/nonexistent-dir/x.idx --out %s/fresh", dir);
    expect_refusal(dir, 1, "no readable checkpoint", "train --resume %s", dir);
    expect_refusal(dir, 1, "cannot open the run directory", "train --resume %s/none", dir);
    expect_refusal(dir, 1, "missing.safetensors", "sample --ckpt %s/missing.safetensors --out %s/s.npy", dir, dir);
    expect_refusal(dir, 1, "--formulation vq", "%s --formulation vq --out %s/fresh", T, dir);
    /* A checkpoint of 2-D data against 3-D data and 3-D start noise. */
    ASSERT(run_sh(out, sizeof out, "%s --steps 3 --out %s/r2", T, dir) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/g3.json", dir);
    FILE *f = fopen(path, "w");
    ASSERT(f, "cannot write %s", path);
    fputs("{\"weights\": [1], \"means\": [[0, 0, 0]], \"stds\": [1]}", f);
    fclose(f);
    expect_refusal(dir, 1, "has examples of size 3, the model 2", "eval --ckpt %s/r2/checkpoint.safetensors --data gmm:%s --n 50 --nll", dir, path);
    snprintf(path, sizeof path, "%s/noise3.npy", dir);
    float z[6] = {0};
    int64_t shape[2] = {2, 3};
    ASSERT_OK(ug_npy_write_f32(path, 2, shape, z));
    expect_refusal(dir, 1, "noise3.npy", "sample --ckpt %s/r2/checkpoint.safetensors --init-noise %s --out %s/s.npy",
                   dir, path, dir);
    /* A fresh run never overwrites another run's checkpoints; --out and --resume must agree. */
    expect_refusal(dir, 1, "already holds the checkpoints of a run", "%s --steps 3 --out %s/r2", T, dir);
    expect_refusal(dir, 2, "name different directories", "train --resume %s/r2 --out %s/other", dir, dir);
    /* Resuming with another data set is refused (the data order would not continue). */
    expect_refusal(dir, 1, "resume needs the same data set", "train --resume %s/r2 --n 400 --steps 9", dir);
}

/* ulimit -v: a run whose activations (a batch of 20000 through a 1024-wide MLP, about 2.5 GiB)
 * cannot fit is refused before training, with the numbers; a small one under the same limit
 * trains. */
TEST(cli_memory_limit_refused_up_front) {
    char dir[64], out[8192], path[300];
#ifdef __SANITIZE_ADDRESS__
    fprintf(stderr, "    [memory] skipped: AddressSanitizer reserves terabytes of address space\n");
    return;
#endif
    tmpdir(dir, sizeof dir);
    /* The subshell applies the limit to unigen only. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "(ulimit -v 1000000; UNIGEN_THREADS=1 %s train --data moons "
             "--n 20000 --model mlp --hidden 1024 --depth 4 --batch 20000 --steps 2 --out %s/big2) 2>&1",
             cli_bin(), dir);
    FILE *p = popen(cmd, "r");
    ASSERT(p, "popen");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(out, "unigen: error: not enough memory") &&
           strstr(out, "ulimit -v") && strstr(out, "activations of a batch of 20000"), "big batch: %s", out);
    snprintf(path, sizeof path, "%s/big2", dir);
    EXPECT(!exists(path), "the refused run left %s", path);
    snprintf(cmd, sizeof cmd, "(ulimit -v 1000000; UNIGEN_THREADS=1 %s train --data moons --n 2000 "
             "--model mlp --hidden 32 --depth 2 --batch 64 --steps 5 --out %s/small) 2>&1", cli_bin(), dir);
    p = popen(cmd, "r");
    ASSERT(p, "popen");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    st = pclose(p);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "small model under the same limit: %s", out);
    /* Sampling: 30 million points of an exact mixture need about 3.6 GiB of sampler buffers. */
    snprintf(cmd, sizeof cmd, "(ulimit -v 1000000; UNIGEN_THREADS=1 %s sample --model "
             "gmm:ref/samplers/mix2d.json --n 30000000 --out %s/s.npy) 2>&1", cli_bin(), dir);
    p = popen(cmd, "r");
    ASSERT(p, "popen");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    st = pclose(p);
    snprintf(path, sizeof path, "%s/s.npy", dir);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(out, "unigen: error: not enough memory: "
           "sampling 30000000 points") && !exists(path), "sampling: %s", out);
}
