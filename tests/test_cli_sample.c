/* test_cli_sample.c — issue 5's interface, exactly as a user types it:
 *   unigen sample --model gmm:MIX.json --sampler S --steps N --schedule karras --sigma-min 0.002
 *     --sigma-max 80 --rho 7 --init-noise NOISE.npy --out OUT.npy --json
 * for every k-diffusion Karras case and the diffusers DDIM cases of tests/ref/samplers: the
 * samples match per sample (median relative error <= 1e-4, 99th percentile <= 1e-3), with the
 * same NFE and the same sigma grid as the reference recorded (DDIM with --compat diffusers,
 * whose float32 alpha table the reference used; the default double table differs by < 1e-4). */
#include "test.h"
#include <cjson/cJSON.h>
#include <sys/wait.h>
#include <unistd.h>

/* CLI flags for a manifest case, or NULL when this test does not drive it. */
static const char *flags_for(const char *name, char *buf, size_t n) {
    static const struct { const char *prefix, *flags; } map[] = {
        {"kd_euler_ancestral_karras", "--sampler euler-a --eta 0"},
        {"kd_euler_karras", "--sampler euler"},
        {"kd_heun_karras", "--sampler heun"},
        {"kd_dpm_2_karras", "--sampler dpm2"},
        {"kd_lms_karras", "--sampler lms"},
        {"kd_dpmpp_2m_karras", "--sampler dpmpp-2m"},
        {"kd_dpmpp_2s_ancestral_karras", "--sampler dpmpp-2s-a --eta 0"},
        {"kd_dpmpp_2m_sde_midpoint_karras", "--sampler dpmpp-2m-sde --solver-type midpoint --eta 0"},
        {"kd_dpmpp_2m_sde_heun_karras", "--sampler dpmpp-2m-sde --solver-type heun --eta 0"},
        {"kd_dpmpp_3m_sde_karras", "--sampler dpmpp-3m-sde --eta 0"},
        {"df_ddim_leading_n", "--formulation vp --sampler ddim --schedule leading --compat diffusers"},
        {"df_ddim_trailing_n", "--formulation vp --sampler ddim --schedule trailing --compat diffusers"},
        {"df_ddim_linspace_n", "--formulation vp --sampler ddim --schedule linspace --compat diffusers"},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strncmp(name, map[i].prefix, strlen(map[i].prefix))) {
            int karras = !strncmp(name, "kd_", 3);
            snprintf(buf, n, "%s%s", map[i].flags,
                     karras ? " --schedule karras --sigma-min 0.002 --sigma-max 80 --rho 7" : "");
            return buf;
        }
    return NULL;
}

TEST(cli_sample_matches_reference_samplers) {
    char *txt = ug_test_read_file("ref/samplers/manifest.json");
    ASSERT(txt, "ref/samplers/manifest.json missing");
    cJSON *man = cJSON_Parse(txt);
    free(txt);
    ASSERT(man, "manifest.json malformed");
    const char *bin = getenv("UG_CLI") ? getenv("UG_CLI") : "../build/unigen";
    char out[] = "/tmp/unigen-clis-XXXXXX";
    int fd = mkstemp(out);
    ASSERT(fd >= 0, "mkstemp");
    close(fd);
    int ran = 0, bad = 0;
    double worst = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(man, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        char fl[256], cmd[1024];
        if (!flags_for(name, fl, sizeof fl)) continue;
        int steps = cJSON_GetObjectItem(c, "steps")->valueint;
        snprintf(cmd, sizeof cmd, "%s sample --model gmm:ref/samplers/%s %s --steps %d --init-noise "
                 "ref/samplers/%s --out %s.npy --json", bin,
                 cJSON_GetObjectItem(c, "mixture")->valuestring, fl, steps,
                 cJSON_GetObjectItem(c, "noise")->valuestring, out);
        FILE *p = popen(cmd, "r");
        char line[65536] = "";
        size_t k = p ? fread(line, 1, sizeof line - 1, p) : 0;
        line[k] = 0;
        int st = p ? pclose(p) : -1;
        ran++;
        cJSON *js = cJSON_Parse(line);
        if (st != 0 || !js) {
            printf("    %s: exit %d: %s\n", name, st, line);
            bad++;
            cJSON_Delete(js);
            continue;
        }
        /* NFE and grid */
        int nfe = cJSON_GetObjectItem(js, "nfe")->valueint;
        int want_nfe = cJSON_GetObjectItem(c, "nfe")->valueint;
        cJSON *gs = cJSON_GetObjectItem(js, "sigmas"), *rs = cJSON_GetObjectItem(c, "sigmas");
        int grid_ok = cJSON_GetArraySize(gs) == cJSON_GetArraySize(rs);
        for (int i = 0; grid_ok && i < cJSON_GetArraySize(rs); i++) {
            double a = cJSON_GetArrayItem(gs, i)->valuedouble, b = cJSON_GetArrayItem(rs, i)->valuedouble;
            grid_ok = fabs(a - b) <= 1e-6 * fabs(b) + 1e-12;
        }
        cJSON_Delete(js);
        if (nfe != want_nfe || !grid_ok) {
            printf("    %s: nfe %d (reference %d), grid %s\n", name, nfe, want_nfe, grid_ok ? "ok" : "differs");
            bad++;
            continue;
        }
        /* samples */
        char path[600];
        snprintf(path, sizeof path, "ref/samplers/%s", cJSON_GetObjectItem(c, "out")->valuestring);
        ug_npy_array got, ref;
        snprintf(cmd, sizeof cmd, "%s.npy", out);
        if (ug_npy_read(cmd, &got) || ug_npy_read(path, &ref)) {
            printf("    %s: %s\n", name, ug_last_error());
            bad++;
            continue;
        }
        int64_t n = ref.shape[0], d = ref.shape[1];
        double *g = malloc((size_t)got.numel * 8), *r = malloc((size_t)ref.numel * 8), *rel = malloc((size_t)n * 8);
        ug_npy_to_f64(&got, g);
        ug_npy_to_f64(&ref, r);
        int shape_ok = got.ndim == 2 && got.shape[0] == n && got.shape[1] == d;
        for (int64_t i = 0; shape_ok && i < n; i++) {
            double e = 0, s = 0;
            for (int64_t j = 0; j < d; j++) {
                e += (g[i * d + j] - r[i * d + j]) * (g[i * d + j] - r[i * d + j]);
                s += r[i * d + j] * r[i * d + j];
            }
            rel[i] = sqrt(e) / fmax(sqrt(s), 1e-12);
        }
        if (shape_ok) {
            qsort(rel, (size_t)n, sizeof *rel, ug_test_cmp_double);
            double med = rel[n / 2], p99 = rel[(int64_t)(0.99 * (double)(n - 1))];
            if (p99 > worst) worst = p99;
            if (!(med <= 1e-4 && p99 <= 1e-3)) {
                printf("    %s: median %.3g p99 %.3g\n", name, med, p99);
                bad++;
            }
        } else {
            printf("    %s: output shape differs\n", name);
            bad++;
        }
        free(g); free(r); free(rel);
        ug_npy_free(&got);
        ug_npy_free(&ref);
    }
    char npy[64];
    snprintf(npy, sizeof npy, "%s.npy", out);
    remove(npy);
    remove(out);
    cJSON_Delete(man);
    printf("    %d cases through the CLI, worst p99 relative error %.3g\n", ran, worst);
    EXPECT(ran >= 78, "only %d cases ran", ran);
    EXPECT(bad == 0, "%d of %d cases differ from the reference", bad, ran);
}
