/* Data flags (see data_flags.h). */
#include "data_flags.h"

#include "cli.h"

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

const char *split_list_flag(int split) {
    static const char *flags[SPLITS] = {"--train-list", "--val-list", "--test-list"};
    return flags[split];
}

/* A filelist whose first image is missing was most likely written on another machine or
 * for another root: say where its paths resolve and how to change that. */
static fewcl_status check_first_image(const data_flags *f, const char *list, fewcl_dataset *ds) {
    struct stat sb;
    const char *first = fewcl_dataset_image_path(ds, 0);
    if (f->io.skip_bad || !first || stat(first, &sb) == 0) return FEWCL_OK;
    char where[4200];
    if (f->data_root)
        snprintf(where, sizeof where, "--data-root %s", f->data_root);
    else
        snprintf(where, sizeof where, "the filelist's own folder (no --data-root given)");
    fewcl_status s = cli_error(FEWCL_ERR_IO,
                               "%s: its first image, %s, does not exist; relative image paths "
                               "resolve against %s: give --data-root DIR (the folder they are "
                               "relative to), or rewrite the lists for this machine",
                               list, first, where);
    fewcl_dataset_destroy(ds);
    return s;
}

int data_split_path(const data_flags *f, int split, char *buf, size_t cap) {
    if (f->list[split])
        snprintf(buf, cap, "%s", f->list[split]);
    else if (f->data)
        snprintf(buf, cap, "%s/%s", f->data, split_files[split]);
    else
        return 0;
    return 1;
}

fewcl_status data_open_split(const data_flags *f, int split, fewcl_dataset **out) {
    char path[4096];
    if (!data_split_path(f, split, path, sizeof path))
        return cli_error(FEWCL_ERR_ARGUMENT,
                         "no data for the %s split: give --data DIR (with %s) "
                         "or %s",
                         split_files[split], split_files[split], split_list_flag(split));
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cli_error(FEWCL_ERR_IO, "%s does not exist (%s split)%s", path, split_files[split],
                         f->list[split] ? ""
                                        : "; --data must be a folder with the FS-CT filelists "
                                          "base.json, val.json and novel.json (write them with "
                                          "`python3 tools/convert/fsct_filelists.py cub|"
                                          "miniimagenet|folder SRC OUT` from the fewcl sources), "
                                          "or give folders of class folders with --train-list, "
                                          "--val-list and --test-list");
    /* A folder of class folders, or a filelist (whose paths resolve against --data-root). */
    fewcl_status s = fewcl_dataset_open(path, f->data_root, out);
    if (s != FEWCL_OK || S_ISDIR(sb.st_mode)) return s;
    s = check_first_image(f, path, *out);
    if (s != FEWCL_OK) *out = NULL;
    return s;
}

void data_flags_help(FILE *f, const data_flags *d) {
    char workers[16], cache[32];
    snprintf(workers, sizeof workers, "%d", d->io.workers);
    snprintf(cache, sizeof cache, "%zu", d->io.cache_bytes >> 20);
    const cli_flag_help items[] = {
        {"--data DIR", "folder of base.json, val.json, novel.json", NULL},
        {"--data-root DIR", "folder relative image paths start from", "the filelist's"},
        {"--train-list F", "base split: a filelist or a class-folder tree", NULL},
        {"--val-list F", "validation split, as --train-list", NULL},
        {"--test-list F", "test split (novel), as --train-list", NULL},
        {"--workers N", "image decoding threads", workers},
        {"--cache-mb N", "MiB of decoded images kept", cache},
        {"--skip-bad-images", "skip unreadable images (warning)", "stop"},
        {"--scale-115", "test-time resize by 1.15, crop", "off"},
    };
    cli_help_flags(f, "data flags (a list flag overrides --data):", items,
                   (int)(sizeof items / sizeof *items));
}
