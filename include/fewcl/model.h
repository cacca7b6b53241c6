/* fewcl public API: models, images, embeddings, enrolment and classification.
 * Included by fewcl/fewcl.h; the conventions (status, ownership, threads, struct_size) are
 * stated there.
 *
 * Images enter as float32 NCHW arrays [count, 3, S, S] already normalised as the model was
 * trained (ImageNet mean/std), S = the model's image_size; fewcl_image_load and
 * fewcl_image_prepare_rgb8 make them from files or 8-bit RGB pixels with the reference
 * evaluation transform (Resize of the shorter side to S, CenterCrop S, Normalize).
 *
 * Typical use: load a checkpoint, enroll a support set once, classify queries.
 *
 *     fewcl_model *m;      fewcl_model_load(ctx, "best.safetensors", NULL, &m);
 *     fewcl_enrollment *e; fewcl_enroll(m, &supports, counts, n_classes, &e);
 *     fewcl_classify(e, &queries, NULL, probabilities, labels);
 *     fewcl_enrollment_destroy(e); fewcl_model_destroy(m);
 */
/* fewcl.h first, outside the guard: it includes this header back, after its own part. */
#include "fewcl/fewcl.h"

#ifndef FEWCL_MODEL_H
#define FEWCL_MODEL_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---- configuration --------------------------------------------------------------------- */

typedef enum { FEWCL_CONV4, FEWCL_CONV6, FEWCL_RESNET18, FEWCL_RESNET34 } fewcl_backbone;
typedef enum { FEWCL_METHOD_ENHANCED, FEWCL_METHOD_FSCT } fewcl_method;
typedef enum { FEWCL_VARIANT_COSINE, FEWCL_VARIANT_SOFTMAX } fewcl_variant;
typedef enum { FEWCL_MAHA_AUTO, FEWCL_MAHA_DENSE, FEWCL_MAHA_LOWRANK } fewcl_mahalanobis;
typedef enum {
    FEWCL_CKPT_NONE,
    FEWCL_CKPT_BLOCKS,
    FEWCL_CKPT_BACKBONE,
    FEWCL_CKPT_ALL
} fewcl_checkpointing;

/* A model's configuration: the command line's model flags (`fewcl train --help`). */
typedef struct fewcl_model_config {
    size_t struct_size; /* sizeof(fewcl_model_config), set by fewcl_model_config_default */
    fewcl_backbone backbone;
    int image_size; /* S: images are [3, S, S] */
    fewcl_method method;
    fewcl_variant variant;
    int n_way, k_shot, n_query; /* the training episode's shape */
    int reduced_dim;            /* projection size D′ (0: none) */
    int depth, heads, dim_head, mlp_dim;
    fewcl_mahalanobis mahalanobis;
    int vic;
    fewcl_checkpointing checkpointing;
    int freeze_backbone;
    int bn_batch_stats_at_test;
} fewcl_model_config;

/* The defaults (conv4 at 84, enhanced cosine, 5-way 5-shot 16-query, reduced_dim 512, depth 2,
 * 4 heads of 64, mlp 512, Mahalanobis auto, VIC on) into the first struct_size bytes of *cfg;
 * cfg->struct_size = struct_size. Any thread. */
FEWCL_API fewcl_status fewcl_model_config_default(fewcl_model_config *cfg, size_t struct_size);
/* Sets the method and that method's default depth and heads (fsct: 1 and 8). */
FEWCL_API fewcl_status fewcl_model_config_set_method(fewcl_model_config *cfg, fewcl_method m);
/* Checks every field; the message names the one at fault. Any thread. */
FEWCL_API fewcl_status fewcl_model_config_validate(const fewcl_model_config *cfg);

/* The settings' names, as the command line spells them (API 2). */
typedef enum fewcl_setting {
    FEWCL_SETTING_BACKBONE,      /* fewcl_backbone: conv4, conv6, resnet18, resnet34 */
    FEWCL_SETTING_METHOD,        /* fewcl_method: enhanced, fsct */
    FEWCL_SETTING_VARIANT,       /* fewcl_variant: cosine, softmax */
    FEWCL_SETTING_MAHALANOBIS,   /* fewcl_mahalanobis: auto, dense, lowrank */
    FEWCL_SETTING_CHECKPOINTING, /* fewcl_checkpointing: none, blocks, backbone, all */
    FEWCL_SETTING_LR_SCHEDULE    /* fewcl_train_params.cosine_lr: constant (0), cosine (1) */
} fewcl_setting;

/* The name of `value` of setting `s` ("resnet18"), a static string; NULL when either is out of
 * range. Any thread. */
FEWCL_API const char *fewcl_setting_name(fewcl_setting s, int value);
/* The value whose name is `name` (exactly as fewcl_setting_name spells it) into *value;
 * FEWCL_ERR_ARGUMENT listing the names otherwise (*value untouched). Any thread. */
FEWCL_API fewcl_status fewcl_setting_parse(fewcl_setting s, const char *name, int *value);
/* The sizes a config gives (API 2): D, the backbone's feature size (channels·height·width),
 * and D′, the embedding size (the enhanced head's projection when active, else D); either
 * pointer may be NULL. An image too small for the backbone is FEWCL_ERR_ARGUMENT. Any
 * thread. */
FEWCL_API fewcl_status fewcl_model_config_dims(const fewcl_model_config *cfg, int *feature_dim,
                                               int *embedding_dim);
/* The differences between two configs that change the parameters' shapes or meaning (not
 * the episode shape, Mahalanobis path, checkpointing or BatchNorm-at-test), as "--flag a vs b"
 * items, comma-separated, into buf (cap bytes, truncated to fit); *count (may be NULL) gets
 * how many. Any thread. (API 2) */
FEWCL_API fewcl_status fewcl_model_config_diff(const fewcl_model_config *a,
                                               const fewcl_model_config *b, char *buf, size_t cap,
                                               int *count);
/* The config a weights file stores (a fewcl checkpoint's metadata) into the first
 * cfg->struct_size bytes of *cfg (set struct_size first); *found = 0, cfg untouched, for
 * weights without one (exported from PyTorch). Reads the file's header and metadata only.
 * Any thread. (API 2) */
FEWCL_API fewcl_status fewcl_model_read_config(const char *path, fewcl_model_config *cfg,
                                               int *found);

/* ---- models ---------------------------------------------------------------------------- */

typedef struct fewcl_model fewcl_model;

/* A new model with parameters initialised from `seed` (the reference's initialisation). */
FEWCL_API fewcl_status fewcl_model_create(fewcl_context *ctx, const fewcl_model_config *cfg,
                                          uint64_t seed, fewcl_model **out);
/* Loads weights: a fewcl checkpoint gives its architecture and training episode shape from its
 * metadata (cfg may be NULL; when given, only its mahalanobis, checkpointing and
 * bn_batch_stats_at_test are used); weights without metadata (exported from PyTorch) need
 * cfg, which then describes them whole. Missing or mis-shaped tensors are FEWCL_ERR_FORMAT
 * naming them and the file. */
FEWCL_API fewcl_status fewcl_model_load(fewcl_context *ctx, const char *path,
                                        const fewcl_model_config *cfg, fewcl_model **out);
/* Loads weights for episodes of another shape (API 2): as fewcl_model_load, but the model
 * runs cfg's n_way × k_shot × n_query (required), as `fewcl test --k-shot` does. A fewcl
 * checkpoint's architecture still comes from its metadata (cfg's mahalanobis, checkpointing
 * and bn_batch_stats_at_test are used); weights without metadata are described by cfg whole.
 * When the file's learned prototype weights have another shape, the shots are weighted
 * uniformly and *uniform_weights (may be NULL) is 1, else 0. fewcl_model_get_config then
 * gives the config the model runs. Ownership and lifetime as fewcl_model_load. */
FEWCL_API fewcl_status fewcl_model_load_as(fewcl_context *ctx, const char *path,
                                           const fewcl_model_config *cfg, fewcl_model **out,
                                           int *uniform_weights);
/* Replaces the backbone's weights with those of a safetensors file in the backbone's own
 * layout (a torchvision resnet18/34 state_dict: prefix ""); other keys are ignored. On error
 * nothing is changed. */
FEWCL_API fewcl_status fewcl_model_load_backbone(fewcl_model *m, const char *path,
                                                 const char *prefix);
/* Writes the weights and config (a fewcl checkpoint without optimiser state), atomically. */
FEWCL_API fewcl_status fewcl_model_save(fewcl_model *m, const char *path);
/* The model's configuration into the first cfg->struct_size bytes of *cfg (set struct_size,
 * e.g. with fewcl_model_config_default, first). */
FEWCL_API fewcl_status fewcl_model_get_config(const fewcl_model *m, fewcl_model_config *cfg);
/* Size of one embedding (D′: the projection's size, or the backbone's feature size). */
FEWCL_API int fewcl_model_embedding_dim(const fewcl_model *m);
/* Frees the model and its device memory. Destroy its enrolments first. */
FEWCL_API void fewcl_model_destroy(fewcl_model *m);

/* ---- images ---------------------------------------------------------------------------- */

/* Decodes a JPEG, PNG or BMP file (grey or RGB) and applies the evaluation transform:
 * chw receives 3·size·size floats. Any thread. */
FEWCL_API fewcl_status fewcl_image_load(const char *path, int size, float *chw);
/* The width and height in pixels of a JPEG, PNG or BMP file (API 2). Any thread. */
FEWCL_API fewcl_status fewcl_image_dimensions(const char *path, int *width, int *height);
/* fewcl_image_load for 8-bit RGB pixels: height rows of `width` RGB triples, `stride` bytes
 * apart (0: 3·width). Any thread. */
FEWCL_API fewcl_status fewcl_image_prepare_rgb8(const uint8_t *rgb, int width, int height,
                                                size_t stride, int size, float *chw);

/* ---- inference (evaluation mode) --------------------------------------------------------- */

/* A batch of images in host memory: data holds count × channels × height × width floats,
 * NCHW. For a model: channels 3 and height = width = its image_size, else FEWCL_ERR_ARGUMENT
 * naming the sizes. (A plain descriptor, fixed for this API version.) */
typedef struct fewcl_images {
    const float *data;
    int count, channels, height, width;
} fewcl_images;

/* Embeddings [images->count, D′] (after the projection; D′ = fewcl_model_embedding_dim; fsct,
 * which has none: the backbone's features). An
 * image's embedding does not depend on the others in the batch, up to the last bits (GEMM
 * rows may round differently with the number of rows). */
FEWCL_API fewcl_status fewcl_embed(fewcl_model *m, const fewcl_images *images, float *embeddings);

typedef struct fewcl_enrollment fewcl_enrollment;

/* Enrolls a support set: the images class by class, counts[c] of class c (c = 0 …
 * n_classes−1, Σ counts = supports->count). Prototypes and the Mahalanobis factors stay on the
 * device in the enrolment until fewcl_enrollment_destroy. Every class needs at least one
 * image and, the classifier working on [classes, shots] blocks, the same number of images.
 * The learned prototype weights are shaped by the training n_way × k_shot: enrolling exactly
 * that shape uses them; any other shape weights the shots uniformly (softmax of zeros: the
 * plain mean) and fewcl_enrollment_get_info reports uniform_weights = 1. Both methods
 * (enhanced: prototypes and Mahalanobis factors; fsct: prototypes). The enrolment borrows m. */
FEWCL_API fewcl_status fewcl_enroll(fewcl_model *m, const fewcl_images *supports, const int *counts,
                                    int n_classes, fewcl_enrollment **out);

typedef struct fewcl_enrollment_info {
    size_t struct_size;
    int n_classes, k_shot;
    int uniform_weights; /* 1: not the trained n_way × k_shot, shots averaged uniformly */
} fewcl_enrollment_info;

/* Fills the first info->struct_size bytes (set struct_size = sizeof *info first). */
FEWCL_API fewcl_status fewcl_enrollment_get_info(const fewcl_enrollment *e,
                                                 fewcl_enrollment_info *info);

/* Classifies queries->count ≥ 1 images against the enrolment, one at a time or many (a query's
 * result does not depend on the others; how they are grouped can change the last bits). At
 * the trained support shape, an episode's queries in one call give the logits of the episode
 * forward (`fewcl test`) bit for bit. (Not with bn_batch_stats_at_test: BatchNorm then uses
 * each call's batch statistics, so results depend on the batch.) Outputs, each NULL to skip: logits
 * and probabilities (softmax over the classes) [count, n_classes], labels [count] (the most
 * probable class). */
FEWCL_API fewcl_status fewcl_classify(fewcl_enrollment *e, const fewcl_images *queries,
                                      float *logits, float *probabilities, int *labels);
FEWCL_API void fewcl_enrollment_destroy(fewcl_enrollment *e);

/* One episode in one call: enrolls n_way × k_shot supports (class-major), classifies the
 * queries with the outputs of fewcl_classify, and frees the enrolment. *uniform_weights (may
 * be NULL) as in fewcl_enrollment_info. */
FEWCL_API fewcl_status fewcl_classify_episode(fewcl_model *m, const fewcl_images *supports,
                                              int n_way, int k_shot, const fewcl_images *queries,
                                              float *logits, float *probabilities, int *labels,
                                              int *uniform_weights);

#ifdef __cplusplus
}
#endif
#endif
