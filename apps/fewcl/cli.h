/* Shared pieces of the `fewcl` subcommands. Exit codes: 0 success, 1 runtime failure,
 * 2 usage error. */
#ifndef FEWCL_CLI_H
#define FEWCL_CLI_H

#include "fewcl/fewcl.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

int cmd_devices(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_model(int argc, char **argv);
int cmd_bench_conv(int argc, char **argv);
int cmd_episode(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_test(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* Prints "fewcl <cmd>: <status>: <message>" to stderr and returns EXIT_RUNTIME. */
int cli_fail(const char *cmd, fewcl_status s);
/* Creates the context on the chosen device; returns 0, or the exit code after printing the
 * error (2 when --device/FEWCL_DEVICE names no device, 1 otherwise). */
int cli_open_device(const char *cmd, const char *device, fewcl_context **ctx);
/* Monotonic seconds, and a qsort comparison of doubles (for medians of timings). */
double cli_now(void);
int cli_cmp_double(const void *a, const void *b);
/* Formats a byte count as "3.72 GiB". */
const char *cli_bytes(double bytes, char *buf, int cap);

#endif
