/* metrics.csv and curves.svg (see runlog.h). */
#include "runlog.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/atomic_file.h"

/* A growing text buffer; on allocation failure it stays NULL and the write reports it. */
typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *grown = realloc(t->s, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->s = grown, t->cap = cap;
    }
}

static fewcl_status finish(text *t, const char *path) {
    fewcl_status s = t->failed || !t->s ? fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "writing %s", path)
                                        : fcl_atomic_write_text(path, t->s);
    free(t->s);
    return s;
}

fewcl_status fcl_runlog_write_csv(const char *path, const fcl_epoch_metrics *h, int n) {
    text t = {0};
    put(&t, "epoch,loss,loss_ce,loss_var,loss_cov,train_acc,val_acc,val_ci95,episodes_per_s,"
            "loader_images_per_s,seconds,device_peak_bytes\n");
    for (int i = 0; i < n; i++) {
        const fcl_epoch_metrics *m = &h[i];
        put(&t, "%d,%.6g,%.6g,%.6g,%.6g,%.4f,", m->epoch, m->loss, m->loss_ce, m->loss_var,
            m->loss_cov, m->train_acc);
        if (isnan(m->val_acc))
            put(&t, ",,");
        else
            put(&t, "%.4f,%.4f,", m->val_acc, m->val_ci95);
        put(&t, "%.4g,%.4g,%.2f,%.0f\n", m->episodes_per_s, m->images_per_s, m->seconds,
            m->device_peak);
    }
    return finish(&t, path);
}

/* ---- SVG: two panels side by side, loss (left) and accuracy (right), against epochs ------ */

enum { PANEL_W = 420, PANEL_H = 260, MARGIN_L = 56, MARGIN_T = 34, MARGIN_B = 40, GAP = 30 };

typedef struct panel {
    double x0; /* left edge of the plot area */
    double lo, hi;
    int epochs;
} panel;

static double px(const panel *p, int epoch) {
    int span = p->epochs > 1 ? p->epochs - 1 : 1;
    return p->x0 + (double)(epoch - 1) / span * (PANEL_W - MARGIN_L - 10);
}

static double py(const panel *p, double v) {
    double f = p->hi > p->lo ? (v - p->lo) / (p->hi - p->lo) : 0.5;
    return MARGIN_T + (1 - f) * (PANEL_H - MARGIN_T - MARGIN_B);
}

/* Axes, four horizontal grid lines with their values, epoch ticks and the panel's title. */
static void axes(text *t, const panel *p, const char *title) {
    double right = p->x0 + PANEL_W - MARGIN_L - 10, bottom = PANEL_H - MARGIN_B;
    put(t, "<text x=\"%.1f\" y=\"20\" font-weight=\"bold\">%s</text>\n", p->x0, title);
    for (int i = 0; i <= 4; i++) {
        double v = p->lo + (p->hi - p->lo) * i / 4, y = py(p, v);
        put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", p->x0,
            y, right, y);
        put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", p->x0 - 4, y + 4,
            v);
    }
    int step = p->epochs > 10 ? (p->epochs + 9) / 10 : 1;
    for (int e = 1; e <= p->epochs; e += step)
        put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", px(p, e),
            bottom + 16, e);
    put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">epoch</text>\n", (p->x0 + right) / 2,
        bottom + 32.0);
    put(t,
        "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n",
        p->x0, MARGIN_T, right - p->x0, PANEL_H - MARGIN_T - MARGIN_B);
}

/* One series as a polyline with dots; NaN values (no validation) are skipped. */
static void series(text *t, const panel *p, const fcl_epoch_metrics *h, int n, size_t offset,
                   const char *colour, const char *label, int slot) {
    put(t, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colour);
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&h[i] + offset);
        if (!isnan(v)) put(t, "%.1f,%.1f ", px(p, h[i].epoch), py(p, v));
    }
    put(t, "\"/>\n");
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&h[i] + offset);
        if (!isnan(v))
            put(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", px(p, h[i].epoch),
                py(p, v), colour);
    }
    double lx = p->x0 + 10 + slot * 120.0;
    put(t, "<rect x=\"%.1f\" y=\"%d\" width=\"12\" height=\"4\" fill=\"%s\"/>", lx, MARGIN_T + 8,
        colour);
    put(t, "<text x=\"%.1f\" y=\"%d\">%s</text>\n", lx + 16, MARGIN_T + 14, label);
}

static void range(const fcl_epoch_metrics *h, int n, const size_t *offsets, int k, double *lo,
                  double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            double v = *(const double *)((const char *)&h[i] + offsets[j]);
            if (isnan(v)) continue;
            *lo = fmin(*lo, v), *hi = fmax(*hi, v);
        }
    if (!isfinite(*lo)) *lo = 0, *hi = 1;
    double pad = (*hi - *lo) * 0.08 + 1e-9;
    *lo -= pad, *hi += pad;
}

fewcl_status fcl_runlog_write_svg(const char *path, const fcl_epoch_metrics *h, int n,
                                  const char *title) {
    text t = {0};
    int width = 2 * PANEL_W + GAP, height = PANEL_H + 24;
    put(&t,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
        "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" "
        "fill=\"white\"/>\n<text x=\"%d\" y=\"%d\" fill=\"#555\">%s</text>\n",
        width, height, MARGIN_L, height - 6, title);
    int epochs = n ? h[n - 1].epoch : 1;
    size_t loss_off[] = {offsetof(fcl_epoch_metrics, loss), offsetof(fcl_epoch_metrics, loss_ce)};
    size_t acc_off[] = {offsetof(fcl_epoch_metrics, train_acc),
                        offsetof(fcl_epoch_metrics, val_acc)};
    panel loss = {.x0 = MARGIN_L, .epochs = epochs};
    panel acc = {.x0 = PANEL_W + GAP + MARGIN_L, .epochs = epochs};
    range(h, n, loss_off, 2, &loss.lo, &loss.hi);
    range(h, n, acc_off, 2, &acc.lo, &acc.hi);
    axes(&t, &loss, "training loss");
    series(&t, &loss, h, n, loss_off[0], "#1f77b4", "total", 0);
    series(&t, &loss, h, n, loss_off[1], "#ff7f0e", "cross-entropy", 1);
    axes(&t, &acc, "accuracy (%)");
    series(&t, &acc, h, n, acc_off[0], "#2ca02c", "train", 0);
    series(&t, &acc, h, n, acc_off[1], "#d62728", "validation", 1);
    put(&t, "</svg>\n");
    return finish(&t, path);
}
