/* status.c — status strings, the thread-local last error, logging callback, version. */
#include "core.h"

static _Thread_local char g_err[1024];
static ug_log_fn g_log_fn;
static void *g_log_user;

static const char *const k_status_str[UG_STATUS_COUNT] = {
    [UG_OK] = "ok",
    [UG_ERR_INVALID_ARG] = "invalid argument",
    [UG_ERR_SHAPE] = "shape mismatch",
    [UG_ERR_NOMEM] = "out of memory",
    [UG_ERR_IO] = "i/o error",
    [UG_ERR_FORMAT] = "malformed input",
    [UG_ERR_UNSUPPORTED] = "unsupported",
    [UG_ERR_NUMERIC] = "non-finite number",
    [UG_ERR_STATE] = "call out of order",
};

const char *ug_status_str(ug_status s) {
    if ((unsigned)s >= UG_STATUS_COUNT) return "unknown status";
    return k_status_str[s];
}

const char *ug_last_error(void) { return g_err; }
const char *ug_version(void) { return UG_VERSION_STRING; }
void ug_clear_error(void) { g_err[0] = 0; }

ug_status ug_fail(ug_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return s;
}

void ug_set_log(ug_log_fn fn, void *user) { g_log_fn = fn; g_log_user = user; }

void ug_log_msg(ug_log_level level, const char *fmt, ...) {
    if (!g_log_fn) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_log_fn(level, buf, g_log_user);
}

void ug_check_failed(const char *file, int line, const char *fmt, ...) {
    /* The one place the library stops the process: an internal invariant is broken. */
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "unigen: internal check failed at %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
