/* The data flags shared by `fewcl train` and `fewcl test`: where the splits are and how the
 * loader reads them. */
#ifndef FEWCL_APP_DATA_FLAGS_H
#define FEWCL_APP_DATA_FLAGS_H

#include <getopt.h>
#include <stdio.h>

#include "fewcl/fewcl.h"

enum { SPLIT_BASE, SPLIT_VAL, SPLIT_NOVEL, SPLITS };

/* How the loader reads episodes (the fields of fewcl_train_params / fewcl_test_params). */
typedef struct data_io {
    int workers;        /* decoding threads */
    size_t cache_bytes; /* decoded-image cache per loader */
    int skip_bad;       /* --skip-bad-images */
    int scale_115;      /* evaluation transform with the published 1.15 scale */
} data_io;

typedef struct data_flags {
    const char *data;         /* --data DIR holding base.json, val.json, novel.json */
    const char *data_root;    /* --data-root: relative image paths resolve here */
    const char *list[SPLITS]; /* --train-list / --val-list / --test-list: JSON file or folder */
    data_io io;
} data_flags;

#define DATA_FLAG_BASE 1100

#define DATA_FLAG_OPTIONS                                                                          \
    {"data", required_argument, 0, DATA_FLAG_BASE + 0},                                            \
        {"data-root", required_argument, 0, DATA_FLAG_BASE + 1},                                   \
        {"train-list", required_argument, 0, DATA_FLAG_BASE + 2},                                  \
        {"val-list", required_argument, 0, DATA_FLAG_BASE + 3},                                    \
        {"test-list", required_argument, 0, DATA_FLAG_BASE + 4},                                   \
        {"workers", required_argument, 0, DATA_FLAG_BASE + 5},                                     \
        {"cache-mb", required_argument, 0, DATA_FLAG_BASE + 6},                                    \
        {"skip-bad-images", no_argument, 0, DATA_FLAG_BASE + 7}, {                                 \
        "scale-115", no_argument, 0, DATA_FLAG_BASE + 8                                            \
    }

/* The data flags with the defaults of `d` (as data_flags_init leaves them). */
void data_flags_help(FILE *f, const data_flags *d);

void data_flags_init(data_flags *f);
/* As model_flag: 1 handled, 0 not a data flag, -1 usage error printed. */
int data_flag(int code, const char *arg, data_flags *f, const char *cmd);
/* Whether a split was given at all (by --data or its list flag). */
int data_has_split(const data_flags *f, int split);
/* The list flag of a split: --train-list, --val-list or --test-list. */
const char *split_list_flag(int split);
/* The file or folder a split is read from (its list flag, else <data>/<split>.json); 0 when
 * neither is given. */
int data_split_path(const data_flags *f, int split, char *buf, size_t cap);
/* Opens a split: its list flag, else <data>/<base|val|novel>.json. */
fewcl_status data_open_split(const data_flags *f, int split, fewcl_dataset **out);

/* Parses a whole positive number for flag `name`; prints a usage error and returns -1. */
int parse_count(const char *cmd, const char *name, const char *arg, long min, long *out);
/* A finite non-negative number, else a usage message and -1. */
int parse_real(const char *cmd, const char *name, const char *arg, double *out);

#endif
