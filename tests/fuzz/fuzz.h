/* fuzz.h — what every libFuzzer harness of tests/fuzz/ shares (see scripts/fuzz.sh).
 *
 * The readers under test take a path, not a buffer, so each input is written to an anonymous
 * in-memory file (memfd_create) and handed over as /proc/self/fd/N: the library runs exactly
 * as it does on a real file (fopen, fstat, gzopen, fseek), with no disk I/O and no library
 * change. A harness keeps one such file per slot for the whole run and rewrites it per input.
 * FUZZ_CHECK states an invariant of a successful parse; a broken one aborts, which libFuzzer
 * reports as a crash with the input that caused it. */
#ifndef UG_FUZZ_H
#define UG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz invariant broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* Writes n bytes into the in-memory file of the given slot (0..3) and returns its path. */
static inline const char *fuzz_file(int slot, const void *data, size_t n) {
    static int fd[4] = {-1, -1, -1, -1};
    static char path[4][48];
    if (fd[slot] < 0) {
        fd[slot] = memfd_create("ug_fuzz", 0);
        if (fd[slot] < 0) { perror("memfd_create"); abort(); }
        snprintf(path[slot], sizeof path[slot], "/proc/self/fd/%d", fd[slot]);
    }
    if (ftruncate(fd[slot], 0) != 0) { perror("ftruncate"); abort(); }
    const unsigned char *p = data;
    size_t done = 0;
    while (done < n) {
        ssize_t k = pwrite(fd[slot], p + done, n - done, (off_t)done);
        if (k <= 0) { perror("pwrite"); abort(); }
        done += (size_t)k;
    }
    return path[slot];
}

/* A NUL-terminated malloc'd copy of the input, for parsers of C strings. */
static inline char *fuzz_cstr(const uint8_t *data, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, data, n);
    s[n] = 0;
    return s;
}

#endif
