/* Data flags (see data_flags.h). */
#include "data_flags.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static const char *split_files[SPLITS] = {"base.json", "val.json", "novel.json"};

void data_flags_init(data_flags *f) {
    *f = (data_flags){0};
    f->io.workers = 2;
    f->io.cache_bytes = (size_t)1024 << 20;
}

int parse_count(const char *cmd, const char *name, const char *arg, long min, long *out) {
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > 1000000000) {
        fprintf(stderr, "fewcl %s: --%s '%s': expected a whole number of at least %ld\n", cmd, name,
                arg, min);
        return -1;
    }
    *out = v;
    return 0;
}

int parse_real(const char *cmd, const char *name, const char *arg, double *out) {
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end || !isfinite(v) || v < 0) {
        fprintf(stderr, "fewcl %s: --%s '%s': expected a non-negative number\n", cmd, name, arg);
        return -1;
    }
    *out = v;
    return 0;
}

int data_flag(int code, const char *arg, data_flags *f, const char *cmd) {
    long v;
    switch (code - DATA_FLAG_BASE) {
    case 0: f->data = arg; return 1;
    case 1: f->data_root = arg; return 1;
    case 2: f->list[SPLIT_BASE] = arg; return 1;
    case 3: f->list[SPLIT_VAL] = arg; return 1;
    case 4: f->list[SPLIT_NOVEL] = arg; return 1;
    case 5:
        if (parse_count(cmd, "workers", arg, 0, &v)) return -1;
        f->io.workers = (int)v;
        return 1;
    case 6:
        if (parse_count(cmd, "cache-mb", arg, 0, &v)) return -1;
        f->io.cache_bytes = (size_t)v << 20;
        return 1;
    case 7: f->io.skip_bad = 1; return 1;
    case 8: f->io.scale_115 = 1; return 1;
    default: return 0;
    }
}

int data_has_split(const data_flags *f, int split) { return f->list[split] || f->data; }

fewcl_status data_open_split(const data_flags *f, int split, fcl_dataset **out) {
    char path[4096];
    if (f->list[split])
        snprintf(path, sizeof path, "%s", f->list[split]);
    else if (f->data)
        snprintf(path, sizeof path, "%s/%s", f->data, split_files[split]);
    else
        return fcl_fail(FEWCL_ERR_ARGUMENT, "no data: give --data DIR (with %s) or a list flag",
                        split_files[split]);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fcl_fail(FEWCL_ERR_IO, "%s does not exist (%s split)%s", path, split_files[split],
                        f->list[split] ? ""
                                       : "; --data must be a folder with base.json, val.json "
                                         "and novel.json (see tools/ for converters)");
    if (S_ISDIR(sb.st_mode)) return fcl_dataset_load_folder(path, out);
    return fcl_dataset_load_json(path, f->data_root, out);
}
