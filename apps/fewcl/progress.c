/* Progress bars and stop requests (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

volatile sig_atomic_t g_stop_requested;
fewcl_cancel *g_stop_token;
/* Written by the handler, so made before any signal can come. */
static char stop_message[128] = "\nfewcl: stopping after this episode (again to kill)...\n";

static void on_signal(int sig) {
    if (g_stop_requested) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_stop_requested = sig;
    fewcl_cancel_request(g_stop_token); /* async-signal-safe (fewcl/jobs.h) */
    ssize_t ignored = write(STDERR_FILENO, stop_message, strlen(stop_message));
    (void)ignored;
}

void progress_set_command(const char *cmd) {
    if (cli_dist.rank > 0) { /* mpirun forwards Ctrl-C to every rank: rank 0 says it */
        stop_message[0] = 0;
        return;
    }
    snprintf(stop_message, sizeof stop_message,
             "\nfewcl %.40s: stopping after this episode (again to kill)...\n", cmd);
}

void install_stop_handler(void) {
    if (!g_stop_token && fewcl_cancel_create(&g_stop_token) != FEWCL_OK) g_stop_token = NULL;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static double wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

void progress_init(progress_state *p, int quiet) {
    memset(p, 0, sizeof *p);
    p->tty = isatty(STDERR_FILENO);
    p->quiet = quiet || cli_dist.rank > 0; /* progress from rank 0 only */
}

void progress_break(progress_state *p) {
    if (p->tty && p->last_phase) fputc('\n', stderr);
    p->last_phase = NULL;
}

static void clock_text(double s, char *buf, size_t cap) {
    int t = s > 0 && s < 360000 ? (int)(s + 0.5) : 0; /* beyond 100 h: not worth showing */
    if (t >= 3600)
        snprintf(buf, cap, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%d:%02d", t / 60, t % 60);
}

int progress_update(void *user, const fewcl_progress *p) {
    progress_state *ps = user;
    if (ps->quiet) return 0;
    double t = wall();
    int finished = p->done == p->total;
    int new_phase = ps->last_phase != p->phase || ps->last_epoch != p->epoch;
    /* A terminal gets a bar redrawn in place at most ~10 times a second; a log or a pipe gets
     * plain lines: one every 30 s of a long phase and one when it ends. */
    if (!ps->tty && new_phase)
        ps->last_print = t, ps->last_phase = p->phase, ps->last_epoch = p->epoch;
    if (!finished && !new_phase && t - ps->last_print < (ps->tty ? 0.1 : 30)) return 0;
    if (!ps->tty && !finished && new_phase) return 0;
    if (new_phase) progress_break(ps);
    ps->last_print = t, ps->last_phase = p->phase, ps->last_epoch = p->epoch;
    char head[48] = "", eta[32], spent[32], bar[32], loss[32] = "";
    if (p->epochs) snprintf(head, sizeof head, "epoch %d/%d ", p->epoch, p->epochs);
    double rate = p->seconds > 0 ? p->done / p->seconds : 0;
    clock_text(rate > 0 ? (p->total - p->done) / rate : 0, eta, sizeof eta);
    clock_text(p->seconds, spent, sizeof spent);
    if (p->loss) snprintf(loss, sizeof loss, " loss %.4f", p->loss);
    if (!ps->tty) {
        fprintf(stderr, "%s%s: %ld/%ld episodes%s acc %.2f%% %.2f ep/s, %s %s\n", head, p->phase,
                p->done, p->total, loss, p->accuracy, rate, finished ? "took" : "ETA",
                finished ? spent : eta);
        fflush(stderr);
        return 0;
    }
    int width = 24, fill = (int)(width * (double)p->done / (p->total ? p->total : 1));
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%s%-5s [%s] %ld/%ld%s acc %.2f%% %.2f ep/s %s %s\033[K", head, p->phase, bar,
            p->done, p->total, loss, p->accuracy, rate, finished ? "took" : "ETA",
            finished ? spent : eta);
    fflush(stderr);
    return 0;
}
