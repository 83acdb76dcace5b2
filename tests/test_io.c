/* test_io.c — safetensors and .npy round trips, crash-safe writes, and interoperability with
 * numpy: files unigen writes are read back by an independent numpy reader (tests/py/
 * st_read.py) and files numpy writes (tests/py/st_write.py) are read by unigen. The numpy
 * tests need /usr/bin/python3 with numpy (python3-numpy, installed by scripts/deps.sh) and
 * FAIL, saying so, when it is missing. */
#include "test.h"
#include "core/core.h"
#include "io/io.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define PY "/usr/bin/python3"

/* ---------------------------------------------------------------- helpers */

static void tmpdir_make(char *dir, size_t n) {
    snprintf(dir, n, "/tmp/ug_io_XXXXXX");
    if (!mkdtemp(dir)) dir[0] = 0;
}

/* Removes the plain files in dir, then dir; returns how many files there were. */
static int tmpdir_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *de;
    char p[512];
    int n = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        remove(p);
        n++;
    }
    closedir(d);
    rmdir(dir);
    return n;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Fails the test unless /usr/bin/python3 can import numpy. */
static void require_numpy(void) {
    ASSERT(access(PY, X_OK) == 0, PY " is missing: the numpy interoperability tests need "
           "python3-numpy (a declared test dependency: run scripts/deps.sh)");
    int rc = system(PY " -c 'import numpy' 2>/dev/null");
    ASSERT(rc == 0, PY " cannot import numpy: the numpy interoperability tests need "
           "python3-numpy (a declared test dependency: run scripts/deps.sh)");
}

/* Runs cmd, returns its stdout+stderr (malloc'd) and sets *rc to its exit status. */
static char *run_capture(const char *cmd, int *rc) {
    FILE *p = popen(cmd, "r");
    if (!p) { *rc = -1; return NULL; }
    size_t n = 0, cap = 4096;
    char *out = malloc(cap);
    size_t k;
    while (out && (k = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 1024) {
            char *o = realloc(out, cap *= 2);
            if (!o) { free(out); out = NULL; }
            else out = o;
        }
    }
    if (out) out[n] = 0;
    *rc = pclose(p);
    return out;
}

/* From st_read.py's dump: the line "tensor\tname\tDTYPE\tdims\tvalues" for name. Fills dtype,
 * shape (ndim), values (up to cap); returns the number of values, or -1 when absent. */
static int dump_tensor(const char *dump, const char *name, char *dtype, int *ndim,
                       int64_t *shape, double *vals, int cap) {
    char key[256];
    *ndim = 0;
    dtype[0] = 0;
    snprintf(key, sizeof key, "tensor\t%.200s\t", name);
    const char *line = dump;
    while (line && *line) {
        if (strncmp(line, key, strlen(key)) == 0) break;
        line = strchr(line, '\n');
        if (line) line++;
    }
    if (!line || !*line) return -1;
    const char *p = line + strlen(key);
    size_t k = strcspn(p, "\t");
    snprintf(dtype, 8, "%.*s", (int)(k < 7 ? k : 7), p);
    p += k + 1;
    *ndim = 0;
    while (*p != '\t') {
        shape[(*ndim)++] = strtoll(p, (char **)&p, 10);
        if (*p == ',') p++;
    }
    p++;
    int n = 0;
    while (*p && *p != '\n' && n < cap) {
        char *e;
        vals[n] = strtod(p, &e);
        if (e == p) break;
        n++;
        p = e;
        while (*p == ' ') p++;
    }
    return n;
}

/* The JSON-decoded value of "meta\tkey\t<json>" in the dump (malloc'd), or NULL. */
static char *dump_meta(const char *dump, const char *key) {
    char pre[128];
    snprintf(pre, sizeof pre, "meta\t%s\t", key);
    const char *line = strstr(dump, pre);
    if (!line) return NULL;
    line += strlen(pre);
    size_t k = strcspn(line, "\n");
    cJSON *j = cJSON_ParseWithLength(line, k);
    char *v = cJSON_IsString(j) ? strdup(j->valuestring) : NULL;
    cJSON_Delete(j);
    return v;
}

/* ---------------------------------------------------------------- safetensors */

/* A checkpoint-like set of tensors of every common dtype, a scalar and an empty tensor. */
static float g_w[6] = {-1.5f, 0.0f, 3.25f, 1e-30f, -7.0f, 1234.5f};
static double g_b[4] = {0.1, -0.2, 1e300, 3.0 / 7.0};
static int64_t g_i64[3] = {-5, 0, (int64_t)1 << 40};
static int32_t g_i32[4] = {-1, 2, 3, -2147483647};
static uint8_t g_u8[5] = {0, 1, 127, 200, 255};
static float g_scalar = 2.75f;

static const char *k_meta_note = "quote \" backslash \\ newline \n tab \t ünïcode ∑ \x01";

static ug_status write_sample(const char *path) {
    ug_st_writer *w;
    ug_status st = ug_st_writer_create(&w);
    if (st != UG_OK) return st;
    if (!st) st = ug_st_writer_set_meta(w, "config", "{\"lr\": 0.001}");
    if (!st) st = ug_st_writer_set_meta(w, "note", "replaced below");
    if (!st) st = ug_st_writer_set_meta(w, "note", k_meta_note);
    if (!st) st = ug_st_writer_add(w, "down.0.weight", UG_DT_F32, 2, (int64_t[]){2, 3}, g_w);
    if (!st) st = ug_st_writer_add(w, "bias64", UG_DT_F64, 1, (int64_t[]){4}, g_b);
    if (!st) st = ug_st_writer_add(w, "idx", UG_DT_I64, 1, (int64_t[]){3}, g_i64);
    if (!st) st = ug_st_writer_add(w, "i32", UG_DT_I32, 2, (int64_t[]){2, 2}, g_i32);
    if (!st) st = ug_st_writer_add(w, "u8", UG_DT_U8, 1, (int64_t[]){5}, g_u8);
    if (!st) st = ug_st_writer_add(w, "scalar", UG_DT_F32, 0, NULL, &g_scalar);
    if (!st) st = ug_st_writer_add(w, "empty", UG_DT_F32, 2, (int64_t[]){0, 3}, NULL);
    if (!st) st = ug_st_write(w, path);
    ug_st_writer_free(w);
    return st;
}

TEST(io_st_roundtrip_dtypes_metadata) {
    char dir[64], path[128];
    tmpdir_make(dir, sizeof dir);
    ASSERT(dir[0], "mkdtemp failed");
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    ASSERT_OK(write_sample(path));
    EXPECT(count_files(dir) == 1, "temporary file left behind: %d files", count_files(dir));

    /* Layout: 8-byte length, header padded to a multiple of 8, data contiguous. */
    unsigned char *buf;
    size_t size;
    ASSERT_OK(ug_file_read_all(path, &buf, &size));
    uint64_t hn;
    memcpy(&hn, buf, 8);
    size_t data = 6 * 4 + 4 * 8 + 3 * 8 + 4 * 4 + 5 + 4;
    EXPECT(hn % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hn);
    EXPECT(size == 8 + hn + data, "file size %zu, expected %llu", size,
           (unsigned long long)(8 + hn + data));
    EXPECT(buf[8] == '{' && (buf[8 + hn - 1] == ' ' || buf[8 + hn - 1] == '}'), "header framing");
    free(buf);

    ug_st_file *f;
    ASSERT_OK(ug_st_open(path, &f));
    EXPECT(ug_st_count(f) == 7, "count %d", ug_st_count(f));
    const char *order[] = {"down.0.weight", "bias64", "idx", "i32", "u8", "scalar", "empty"};
    for (int i = 0; i < 7 && i < ug_st_count(f); i++)
        EXPECT(strcmp(ug_st_name(f, i), order[i]) == 0, "name %d: %s", i, ug_st_name(f, i));
    EXPECT(ug_st_name(f, 7) == NULL && ug_st_name(f, -1) == NULL, "out-of-range name");

    ug_dtype dt;
    int nd;
    int64_t sh[UG_MAX_DIMS];
    ASSERT_OK(ug_st_info(f, "down.0.weight", &dt, &nd, sh));
    EXPECT(dt == UG_DT_F32 && nd == 2 && sh[0] == 2 && sh[1] == 3, "info of down.0.weight");
    ASSERT_OK(ug_st_info(f, "scalar", &dt, &nd, sh));
    EXPECT(dt == UG_DT_F32 && nd == 0 && ug_st_numel(f, "scalar") == 1, "scalar info");
    ASSERT_OK(ug_st_info(f, "empty", &dt, &nd, sh));
    EXPECT(nd == 2 && sh[0] == 0 && sh[1] == 3 && ug_st_numel(f, "empty") == 0, "empty info");

    /* Raw bytes are exactly what was written. */
    const struct { const char *name; const void *src; size_t n; ug_dtype dt; } raw[] = {
        {"down.0.weight", g_w, sizeof g_w, UG_DT_F32}, {"bias64", g_b, sizeof g_b, UG_DT_F64},
        {"idx", g_i64, sizeof g_i64, UG_DT_I64},       {"i32", g_i32, sizeof g_i32, UG_DT_I32},
        {"u8", g_u8, sizeof g_u8, UG_DT_U8},           {"scalar", &g_scalar, 4, UG_DT_F32},
    };
    for (size_t i = 0; i < sizeof raw / sizeof *raw; i++) {
        const void *p;
        size_t nb;
        ASSERT_OK(ug_st_raw(f, raw[i].name, &p, &nb));
        EXPECT(nb == raw[i].n && memcmp(p, raw[i].src, nb) == 0, "raw bytes of %s", raw[i].name);
        ASSERT_OK(ug_st_info(f, raw[i].name, &dt, NULL, NULL));
        EXPECT(dt == raw[i].dt, "dtype of %s: %s", raw[i].name, ug_dtype_name(dt));
    }

    /* Conversions, against values computed here. */
    float f32[6];
    double f64[6];
    ASSERT_OK(ug_st_read_f32(f, "down.0.weight", f32, 6));
    ug_test_allclose("down.0.weight", f32, g_w, 6, 0, 0);
    ASSERT_OK(ug_st_read_f64(f, "bias64", f64, 4));
    ug_test_allclose_f64("bias64", f64, g_b, 4, 0, 0);
    ASSERT_OK(ug_st_read_f32(f, "bias64", f32, 4));
    for (int i = 0; i < 4; i++) EXPECT(f32[i] == (float)g_b[i], "bias64 -> f32 [%d]", i);
    ASSERT_OK(ug_st_read_f32(f, "idx", f32, 3));
    EXPECT(f32[0] == -5 && f32[1] == 0 && f32[2] == 1099511627776.0f, "idx -> f32");
    ASSERT_OK(ug_st_read_f64(f, "i32", f64, 4));
    EXPECT(f64[0] == -1 && f64[3] == -2147483647.0, "i32 -> f64");
    ASSERT_OK(ug_st_read_f32(f, "u8", f32, 5));
    EXPECT(f32[2] == 127 && f32[3] == 200 && f32[4] == 255, "u8 -> f32");
    ASSERT_OK(ug_st_read_f32(f, "scalar", f32, 1));
    EXPECT(f32[0] == 2.75f, "scalar");
    ASSERT_OK(ug_st_read_f32(f, "empty", f32, 0));

    /* Errors on lookups name the file and the tensor. */
    EXPECT(ug_st_read_f32(f, "down.0.weight", f32, 5) == UG_ERR_SHAPE, "wrong n accepted");
    EXPECT(strstr(ug_last_error(), path) && strstr(ug_last_error(), "down.0.weight"), "message");
    EXPECT(ug_st_read_f32(f, "nope", f32, 1) == UG_ERR_INVALID_ARG, "missing name accepted");
    EXPECT(ug_st_find(f, "nope") == -1 && ug_st_numel(f, "nope") == -1, "find of missing");

    EXPECT(ug_st_meta_count(f) == 2, "meta count %d", ug_st_meta_count(f));
    EXPECT(ug_st_meta(f, "config") && strcmp(ug_st_meta(f, "config"), "{\"lr\": 0.001}") == 0,
           "config metadata");
    EXPECT(ug_st_meta(f, "note") && strcmp(ug_st_meta(f, "note"), k_meta_note) == 0,
           "note metadata: %s", ug_st_meta(f, "note"));
    EXPECT(ug_st_meta(f, "absent") == NULL, "absent metadata");
    ug_st_close(f);
    EXPECT(tmpdir_remove(dir) == 1, "files in the temp dir");
}

TEST(io_st_all_dtypes_convert) {
    /* F16 and BF16 bit patterns, small signed/unsigned ints and bool, against exact values. */
    uint16_t f16[5] = {0x3800, 0xC000, 0x7BFF, 0x0001, 0x7C00};   /* 0.5 -2 65504 2^-24 inf */
    uint16_t bf16[2] = {0x3FC0, 0xC120};                          /* 1.5 -10 */
    int8_t i8[2] = {-128, 127};
    int16_t i16[2] = {-32768, 1000};
    uint16_t u16[1] = {65535};
    uint32_t u32[1] = {4000000000u};
    uint64_t u64[1] = {(uint64_t)1 << 63};
    uint8_t bools[3] = {0, 1, 2};
    char dir[64], path[128];
    tmpdir_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/d.safetensors", dir);
    ug_st_writer *w;
    ASSERT_OK(ug_st_writer_create(&w));
    ASSERT_OK(ug_st_writer_add(w, "f16", UG_DT_F16, 1, (int64_t[]){5}, f16));
    ASSERT_OK(ug_st_writer_add(w, "bf16", UG_DT_BF16, 1, (int64_t[]){2}, bf16));
    ASSERT_OK(ug_st_writer_add(w, "i8", UG_DT_I8, 1, (int64_t[]){2}, i8));
    ASSERT_OK(ug_st_writer_add(w, "i16", UG_DT_I16, 1, (int64_t[]){2}, i16));
    ASSERT_OK(ug_st_writer_add(w, "u16", UG_DT_U16, 1, (int64_t[]){1}, u16));
    ASSERT_OK(ug_st_writer_add(w, "u32", UG_DT_U32, 1, (int64_t[]){1}, u32));
    ASSERT_OK(ug_st_writer_add(w, "u64", UG_DT_U64, 1, (int64_t[]){1}, u64));
    ASSERT_OK(ug_st_writer_add(w, "bool", UG_DT_BOOL, 1, (int64_t[]){3}, bools));
    ASSERT_OK(ug_st_write(w, path));
    ug_st_writer_free(w);
    ug_st_file *f;
    ASSERT_OK(ug_st_open(path, &f));
    double v[5];
    ASSERT_OK(ug_st_read_f64(f, "f16", v, 5));
    EXPECT(v[0] == 0.5 && v[1] == -2 && v[2] == 65504 && v[3] == ldexp(1, -24) && isinf(v[4]),
           "f16: %g %g %g %g %g", v[0], v[1], v[2], v[3], v[4]);
    ASSERT_OK(ug_st_read_f64(f, "bf16", v, 2));
    EXPECT(v[0] == 1.5 && v[1] == -10, "bf16: %g %g", v[0], v[1]);
    ASSERT_OK(ug_st_read_f64(f, "i8", v, 2));
    EXPECT(v[0] == -128 && v[1] == 127, "i8");
    ASSERT_OK(ug_st_read_f64(f, "i16", v, 2));
    EXPECT(v[0] == -32768 && v[1] == 1000, "i16");
    ASSERT_OK(ug_st_read_f64(f, "u16", v, 1));
    EXPECT(v[0] == 65535, "u16");
    ASSERT_OK(ug_st_read_f64(f, "u32", v, 1));
    EXPECT(v[0] == 4e9, "u32");
    ASSERT_OK(ug_st_read_f64(f, "u64", v, 1));
    EXPECT(v[0] == ldexp(1, 63), "u64");
    float b[3];
    ASSERT_OK(ug_st_read_f32(f, "bool", b, 3));
    EXPECT(b[0] == 0 && b[1] == 1 && b[2] == 1, "bool");
    ug_st_close(f);
    tmpdir_remove(dir);
}

TEST(io_st_writer_rejects_bad_entries) {
    ug_st_writer *w;
    ASSERT_OK(ug_st_writer_create(&w));
    float x[2] = {1, 2};
    ASSERT_OK(ug_st_writer_add(w, "a", UG_DT_F32, 1, (int64_t[]){2}, x));
    EXPECT(ug_st_writer_add(w, "a", UG_DT_F32, 1, (int64_t[]){2}, x) == UG_ERR_INVALID_ARG,
           "duplicate name accepted");
    EXPECT(strstr(ug_last_error(), "'a'"), "message: %s", ug_last_error());
    EXPECT(ug_st_writer_add(w, "__metadata__", UG_DT_F32, 1, (int64_t[]){2}, x) != UG_OK,
           "__metadata__ as a tensor name accepted");
    EXPECT(ug_st_writer_add(w, "", UG_DT_F32, 1, (int64_t[]){2}, x) != UG_OK, "empty name");
    EXPECT(ug_st_writer_add(w, "bad\xff", UG_DT_F32, 1, (int64_t[]){2}, x) != UG_OK, "non-UTF-8");
    EXPECT(ug_st_writer_add(w, "neg", UG_DT_F32, 1, (int64_t[]){-2}, x) != UG_OK, "negative dim");
    EXPECT(ug_st_writer_add(w, "nd", UG_DT_F32, 7, (int64_t[]){1, 1, 1, 1, 1, 1, 2}, x) != UG_OK,
           "7 dims");
    EXPECT(ug_st_writer_add(w, "dt", UG_DT_COUNT, 1, (int64_t[]){2}, x) != UG_OK, "bad dtype");
    EXPECT(ug_st_writer_add(w, "null", UG_DT_F32, 1, (int64_t[]){2}, NULL) != UG_OK, "NULL data");
    EXPECT(ug_st_writer_set_meta(w, "k", "\xc3") != UG_OK, "truncated UTF-8 metadata accepted");
    ug_st_writer_free(w);
}

/* Writes "old" to path, for checking that failed writes leave it untouched. */
static void put_old(const char *path) {
    FILE *fp = fopen(path, "wb");
    fputs("old", fp);
    fclose(fp);
}

TEST(io_st_write_is_atomic) {
    char dir[64], path[128], sub[128];
    tmpdir_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    float big[4096] = {0};
    ug_st_writer *w;
    ASSERT_OK(ug_st_writer_create(&w));
    ASSERT_OK(ug_st_writer_add(w, "big", UG_DT_F32, 1, (int64_t[]){4096}, big));

    /* A missing directory: UG_ERR_IO naming the path. */
    snprintf(sub, sizeof sub, "%s/no/such/dir/x.safetensors", dir);
    EXPECT(ug_st_write(w, sub) == UG_ERR_IO, "write into a missing directory succeeded");
    EXPECT(strstr(ug_last_error(), sub), "message does not name the path: %s", ug_last_error());

    /* rename() over a directory fails: the temporary file must be gone. */
    snprintf(sub, sizeof sub, "%s/adir", dir);
    ASSERT(mkdir(sub, 0700) == 0, "mkdir");
    EXPECT(ug_st_write(w, sub) == UG_ERR_IO, "write over a directory succeeded");
    EXPECT(count_files(dir) == 1, "temporary file left after a failed rename");
    rmdir(sub);

    /* A full disk midway (file-size limit, SIGXFSZ ignored so write() reports EFBIG): the old
     * file survives and no temporary file remains. */
    put_old(path);
    struct rlimit old_lim;
    getrlimit(RLIMIT_FSIZE, &old_lim);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = old_lim;
    lim.rlim_cur = 1000;
    ASSERT(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    ug_status st = ug_st_write(w, path);
    setrlimit(RLIMIT_FSIZE, &old_lim);
    signal(SIGXFSZ, old_sig);
    EXPECT(st == UG_ERR_IO, "write past the file-size limit returned %s", ug_status_str(st));
    EXPECT(file_size(path) == 3, "old file damaged: %ld bytes", file_size(path));
    EXPECT(count_files(dir) == 1, "temporary file left after a failed write");

    /* And a successful write replaces it. */
    ASSERT_OK(ug_st_write(w, path));
    EXPECT(file_size(path) > 4096 * 4, "new file not in place");
    EXPECT(count_files(dir) == 1, "temporary file left after success");
    ug_st_writer_free(w);
    tmpdir_remove(dir);
}

/* ---------------------------------------------------------------- npy */

TEST(io_npy_roundtrip_f32_f64) {
    char dir[64], path[128];
    tmpdir_make(dir, sizeof dir);
    const int ndims[3] = {0, 1, 3};
    const int64_t shapes[3][3] = {{0}, {5}, {2, 3, 4}};
    float xf[24];
    double xd[24];
    for (int i = 0; i < 24; i++) {
        xf[i] = (float)(i * 0.37 - 4.1);
        xd[i] = i / 7.0 - 1e-300;
    }
    for (int s = 0; s < 3; s++)
        for (int dbl = 0; dbl < 2; dbl++) {
            snprintf(path, sizeof path, "%s/a%d%d.npy", dir, s, dbl);
            int64_t n = ug_shape_numel(ndims[s], shapes[s]);
            if (dbl) ASSERT_OK(ug_npy_write_f64(path, ndims[s], shapes[s], xd));
            else ASSERT_OK(ug_npy_write_f32(path, ndims[s], shapes[s], xf));
            unsigned char *buf;
            size_t size;
            ASSERT_OK(ug_file_read_all(path, &buf, &size));
            size_t hl = (size_t)buf[8] | (size_t)buf[9] << 8;
            EXPECT(buf[6] == 1 && buf[7] == 0, "%s: version", path);
            EXPECT((10 + hl) % 64 == 0, "%s: data offset %zu not 64-byte aligned", path, 10 + hl);
            EXPECT(buf[10 + hl - 1] == '\n', "%s: header not ended by a newline", path);
            EXPECT(size == 10 + hl + (size_t)n * (dbl ? 8 : 4), "%s: size %zu", path, size);
            free(buf);

            ug_npy_array a;
            ASSERT_OK(ug_npy_read(path, &a));
            EXPECT(a.dtype == (dbl ? UG_DT_F64 : UG_DT_F32) && a.ndim == ndims[s] && a.numel == n,
                   "%s: dtype %s ndim %d numel %lld", path, ug_dtype_name(a.dtype), a.ndim,
                   (long long)a.numel);
            for (int d = 0; d < a.ndim; d++)
                EXPECT(a.shape[d] == shapes[s][d], "%s: shape[%d]", path, d);
            if (dbl) {
                double back[24];
                ug_npy_to_f64(&a, back);
                ug_test_allclose_f64(path, back, xd, n, 0, 0);
            } else {
                float back[24];
                ug_npy_to_f32(&a, back);
                ug_test_allclose(path, back, xf, n, 0, 0);
            }
            ug_npy_free(&a);
        }
    EXPECT(tmpdir_remove(dir) == 6, "temporary files left behind");
}

TEST(io_npy_read_failure_leaves_nothing) {
    ug_npy_array a;
    memset(&a, 0x5a, sizeof a);
    EXPECT(ug_npy_read("malformed/npy_truncated.npy", &a) == UG_ERR_FORMAT, "truncated accepted");
    EXPECT(a.data == NULL && a.numel == 0 && a.ndim == 0, "out not cleared on failure");
    ug_npy_free(&a);   /* safe on a cleared array */
}

/* ---------------------------------------------------------------- numpy interoperability */

TEST(io_numpy_reads_unigen_files) {
    require_numpy();
    char dir[64], path[128], cmd[1024];
    tmpdir_make(dir, sizeof dir);
    ASSERT(dir[0], "mkdtemp failed");
    snprintf(path, sizeof path, "%s/u.safetensors", dir);
    ASSERT_OK(write_sample(path));
    snprintf(cmd, sizeof cmd, PY " py/st_read.py %s 2>&1", path);
    int rc;
    char *out = run_capture(cmd, &rc);
    ASSERT(out, "popen failed");
    EXPECT(rc == 0, "st_read.py failed on a unigen safetensors file:\n%s", out);

    struct { const char *name, *dtype; int ndim; int64_t shape[2]; int n; double v[6]; } want[] = {
        {"down.0.weight", "F32", 2, {2, 3}, 6, {0}}, {"bias64", "F64", 1, {4}, 4, {0}},
        {"idx", "I64", 1, {3}, 3, {-5, 0, 1099511627776.0}},
        {"i32", "I32", 2, {2, 2}, 4, {-1, 2, 3, -2147483647}},
        {"u8", "U8", 1, {5}, 5, {0, 1, 127, 200, 255}}, {"scalar", "F32", 0, {0}, 1, {2.75}},
        {"empty", "F32", 2, {0, 3}, 0, {0}},
    };
    for (int i = 0; i < 6; i++) want[0].v[i] = g_w[i];
    for (int i = 0; i < 4; i++) want[1].v[i] = g_b[i];
    for (size_t t = 0; t < sizeof want / sizeof *want; t++) {
        char dt[8];
        int nd;
        int64_t sh[UG_MAX_DIMS];
        double v[8];
        int n = dump_tensor(out, want[t].name, dt, &nd, sh, v, 8);
        EXPECT(n == want[t].n, "numpy sees %d values of %s, expected %d", n, want[t].name,
               want[t].n);
        EXPECT(strcmp(dt, want[t].dtype) == 0 && nd == want[t].ndim, "numpy sees %s %s nd %d",
               want[t].name, dt, nd);
        for (int d = 0; d < nd && d < want[t].ndim; d++)
            EXPECT(sh[d] == want[t].shape[d], "%s shape[%d]", want[t].name, d);
        for (int k = 0; k < n && k < want[t].n; k++)
            EXPECT(v[k] == want[t].v[k], "%s[%d]: numpy %.17g, wrote %.17g", want[t].name, k, v[k],
                   want[t].v[k]);
    }
    char *note = dump_meta(out, "note");
    EXPECT(note && strcmp(note, k_meta_note) == 0, "numpy sees note = %s", note ? note : "(none)");
    free(note);
    free(out);

    /* .npy: numpy.load of unigen's files, all in one python run. */
    float xf[24];
    double xd[24];
    for (int i = 0; i < 24; i++) {
        xf[i] = (float)(i * 0.37 - 4.1);
        xd[i] = 3.141592653589793 * i - 1;
    }
    const int ndims[3] = {0, 1, 3};
    const int64_t shapes[3][3] = {{0}, {5}, {2, 3, 4}};
    int k = snprintf(cmd, sizeof cmd, PY " py/st_read.py");
    for (int s = 0; s < 3; s++)
        for (int dbl = 0; dbl < 2; dbl++) {
            snprintf(path, sizeof path, "%s/a%d%d.npy", dir, s, dbl);
            if (dbl) ASSERT_OK(ug_npy_write_f64(path, ndims[s], shapes[s], xd));
            else ASSERT_OK(ug_npy_write_f32(path, ndims[s], shapes[s], xf));
            k += snprintf(cmd + k, sizeof cmd - (size_t)k, " %s", path);
        }
    snprintf(cmd + k, sizeof cmd - (size_t)k, " 2>&1");
    out = run_capture(cmd, &rc);
    ASSERT(out, "popen failed");
    EXPECT(rc == 0, "numpy.load failed on unigen's .npy files:\n%s", out);
    for (int s = 0; s < 3; s++)
        for (int dbl = 0; dbl < 2; dbl++) {
            snprintf(path, sizeof path, "%s/a%d%d.npy", dir, s, dbl);
            char dt[8] = "";
            int nd;
            int64_t sh[UG_MAX_DIMS];
            double v[24];
            int n = dump_tensor(out, path, dt, &nd, sh, v, 24);
            int64_t numel = ug_shape_numel(ndims[s], shapes[s]);
            EXPECT(n == numel && nd == ndims[s] && strcmp(dt, dbl ? "F64" : "F32") == 0,
                   "%s: numpy sees %s, nd %d, %d values", path, dt, nd, n);
            for (int d = 0; d < nd && d < ndims[s]; d++)
                EXPECT(sh[d] == shapes[s][d], "%s: shape[%d]", path, d);
            for (int j = 0; j < n && j < numel; j++)
                EXPECT(v[j] == (dbl ? xd[j] : (double)xf[j]), "%s[%d]: numpy %.17g", path, j, v[j]);
        }
    free(out);
    tmpdir_remove(dir);
}

static void check_npy_f32(const char *dir, const char *file, ug_dtype dt, int ndim,
                          const int64_t *shape, const double *want) {
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    ug_npy_array a;
    ug_status st = ug_npy_read(path, &a);
    EXPECT(st == UG_OK, "%s: %s", path, ug_last_error());
    if (st != UG_OK) return;
    EXPECT(a.dtype == dt && a.ndim == ndim, "%s: dtype %s ndim %d", path, ug_dtype_name(a.dtype),
           a.ndim);
    for (int d = 0; d < ndim && d < a.ndim; d++) EXPECT(a.shape[d] == shape[d], "%s shape", path);
    double v[32];
    if (a.numel <= 32) {
        ug_npy_to_f64(&a, v);
        for (int64_t i = 0; i < a.numel; i++)
            EXPECT(v[i] == want[i], "%s[%lld]: %.17g, expected %.17g", path, (long long)i, v[i],
                   want[i]);
    }
    ug_npy_free(&a);
}

TEST(io_unigen_reads_numpy_files) {
    require_numpy();
    char dir[64], cmd[256], path[128];
    tmpdir_make(dir, sizeof dir);
    ASSERT(dir[0], "mkdtemp failed");
    snprintf(cmd, sizeof cmd, PY " py/st_write.py %s 2>&1", dir);
    int rc;
    char *out = run_capture(cmd, &rc);
    ASSERT(out, "popen failed");
    EXPECT(rc == 0, "st_write.py failed:\n%s", out);
    free(out);

    snprintf(path, sizeof path, "%s/np.safetensors", dir);
    ug_st_file *f;
    ASSERT_OK(ug_st_open(path, &f));
    EXPECT(ug_st_count(f) == 8, "count %d", ug_st_count(f));
    double v[8];
    ASSERT_OK(ug_st_read_f64(f, "w_f32", v, 6));
    for (int i = 0; i < 6; i++) EXPECT(v[i] == i * 0.25 - 1, "w_f32[%d] = %g", i, v[i]);
    ASSERT_OK(ug_st_read_f64(f, "b_f64", v, 4));
    for (int i = 0; i < 4; i++) EXPECT(v[i] == i / 3.0, "b_f64[%d] = %.17g", i, v[i]);
    ASSERT_OK(ug_st_read_f64(f, "i64", v, 3));
    EXPECT(v[0] == -5 && v[1] == 0 && v[2] == 1099511627776.0, "i64");
    ASSERT_OK(ug_st_read_f64(f, "i32", v, 4));
    EXPECT(v[0] == -1 && v[1] == 2 && v[2] == 3 && v[3] == -4, "i32");
    ASSERT_OK(ug_st_read_f64(f, "u8", v, 5));
    EXPECT(v[0] == 0 && v[2] == 127 && v[3] == 200 && v[4] == 255, "u8");
    ASSERT_OK(ug_st_read_f64(f, "f16", v, 3));
    EXPECT(v[0] == 0.5 && v[1] == -2 && v[2] == 65504, "f16: %g %g %g", v[0], v[1], v[2]);
    ASSERT_OK(ug_st_read_f64(f, "scalar", v, 1));
    EXPECT(v[0] == 3.5, "scalar");
    int nd;
    int64_t sh[UG_MAX_DIMS];
    ASSERT_OK(ug_st_info(f, "empty", NULL, &nd, sh));
    EXPECT(nd == 2 && sh[0] == 0 && sh[1] == 3, "empty shape");
    ASSERT_OK(ug_st_info(f, "w_f32", NULL, &nd, sh));
    EXPECT(nd == 2 && sh[0] == 2 && sh[1] == 3, "w_f32 shape");
    EXPECT(ug_st_meta(f, "format") && strcmp(ug_st_meta(f, "format"), "numpy") == 0, "format");
    EXPECT(ug_st_meta(f, "note") && strcmp(ug_st_meta(f, "note"), "ünïcode \"quoted\"\n") == 0,
           "note: %s", ug_st_meta(f, "note") ? ug_st_meta(f, "note") : "(none)");
    ug_st_close(f);

    double w[24];
    for (int i = 0; i < 24; i++) w[i] = i / 8.0 - 1;
    check_npy_f32(dir, "f32_234.npy", UG_DT_F32, 3, (int64_t[]){2, 3, 4}, w);
    check_npy_f32(dir, "f64_scalar.npy", UG_DT_F64, 0, NULL, (double[]){3.141592653589793});
    check_npy_f32(dir, "i8_4.npy", UG_DT_I64, 1, (int64_t[]){4}, (double[]){-3, -1, 0, 7});
    check_npy_f32(dir, "u1_22.npy", UG_DT_U8, 2, (int64_t[]){2, 2}, (double[]){0, 9, 128, 255});
    check_npy_f32(dir, "f32_v2.npy", UG_DT_F32, 1, (int64_t[]){3}, (double[]){1, 2, 3});
    snprintf(path, sizeof path, "%s/f32_fortran.npy", dir);
    ug_npy_array a;
    EXPECT(ug_npy_read(path, &a) == UG_ERR_UNSUPPORTED, "numpy's Fortran-order file accepted");
    EXPECT(strstr(ug_last_error(), "fortran_order") && strstr(ug_last_error(), path),
           "message: %s", ug_last_error());
    tmpdir_remove(dir);
}
