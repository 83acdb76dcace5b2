/* test_cli.c — the `unigen` program as a user meets it: exit statuses (0, 1 for errors, 2 for
 * usage), "unigen: error:" messages that name the problem, did-you-mean suggestions, config
 * files, a training run directory and checkpoints that round-trip. UG_CLI names the binary. */
#include "test.h"
#include "core/core.h"
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* `unigen ARGS` with stdout+stderr captured; returns the exit status (fmt: a literal). */
#define run(out, outlen, fmt, ...) ug_test_sh(out, outlen, "%s " fmt, ug_test_cli(), ##__VA_ARGS__)

static void tmpdir(char *buf, size_t n) {
    snprintf(buf, n, "/tmp/unigen-cli-XXXXXX");
    if (!mkdtemp(buf)) buf[0] = 0;
}

static int file_size(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 ? (int)s.st_size : -1;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
}

TEST(cli_usage_errors_exit_2_with_suggestions) {
    char out[8192];
    EXPECT(run(out, sizeof out, "%s", "") == 2, "no command: %s", out);
    EXPECT(run(out, sizeof out, "trian") == 2 && strstr(out, "unknown command 'trian'"), "%s", out);
    EXPECT(run(out, sizeof out, "data --dta moons") == 2, "unknown flag");
    EXPECT(strstr(out, "unigen: error:") && strstr(out, "--dta") && strstr(out, "did you mean --data?"),
           "message: %s", out);
    EXPECT(run(out, sizeof out, "train --formulaton edm") == 2 && strstr(out, "--formulation"),
           "suggestion for --formulaton: %s", out);
    EXPECT(run(out, sizeof out, "info --steps 3") == 2 && strstr(out, "not an option of 'unigen info'"),
           "option of another command: %s", out);
    EXPECT(run(out, sizeof out, "train --steps many") == 2 && strstr(out, "expects an integer"),
           "bad integer: %s", out);
    EXPECT(run(out, sizeof out, "train --help") == 0 && strstr(out, "--formulation") &&
           strstr(out, "(default edm)"), "help: %s", out);
    EXPECT(run(out, sizeof out, "--version") == 0 && strstr(out, UG_VERSION_STRING), "version");
}

TEST(cli_errors_exit_1_naming_the_problem) {
    char out[8192], dir[64], path[256];
    tmpdir(dir, sizeof dir);
    EXPECT(run(out, sizeof out, "data --data mons") == 1 &&
           strstr(out, "unigen: error: unknown data set 'mons'") && strstr(out, "moons"), "%s", out);
    EXPECT(run(out, sizeof out, "info --ckpt %s/missing.safetensors", dir) == 1 &&
           strstr(out, "missing.safetensors"), "missing file: %s", out);
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    write_file(path, "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}       ");
    EXPECT(run(out, sizeof out, "info --ckpt %s", path) == 1 && strstr(out, "bad.safetensors"),
           "malformed checkpoint: %s", out);
    EXPECT(run(out, sizeof out, "train --data moons --out %s/r --formulation vq", dir) == 1 &&
           strstr(out, "--formulation vq"), "bad formulation: %s", out);
}

TEST(cli_config_files_are_checked) {
    char out[8192], dir[64], path[256];
    tmpdir(dir, sizeof dir);
    struct { const char *text, *expect; } cases[] = {
        {"{\"stepz\": 3}", "did you mean --steps?"},
        {"{\"steps\": 1.5}", "expects an integer"},
        {"{\"steps\": [1]}", "must be a string, number or boolean"},
        {"[1, 2]", "not a JSON object"},
        {"{\"steps\": 3", "malformed JSON"},
        {"{\"ckpt\": \"x\"}", "not an option of 'unigen train'"},
        {"{\"lr\": \"fast\"}", "expects a finite number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(path, sizeof path, "%s/c%zu.json", dir, i);
        write_file(path, cases[i].text);
        int rc = run(out, sizeof out, "train --config %s --data moons --out %s/r", path, dir);
        EXPECT(rc != 0 && strstr(out, cases[i].expect) && strstr(out, "unigen: error:"),
               "config %s: rc %d: %s", cases[i].text, rc, out);
    }
    EXPECT(run(out, sizeof out, "train --config %s/none.json", dir) == 1 && strstr(out, "none.json"),
           "missing config: %s", out);
}

TEST(cli_data_draws_pictures) {
    char out[8192], dir[64], path[256];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/moons.png", dir);
    EXPECT(run(out, sizeof out, "data --data moons --out %s", path) == 0 && file_size(path) > 1000,
           "moons scatter: %s", out);
    EXPECT(strstr(out, "65536 examples"), "counts: %s", out);
    snprintf(path, sizeof path, "%s/fm.png", dir);
    EXPECT(run(out, sizeof out, "data --data fashion-mnist --out %s --json", path) == 0 &&
           file_size(path) > 1000, "fashion-mnist grid: %s", out);
    EXPECT(strstr(out, "\"n\": 60000") && strstr(out, "\"shape\": [1, 28, 28]") &&
           strstr(out, "\"classes\": 10"), "json summary: %s", out);
}

TEST(cli_train_writes_a_run_directory) {
    char out[16384], dir[64], path[300];
    tmpdir(dir, sizeof dir);
    int rc = run(out, sizeof out,
                 "train --data 8gaussians --n 4096 --model mlp --hidden 32 --depth 2 --steps 30 "
                 "--batch 64 --log-every 10 --save-every 20 --out %s/run --formulation fm", dir);
    ASSERT(rc == 0, "train failed (%d): %s", rc, out);
    const char *files[] = {"config.json", "metrics.jsonl", "checkpoint.safetensors",
                           "checkpoint-20.safetensors", "loss.png", "samples.png"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/run/%s", dir, files[i]);
        EXPECT(file_size(path) > 0, "%s missing", files[i]);
    }
    snprintf(path, sizeof path, "%s/run/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    int lines = 0;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        lines++;
        EXPECT(strstr(line, "\"step\": ") && strstr(line, "\"loss\": ") && strstr(line, "\"lr\": ") &&
               strstr(line, "\"grad_norm\": ") && strstr(line, "\"steps_per_s\": "), "line %s", line);
    }
    if (f) fclose(f);
    EXPECT(lines == 3, "metrics.jsonl has %d lines, expected 3", lines);
    /* The checkpoint alone is enough to sample: the configuration travels in it. */
    rc = run(out, sizeof out, "sample --ckpt %s/run/checkpoint.safetensors --n 50 --steps 6 "
             "--sampler dpmpp-2m --out %s/s.npy --json", dir, dir);
    EXPECT(rc == 0 && strstr(out, "\"nfe\": 6"), "sample from checkpoint: %s", out);
    snprintf(path, sizeof path, "%s/s.npy", dir);
    ug_npy_array a;
    if (ug_npy_read(path, &a) == UG_OK) {
        EXPECT(a.ndim == 2 && a.shape[0] == 50 && a.shape[1] == 2, "samples shape");
        double *v = malloc((size_t)a.numel * sizeof *v);
        ug_npy_to_f64(&a, v);
        int finite = 1;
        for (int64_t i = 0; i < a.numel; i++) finite &= isfinite(v[i]);
        EXPECT(finite, "non-finite samples");
        free(v);
        ug_npy_free(&a);
    } else {
        EXPECT(0, "%s", ug_last_error());
    }
    /* --seed fixes every sample whatever --batch: stochastic sampler, all at once vs chunks of 7. */
    rc = run(out, sizeof out, "sample --ckpt %s/run/checkpoint.safetensors --n 40 --steps 5 "
             "--sampler euler-a --seed 3 --out %s/a.npy", dir, dir);
    EXPECT(rc == 0, "%s", out);
    rc = run(out, sizeof out, "sample --ckpt %s/run/checkpoint.safetensors --n 40 --steps 5 "
             "--sampler euler-a --seed 3 --batch 7 --threads 1 --out %s/b.npy", dir, dir);
    EXPECT(rc == 0, "%s", out);
    char pa[300], pb[300];
    snprintf(pa, sizeof pa, "%s/a.npy", dir);
    snprintf(pb, sizeof pb, "%s/b.npy", dir);
    ug_npy_array A, Bm;
    if (ug_npy_read(pa, &A) == UG_OK && ug_npy_read(pb, &Bm) == UG_OK) {
        EXPECT(A.numel == Bm.numel &&
                   ug_test_same_rows_f64("--batch 7", (const double *)Bm.data,
                                         (const double *)A.data, A.numel, 1e-5, 1e-4),
               "samples depend on --batch / --threads");
        ug_npy_free(&A);
        ug_npy_free(&Bm);
    } else {
        EXPECT(0, "%s", ug_last_error());
    }
    rc = run(out, sizeof out, "sample --ckpt %s/run/checkpoint.safetensors --n 10 --steps 8 "
             "--sampler fm-euler --out %s/f.npy --json", dir, dir);
    EXPECT(rc == 0 && strstr(out, "\"nfe\": 8"), "fm-euler from t = 1 on a velocity model: %s", out);
    rc = run(out, sizeof out, "info --ckpt %s/run/checkpoint.safetensors --json", dir);
    EXPECT(rc == 0 && strstr(out, "\"net.0.weight\"") && strstr(out, "\"ema.net.0.weight\"") &&
           strstr(out, "\"formulation\":\"fm\"") && strstr(out, "\"step\":\"30\""), "info: %s", out);
}

TEST(checkpoint_round_trip_and_mismatch) {
    char dir[64], path[256];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    ug_model_cfg mc = ug_model_cfg_default();
    strcpy(mc.net, "mlp");
    mc.hidden = 8;
    mc.depth = 1;
    ug_model *a, *b;
    ASSERT_OK(ug_model_create(&mc, 1, &a));
    ASSERT_OK(ug_model_create(&mc, 2, &b));
    ug_params *pa = ug_model_params(a), *pb = ug_model_params(b);
    ug_adam oa, ob;
    ug_ema ea, eb;
    ASSERT_OK(ug_adam_init(&oa, pa, ug_adam_default()));
    ASSERT_OK(ug_adam_init(&ob, pb, ug_adam_default()));
    ASSERT_OK(ug_ema_init(&ea, pa, 0.9f));
    ASSERT_OK(ug_ema_init(&eb, pb, 0.9f));
    int64_t n = ug_params_count(pa);
    for (int64_t i = 0; i < n; i++) {
        oa.m[i] = 0.001f * (float)i;
        oa.v[i] = 0.002f * (float)i;
        ea.w[i] = -0.5f * (float)i;
    }
    oa.t = 17;
    ASSERT_OK(ug_ckpt_save(path, pa, &ea, &oa, 123, "{\"k\": 1}"));
    int64_t step = 0;
    ASSERT_OK(ug_ckpt_load(path, pb, &eb, &ob, &step));
    EXPECT(step == 123 && ob.t == 17, "step %lld, adam t %lld", (long long)step, (long long)ob.t);
    EXPECT(!memcmp(ug_params_data(pa), ug_params_data(pb), (size_t)n * 4), "weights differ");
    EXPECT(!memcmp(oa.m, ob.m, (size_t)n * 4) && !memcmp(oa.v, ob.v, (size_t)n * 4), "moments");
    EXPECT(!memcmp(ea.w, eb.w, (size_t)n * 4), "ema");
    char *conf = NULL;
    ASSERT_OK(ug_ckpt_config(path, &conf));
    EXPECT(conf && !strcmp(conf, "{\"k\": 1}"), "config %s", conf ? conf : "(null)");
    free(conf);
    /* A model of another width is refused, naming the tensor and both shapes. */
    ug_model *c;
    mc.hidden = 9;
    ASSERT_OK(ug_model_create(&mc, 3, &c));
    EXPECT(ug_ckpt_load(path, ug_model_params(c), NULL, NULL, NULL) == UG_ERR_SHAPE &&
           strstr(ug_last_error(), "net.0.weight") && strstr(ug_last_error(), "(8, 34)") &&
           strstr(ug_last_error(), "(9, 34)"), "mismatch message: %s", ug_last_error());
    ug_model_free(c);
    ug_ema_free(&ea); ug_ema_free(&eb); ug_adam_free(&oa); ug_adam_free(&ob);
    ug_model_free(a); ug_model_free(b);
}

TEST(cli_eval_reports_nll_metrics_and_protocol) {
    char out[16384];
    int rc = run(out, sizeof out, "eval --model gmm:ref/samplers/mix2d.json --data "
                 "gmm:ref/samplers/mix2d.json --n 300 --nll --metrics mmd,energy,swd,fd,pr --json");
    ASSERT(rc == 0, "eval failed: %s", out);
    const char *keys[] = {"\"nll\": ", "\"bpd\": ", "\"nfe\": ", "\"split\": \"test\"",
                          "\"n\": 300", "\"seed\": ", "\"rtol\": 1e-05", "\"sigma_min\": 0.002",
                          "\"divergence\": \"analytic\"", "\"sampler\": \"heun\"", "\"mmd2\": ",
                          "\"energy\": ", "\"swd\": ", "\"fd\": ", "\"precision\": ",
                          "\"recall\": ", "\"binarization\": ", "\"dequantization\": "};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        EXPECT(strstr(out, keys[i]), "eval --json lacks %s: %s", keys[i], out);
    /* The analytic model's NLL of its own data is its entropy: compare with the exact density
     * of the same held-out points. */
    ug_dataset ds;
    ASSERT_OK(ug_dataset_load("gmm:ref/samplers/mix2d.json", 0, 300, 0, &ds));
    ug_gmm g;
    ASSERT_OK(ug_gmm_load("ref/samplers/mix2d.json", &g));
    double h = 0, x[2];
    for (int64_t i = 0; i < ds.n; i++) {
        x[0] = ds.x[2 * i];
        x[1] = ds.x[2 * i + 1];
        h -= ug_gmm_logpdf(&g, x, 0.002);
    }
    h /= (double)ds.n;
    const char *p = strstr(out, "\"nll\": ");
    double nll = p ? strtod(p + 7, NULL) : NAN;
    EXPECT(fabs(nll - h) < 2e-3, "CLI NLL %.6f vs exact %.6f", nll, h);
    ug_gmm_free(&g);
    ug_dataset_free(&ds);
    EXPECT(run(out, sizeof out, "eval --model gmm:ref/samplers/mix2d.json --data moons --nll") == 0,
           "eval on another data set of the same dimension: %s", out);
    EXPECT(run(out, sizeof out, "eval --model gmm:ref/samplers/mix2d.json --data moons --metrics kl") == 1 &&
           strstr(out, "'kl' unknown"), "unknown metric: %s", out);
    EXPECT(run(out, sizeof out, "eval --model gmm:ref/samplers/mix16.json --data moons --nll") == 1 &&
           strstr(out, "size 2, the model 16"), "dimension mismatch: %s", out);
}

/* Images end to end: pm1 normalization recorded in the checkpoint, a 64-sample grid preview,
 * (n, C, H, W) .npy samples in [0, 1]-pixel space, and bits/dim with uniform dequantization. */
TEST(cli_images_train_sample_eval) {
    char out[16384], dir[64], path[300];
    tmpdir(dir, sizeof dir);
    int rc = run(out, sizeof out, "train --data fashion-mnist --n 256 --model mlp --hidden 64 "
                 "--depth 1 --steps 5 --batch 32 --log-every 5 --out %s/run", dir);
    ASSERT(rc == 0, "train on images: %s", out);
    snprintf(path, sizeof path, "%s/run/samples.png", dir);
    EXPECT(file_size(path) > 1000, "no sample grid");
    rc = run(out, sizeof out, "info --ckpt %s/run/checkpoint.safetensors --json", dir);
    EXPECT(rc == 0 && strstr(out, "\"normalize\":\"pm1\"") && strstr(out, "\"height\":28"),
           "stored image config: %s", out);
    rc = run(out, sizeof out, "sample --ckpt %s/run/checkpoint.safetensors --n 3 --steps 3 "
             "--out %s/s.npy", dir, dir);
    snprintf(path, sizeof path, "%s/s.npy", dir);
    ug_npy_array a;
    if (rc == 0 && ug_npy_read(path, &a) == UG_OK) {
        EXPECT(a.ndim == 4 && a.shape[0] == 3 && a.shape[1] == 1 && a.shape[2] == 28 && a.shape[3] == 28,
               "image samples shape");
        ug_npy_free(&a);
    } else {
        EXPECT(0, "sample images: %s %s", out, ug_last_error());
    }
    rc = run(out, sizeof out, "eval --ckpt %s/run/checkpoint.safetensors --data fashion-mnist --n 2 "
             "--nll --divergence hutchinson --rtol 1e-3 --atol 1e-3 --json", dir);
    EXPECT(rc == 0 && strstr(out, "\"dequantization\": \"uniform (p + u) / 255\"") &&
           strstr(out, "\"bpd\": ") && strstr(out, "\"divergence\": \"hutchinson\""),
           "image eval: %s", out);
}

/* A classifier trained by unigen gives the feature space of fd / pr, its accuracy beside them. */
TEST(cli_classifier_features_for_metrics) {
    char out[16384], dir[64];
    tmpdir(dir, sizeof dir);
    int rc = run(out, sizeof out, "train --family classifier --data gmm:ref/samplers/mix2d.json --n 4096 "
                 "--model mlp --hidden 32 --depth 2 --steps 150 --batch 128 --log-every 50 --out %s/cls", dir);
    ASSERT(rc == 0 && strstr(out, "test accuracy"), "classifier training: %s", out);
    rc = run(out, sizeof out, "eval --model gmm:ref/samplers/mix2d.json --data gmm:ref/samplers/mix2d.json "
             "--n 300 --metrics fd,pr --classifier %s/cls/checkpoint.safetensors --json", dir);
    EXPECT(rc == 0 && strstr(out, "\"feature_dim\": 32") && strstr(out, "\"classifier_test_accuracy\": ") &&
           strstr(out, "\"fd\": ") && strstr(out, "\"precision\": "), "eval with classifier: %s", out);
    rc = run(out, sizeof out, "eval --model gmm:ref/samplers/mix2d.json --data gmm:ref/samplers/mix2d.json "
             "--n 50 --metrics fd --classifier ref/samplers/mix2d.json");
    EXPECT(rc == 1 && strstr(out, "unigen: error:"), "a non-checkpoint classifier is refused: %s", out);
    rc = run(out, sizeof out, "train --family classifier --data moons --steps 2 --out %s/bad", dir);
    EXPECT(rc == 1 && strstr(out, "needs a labelled data set"), "unlabelled: %s", out);
}

TEST(cli_eval_vlb) {
    char out[16384];
    int rc = run(out, sizeof out, "eval --model gmm:ref/samplers/mix2d.json --data "
                 "gmm:ref/samplers/mix2d.json --n 100 --vlb --vlb-var beta --json");
    EXPECT(rc == 0 && strstr(out, "\"vlb\": ") && strstr(out, "\"decoder\": \"gaussian\"") &&
           strstr(out, "\"variance\": \"beta\""), "vlb: %s", out);
    EXPECT(run(out, sizeof out, "eval --model gmm:ref/samplers/mix2d.json --data moons --vlb --vlb-var big") == 1 &&
           strstr(out, "--vlb-var big"), "bad variance: %s", out);
}

TEST(cli_sample_guidance_flags) {
    char out[16384], dir[64];
    tmpdir(dir, sizeof dir);
    const char *mix = "gmm:ref/samplers/mix2d.json";
    int rc = run(out, sizeof out, "train --data %s --n 2048 --classes 8 --model mlp --hidden 32 --depth 1 "
                 "--steps 20 --batch 64 --log-every 10 --out %s/c", mix, dir);
    ASSERT(rc == 0, "conditional training: %s", out);
    rc = run(out, sizeof out, "sample --ckpt %s/c/checkpoint.safetensors --n 16 --steps 4 --class 3 "
             "--cfg-scale 2 --out %s/s.npy", dir, dir);
    EXPECT(rc == 0, "classifier-free guidance: %s", out);
    rc = run(out, sizeof out, "sample --ckpt %s/c/checkpoint.safetensors --n 16 --steps 4 --class 8 --out %s/s.npy", dir, dir);
    EXPECT(rc == 1 && strstr(out, "--class 8"), "class out of range: %s", out);
    rc = run(out, sizeof out, "train --family classifier --noisy 1 --data %s --n 2048 --model mlp --hidden 16 "
             "--depth 1 --steps 20 --batch 64 --out %s/k", mix, dir);
    ASSERT(rc == 0, "noisy classifier: %s", out);
    rc = run(out, sizeof out, "train --data %s --n 2048 --model mlp --hidden 32 --depth 1 --steps 20 "
             "--batch 64 --out %s/u", mix, dir);
    ASSERT(rc == 0, "unconditional: %s", out);
    rc = run(out, sizeof out, "sample --ckpt %s/u/checkpoint.safetensors --n 16 --steps 4 --class 2 "
             "--guidance-classifier %s/k/checkpoint.safetensors --guidance-scale 2 --out %s/g.npy", dir, dir, dir);
    EXPECT(rc == 0, "classifier guidance: %s", out);
    rc = run(out, sizeof out, "sample --ckpt %s/u/checkpoint.safetensors --n 16 --steps 4 "
             "--guidance-classifier %s/k/checkpoint.safetensors --out %s/g.npy", dir, dir, dir);
    EXPECT(rc == 1 && strstr(out, "needs --class"), "guidance without a class: %s", out);
}

/* The likelihood families through the CLI: train a few steps, then eval --nll --json carries the
 * NLL, bits/dim, its kind and the protocol; samples and reconstructions are written. */
TEST(cli_likelihood_families_train_eval_sample) {
    char out[16384], dir[64], cmd[512];
    tmpdir(dir, sizeof dir);
    ASSERT(dir[0], "temporary directory");
    /* A flow on a 2-D toy: exact NLL, no binarization or dequantization. */
    EXPECT(run(out, sizeof out, "train --family flow --model realnvp --data moons --n 2000 --steps 60 "
                                "--batch 128 --log-every 30 --threads 1 --out %s/flow", dir) == 0,
           "flow train: %s", out);
    EXPECT(run(out, sizeof out, "eval --ckpt %s/flow/checkpoint.safetensors --data moons --n 500 --nll "
                                "--json --threads 1", dir) == 0 &&
               strstr(out, "\"nll_kind\": \"exact\"") && strstr(out, "\"bpd\"") &&
               strstr(out, "\"nfe\": 1,") && strstr(out, "\"binarization\": \"none\""),
           "flow eval: %s", out);
    double nll = 0;
    const char *p = strstr(out, "\"nll\": ");
    EXPECT(p && sscanf(p + 7, "%lf", &nll) == 1 && nll > 1.5 && nll < 4.5, "flow NLL %g", nll);
    EXPECT(run(out, sizeof out, "sample --ckpt %s/flow/checkpoint.safetensors --n 100 --temperature 0.5 "
                                "--out %s/flow.npy --threads 1", dir, dir) == 0 &&
               file_size((snprintf(cmd, sizeof cmd, "%s/flow.npy", dir), cmd)) == 128 + 100 * 2 * 8,
           "flow samples: %s", out);
    /* MADE on binarized Fashion-MNIST images, a validation split from the test files is not
     * there: --valid-every on a set without one is an error naming it. */
    EXPECT(run(out, sizeof out, "train --family ar --model made --hidden 32 --masks 2 --data fashion-mnist "
                                "--n 300 --steps 20 --batch 50 --threads 1 --out %s/made", dir) == 0,
           "made train: %s", out);
    EXPECT(run(out, sizeof out, "eval --ckpt %s/made/checkpoint.safetensors --data fashion-mnist --n 40 "
                                "--nll --json --threads 1", dir) == 0 &&
               strstr(out, "\"nll_kind\": \"ensemble\"") && strstr(out, "\"ensemble\": 2") &&
               strstr(out, "\"binarization\": \"0.5\""),
           "made eval: %s", out);
    EXPECT(run(out, sizeof out, "sample --ckpt %s/made/checkpoint.safetensors --n 4 --out %s/made.png "
                                "--threads 1", dir, dir) == 0,
           "made samples: %s", out);
    /* Stochastic binarization redraws every batch, so the training set stays as 8-bit pixels:
     * the run trains, and its held-out NLL is finite and below the 784 ln 2 of a coin per pixel. */
    EXPECT(run(out, sizeof out, "train --family ar --model made --hidden 32 --binarize stochastic "
                                "--data fashion-mnist --n 300 --steps 40 --batch 50 --lr 3e-3 --threads 1 "
                                "--out %s/made_sb", dir) == 0,
           "made train, stochastic binarization: %s", out);
    EXPECT(run(out, sizeof out, "eval --ckpt %s/made_sb/checkpoint.safetensors --data fashion-mnist --n 40 "
                                "--nll --json --threads 1", dir) == 0 &&
               strstr(out, "\"binarization\": \"stochastic\""),
           "made eval, stochastic binarization: %s", out);
    p = strstr(out, "\"nll\": ");
    EXPECT(p && sscanf(p + 7, "%lf", &nll) == 1 && nll > 50 && nll < 784 * 0.6931,
           "NLL %g after training on bytes", nll);
    /* A VAE: the IWAE bound with k samples; reconstructions beside the data. */
    EXPECT(run(out, sizeof out, "train --family vae --hidden 32 --latent 4 --data fashion-mnist --n 300 "
                                "--steps 20 --batch 50 --threads 1 --out %s/vae", dir) == 0,
           "vae train: %s", out);
    EXPECT(run(out, sizeof out, "eval --ckpt %s/vae/checkpoint.safetensors --data fashion-mnist --n 20 "
                                "--nll --iwae-k 16 --json --threads 1", dir) == 0 &&
               strstr(out, "\"nll_kind\": \"iwae\"") && strstr(out, "\"iwae_k\": 16") &&
               strstr(out, "\"nfe\": 16,"),
           "vae eval: %s", out);
    EXPECT(run(out, sizeof out, "sample --ckpt %s/vae/checkpoint.safetensors --reconstruct --data "
                                "fashion-mnist --n 8 --out %s/rec.png --threads 1", dir, dir) == 0 &&
               file_size((snprintf(cmd, sizeof cmd, "%s/rec.png", dir), cmd)) > 0,
           "vae reconstructions: %s", out);
    /* Misuse: --valid-every on a data set without a validation split; --reconstruct on a flow. */
    EXPECT(run(out, sizeof out, "train --family vae --data fashion-mnist --n 100 --steps 2 --batch 50 "
                                "--valid-every 1 --out %s/novalid", dir) == 1 &&
               strstr(out, "no validation split"), "no validation split: %s", out);
    EXPECT(run(out, sizeof out, "sample --ckpt %s/flow/checkpoint.safetensors --reconstruct --data moons "
                                "--out %s/x.npy", dir, dir) == 1 && strstr(out, "vae"),
           "reconstruct a flow: %s", out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    EXPECT(system(cmd) == 0, "cleanup");
}

/* Sum of squares of every weight tensor (names without a "." prefix such as "ema." or
 * "optim.") of a checkpoint. */
static double weight_sumsq(const char *path) {
    ug_st_file *f;
    if (ug_st_open(path, &f)) return -1;
    double ss = 0;
    for (int i = 0; i < ug_st_count(f); i++) {
        const char *name = ug_st_name(f, i);
        if (!strncmp(name, "ema.", 4) || !strncmp(name, "optim.", 6)) continue;
        int64_t n = ug_st_numel(f, name);
        float *v = malloc((size_t)n * sizeof *v);
        if (v && !ug_st_read_f32(f, name, v, n))
            for (int64_t j = 0; j < n; j++) ss += (double)v[j] * v[j];
        free(v);
    }
    ug_st_close(f);
    return ss;
}

TEST(cli_weight_decay_adam_and_adamw) {
    char out[8192], dir[64], path[160];
    tmpdir(dir, sizeof dir);
    ASSERT(dir[0], "temporary directory");
    const char *base = "train --family ar --model made --hidden 16 --data fashion-mnist --n 200 "
                       "--steps 20 --batch 50 --lr 1e-2 --threads 1";
    double ss[3];
    const char *wd[3] = {"", "--weight-decay 1", "--weight-decay 2 --adamw 1"};
    for (int k = 0; k < 3; k++) {
        EXPECT(run(out, sizeof out, "%s %s --out %s/wd%d", base, wd[k], dir, k) == 0, "train %s: %s", wd[k], out);
        snprintf(path, sizeof path, "%s/wd%d/checkpoint.safetensors", dir, k);
        ss[k] = weight_sumsq(path);
    }
    /* AdamW: every step multiplies the weights by 1 - lr wd = 0.98 before the Adam update, 20
     * steps shrink them well below the undecayed run; Adam's L2 term pulls them down too. */
    EXPECT(ss[0] > 0 && ss[1] > 0 && ss[1] < 0.9 * ss[0], "Adam + L2: |w|^2 %g vs %g without", ss[1], ss[0]);
    EXPECT(ss[2] > 0 && ss[2] < 0.9 * ss[0], "AdamW: |w|^2 %g vs %g without", ss[2], ss[0]);
    EXPECT(run(out, sizeof out, "%s --weight-decay -1 --out %s/bad", base, dir) == 2 &&
               strstr(out, "weight-decay"), "a negative decay is a usage error: %s", out);
}
