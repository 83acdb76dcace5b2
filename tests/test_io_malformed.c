/* test_io_malformed.c — every file of the malformed corpus (tests/malformed/, written by
 * gen.py, listed in MANIFEST with the expected status and message fragment: .safetensors, .npy,
 * checkpoints (ckpt_*), IDX (.idx, .idx.gz), PNG and Gaussian-mixture JSON) must be refused
 * with that status and a message naming the file; the well-formed controls must open. Run
 * under AddressSanitizer this also shows the readers never overrun, crash or leak on them. */
#include "test.h"
#include "io/io.h"
#include <dirent.h>
#include <unistd.h>

#define MAX_CASES 256

typedef struct { char file[96], status[16], frag[256]; } mcase;

static int load_manifest(mcase *c, int cap) {
    FILE *fp = fopen("malformed/MANIFEST", "r");
    if (!fp) return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, fp) && n < cap) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\n")] = 0;
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t1 || !t2) continue;
        *t1 = *t2 = 0;
        snprintf(c[n].file, sizeof c[n].file, "%.95s", line);
        snprintf(c[n].status, sizeof c[n].status, "%.15s", t1 + 1);
        snprintf(c[n].frag, sizeof c[n].frag, "%.255s", t2 + 1);
        n++;
    }
    fclose(fp);
    return n;
}

static ug_status status_from_name(const char *s) {
    return strcmp(s, "OK") == 0            ? UG_OK
           : strcmp(s, "FORMAT") == 0      ? UG_ERR_FORMAT
           : strcmp(s, "UNSUPPORTED") == 0 ? UG_ERR_UNSUPPORTED
           : strcmp(s, "IO") == 0          ? UG_ERR_IO
                                           : UG_STATUS_COUNT;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* ckpt_* files load into the one-parameter model {"w": (1,)}: weights only, since the corpus
 * checkpoints hold no EMA or optimizer state. */
static ug_status load_ckpt(const char *path) {
    ug_params *ps;
    if (ug_params_create(&ps)) return UG_STATUS_COUNT;
    ug_status st = UG_STATUS_COUNT;
    int64_t step = -1;
    if (ug_params_add(ps, "w", 1, (int64_t[]){1}) && !ug_params_finalize(ps)) {
        st = ug_ckpt_load(path, ps, NULL, NULL, &step);
        if (st == UG_OK && step != 3) st = UG_STATUS_COUNT;   /* the step metadata is read */
    }
    ug_params_free(ps);
    return st;
}

static ug_status open_any(const char *path) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (strstr(base, "ckpt_")) return load_ckpt(path);
    if (ends_with(path, ".idx") || ends_with(path, ".idx.gz")) {
        ug_idx f;
        ug_status st = ug_idx_read(path, &f);
        if (st == UG_OK) ug_idx_free(&f);
        else if (f.data) return UG_STATUS_COUNT;
        return st;
    }
    if (ends_with(path, ".png")) {
        uint8_t *pix = NULL;
        int w, h, c;
        ug_status st = ug_png_read(path, &pix, &w, &h, &c);
        if (st != UG_OK && pix) return UG_STATUS_COUNT;
        free(pix);
        return st;
    }
    if (ends_with(path, ".json")) {
        ug_gmm g;
        ug_status st = ug_gmm_load(path, &g);
        if (st != UG_OK && g.w) return UG_STATUS_COUNT;
        ug_gmm_free(&g);
        return st;
    }
    if (ends_with(path, ".npy")) {
        ug_npy_array a;
        ug_status st = ug_npy_read(path, &a);
        if (st == UG_OK) {
            /* A successful read must hold numel converted values. */
            float *tmp = malloc((size_t)(a.numel ? a.numel : 1) * sizeof *tmp);
            ug_npy_to_f32(&a, tmp);
            free(tmp);
            ug_npy_free(&a);
        } else if (a.data || a.numel) {
            ug_npy_free(&a);
            return UG_STATUS_COUNT;   /* failure must leave *out empty */
        }
        return st;
    }
    ug_st_file *f = NULL;
    ug_status st = ug_st_open(path, &f);
    if (st == UG_OK) {
        for (int i = 0; i < ug_st_count(f); i++) {
            const char *nm = ug_st_name(f, i);
            int64_t n = ug_st_numel(f, nm);
            float *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
            st = ug_st_read_f32(f, nm, tmp, n);
            free(tmp);
            if (st != UG_OK) break;
        }
        ug_st_close(f);
    } else if (f) {
        return UG_STATUS_COUNT;
    }
    return st;
}

TEST(io_malformed_corpus_refused_with_messages) {
    static mcase cases[MAX_CASES];
    int n = load_manifest(cases, MAX_CASES);
    ASSERT(n > 0, "cannot read malformed/MANIFEST (run python3 tests/malformed/gen.py)");
    int bad = 0, good = 0;
    for (int i = 0; i < n; i++) {
        const mcase *c = &cases[i];
        char path[128];
        snprintf(path, sizeof path, "malformed/%.95s", c->file);
        ug_status want = status_from_name(c->status);
        EXPECT(want != UG_STATUS_COUNT, "%s: bad status '%s' in MANIFEST", c->file, c->status);
        ug_status got = open_any(path);
        const char *msg = ug_last_error();
        if (want == UG_OK) {
            good++;
            EXPECT(got == UG_OK, "%s: expected to open, got %s: %s", path, ug_status_str(got), msg);
            continue;
        }
        bad++;
        EXPECT(got == want, "%s: expected status %s, got %s (%s)", path, ug_status_str(want),
               ug_status_str(got), msg);
        EXPECT(strstr(msg, path) != NULL, "%s: message does not name the file: %s", path, msg);
        EXPECT(strstr(msg, c->frag) != NULL, "%s: message lacks \"%s\": %s", path, c->frag, msg);
    }
    EXPECT(bad >= 30, "only %d malformed cases", bad);

    /* A directory opens with fopen on Linux: it must still be refused as I/O, not allocated. */
    EXPECT(open_any("malformed") == UG_ERR_IO && strstr(ug_last_error(), "directory"),
           "directory: %s", ug_last_error());
    EXPECT(open_any("malformed/..npy") == UG_ERR_IO, "missing .npy: %s", ug_last_error());
    EXPECT(good >= 4, "only %d well-formed controls", good);

    /* Every corpus file is in the manifest: a file gen.py wrote but forgot to list is a bug. */
    DIR *d = opendir("malformed");
    ASSERT(d, "cannot list tests/malformed");
    struct dirent *de;
    while ((de = readdir(d))) {
        static const char *const kinds[] = {".npy", ".safetensors", ".idx", ".idx.gz", ".png",
                                            ".json"};
        int kind = 0;
        for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) kind |= ends_with(de->d_name, kinds[k]);
        if (!kind) continue;
        int listed = 0;
        for (int i = 0; i < n && !listed; i++) listed = strcmp(cases[i].file, de->d_name) == 0;
        EXPECT(listed, "malformed/%s is not in MANIFEST", de->d_name);
    }
    closedir(d);
}

/* Every prefix of a valid file is refused cleanly, never read out of bounds. */
TEST(io_truncated_prefixes_refused) {
    const char *srcs[] = {"malformed/ok_st_zero_size.safetensors", "malformed/ok_npy_u1.npy",
                          "malformed/ok_npy_v2.npy"};
    for (size_t s = 0; s < sizeof srcs / sizeof *srcs; s++) {
        unsigned char *buf;
        size_t size;
        ASSERT_OK(ug_file_read_all(srcs[s], &buf, &size));
        char tmp[64];
        snprintf(tmp, sizeof tmp, "/tmp/ug_io_trunc_%d%s", (int)getpid(),
                 ends_with(srcs[s], ".npy") ? ".npy" : ".safetensors");
        for (size_t k = 0; k < size; k++) {
            FILE *fp = fopen(tmp, "wb");
            ASSERT(fp, "cannot write %s", tmp);
            fwrite(buf, 1, k, fp);
            fclose(fp);
            ug_status st = open_any(tmp);
            EXPECT(st == UG_ERR_FORMAT, "%s cut to %zu bytes: expected FORMAT, got %s (%s)",
                   srcs[s], k, ug_status_str(st), ug_last_error());
        }
        remove(tmp);
        free(buf);
    }
}

/* Every byte of every well-formed control replaced by a few troublesome values: the readers may
 * accept or refuse, but only with FORMAT / UNSUPPORTED (never IO, never a crash; under
 * AddressSanitizer never an out-of-bounds read or a leak). */
TEST(io_byte_mutations_never_crash) {
    const char *srcs[] = {"malformed/ok_st_zero_size.safetensors",
                          "malformed/ok_st_unordered.safetensors", "malformed/ok_npy_u1.npy",
                          "malformed/ok_npy_v2.npy"};
    const unsigned char subst[] = {0x00, 0xff, '9', ' ', '"', ']'};
    int refused = 0, runs = 0;
    for (size_t s = 0; s < sizeof srcs / sizeof *srcs; s++) {
        unsigned char *buf;
        size_t size;
        ASSERT_OK(ug_file_read_all(srcs[s], &buf, &size));
        char tmp[64];
        snprintf(tmp, sizeof tmp, "/tmp/ug_io_mut_%d%s", (int)getpid(),
                 ends_with(srcs[s], ".npy") ? ".npy" : ".safetensors");
        for (size_t k = 0; k < size; k++)
            for (size_t v = 0; v < sizeof subst; v++) {
                if (buf[k] == subst[v]) continue;
                unsigned char keep = buf[k];
                buf[k] = subst[v];
                FILE *fp = fopen(tmp, "wb");
                ASSERT(fp, "cannot write %s", tmp);
                fwrite(buf, 1, size, fp);
                fclose(fp);
                buf[k] = keep;
                ug_status st = open_any(tmp);
                runs++;
                refused += st != UG_OK;
                EXPECT(st == UG_OK || st == UG_ERR_FORMAT || st == UG_ERR_UNSUPPORTED,
                       "%s byte %zu -> 0x%02x: status %s (%s)", srcs[s], k, subst[v],
                       ug_status_str(st), ug_last_error());
            }
        remove(tmp);
        free(buf);
    }
    EXPECT(refused > runs / 4, "only %d of %d mutations refused", refused, runs);
}
