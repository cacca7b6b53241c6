/* What the model-level bench commands (`fewcl bench --model`, `--conv`) share: the model flags
 * checked, the device opened, the model created on it and one pattern episode uploaded
 * (developer tools: they use the library's internals). */
#ifndef FEWCL_BENCH_SESSION_H
#define FEWCL_BENCH_SESSION_H

#include "api/api.h"

typedef struct bench_session {
    fewcl_context *ctx;
    fcl_model_config cfg;
    fcl_model *m;
    fcl_tensor x; /* one episode of cfg's shape, filled with a fixed pattern */
} bench_session;

/* Checks the flags (extra_args: arguments left after the options), opens the device, creates
 * the model and the episode. Returns 0, or the exit code after printing why. */
int bench_session_open(const fewcl_model_config *flags, int extra_args, const char *device,
                       bench_session *b);

/* Frees what open made; returns the command's exit code for status s (printing its error). */
int bench_session_close(bench_session *b, fewcl_status s);

#endif
