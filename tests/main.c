/* main.c — the test runner. `test_unigen [substring...]` runs matching tests; it ends with the
 * line "N passed, N failed" and exits non-zero when any test failed. */
#include "test.h"
#include <setjmp.h>
#include <stdarg.h>
#include <time.h>

typedef struct { const char *name, *file; ug_test_fn fn; } test_entry;
static test_entry *g_tests;
static int g_ntests, g_cap;
static int g_cur_failed;
static jmp_buf g_jmp;

void ug_test_register(const char *name, const char *file, ug_test_fn fn) {
    if (g_ntests == g_cap) {
        g_cap = g_cap ? 2 * g_cap : 128;
        g_tests = realloc(g_tests, (size_t)g_cap * sizeof *g_tests);
        if (!g_tests) abort();
    }
    g_tests[g_ntests++] = (test_entry){name, file, fn};
}

void ug_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "    %s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    g_cur_failed = 1;
}

void ug_test_abort(void) { longjmp(g_jmp, 1); }

static int cmp_tests(const void *a, const void *b) {
    const test_entry *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv) {
    qsort(g_tests, (size_t)g_ntests, sizeof *g_tests, cmp_tests);
    ug_set_threads(0);
    int passed = 0, failed = 0;
    double t_all = ug_test_now_s();
    for (int i = 0; i < g_ntests; i++) {
        int match = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strstr(g_tests[i].name, argv[a]) || strstr(g_tests[i].file, argv[a])) match = 1;
        if (!match) continue;
        g_cur_failed = 0;
        double t0 = ug_test_now_s();
        if (setjmp(g_jmp) == 0) g_tests[i].fn();
        double dt = ug_test_now_s() - t0;
        if (g_cur_failed) {
            failed++;
            printf("FAIL %s (%s)\n", g_tests[i].name, g_tests[i].file);
        } else {
            passed++;
            printf("ok   %-44s %8.3f s\n", g_tests[i].name, dt);
        }
        fflush(stdout);
    }
    printf("# %.1f s in all, %d threads\n", ug_test_now_s() - t_all, ug_get_threads());
    printf("%d passed, %d failed\n", passed, failed);
    free(g_tests);
    return failed ? 1 : 0;
}
