/* The convolution's find step and its database (see conv_algo.h for where it sits).
 *
 * The first time a (device, driver, path, shape, direction) is met, each eligible algorithm
 * runs FCL_CONV_FIND_RUNS times on the call's own tensors (the weight gradient into a scratch
 * dW), the median time of each is compared and the fastest is kept: in memory, and on disk
 * in the program cache's folder (FEWCL_CACHE_DIR, lib/runtime/program.c) as
 * conv-find-<key>.txt, <key> hashing the device and driver as the program cache does. The
 * file is written whole to a temporary file and renamed; a damaged one (bad header,
 * checksum or line) is ignored and rewritten with what this run finds.
 *
 * Plans: a shape in the database plans with the kept algorithm, as a run uses it. In a dry
 * run a shape not in the database makes the same workspace allocations as the find step
 * would (each eligible algorithm, FCL_CONV_FIND_RUNS times) and then takes the eligible
 * algorithm with the largest workspace: an upper bound of any run's peak (`fewcl plan`). The
 * shape is also noted, so that a caller about to run the plan (the trainer, evaluation) can
 * time it first, for real, on tensors of its own (fcl_conv_find_unfound) and plan again with
 * the choices its run will make: that plan is exact, and the run follows its layout
 * (lib/plan/layout.h) allocation for allocation (docs/spec.md §8). */
#ifndef FEWCL_OPS_CONV_FIND_H
#define FEWCL_OPS_CONV_FIND_H

#include "conv_algo.h"

#define FCL_CONV_FIND_RUNS 3

typedef enum fcl_conv_find_mode {
    FCL_FIND_ON,     /* default: time a shape the first time, then keep the choice */
    FCL_FIND_OFF,    /* the heuristic (conv_algo.h), no timing, no file */
    FCL_FIND_SEARCH  /* time every shape again once in this process, replacing the kept choice */
} fcl_conv_find_mode;

/* Sets the find mode of this context (as FEWCL_FIND does; tests, `fewcl bench --conv`). */
fewcl_status fcl_conv_algo_set_find(fewcl_context *ctx, fcl_conv_find_mode mode);

/* FEWCL_FIND's value (NULL or "": on); anything else than on, off, search is an error. */
fewcl_status fcl_conv_find_mode_parse(const char *text, fcl_conv_find_mode *mode);

typedef struct fcl_conv_find_db fcl_conv_find_db;

/* Opens the context's database: reads its file if there is one (no file, or none usable:
 * empty). With the program cache off (FEWCL_CACHE=off) it lives in memory only. */
fewcl_status fcl_conv_find_db_open(fewcl_context *ctx, fcl_conv_find_db **out);
void fcl_conv_find_db_free(fcl_conv_find_db *db);

/* The file of the database ("" when in memory only); whether reading it found it damaged
 * (then it is rewritten at the next choice); the number of choices it holds. */
const char *fcl_conv_find_db_path(const fcl_conv_find_db *db);
int fcl_conv_find_db_was_damaged(const fcl_conv_find_db *db);
int fcl_conv_find_db_count(const fcl_conv_find_db *db);

/* The shapes plans met since the last fcl_conv_find_db_forget_unfound (or find_unfound)
 * that the database has no choice for. */
int fcl_conv_find_db_unfound(const fcl_conv_find_db *db);
void fcl_conv_find_db_forget_unfound(fcl_conv_find_db *db);
/* Runs the find step for real on each of those shapes, on tensors of its own, and forgets
 * them; an algorithm whose workspace does not fit beside the live bytes the plan had at the
 * call (under the plan's limit) is not a candidate. *timed: the shapes it kept a choice for. */
fewcl_status fcl_conv_find_unfound(fewcl_context *ctx, fcl_conv_find_db *db, int *timed);

/* Looks `key` up: the kept algorithm's name, or NULL. */
const char *fcl_conv_find_db_get(const fcl_conv_find_db *db, const char *key);
/* Keeps `algo` (and its median, ms) for `key` and rewrites the file. */
fewcl_status fcl_conv_find_db_put(fcl_conv_find_db *db, const char *key, const char *algo,
                                  double ms);

/* Every choice as text, one "<key>\t<algorithm>\t<median ms>\n" a line (caller frees), and
 * back: import keeps each line's choice in memory (the file is not rewritten) as if timed in
 * this process, replacing the database's own for that key. A malformed line: FEWCL_ERR_ARGUMENT,
 * nothing of the text kept that came after it. */
fewcl_status fcl_conv_find_db_export(const fcl_conv_find_db *db, char **text);
fewcl_status fcl_conv_find_db_import(fcl_conv_find_db *db, const char *text);

/* The database key of a call: path, direction and every size that shapes the work. */
void fcl_conv_find_key(const fcl_conv_geom *g, fcl_conv_dir dir, char *key, size_t size);

/* Told of each timing the find step makes (`fewcl bench --conv`): the call, the median ms
 * of each algorithm of fcl_conv_algos() (negative: not eligible), and the one kept. */
typedef struct fcl_conv_find_hook {
    void (*report)(void *ud, const fcl_conv_geom *g, fcl_conv_dir dir, const double *ms,
                   const fcl_conv_algo *chosen);
    void *ud;
} fcl_conv_find_hook;

/* Sets (or, NULL, clears) the context's hook. With a hook, shapes with a single eligible
 * algorithm are timed too, so that every convolution is reported. */
fewcl_status fcl_conv_algo_set_hook(fewcl_context *ctx, const fcl_conv_find_hook *hook);

/* The find step for one call (see the top of this file); hook may be NULL. */
fewcl_status fcl_conv_find(fewcl_context *ctx, fcl_conv_find_db *db, fcl_conv_find_mode mode,
                           const fcl_conv_find_hook *hook, const fcl_conv_geom *g,
                           fcl_conv_dir dir, const fcl_conv_args *a, const fcl_conv_algo **out);

/* Times each eligible algorithm for a call (FCL_CONV_FIND_RUNS runs, median, ms) into
 * ms[i] for fcl_conv_algos()[i] (negative: not eligible, or it failed). For the find step
 * and `fewcl bench --conv`. */
fewcl_status fcl_conv_time_algos(fewcl_context *ctx, const fcl_conv_geom *g, fcl_conv_dir dir,
                                 const fcl_conv_args *a, double *ms);

#endif
