/* `fewcl`: dispatch to one file per subcommand. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "progress.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"devices", cmd_devices, "list every OpenCL platform and device with its limits"},
    {"bench", cmd_bench, "time the kernels on a device and check them against the CPU"},
    {"plan", cmd_plan, "device memory one episode needs, per category, and whether it fits"},
    {"train", cmd_train, "train a few-shot classifier episodically (AdamW, validation, resume)"},
    {"test", cmd_test, "accuracy of trained weights over test episodes, with its 95% CI"},
    {"predict", cmd_predict, "classify images from a few examples per class (trained weights)"},
    {"demo", cmd_demo, "render a glyph dataset from the system fonts, train and test on it"},
    {"episode", cmd_episode, "run one episode from tensors in a file (parity with PyTorch)"},
};

static void usage(FILE *f) {
    fprintf(f,
            "fewcl %s — few-shot image classification on any OpenCL device\n\n"
            "usage: fewcl <command> [options]   (fewcl <command> --help for its options)\n\n",
            FEWCL_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nThe device is chosen by --device or FEWCL_DEVICE: an index P:D or part of a\n"
               "name (nvidia, amd, intel, pocl); default the first GPU, else the first CPU.\n"
               "Exit status: 0 success, 1 failure, 2 usage error, 130 stopped by Ctrl-C\n"
               "(after saving what a resume needs).\n");
}

/* The tool's own pending failure message ("" when none). */
static char own_error[8192];

fewcl_status cli_error(fewcl_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(own_error, sizeof own_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *cli_last_error(void) { return own_error[0] ? own_error : fewcl_last_error(); }

fewcl_dist_info cli_dist = {.struct_size = sizeof cli_dist, .size = 1};

const char *cli_rank_prefix(void) {
    static char prefix[32];
    if (cli_dist.rank == 0) return "";
    snprintf(prefix, sizeof prefix, "rank %d: ", cli_dist.rank);
    return prefix;
}

/* A failure that another rank had and the job agreed on ("rank F of R (host H): ..."): rank
 * 0 prints it, the other ranks need not repeat it. */
static int failure_of_another_rank(const char *message) {
    int f, size;
    return cli_dist.rank > 0 && sscanf(message, "rank %d of %d", &f, &size) == 2 &&
           f != cli_dist.rank;
}

int cli_fail(const char *cmd, fewcl_status s) {
    if (!failure_of_another_rank(cli_last_error()))
        fprintf(stderr, "%sfewcl %s: %s: %s\n", cli_rank_prefix(), cmd, fewcl_status_name(s),
                cli_last_error());
    own_error[0] = 0;
    /* Stopped on request (Ctrl-C) after saving: not a failure, and scripts can tell. */
    if (s == FEWCL_ERR_INTERRUPTED && g_stop_requested) return EXIT_STOPPED(g_stop_requested);
    return EXIT_RUNTIME;
}

int cli_fail_alone(const char *cmd, fewcl_status s) {
    if (cli_dist.size <= 1) return cli_fail(cmd, s);
    char message[8400];
    snprintf(message, sizeof message, "fewcl %s: %s: %s", cmd, fewcl_status_name(s),
             cli_last_error());
    fewcl_dist_abort(EXIT_RUNTIME, message);
}

int cli_single_rank_only(const char *cmd) {
    if (cli_dist.size <= 1) return 0;
    if (cli_dist.rank == 0)
        fprintf(stderr,
                "fewcl %s runs as one rank; run it with one rank, or train across ranks with "
                "`mpirun -np %d fewcl train --meta-batch M ...` (M >= 2)\n",
                cmd, cli_dist.size);
    return EXIT_USAGE;
}

int cli_open_device(const char *cmd, const char *device, fewcl_context **ctx) {
    fewcl_status s = fewcl_context_create(device, ctx);
    if (s == FEWCL_OK) return 0;
    if (cli_dist.size > 1) cli_fail_alone(cmd, s); /* does not return */
    const char *env = getenv("FEWCL_DEVICE");
    int chosen = (device && *device) || (env && *env);
    fprintf(stderr, "fewcl %s: %s: %s\n", cmd, fewcl_status_name(s), fewcl_last_error());
    /* A device name that matches nothing is a bad argument; no device at all is not. */
    return s == FEWCL_ERR_NO_DEVICE && chosen ? EXIT_USAGE : EXIT_RUNTIME;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cli_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

const char *cli_bytes(double bytes, char *buf, int cap) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4)
        bytes /= 1024, u++;
    snprintf(buf, (size_t)cap, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

/* One command line, after MPI's own arguments are gone. */
static int run(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("fewcl %s\n", FEWCL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            progress_set_command(commands[i].name);
            return commands[i].run(argc - 1, argv + 1);
        }
    const char *names[sizeof commands / sizeof *commands];
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        names[i] = commands[i].name;
    fprintf(stderr, "fewcl: unknown command '%s'\n", argv[1]);
    const char *guess = cli_closest(argv[1], names, (int)(sizeof names / sizeof *names));
    if (guess) fprintf(stderr, "did you mean `fewcl %s`?\n", guess);
    fprintf(stderr, "see `fewcl --help`\n");
    return EXIT_USAGE;
}

int main(int argc, char **argv) {
    /* First: under mpirun/srun this starts MPI (a plain run does not); last: ends it. */
    fewcl_status s = fewcl_dist_init(&argc, &argv, &cli_dist);
    if (s != FEWCL_OK) {
        fprintf(stderr, "fewcl: %s: %s\n", fewcl_status_name(s), fewcl_last_error());
        return s == FEWCL_ERR_ARGUMENT ? EXIT_USAGE : EXIT_RUNTIME;
    }
    int rc = run(argc, argv);
    fewcl_dist_finalize();
    return rc;
}
