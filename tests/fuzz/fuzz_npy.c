/* fuzz_npy.c — libFuzzer harness of the NumPy .npy reader (src/io/npy.c): ug_npy_read on the
 * input, then both conversions of an accepted array, which touch every data byte. */
#include "unigen.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ug_npy_array a;
    if (ug_npy_read(fuzz_file(0, data, size), &a) != UG_OK) {
        FUZZ_CHECK(a.data == NULL && a.numel == 0);   /* a failure leaves *out empty */
        return 0;
    }
    int64_t prod = 1;
    for (int k = 0; k < a.ndim; k++) prod *= a.shape[k];
    FUZZ_CHECK(a.ndim >= 0 && a.ndim <= UG_MAX_DIMS && prod == a.numel);
    FUZZ_CHECK((size_t)a.numel * ug_dtype_size(a.dtype) <= size);
    float *f32 = malloc((size_t)(a.numel ? a.numel : 1) * sizeof *f32);
    double *f64 = malloc((size_t)(a.numel ? a.numel : 1) * sizeof *f64);
    FUZZ_CHECK(f32 && f64);
    ug_npy_to_f32(&a, f32);
    ug_npy_to_f64(&a, f64);
    free(f32);
    free(f64);
    ug_npy_free(&a);
    return 0;
}
