/* Datasets (see dataset.h). */
#include "dataset.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_JSON_BYTES ((size_t)1 << 30)

void fcl_dataset_free(fcl_dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->n_classes; i++)
        free(d->class_names ? d->class_names[i] : NULL);
    for (int i = 0; i < d->n_images; i++)
        free(d->paths ? d->paths[i] : NULL);
    free(d->class_names), free(d->class_label), free(d->class_start), free(d->class_count);
    free(d->paths);
    free(d);
}

static char *join(const char *root, const char *name) {
    if (!root || !*root || name[0] == '/') return strdup(name);
    size_t n = strlen(root) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", root, root[strlen(root) - 1] == '/' ? "" : "/", name);
    return p;
}

typedef struct entry {
    int label;
    int order; /* position in the file: keeps file order inside a class */
    const char *name;
} entry;

static int by_label_then_order(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->label != y->label) return (x->label > y->label) - (x->label < y->label);
    return (x->order > y->order) - (x->order < y->order);
}

/* Groups sorted entries into classes and fills the dataset's arrays. */
static fewcl_status group(fcl_dataset *d, entry *e, int n, const char *root, const cJSON *names) {
    qsort(e, (size_t)n, sizeof *e, by_label_then_order);
    int classes = 0;
    for (int i = 0; i < n; i++)
        classes += i == 0 || e[i].label != e[i - 1].label;
    d->paths = calloc((size_t)n, sizeof *d->paths);
    d->class_names = calloc((size_t)classes, sizeof *d->class_names);
    d->class_label = calloc((size_t)classes, sizeof *d->class_label);
    d->class_start = calloc((size_t)classes, sizeof *d->class_start);
    d->class_count = calloc((size_t)classes, sizeof *d->class_count);
    if (!d->paths || !d->class_names || !d->class_label || !d->class_start || !d->class_count)
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s: %d images", d->source, n);
    int c = -1;
    for (int i = 0; i < n; i++) {
        if (i == 0 || e[i].label != e[i - 1].label) {
            c++;
            d->n_classes = c + 1;
            d->class_label[c] = e[i].label;
            d->class_start[c] = i;
            const cJSON *nm = names ? cJSON_GetArrayItem(names, e[i].label) : NULL;
            char buf[32];
            snprintf(buf, sizeof buf, "%d", e[i].label);
            d->class_names[c] = strdup(cJSON_IsString(nm) ? nm->valuestring : buf);
            if (!d->class_names[c]) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", d->source);
        }
        d->class_count[c]++;
        d->paths[i] = join(root, e[i].name);
        if (!d->paths[i]) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", d->source);
        d->n_images = i + 1;
    }
    return FEWCL_OK;
}

static fewcl_status parse(fcl_dataset *d, const cJSON *root, const char *data_root) {
    const char *src = d->source;
    if (!cJSON_IsObject(root))
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "%s: not a JSON object (an FS-CT filelist has "
                        "image_names and image_labels)",
                        src);
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(root, "image_names");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "image_labels");
    const cJSON *label_names = cJSON_GetObjectItemCaseSensitive(root, "label_names");
    if (!cJSON_IsArray(names) || !cJSON_IsArray(labels))
        return fcl_fail(FEWCL_ERR_FORMAT, "%s: missing array %s", src,
                        !cJSON_IsArray(names) ? "\"image_names\"" : "\"image_labels\"");
    if (label_names && !cJSON_IsArray(label_names))
        return fcl_fail(FEWCL_ERR_FORMAT, "%s: \"label_names\" is not an array", src);
    int n = cJSON_GetArraySize(names);
    if (n != cJSON_GetArraySize(labels))
        return fcl_fail(FEWCL_ERR_FORMAT, "%s: %d image_names but %d image_labels", src, n,
                        cJSON_GetArraySize(labels));
    if (n == 0) return fcl_fail(FEWCL_ERR_FORMAT, "%s: the filelist has no images", src);
    entry *e = calloc((size_t)n, sizeof *e);
    if (!e) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", src);
    int i = 0;
    fewcl_status s = FEWCL_OK;
    for (const cJSON *nm = names->child, *lb = labels->child; nm && lb && s == FEWCL_OK;
         nm = nm->next, lb = lb->next, i++) {
        if (!cJSON_IsString(nm) || !nm->valuestring[0])
            s = fcl_fail(FEWCL_ERR_FORMAT, "%s: image_names[%d] is not a non-empty string", src, i);
        else if (!cJSON_IsNumber(lb) || !(lb->valuedouble >= 0 && lb->valuedouble <= 1e8) ||
                 lb->valuedouble != (double)(int)lb->valuedouble) /* range first: the cast */
            s = fcl_fail(FEWCL_ERR_FORMAT,
                         "%s: image_labels[%d] is not a label (a non-negative "
                         "integer)",
                         src, i);
        else
            e[i] = (entry){(int)lb->valuedouble, i, nm->valuestring};
    }
    if (s == FEWCL_OK) s = group(d, e, n, data_root, label_names);
    free(e);
    return s;
}

fewcl_status fcl_dataset_parse_json(const char *label, const char *text, size_t len,
                                    const char *data_root, fcl_dataset **out) {
    *out = NULL;
    fcl_dataset *d = calloc(1, sizeof *d);
    if (!d) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", label);
    snprintf(d->source, sizeof d->source, "%s", label);
    cJSON *root = cJSON_ParseWithLength(text, len);
    fewcl_status s;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long offset = at && at >= text && at <= text + len ? (long)(at - text) : -1;
        s = fcl_fail(FEWCL_ERR_FORMAT, "%s: invalid JSON near byte %ld", label, offset);
    } else {
        s = parse(d, root, data_root);
    }
    cJSON_Delete(root);
    if (s != FEWCL_OK) {
        fcl_dataset_free(d);
        return s;
    }
    *out = d;
    return FEWCL_OK;
}

fewcl_status fcl_dataset_load_json(const char *json_path, const char *data_root,
                                   fcl_dataset **out) {
    *out = NULL;
    FILE *f = fopen(json_path, "rb");
    if (!f)
        return fcl_fail(FEWCL_ERR_IO, "cannot open filelist %s: %s", json_path, strerror(errno));
    char *text = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len >= 0 && (size_t)len <= MAX_JSON_BYTES && fseek(f, 0, SEEK_SET) == 0)
        text = malloc((size_t)len + 1);
    if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) {
        free(text);
        fclose(f);
        return fcl_fail(FEWCL_ERR_IO, "cannot read filelist %s", json_path);
    }
    fclose(f);
    char *dir = NULL;
    if (!data_root) { /* default root: the filelist's own folder */
        dir = strdup(json_path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash)
            *slash = 0;
        else if (dir)
            strcpy(dir, ".");
    }
    fewcl_status s =
        fcl_dataset_parse_json(json_path, text, (size_t)len, data_root ? data_root : dir, out);
    free(dir);
    free(text);
    return s;
}

static int has_image_extension(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    char ext[8] = "";
    for (int i = 0; i < 7 && dot[i + 1]; i++)
        ext[i] = (char)tolower((unsigned char)dot[i + 1]);
    return !strcmp(ext, "jpg") || !strcmp(ext, "jpeg") || !strcmp(ext, "png") ||
           !strcmp(ext, "bmp");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the visible entries of a folder (dirs_only: sub-folders; else images). */
static char **list(const char *dir, int dirs_only, int *count) {
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    int cap = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char *path = join(dir, e->d_name);
        struct stat st;
        int ok = path && stat(path, &st) == 0 &&
                 (dirs_only ? S_ISDIR(st.st_mode)
                            : S_ISREG(st.st_mode) && has_image_extension(e->d_name));
        free(path);
        if (!ok) continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        names[(*count)++] = strdup(e->d_name);
    }
    closedir(d);
    if (names) qsort(names, (size_t)*count, sizeof *names, cmp_str);
    return names;
}

static void free_list(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

fewcl_status fcl_dataset_load_folder(const char *root, fcl_dataset **out) {
    *out = NULL;
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
        return fcl_fail(FEWCL_ERR_IO, "dataset folder %s: %s", root,
                        errno ? strerror(errno) : "not a folder");
    int n_classes;
    char **classes = list(root, 1, &n_classes);
    if (n_classes == 0) {
        free_list(classes, n_classes);
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "dataset folder %s has no class folders (expected "
                        "root/<class>/<image>)",
                        root);
    }
    fcl_dataset *d = calloc(1, sizeof *d);
    entry *e = NULL;
    char **all = NULL;
    int n = 0, cap = 0;
    fewcl_status s = d ? FEWCL_OK : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", root);
    if (d) snprintf(d->source, sizeof d->source, "%s", root);
    for (int c = 0; c < n_classes && s == FEWCL_OK; c++) {
        char *cdir = join(root, classes[c]);
        int k = 0;
        char **imgs = cdir ? list(cdir, 0, &k) : NULL;
        if (!cdir)
            s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", root);
        else if (k == 0)
            s = fcl_fail(FEWCL_ERR_FORMAT, "class folder %s holds no images (.jpg .jpeg .png .bmp)",
                         cdir);
        for (int i = 0; i < k && s == FEWCL_OK; i++) {
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                entry *ge = realloc(e, (size_t)cap * sizeof *e);
                char **ga = ge ? realloc(all, (size_t)cap * sizeof *all) : NULL;
                if (ge) e = ge;
                if (ga) all = ga;
                if (!ge || !ga) {
                    s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", root);
                    break;
                }
            }
            all[n] = join(classes[c], imgs[i]);
            e[n] = (entry){c, n, all[n]};
            n++;
        }
        free_list(imgs, k);
        free(cdir);
    }
    if (s == FEWCL_OK) s = group(d, e, n, root, NULL);
    for (int c = 0; s == FEWCL_OK && c < d->n_classes; c++) { /* names are the folders */
        free(d->class_names[c]);
        d->class_names[c] = strdup(classes[c]);
    }
    free_list(all, n);
    free(e);
    free_list(classes, n_classes);
    if (s != FEWCL_OK) {
        fcl_dataset_free(d);
        return s;
    }
    *out = d;
    return FEWCL_OK;
}

fewcl_status fcl_dataset_check_episode(const fcl_dataset *d, int n_way, int k_shot, int n_query) {
    if (n_way < 1 || k_shot < 1 || n_query < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "episode %d-way %d-shot %d-query: all must be at least 1", n_way, k_shot,
                        n_query);
    if (n_way > d->n_classes)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s has %d classes, fewer than --n-way %d", d->source,
                        d->n_classes, n_way);
    int need = k_shot + n_query;
    for (int c = 0; c < d->n_classes; c++)
        if (d->class_count[c] < need)
            return fcl_fail(FEWCL_ERR_ARGUMENT,
                            "%s: class '%s' has %d images, fewer than k_shot + n_query = %d; lower "
                            "--k-shot/--n-query or remove the class",
                            d->source, d->class_names[c], d->class_count[c], need);
    return FEWCL_OK;
}

fewcl_status fcl_dataset_open(const char *path, const char *data_root, fcl_dataset **out) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fcl_fail(FEWCL_ERR_IO,
                        "%s: %s (expected a filelist .json or a folder of class "
                        "folders)",
                        path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return fcl_dataset_load_folder(path, out);
    return fcl_dataset_load_json(path, data_root, out);
}
