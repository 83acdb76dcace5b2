/* fuzz_safetensors.c — libFuzzer harness of the safetensors reader (src/io/safetensors.c):
 * ug_st_open on the input, then every accessor on every tensor and metadata key of a file it
 * accepts, so out-of-bounds offsets, bad lookups and leaks surface under ASan/UBSan. */
#include "unigen.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ug_st_file *f = NULL;
    if (ug_st_open(fuzz_file(0, data, size), &f) != UG_OK) {
        FUZZ_CHECK(f == NULL);
        return 0;
    }
    for (int i = 0; i < ug_st_count(f); i++) {
        const char *name = ug_st_name(f, i);
        FUZZ_CHECK(name && ug_st_find(f, name) == i);
        ug_dtype dt;
        int ndim = 0;
        int64_t shape[UG_MAX_DIMS];
        int64_t numel = ug_st_numel(f, name);
        FUZZ_CHECK(numel >= 0);
        FUZZ_CHECK(ug_st_info(f, name, &dt, &ndim, NULL) == UG_OK);
        if (ndim <= UG_MAX_DIMS) {
            FUZZ_CHECK(ug_st_info(f, name, &dt, &ndim, shape) == UG_OK);
            int64_t prod = 1;
            for (int k = 0; k < ndim; k++) prod *= shape[k];
            FUZZ_CHECK(prod == numel);
        }
        const void *raw;
        size_t nbytes = 0;
        FUZZ_CHECK(ug_st_raw(f, name, &raw, &nbytes) == UG_OK);
        FUZZ_CHECK(nbytes == (size_t)numel * ug_dtype_size(dt) && nbytes <= size);
        float *f32 = malloc((size_t)(numel ? numel : 1) * sizeof *f32);
        double *f64 = malloc((size_t)(numel ? numel : 1) * sizeof *f64);
        FUZZ_CHECK(f32 && f64);
        FUZZ_CHECK(ug_st_read_f32(f, name, f32, numel) == UG_OK);
        FUZZ_CHECK(ug_st_read_f64(f, name, f64, numel) == UG_OK);
        FUZZ_CHECK(ug_st_read_f32(f, name, f32, numel + 1) != UG_OK);
        free(f32);
        free(f64);
    }
    FUZZ_CHECK(ug_st_name(f, ug_st_count(f)) == NULL);
    for (int i = 0; i < ug_st_meta_count(f); i++) {
        const char *key = ug_st_meta_key(f, i);
        FUZZ_CHECK(key && ug_st_meta(f, key));
    }
    ug_st_close(f);
    return 0;
}
