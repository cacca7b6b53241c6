/* `fewcl predict`: the class of each query image from a few labelled examples per class, with
 * trained weights. A client of the public API only (include/fewcl/): load, enroll, classify. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"
#include "fewcl/fewcl.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fewcl predict --weights FILE --support DIR --query FILE|DIR [--query ...]\n"
            "                     [--json] [--unknown-below P] [--device D]\n\n"
            "Classifies each query image (a file, or every image of a folder) among the classes\n"
            "of DIR, which holds one folder of example images per class (JPEG, PNG, BMP). The\n"
            "examples are enrolled once; every class uses the same number of them (the\n"
            "smallest class's). The weights' learned prototype weights apply when the classes\n"
            "and examples match the training n-way x k-shot; otherwise examples are averaged\n"
            "uniformly (a note says so). Prints one line per query: path, class, probability;\n"
            "--json prints every class's probability. --unknown-below P (0..1) labels a query\n"
            "whose best probability is below P as 'unknown'.\n");
    static const cli_flag_help flags[] = {
        {"--weights FILE", "trained weights (fewcl train's best.safetensors)", ""},
        {"--support DIR", "one folder of example images per class", ""},
        {"--query FILE|DIR", "an image, or every image of a folder; may repeat", ""},
        {"--json", "every class's probability, as JSON on stdout", "off"},
        {"--unknown-below P", "below this probability a query is 'unknown' (0: never)", "0"},
        {"--device D", "P:D index or a name substring", "FEWCL_DEVICE, else the first GPU"},
    };
    cli_help_flags(f, "options", flags, (int)(sizeof flags / sizeof flags[0]));
}

enum { OPT_WEIGHTS = 1, OPT_SUPPORT, OPT_QUERY, OPT_JSON, OPT_UNKNOWN, OPT_DEVICE, OPT_HELP };

/* A growable list of strings. */
typedef struct strings {
    char **items;
    int n, cap;
} strings;

static int push(strings *s, const char *text) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        char **grown = realloc(s->items, (size_t)cap * sizeof *grown);
        if (!grown) return -1;
        s->items = grown, s->cap = cap;
    }
    if (!(s->items[s->n] = strdup(text))) return -1;
    s->n++;
    return 0;
}

static void strings_free(strings *s) {
    for (int i = 0; i < s->n; i++)
        free(s->items[i]);
    free(s->items);
    *s = (strings){0};
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image(const char *name) {
    const char *dot = strrchr(name, '.');
    static const char *ext[] = {".jpg", ".jpeg", ".png", ".bmp"};
    for (size_t i = 0; dot && i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The sorted entries of dir (hidden ones skipped): folders (dirs = 1) or image files, as full
 * paths. Returns -1 after printing an error. */
static int list_dir(const char *dir, int dirs, strings *out) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fewcl predict: cannot open folder %s\n", dir);
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (dirs ? is_dir(path) : (!is_dir(path) && is_image(e->d_name))) rc = push(out, path);
    }
    closedir(d);
    if (rc) fprintf(stderr, "fewcl predict: out of memory listing %s\n", dir);
    if (out->n > 1) qsort(out->items, (size_t)out->n, sizeof *out->items, cmp_str);
    return rc;
}

/* Loads paths[0..count) as prepared images of side S into x. */
static fewcl_status load_images(char **paths, int count, int S, float *x) {
    for (int i = 0; i < count; i++) {
        fewcl_status s = fewcl_image_load(paths[i], S, x + (size_t)i * 3 * S * S);
        if (s != FEWCL_OK) return s;
    }
    return FEWCL_OK;
}

typedef struct support_set {
    strings classes; /* class folder names */
    strings images;  /* k per class, class by class */
    int k;
} support_set;

/* One folder per class; k = the smallest class's image count (every class needs one). */
static int read_support(const char *dir, support_set *set) {
    strings folders = {0};
    if (list_dir(dir, 1, &folders)) return EXIT_USAGE;
    int rc = 0, min = 0, max = 0;
    strings *per = calloc((size_t)(folders.n ? folders.n : 1), sizeof *per);
    if (!per) rc = EXIT_RUNTIME;
    if (!rc && folders.n < 1) {
        fprintf(stderr,
                "fewcl predict: --support %s holds no class folders (expected "
                "%s/<class>/<image>)\n",
                dir, dir);
        rc = EXIT_USAGE;
    }
    for (int c = 0; !rc && c < folders.n; c++) {
        if (list_dir(folders.items[c], 0, &per[c])) rc = EXIT_USAGE;
        if (!rc && per[c].n == 0) {
            fprintf(stderr,
                    "fewcl predict: class folder %s has no images (.jpg .jpeg .png "
                    ".bmp): every class needs at least one example\n",
                    folders.items[c]);
            rc = EXIT_USAGE;
        }
        if (!rc) {
            min = c == 0 || per[c].n < min ? per[c].n : min;
            max = per[c].n > max ? per[c].n : max;
        }
    }
    for (int c = 0; !rc && c < folders.n; c++) {
        const char *slash = strrchr(folders.items[c], '/');
        if (push(&set->classes, slash ? slash + 1 : folders.items[c])) rc = EXIT_RUNTIME;
        for (int i = 0; !rc && i < min; i++)
            if (push(&set->images, per[c].items[i])) rc = EXIT_RUNTIME;
    }
    if (!rc && min != max)
        fprintf(stderr,
                "fewcl predict: note: classes have %d to %d examples; using the first %d "
                "of each\n",
                min, max, min);
    set->k = min;
    for (int c = 0; per && c < folders.n; c++)
        strings_free(&per[c]);
    free(per);
    strings_free(&folders);
    return rc;
}

/* Prints or collects one query's result. */
static void report(const char *path, const float *probs, const support_set *set, double unknown,
                   cJSON *list) {
    int n = set->classes.n, best = 0;
    for (int c = 1; c < n; c++)
        if (probs[c] > probs[best]) best = c;
    const char *name = probs[best] < unknown ? "unknown" : set->classes.items[best];
    if (!list) {
        printf("%s\t%s\t%.4f\n", path, name, probs[best]);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "query", path);
    cJSON_AddStringToObject(o, "class", name);
    cJSON_AddNumberToObject(o, "probability", probs[best]);
    cJSON *all = cJSON_AddObjectToObject(o, "probabilities");
    for (int c = 0; c < n; c++)
        cJSON_AddNumberToObject(all, set->classes.items[c], probs[c]);
    cJSON_AddItemToArray(list, o);
}

/* Enrolls the support set and classifies the queries in batches. */
static fewcl_status run(fewcl_model *m, const support_set *set, const strings *queries,
                        double unknown, int json, const char *weights) {
    fewcl_model_config cfg;
    fewcl_status s = fewcl_model_config_default(&cfg, sizeof cfg);
    if (s == FEWCL_OK) s = fewcl_model_get_config(m, &cfg);
    if (s != FEWCL_OK) return s;
    const int S = cfg.image_size, n = set->classes.n, batch = 32;
    size_t img = (size_t)3 * S * S;
    float *x = malloc(img * (size_t)(set->images.n > batch ? set->images.n : batch) * sizeof *x);
    float *probs = malloc((size_t)batch * n * sizeof *probs);
    int *counts = malloc((size_t)n * sizeof *counts);
    fewcl_enrollment *e = NULL;
    cJSON *out = json ? cJSON_CreateObject() : NULL, *list = NULL;
    if (!x || !probs || !counts) s = FEWCL_ERR_OUT_OF_MEMORY;
    for (int c = 0; s == FEWCL_OK && c < n; c++)
        counts[c] = set->k;
    if (s == FEWCL_OK) s = load_images(set->images.items, set->images.n, S, x);
    fewcl_images sup = {x, set->images.n, 3, S, S};
    if (s == FEWCL_OK) s = fewcl_enroll(m, &sup, counts, n, &e);
    fewcl_enrollment_info info = {.struct_size = sizeof info};
    if (s == FEWCL_OK) s = fewcl_enrollment_get_info(e, &info);
    if (s == FEWCL_OK && info.uniform_weights)
        fprintf(stderr,
                "fewcl predict: note: %s's learned prototype weights are for %d-way %d-shot; for "
                "%d classes x %d examples they are averaged uniformly\n",
                weights, cfg.n_way, cfg.k_shot, n, set->k);
    if (out) {
        cJSON_AddStringToObject(out, "weights", weights);
        cJSON *cls = cJSON_AddArrayToObject(out, "classes");
        for (int c = 0; c < n; c++)
            cJSON_AddItemToArray(cls, cJSON_CreateString(set->classes.items[c]));
        cJSON_AddNumberToObject(out, "examples_per_class", set->k);
        cJSON_AddBoolToObject(out, "uniform_prototype_weights", info.uniform_weights);
        list = cJSON_AddArrayToObject(out, "predictions");
    }
    for (int first = 0; s == FEWCL_OK && first < queries->n; first += batch) {
        int count = queries->n - first < batch ? queries->n - first : batch;
        s = load_images(queries->items + first, count, S, x);
        fewcl_images q = {x, count, 3, S, S};
        if (s == FEWCL_OK) s = fewcl_classify(e, &q, NULL, probs, NULL);
        for (int i = 0; s == FEWCL_OK && i < count; i++)
            report(queries->items[first + i], probs + (size_t)i * n, set, unknown, list);
    }
    if (s == FEWCL_OK && out) {
        char *text = cJSON_Print(out);
        if (text) puts(text);
        free(text);
    }
    cJSON_Delete(out);
    fewcl_enrollment_destroy(e);
    free(counts), free(probs), free(x);
    return s;
}

int cmd_predict(int argc, char **argv) {
    static const struct option opts[] = {{"weights", required_argument, 0, OPT_WEIGHTS},
                                         {"support", required_argument, 0, OPT_SUPPORT},
                                         {"query", required_argument, 0, OPT_QUERY},
                                         {"json", no_argument, 0, OPT_JSON},
                                         {"unknown-below", required_argument, 0, OPT_UNKNOWN},
                                         {"device", required_argument, 0, OPT_DEVICE},
                                         {"help", no_argument, 0, OPT_HELP},
                                         {0, 0, 0, 0}};
    const char *weights = NULL, *support = NULL, *device = NULL;
    strings queries = {0};
    int json = 0, c, rc = 0;
    double unknown = 0;
    while (!rc && (c = cli_getopt(argc, argv, "h", opts)) != -1) {
        switch (c) {
        case OPT_WEIGHTS: weights = optarg; break;
        case OPT_SUPPORT: support = optarg; break;
        case OPT_QUERY:
            if (!is_dir(optarg)) {
                rc = push(&queries, optarg) ? EXIT_RUNTIME : 0;
            } else if (list_dir(optarg, 0, &queries)) {
                rc = EXIT_USAGE;
            }
            break;
        case OPT_JSON: json = 1; break;
        case OPT_UNKNOWN: {
            char *end;
            unknown = strtod(optarg, &end);
            if (end == optarg || *end || !(unknown >= 0 && unknown <= 1)) {
                fprintf(stderr,
                        "fewcl predict: --unknown-below '%s': expected a probability "
                        "from 0 to 1\n",
                        optarg);
                rc = EXIT_USAGE;
            }
            break;
        }
        case OPT_DEVICE: device = optarg; break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            strings_free(&queries);
            return 0;
        default: rc = cli_bad_option("predict", c, argv, opts);
        }
    }
    if (!rc && (optind < argc || !weights || !support || !queries.n)) {
        if (optind < argc)
            fprintf(stderr, "fewcl predict: unexpected argument '%s'\n", argv[optind]);
        if (!weights) fprintf(stderr, "fewcl predict: give the trained weights with --weights\n");
        if (!support)
            fprintf(stderr, "fewcl predict: give the examples with --support DIR (one folder "
                            "per class)\n");
        if (!queries.n)
            fprintf(stderr, "fewcl predict: give the images to classify with --query FILE|DIR "
                            "(a folder without images gives none)\n");
        rc = EXIT_USAGE;
    }
    support_set set = {0};
    if (!rc) rc = read_support(support, &set);
    fewcl_context *ctx = NULL;
    fewcl_model *m = NULL;
    if (!rc) rc = cli_open_device("predict", device, &ctx);
    if (!rc) {
        fewcl_status s = fewcl_model_load(ctx, weights, NULL, &m);
        if (s == FEWCL_OK) s = run(m, &set, &queries, unknown, json, weights);
        if (s != FEWCL_OK) rc = cli_fail("predict", s);
    }
    fewcl_model_destroy(m);
    fewcl_context_destroy(ctx);
    strings_free(&set.classes);
    strings_free(&set.images);
    strings_free(&queries);
    return rc;
}
