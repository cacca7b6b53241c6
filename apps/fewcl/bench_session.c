/* The model, device and episode the model-level bench commands share (see bench_session.h). */
#include "bench_session.h"

#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static fewcl_status pattern_episode(bench_session *b) {
    const fcl_model_config *c = &b->cfg;
    int shape[4] = {c->n_way * (c->k_shot + c->n_query), 3, c->image_size, c->image_size};
    FCL_TRY(fcl_tensor_alloc(b->ctx, &b->x, FCL_MEM_ACTIVATION, 4, shape));
    float *host = malloc(b->x.numel * sizeof *host);
    if (!host) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "episode");
    for (size_t i = 0; i < b->x.numel; i++)
        host[i] = fcl_pattern_value(7, i, 1.0f);
    fewcl_status s = fcl_tensor_upload(b->ctx, &b->x, host);
    free(host);
    return s;
}

int bench_session_open(const fewcl_model_config *flags, int extra_args, const char *device,
                       bench_session *b) {
    *b = (bench_session){.cfg = api_config_in(flags)}; /* the library's own type */
    if (extra_args || fcl_config_validate(&b->cfg) != FEWCL_OK) {
        fprintf(stderr, "fewcl bench: %s\n",
                extra_args ? "unexpected argument" : fewcl_last_error());
        return EXIT_USAGE;
    }
    int rc = cli_open_device("bench", device, &b->ctx);
    if (rc) return rc;
    fewcl_status s = fcl_model_create(b->ctx, &b->cfg, 1, &b->m);
    if (s == FEWCL_OK) s = pattern_episode(b);
    return s == FEWCL_OK ? 0 : bench_session_close(b, s);
}

int bench_session_close(bench_session *b, fewcl_status s) {
    if (b->x.numel) fcl_tensor_free(b->ctx, &b->x);
    fcl_model_destroy(b->ctx, b->m);
    int rc = s == FEWCL_OK ? 0 : cli_fail("bench", s);
    fewcl_context_destroy(b->ctx);
    *b = (bench_session){0};
    return rc;
}
