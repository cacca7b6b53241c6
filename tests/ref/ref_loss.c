/* Cross-entropy and accuracy in double. */
#include <math.h>

#include "ref_loss.h"

static double lse(const double *z, int classes) {
    double m = -INFINITY, s = 0;
    for (int k = 0; k < classes; k++)
        m = fmax(m, z[k]);
    for (int k = 0; k < classes; k++)
        s += exp(z[k] - m);
    return m + log(s);
}

double ref_cross_entropy(const double *z, const int *labels, int rows, int classes) {
    double total = 0;
    for (int r = 0; r < rows; r++)
        total += lse(z + (long)r * classes, classes) - z[(long)r * classes + labels[r]];
    return total / rows;
}

void ref_cross_entropy_backward(const double *z, const int *labels, double g, double *dz, int rows,
                                int classes) {
    for (int r = 0; r < rows; r++) {
        const double *zr = z + (long)r * classes;
        double l = lse(zr, classes);
        for (int k = 0; k < classes; k++)
            dz[(long)r * classes + k] = g * (exp(zr[k] - l) - (k == labels[r])) / rows;
    }
}

int ref_correct(const double *z, const int *labels, int rows, int classes) {
    int n = 0;
    for (int r = 0; r < rows; r++) {
        int best = 0;
        for (int k = 1; k < classes; k++)
            if (z[(long)r * classes + k] > z[(long)r * classes + best]) best = k;
        n += best == labels[r];
    }
    return n;
}
