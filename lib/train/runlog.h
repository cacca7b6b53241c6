/* The run folder's human-readable logs (docs/spec.md §6): metrics.csv, one row per epoch, and
 * curves.svg, the training curves (loss; train and validation accuracy) as a standalone SVG.
 * Both are rewritten whole (atomically) from the full history after every epoch. */
#ifndef FEWCL_TRAIN_RUNLOG_H
#define FEWCL_TRAIN_RUNLOG_H

#include "trainer.h"

fewcl_status fcl_runlog_write_csv(const char *path, const fcl_epoch_metrics *h, int n);
fewcl_status fcl_runlog_write_svg(const char *path, const fcl_epoch_metrics *h, int n,
                                  const char *title);

#endif
