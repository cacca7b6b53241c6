/* Progress of long phases on stderr: a bar with ETA redrawn in place on a terminal, plain
 * periodic lines otherwise (logs, CI). Also the Ctrl-C handling that lets training finish
 * its episode and save before stopping. */
#ifndef FEWCL_APP_PROGRESS_H
#define FEWCL_APP_PROGRESS_H

#include <signal.h>

#include "fewcl/fewcl.h"

typedef struct progress_state {
    int tty, quiet;
    double last_print;
    const char *last_phase;
    int last_epoch;
} progress_state;

void progress_init(progress_state *p, int quiet);
/* A fewcl_progress_fn; user is a progress_state. Returns 0 (stop requests go through
 * g_stop_token). */
int progress_update(void *user, const fewcl_progress *p);
/* Ends a bar line (before other output). */
void progress_break(progress_state *p);

/* The first SIGINT/SIGTERM sets the flag to the signal's number and raises g_stop_token (give
 * it to the job: the trainer saves and stops after the episode; the tool then exits 128 + the
 * signal); a second one kills the process as usual. The token is made by
 * install_stop_handler (NULL before, or when out of memory: then only the flag is set). */
extern volatile sig_atomic_t g_stop_requested;
extern fewcl_cancel *g_stop_token;
void install_stop_handler(void);
/* Names the command in the handler's message ("fewcl train: stopping ..."). */
void progress_set_command(const char *cmd);

#endif
