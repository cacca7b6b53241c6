/* Shared pieces of the `fewcl` subcommands. Exit codes: 0 success, 1 runtime failure,
 * 2 usage error, 130 stopped by Ctrl-C (SIGINT) after saving, 143 by SIGTERM. */
#ifndef FEWCL_CLI_H
#define FEWCL_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "fewcl/fewcl.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
/* 128 + the signal, as a shell reports a process killed by it. */
#define EXIT_STOPPED(sig) (128 + (sig))

int cmd_devices(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_model(int argc, char **argv);
int cmd_bench_conv(int argc, char **argv);
int cmd_bench_reduce(int argc, char **argv);
int cmd_episode(int argc, char **argv);
int cmd_plan(int argc, char **argv);
/* `fewcl plan --devices L` (plan_devices.c): a row per replica, a sum per device. */
int plan_devices(const char *devices, const fewcl_model_config *cfg, const fewcl_plan_params *base,
                 int json);
/* `mpirun -np R fewcl plan`: every rank plans its own device (or its --devices list) and rank 0
 * prints one table for the job (plan_devices.c); every rank returns the same exit code. */
int plan_ranks(const char *devices, const char *device, const fewcl_model_config *cfg,
               const fewcl_plan_params *base, int json);
int cmd_train(int argc, char **argv);
int cmd_test(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* A failure found by the tool itself (not by the library): keeps the message for cli_fail
 * and cli_last_error, and returns s. */
fewcl_status cli_error(fewcl_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The message of the last failure: the tool's own (cli_error) when one is pending, else
 * fewcl_last_error(). */
const char *cli_last_error(void);

/* Prints "fewcl <cmd>: <status>: <message>" to stderr and returns EXIT_RUNTIME, or
 * EXIT_STOPPED(signal) when the command was stopped by Ctrl-C/SIGTERM. */
int cli_fail(const char *cmd, fewcl_status s);
/* This process's place in an MPI job (main.c calls fewcl_dist_init first): rank 0 of 1 when
 * not launched by mpirun/srun. Ranks > 0 show no progress nor results, and prefix their error
 * lines with cli_rank_prefix() ("rank R: "; "" on rank 0). */
extern fewcl_dist_info cli_dist;
const char *cli_rank_prefix(void);
/* A failure of this rank before a distributed job's first agreement (device, data, weights):
 * as cli_fail in a one-process run; in a job of several ranks, ends every rank with the
 * message naming this one (fewcl_dist_abort), since the others would wait for it forever. */
int cli_fail_alone(const char *cmd, fewcl_status s);
/* A command that would have every rank write the same files (train, demo): refused with a
 * message in a job of several ranks. Returns 0 when alone, else EXIT_USAGE. */
int cli_single_rank_only(const char *cmd);
/* Creates the context on the chosen device; returns 0, or the exit code after printing the
 * error (2 when --device/FEWCL_DEVICE names no device, 1 otherwise). */
int cli_open_device(const char *cmd, const char *device, fewcl_context **ctx);
/* Monotonic seconds, and a qsort comparison of doubles (for medians of timings). */
double cli_now(void);
int cli_cmp_double(const void *a, const void *b);
/* Formats a byte count as "3.72 GiB". */
const char *cli_bytes(double bytes, char *buf, int cap);

/* getopt_long without getopt's own messages; `shorts` without the leading ':' (missing
 * values come back as ':'). */
int cli_getopt(int argc, char **argv, const char *shorts, const struct option *opts);
/* The usage error for what cli_getopt returned ('?' or ':'): one line naming the option, "did
 * you mean --x?" when one is close, and "see `fewcl CMD --help`". Returns EXIT_USAGE. */
int cli_bad_option(const char *cmd, int c, char **argv, const struct option *opts);
/* The name among `names` closest to `word` by edit distance, or NULL when none is close. */
const char *cli_closest(const char *word, const char *const *names, int n);

/* One line of a flag table in --help: "--epochs N", what it does, its default ("" or NULL:
 * none shown). Defaults are formatted from the values the parser starts from. */
typedef struct cli_flag_help {
    const char *flag, *what;
    const char *dflt;
} cli_flag_help;
void cli_help_flags(FILE *f, const char *heading, const cli_flag_help *items, int n);

#endif
