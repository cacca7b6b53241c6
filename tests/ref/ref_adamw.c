#include "ref_adamw.h"

#include <math.h>

void ref_adamw_step(double lr, double beta1, double beta2, double eps, double wd, long step,
                    double *p, const double *g, double *m, double *v, size_t n) {
    double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    for (size_t i = 0; i < n; i++) {
        p[i] *= 1 - lr * wd;
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + eps);
    }
}
