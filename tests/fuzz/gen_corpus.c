/* gen_corpus.c — writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/<harness>/)
 * with unigen's own writers (ug_st_write, ug_ckpt_save, ug_npy_write_*, ug_png_write, the CLI's
 * cli_cfg_to_json), libpng and zlib: small valid files, so that fuzzing starts from inputs that
 * parse and mutates inward. scripts/fuzz.sh --seeds builds and runs it; the output is
 * deterministic. The malformed cases of tests/malformed/ are added to the scratch corpus at run
 * time rather than copied here. */
#include "unigen.h"
#include "../../cli/options.h"
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *g_root;

static void die(const char *what) {
    fprintf(stderr, "gen_corpus: %s: %s\n", what, ug_last_error());
    exit(1);
}

static const char *path_of(const char *harness, const char *file) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_root, harness);
    if (mkdir(p, 0755) != 0 && errno != EEXIST) die(p);
    snprintf(p, sizeof p, "%s/%s/%s", g_root, harness, file);
    return p;
}

static void put(const char *harness, const char *file, const void *data, size_t n) {
    FILE *f = fopen(path_of(harness, file), "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) die(file);
}

static void put_str(const char *harness, const char *file, const char *s) {
    put(harness, file, s, strlen(s));
}

static void safetensors(void) {
    ug_st_writer *w;
    const float f[6] = {1, -2, 0.5f, 3, 4, 1e-3f};
    const uint16_t h[3] = {0x3c00, 0xc000, 0x7bff};   /* 1, -2, 65504 in F16; also as BF16 */
    const int64_t i64[2] = {-5, 1LL << 40};
    const uint8_t u8[4] = {0, 1, 127, 255};
    const double d = 2.5;
    if (ug_st_writer_create(&w)) die("writer");
    if (ug_st_writer_add(w, "w", UG_DT_F32, 2, (int64_t[]){2, 3}, f) ||
        ug_st_writer_add(w, "half", UG_DT_F16, 1, (int64_t[]){3}, h) ||
        ug_st_writer_add(w, "bf", UG_DT_BF16, 1, (int64_t[]){3}, h) ||
        ug_st_writer_add(w, "idx", UG_DT_I64, 1, (int64_t[]){2}, i64) ||
        ug_st_writer_add(w, "bytes", UG_DT_U8, 2, (int64_t[]){2, 2}, u8) ||
        ug_st_writer_add(w, "mask", UG_DT_BOOL, 1, (int64_t[]){2}, u8) ||
        ug_st_writer_add(w, "scalar", UG_DT_F64, 0, NULL, &d) ||
        ug_st_writer_add(w, "empty", UG_DT_F32, 2, (int64_t[]){0, 4}, NULL) ||
        ug_st_writer_set_meta(w, "format", "pt") || ug_st_writer_set_meta(w, "note", "a \"q\"\n") ||
        ug_st_write(w, path_of("safetensors", "mixed.safetensors")))
        die("mixed.safetensors");
    ug_st_writer_free(w);
    if (ug_st_writer_create(&w) || ug_st_writer_add(w, "x", UG_DT_F32, 1, (int64_t[]){1}, f) ||
        ug_st_write(w, path_of("safetensors", "one.safetensors")))
        die("one.safetensors");
    ug_st_writer_free(w);
}

/* The model of fuzz_checkpoint.c: keep the two in step. */
static void checkpoint(const char *config) {
    ug_params *ps;
    ug_ema ema;
    ug_adam adam;
    if (ug_params_create(&ps) || !ug_params_add(ps, "net.0.weight", 2, (int64_t[]){3, 2}) ||
        !ug_params_add(ps, "net.0.bias", 1, (int64_t[]){3}) ||
        !ug_params_add(ps, "out.scale", 1, (int64_t[]){1}) || ug_params_finalize(ps))
        die("params");
    ug_params_init_uniform(ps, 7);
    if (ug_ema_init(&ema, ps, 0.99f) || ug_adam_init(&adam, ps, ug_adam_default())) die("optim");
    adam.t = 12;
    if (ug_ckpt_save(path_of("checkpoint", "full.safetensors"), ps, &ema, &adam, 12, config) ||
        ug_ckpt_save(path_of("checkpoint", "weights.safetensors"), ps, NULL, NULL, 0, NULL))
        die("checkpoint");
    ug_adam_free(&adam);
    ug_ema_free(&ema);
    ug_params_free(ps);
}

static void npy(void) {
    const float f[6] = {1, 2, 3, 4, 5, 6};
    const double d[2] = {-1.5, 1e300};
    if (ug_npy_write_f32(path_of("npy", "f4_2x3.npy"), 2, (int64_t[]){2, 3}, f) ||
        ug_npy_write_f32(path_of("npy", "f4_scalar.npy"), 0, NULL, f) ||
        ug_npy_write_f64(path_of("npy", "f8_2.npy"), 1, (int64_t[]){2}, d) ||
        ug_npy_write_f32(path_of("npy", "f4_empty.npy"), 2, (int64_t[]){0, 3}, NULL))
        die("npy");
}

/* IDX bytes: 0 0 0x08 ndim, big-endian sizes, data. */
static size_t idx_bytes(uint8_t *out, int ndim, const uint32_t *dims) {
    size_t n = 0, total = 1;
    out[n++] = 0; out[n++] = 0; out[n++] = 0x08; out[n++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        for (int s = 24; s >= 0; s -= 8) out[n++] = (uint8_t)(dims[i] >> s);
        total *= dims[i];
    }
    for (size_t i = 0; i < total; i++) out[n++] = (uint8_t)(i * 37);
    return n;
}

static void idx(void) {
    uint8_t b[1 + 256];
    const uint32_t labels[1] = {5}, images[3] = {2, 3, 3};
    /* fuzz_idx's first byte: 0 = the rest as is, 1 = the harness gzips the rest. */
    for (int form = 0; form < 2; form++) {
        char name[32];
        b[0] = (uint8_t)form;
        snprintf(name, sizeof name, "labels_%s.idx", form ? "gz" : "raw");
        put("idx", name, b, 1 + idx_bytes(b + 1, 1, labels));
        snprintf(name, sizeof name, "images_%s.idx", form ? "gz" : "raw");
        put("idx", name, b, 1 + idx_bytes(b + 1, 3, images));
    }
    /* A real gzip file handed over as is: zlib's own stream, CRC and all. */
    const char *p = path_of("idx", "images_gzfile.idx");
    FILE *f = fopen(p, "wb");
    if (!f || fputc(0, f) == EOF || fclose(f)) die(p);
    gzFile gz = gzopen(p, "ab");
    size_t n = idx_bytes(b, 3, images);
    if (!gz || gzwrite(gz, b, (unsigned)n) != (int)n || gzclose(gz) != Z_OK) die(p);
}

static void png_fmt(const char *file, png_uint_32 format, int w, int h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = format;
    uint8_t buf[4 * 4 * 8], cmap[4 * 256];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 29);
    for (size_t i = 0; i < sizeof cmap; i++) cmap[i] = (uint8_t)(i * 13);
    if (format & PNG_FORMAT_FLAG_COLORMAP) {
        img.colormap_entries = 4;
        for (size_t i = 0; i < sizeof buf; i++) buf[i] &= 3;
    }
    if (!png_image_write_to_file(&img, path_of("png", file), 0, buf, 0,
                                 format & PNG_FORMAT_FLAG_COLORMAP ? cmap : NULL)) {
        fprintf(stderr, "gen_corpus: %s: %s\n", file, img.message);
        exit(1);
    }
    png_image_free(&img);
}

/* fuzz_png's first byte: 1 = the harness fixes the chunk CRCs, 0 = the rest as is. */
static void prefix_file(const char *file, uint8_t first) {
    const char *p = path_of("png", file);
    FILE *f = fopen(p, "rb");
    uint8_t buf[4096];
    size_t n = f ? fread(buf + 1, 1, sizeof buf - 1, f) : 0;
    if (!f || !n || fclose(f)) die(p);
    buf[0] = first;
    put("png", file, buf, n + 1);
}

static void png(void) {
    uint8_t px[4 * 4 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 11);
    if (ug_png_write(path_of("png", "gray_3x2.png"), px, 3, 2, 1) ||
        ug_png_write(path_of("png", "rgb_4x4.png"), px, 4, 4, 3))
        die("png");
    png_fmt("ga_2x2.png", PNG_FORMAT_GA, 2, 2);
    png_fmt("rgba_3x3.png", PNG_FORMAT_RGBA, 3, 3);
    png_fmt("palette_4x2.png", PNG_FORMAT_RGB_COLORMAP, 4, 2);
    png_fmt("gray16_2x2.png", PNG_FORMAT_LINEAR_Y, 2, 2);
    const char *files[] = {"gray_3x2.png", "rgb_4x4.png", "ga_2x2.png", "rgba_3x3.png",
                           "palette_4x2.png", "gray16_2x2.png"};
    for (int i = 0; i < 6; i++) prefix_file(files[i], i < 5);
}

static void gmm(void) {
    put_str("gmm", "two.json", "{\"name\": \"two\", \"dim\": 2, \"num_components\": 2,\n"
            " \"weights\": [1, 3], \"means\": [[-2, 0], [3, 1]], \"stds\": [0.5, 0.25],\n"
            " \"description\": \"two bumps\"}\n");
    put_str("gmm", "min.json", "{\"weights\":[2],\"means\":[[1,2,3]],\"stds\":[1]}");
    put_str("gmm", "eight.json", "{\"weights\":[1,1,1,1,1,1,1,1],\"means\":[[2,0],[1.41,1.41],"
            "[0,2],[-1.41,1.41],[-2,0],[-1.41,-1.41],[0,-2],[1.41,-1.41]],"
            "\"stds\":[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]}");
}

/* fuzz_cli input: subcommand byte, NUL-separated argv, then 0xFF and the config file. */
static void cli_case(const char *file, int cmd, const char *const *args, const char *config) {
    char b[1024];
    size_t n = 0;
    b[n++] = (char)cmd;
    for (int i = 0; args[i]; i++) {
        if (i) b[n++] = 0;
        n += (size_t)snprintf(b + n, sizeof b - n, "%s", args[i]);
    }
    if (config) {
        b[n++] = (char)0xFF;
        n += (size_t)snprintf(b + n, sizeof b - n, "%s", config);
    }
    put("cli", file, b, n);
}

static char *cli(void) {
    /* Subcommand bytes: 0 train, 1 sample, 2 eval, 3 info, 4 data. */
    cli_case("train.bin", 0, (const char *const[]){"--data", "moons", "--steps=100", "--lr",
             "2e-3", "--ema", "0.995", "--json", "--model", "mlp", "--hidden", "64", NULL}, NULL);
    cli_case("train_config.bin", 0, (const char *const[]){"--config", "cfg.json", "--batch",
             "32", NULL}, "{\"data\": \"circles\", \"steps\": 10, \"p-mean\": \"nan\", "
             "\"json\": true, \"lr\": 0.01}");
    cli_case("sample.bin", 1, (const char *const[]){"--ckpt", "x.safetensors", "--sampler",
             "dpmpp-2m", "--steps", "12", "--eta", "nan", "--use-ema", "false", NULL}, NULL);
    cli_case("eval.bin", 2, (const char *const[]){"--nll", "--metrics=mmd,swd", "--rtol",
             "1e-4", NULL}, NULL);
    cli_case("info.bin", 3, (const char *const[]){"--ckpt", "a", "--json", "1", NULL}, NULL);
    cli_case("data.bin", 4, (const char *const[]){"--data", "moons", "--n", "5", "--out",
             "x.npy", "--config=c.json", NULL}, "{\"seed\": 3}");
    cli_cfg cfg;
    char err[256];
    char *argv[] = {"--data", "moons", "--model", "mlp", "--hidden", "32", "--normalize", "std",
                    "--data-mean", "0.1,0.2", "--data-std", "1,2", "--classes", "3"};
    if (cli_parse(CMD_TRAIN, "train", 14, argv, &cfg, err, sizeof err)) {
        fprintf(stderr, "gen_corpus: %s\n", err);
        exit(1);
    }
    char *json = cli_cfg_to_json(CMD_TRAIN, &cfg);
    cli_cfg_free(&cfg);
    put_str("cli_config", "train.json", json);
    put_str("cli_config", "small.json", "{\"family\": \"diffusion\", \"formulation\": \"vp\", "
            "\"hidden\": 16, \"sigma-data\": 0.5, \"p-std\": \"nan\", \"model\": null}");
    return json;
}

int main(int argc, char **argv) {
    g_root = argc > 1 ? argv[1] : "tests/fuzz/corpus";
    if (mkdir(g_root, 0755) != 0 && errno != EEXIST) die(g_root);
    char *config = cli();
    safetensors();
    checkpoint(config);
    free(config);
    npy();
    idx();
    png();
    gmm();
    return 0;
}
