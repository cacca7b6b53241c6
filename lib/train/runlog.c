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

enum { PANEL_W = 420, PANEL_H = 270, MARGIN_L = 56, MARGIN_T = 44, MARGIN_B = 40, GAP = 30 };

/* An axis with round ticks: lo and hi are multiples of step, which is 1, 2 or 5 times a power
 * of ten, and labels carry just the decimals the step needs. */
typedef struct axis {
    double lo, hi, step;
    int decimals;
} axis;

static axis nice_axis(double lo, double hi, int ticks) {
    if (!(hi - lo > 1e-12 * fmax(fabs(lo), fabs(hi)))) { /* one value: a band around it */
        double pad = fabs(lo) > 0 ? fabs(lo) * 0.05 : 1;
        lo -= pad, hi += pad;
    }
    double raw = (hi - lo) / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    axis a = {floor(lo / step + 1e-9) * step, ceil(hi / step - 1e-9) * step, step, 0};
    if (step < 1) a.decimals = (int)ceil(-log10(step) - 1e-9);
    return a;
}

typedef struct panel {
    double x0;         /* left edge of the plot area */
    double e_lo, e_hi; /* epochs at the left and right edges */
    axis y;
} panel;

static double px(const panel *p, double epoch) {
    return p->x0 + (epoch - p->e_lo) / (p->e_hi - p->e_lo) * (PANEL_W - MARGIN_L - 10);
}

static double py(const panel *p, double v) {
    double f = fmin(fmax((v - p->y.lo) / (p->y.hi - p->y.lo), 0), 1); /* a band may pass 100% */
    return MARGIN_T + (1 - f) * (PANEL_H - MARGIN_T - MARGIN_B);
}

/* Axes, grid lines at the round ticks, epoch ticks (1 and multiples of a round step) and the
 * panel's title. */
static void axes(text *t, const panel *p, const char *title, int epochs) {
    double right = p->x0 + PANEL_W - MARGIN_L - 10, bottom = PANEL_H - MARGIN_B;
    put(t, "<text x=\"%.1f\" y=\"16\" font-weight=\"bold\">%s</text>\n", p->x0, title);
    int n = (int)floor((p->y.hi - p->y.lo) / p->y.step + 0.5);
    for (int i = 0; i <= n; i++) {
        double v = p->y.lo + p->y.step * i, y = py(p, v);
        put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", p->x0,
            y, right, y);
        put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", p->x0 - 4, y + 4,
            p->y.decimals, fabs(v) < p->y.step * 1e-6 ? 0.0 : v);
    }
    int step = (int)nice_axis(0, epochs, 8).step;
    if (step < 1) step = 1;
    for (int e = 1; e <= epochs; e = e == 1 && step > 1 ? step : e + step)
        put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", px(p, e),
            bottom + 16, e);
    put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">epoch</text>\n", (p->x0 + right) / 2,
        bottom + 32.0);
    put(t,
        "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n",
        p->x0, MARGIN_T, right - p->x0, PANEL_H - MARGIN_T - MARGIN_B);
}

static double field(const fcl_epoch_metrics *m, size_t offset) {
    return *(const double *)((const char *)m + offset);
}

/* Legend entries in a row under the title, left to right; *x is where the next one starts. */
static void legend(text *t, double *x, const char *colour, const char *label, int band) {
    if (band)
        put(t,
            "<rect x=\"%.1f\" y=\"24\" width=\"12\" height=\"10\" fill=\"%s\" "
            "fill-opacity=\"0.18\"/>",
            *x, colour);
    else
        put(t, "<rect x=\"%.1f\" y=\"27\" width=\"12\" height=\"4\" fill=\"%s\"/>", *x, colour);
    put(t, "<text x=\"%.1f\" y=\"33\">%s</text>\n", *x + 16, label);
    *x += 30 + 6.2 * (double)strlen(label);
}

/* One series as a polyline with dots; NaN values (no validation) are skipped. */
static void series(text *t, const panel *p, const fcl_epoch_metrics *h, int n, size_t offset,
                   const char *colour) {
    put(t, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colour);
    for (int i = 0; i < n; i++)
        if (!isnan(field(&h[i], offset)))
            put(t, "%.1f,%.1f ", px(p, h[i].epoch), py(p, field(&h[i], offset)));
    put(t, "\"/>\n");
    for (int i = 0; i < n; i++)
        if (!isnan(field(&h[i], offset)))
            put(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", px(p, h[i].epoch),
                py(p, field(&h[i], offset)), colour);
}

/* The validation accuracy's 95% interval: a band between the epochs, and a bar at each. */
static void ci_band(text *t, const panel *p, const fcl_epoch_metrics *h, int n,
                    const char *colour) {
    int k = 0;
    for (int i = 0; i < n; i++)
        k += !isnan(h[i].val_acc) && !isnan(h[i].val_ci95);
    if (!k) return;
    if (k > 1) {
        put(t, "<polygon fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\" points=\"", colour);
        for (int i = 0; i < n; i++)
            if (!isnan(h[i].val_acc) && !isnan(h[i].val_ci95))
                put(t, "%.1f,%.1f ", px(p, h[i].epoch), py(p, h[i].val_acc + h[i].val_ci95));
        for (int i = n - 1; i >= 0; i--)
            if (!isnan(h[i].val_acc) && !isnan(h[i].val_ci95))
                put(t, "%.1f,%.1f ", px(p, h[i].epoch), py(p, h[i].val_acc - h[i].val_ci95));
        put(t, "\"/>\n");
    }
    for (int i = 0; i < n && k <= 12; i++) { /* bars too, while there is room for them */
        if (isnan(h[i].val_acc) || isnan(h[i].val_ci95)) continue;
        double x = px(p, h[i].epoch), y0 = py(p, h[i].val_acc - h[i].val_ci95);
        double y1 = py(p, h[i].val_acc + h[i].val_ci95);
        put(t,
            "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fh8M%.1f %.1fh8\" stroke=\"%s\" "
            "stroke-opacity=\"0.6\" fill=\"none\"/>\n",
            x, y0, y1, x - 4, y0, x - 4, y1, colour);
    }
}

/* The best validation epoch (the first with the highest accuracy, as the trainer keeps it):
 * a dashed line, a ring and its value. */
static void best_marker(text *t, const panel *p, const fcl_epoch_metrics *h, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!isnan(h[i].val_acc) && (best < 0 || h[i].val_acc > h[best].val_acc)) best = i;
    if (best < 0) return;
    double x = px(p, h[best].epoch), y = py(p, h[best].val_acc);
    if (p->e_hi - p->e_lo > 1) /* with one epoch the ring alone says it */
        put(t,
            "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#555\" "
            "stroke-dasharray=\"4 3\"/>\n",
            x, MARGIN_T, x, PANEL_H - MARGIN_B);
    put(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"none\" stroke=\"#555\"/>\n", x, y);
    /* The label beside the line, on the side with more room, away from the point (at the
     * bottom when the best accuracy sits high, as it usually does), on a white ground. */
    double right = p->x0 + PANEL_W - MARGIN_L - 10, mid = (MARGIN_T + PANEL_H - MARGIN_B) / 2.0;
    int left_side = x > (p->x0 + right) / 2;
    double ty = y < mid ? PANEL_H - MARGIN_B - 8 : MARGIN_T + 14;
    char label[64];
    snprintf(label, sizeof label, "best: epoch %d, %.2f%%", h[best].epoch, h[best].val_acc);
    double w = 6.2 * (double)strlen(label) + 4;
    put(t,
        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"14\" fill=\"white\" "
        "fill-opacity=\"0.85\"/>\n",
        left_side ? x - 4 - w : x + 2, ty - 11, w);
    put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"#333\">%s</text>\n",
        left_side ? x - 6 : x + 4, ty, left_side ? "end" : "start", label);
}

/* The range of the series at `offsets`, with the validation interval when `ci` is set. */
static void range(const fcl_epoch_metrics *h, int n, const size_t *offsets, int k, int ci,
                  double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            double v = field(&h[i], offsets[j]), d = 0;
            if (isnan(v)) continue;
            if (ci && offsets[j] == offsetof(fcl_epoch_metrics, val_acc) && !isnan(h[i].val_ci95))
                d = h[i].val_ci95;
            *lo = fmin(*lo, v - d), *hi = fmax(*hi, v + d);
        }
    if (!isfinite(*lo)) *lo = 0, *hi = 1;
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
    /* One epoch sits in the middle of its panel; more span it, clear of the frame. */
    double pad = epochs > 1 ? 0.03 * (epochs - 1) : 0.5;
    double e_lo = 1 - pad, e_hi = epochs + pad;
    size_t loss_off[] = {offsetof(fcl_epoch_metrics, loss), offsetof(fcl_epoch_metrics, loss_ce)};
    size_t acc_off[] = {offsetof(fcl_epoch_metrics, train_acc),
                        offsetof(fcl_epoch_metrics, val_acc)};
    double lo, hi;
    range(h, n, loss_off, 2, 0, &lo, &hi);
    panel loss = {.x0 = MARGIN_L, .e_lo = e_lo, .e_hi = e_hi, .y = nice_axis(lo, hi, 5)};
    range(h, n, acc_off, 2, 1, &lo, &hi);
    panel acc = {.x0 = PANEL_W + GAP + MARGIN_L, .e_lo = e_lo, .e_hi = e_hi};
    acc.y = nice_axis(fmax(lo, 0), fmin(hi, 100), 5); /* percentages */
    axes(&t, &loss, "training loss", epochs);
    series(&t, &loss, h, n, loss_off[0], "#1f77b4");
    series(&t, &loss, h, n, loss_off[1], "#ff7f0e");
    double x = loss.x0;
    legend(&t, &x, "#1f77b4", "total", 0);
    legend(&t, &x, "#ff7f0e", "cross-entropy", 0);
    axes(&t, &acc, "accuracy (%)", epochs);
    ci_band(&t, &acc, h, n, "#d62728");
    series(&t, &acc, h, n, acc_off[0], "#2ca02c");
    series(&t, &acc, h, n, acc_off[1], "#d62728");
    best_marker(&t, &acc, h, n);
    x = acc.x0;
    legend(&t, &x, "#2ca02c", "train", 0);
    legend(&t, &x, "#d62728", "validation", 0);
    legend(&t, &x, "#d62728", "its 95% CI", 1);
    put(&t, "</svg>\n");
    return finish(&t, path);
}
