/* `fewcl episode`: one episode from tensors in a safetensors file through the model with given
 * weights — the interface for checking fewcl against PyTorch (docs/spec.md §7). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli.h"
#include "model_flags.h"
#include "nn/model.h"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: fewcl episode --weights W | --backbone-weights B [--backbone-prefix P]\n"
        "                     --input X --out O [--train] [--device D] [--json] [model flags]\n\n"
        "Runs one episode: X holds `x` [n, k+q, 3, S, S] (float32; n, k+q and S come from it,\n"
        "k from --k-shot); W the model's parameters under their PyTorch names (missing ones\n"
        "are an error, others are ignored). B: the backbone alone, e.g. a torchvision\n"
        "resnet18/34 state_dict saved as safetensors, key P+K for the model's feature.K (fc.*\n"
        "and other keys ignored); applied after W; without W the head keeps its seeded\n"
        "initial values. Writes to O: features (after the projection), logits, and with\n"
        "--train (training mode, one backward) loss, loss_ce, loss_var, loss_cov,\n"
        "grad.<parameter> for every trainable parameter and running.<buffer>.\n");
    fewcl_model_config d = model_config_default();
    model_flags_help(f, &d, NULL);
}

/* Where the weights come from: a whole-model file and/or a backbone state_dict. */
typedef struct weight_files {
    const char *model, *backbone, *backbone_prefix;
} weight_files;

static fewcl_status run(fewcl_context *ctx, fcl_model_config *cfg, fcl_safetensors *input,
                        const weight_files *weights, const char *out_path, int train,
                        cJSON *summary) {
    const float *xdata;
    size_t numel;
    FCL_TRY(fcl_st_f32(input, "x", 0, NULL, &xdata, &numel));
    fcl_model *m;
    FCL_TRY(fcl_model_create(ctx, cfg, 1, &m));
    fcl_safetensors *wst = NULL;
    fcl_tensor x = {0};
    fcl_head_out out;
    fcl_st_writer *w = fcl_st_writer_new();
    int shape[4] = {cfg->n_way * (cfg->k_shot + cfg->n_query), 3, cfg->image_size, cfg->image_size};
    fewcl_status s = w ? FEWCL_OK : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "episode");
    if (s == FEWCL_OK && weights->model) s = fcl_st_load(weights->model, &wst);
    if (s == FEWCL_OK && wst) s = fcl_params_load(ctx, &m->params, wst, "", FCL_LOAD_COMPLETE);
    if (s == FEWCL_OK && weights->backbone)
        s = fcl_model_load_backbone(ctx, m, weights->backbone, weights->backbone_prefix);
    if (s == FEWCL_OK) s = fcl_tensor_alloc(ctx, &x, FCL_MEM_ACTIVATION, 4, shape);
    if (s == FEWCL_OK) s = fcl_tensor_upload(ctx, &x, xdata);
    if (s == FEWCL_OK) s = fcl_model_forward(ctx, m, &x, train, &out);
    if (s == FEWCL_OK) s = fcl_st_writer_add_tensor(ctx, w, "features", out.features);
    if (s == FEWCL_OK) s = fcl_st_writer_add_tensor(ctx, w, "logits", out.logits);
    if (s == FEWCL_OK && train) {
        const char *names[] = {"loss", "loss_ce", "loss_var", "loss_cov"};
        const fcl_tensor *parts[] = {out.loss, out.loss_ce, out.loss_var, out.loss_cov};
        for (int i = 0; i < 4 && s == FEWCL_OK; i++) {
            if (!parts[i]) continue;
            s = fcl_st_writer_add_tensor(ctx, w, names[i], parts[i]);
            float v = 0;
            if (s == FEWCL_OK) s = fcl_tensor_download(ctx, parts[i], &v);
            cJSON_AddNumberToObject(summary, names[i], v);
        }
        if (s == FEWCL_OK) s = fcl_params_zero_grad(ctx, &m->params);
        if (s == FEWCL_OK) s = fcl_model_backward(ctx, m);
        for (int i = 0; i < m->params.n && s == FEWCL_OK; i++) {
            fcl_param *p = &m->params.items[i];
            char key[160];
            snprintf(key, sizeof key, "%s.%s", p->is_buffer ? "running" : "grad", p->name);
            if (p->trainable)
                s = fcl_st_writer_add_tensor(ctx, w, key, &p->grad);
            else if (p->is_buffer)
                s = fcl_st_writer_add_tensor(ctx, w, key, &p->value);
        }
    } else if (s == FEWCL_OK) {
        fcl_model_release(ctx, m);
    }
    if (s == FEWCL_OK) s = fcl_st_writer_save(w, out_path);
    cJSON_AddStringToObject(summary, "out", out_path);
    if (x.numel) fcl_tensor_free(ctx, &x);
    fcl_st_writer_free(w);
    fcl_st_free(wst);
    fcl_model_destroy(ctx, m);
    return s;
}

int cmd_episode(int argc, char **argv) {
    static const struct option opts[] = {{"weights", required_argument, 0, 'w'},
                                         {"input", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         {"backbone-weights", required_argument, 0, 'b'},
                                         {"backbone-prefix", required_argument, 0, 'p'},
                                         {"train", no_argument, 0, 't'},
                                         {"device", required_argument, 0, 'd'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         MODEL_FLAG_OPTIONS,
                                         {0, 0, 0, 0}};
    weight_files weights = {NULL, NULL, ""};
    const char *input = NULL, *out = NULL, *device = NULL;
    int train = 0, json = 0, c;
    fewcl_model_config flags = model_config_default();
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        int r = model_flag(c, optarg, &flags, "episode");
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'w': weights.model = optarg; break;
        case 'b': weights.backbone = optarg; break;
        case 'p': weights.backbone_prefix = optarg; break;
        case 'i': input = optarg; break;
        case 'o': out = optarg; break;
        case 't': train = 1; break;
        case 'd': device = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("episode", c, argv, opts);
        }
    }
    fcl_model_config cfg = api_config_in(&flags); /* the library's own type */
    if (!(weights.model || weights.backbone) || !input || !out || optind < argc) {
        fprintf(stderr, "fewcl episode: --weights (or --backbone-weights), --input and --out are "
                        "required\nsee `fewcl episode --help`\n");
        return EXIT_USAGE;
    }
    fcl_safetensors *in;
    fewcl_status s = fcl_st_load(input, &in);
    if (s != FEWCL_OK) return cli_fail("episode", s);
    const fcl_st_tensor *x = fcl_st_find(in, "x");
    if (!x || x->ndim != 5 || x->shape[2] != 3 || x->shape[3] != x->shape[4]) {
        fprintf(stderr, "fewcl episode: %s needs a tensor 'x' of shape [n, k+q, 3, S, S]\n", input);
        fcl_st_free(in);
        return EXIT_USAGE;
    }
    cfg.n_way = (int)x->shape[0];
    cfg.n_query = (int)x->shape[1] - cfg.k_shot;
    cfg.image_size = (int)x->shape[3];
    if (cfg.n_query < 1 || fcl_config_validate(&cfg) != FEWCL_OK) {
        fprintf(stderr, "fewcl episode: %s: %s\n", input,
                cfg.n_query < 1 ? "k+q (x's second axis) must exceed --k-shot"
                                : fewcl_last_error());
        fcl_st_free(in);
        return EXIT_USAGE;
    }
    fewcl_context *ctx;
    s = fewcl_context_create(device, &ctx);
    cJSON *summary = cJSON_CreateObject();
    if (s == FEWCL_OK) s = run(ctx, &cfg, in, &weights, out, train, summary);
    fcl_st_free(in);
    fewcl_context_destroy(ctx);
    int rc = s == FEWCL_OK ? 0 : cli_fail("episode", s);
    if (rc == 0 && json) {
        char *text = cJSON_Print(summary);
        if (text) puts(text);
        free(text);
    } else if (rc == 0) {
        printf("wrote %s\n", out);
    }
    cJSON_Delete(summary);
    return rc;
}
