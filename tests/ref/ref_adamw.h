/* AdamW reference in double (torch.optim.AdamW, amsgrad off). */
#ifndef FEWCL_TEST_REF_ADAMW_H
#define FEWCL_TEST_REF_ADAMW_H
#include <stddef.h>

void ref_adamw_step(double lr, double beta1, double beta2, double eps, double wd, long step,
                    double *p, const double *g, double *m, double *v, size_t n);

#endif
