/* Double-precision reference of cross-entropy (mean over rows) and argmax accuracy. */
#ifndef FEWCL_TEST_REF_LOSS_H
#define FEWCL_TEST_REF_LOSS_H

double ref_cross_entropy(const double *z, const int *labels, int rows, int classes);
/* dz = g·(softmax(z) − onehot)/rows */
void ref_cross_entropy_backward(const double *z, const int *labels, double g, double *dz, int rows,
                                int classes);
/* rows whose first maximum is at the label */
int ref_correct(const double *z, const int *labels, int rows, int classes);

#endif
