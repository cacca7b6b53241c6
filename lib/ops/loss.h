/* Classification loss and accuracy on logits [rows, classes].
 * Labels are a float tensor [rows] of class indices (0, 1, ...; exact below 2^24), so they
 * live on the device with the logits and no host round trip is needed; fcl_episode_labels
 * writes the usual episode labels. A label that is not an integer in [0, classes) makes the
 * loss and that row's gradient NaN and never counts as correct. */
#ifndef FEWCL_OPS_LOSS_H
#define FEWCL_OPS_LOSS_H

#include "ops.h"

/* loss [1] = mean over rows of −log softmax(logits)[label] (F.cross_entropy, mean). */
fewcl_status fcl_cross_entropy_forward(fewcl_context *ctx, const fcl_tensor *logits,
                                       const fcl_tensor *labels, fcl_tensor *loss);
/* dlogits = dloss[0]·(softmax(logits) − onehot(label))/rows, overwritten; dloss is [1]. */
fewcl_status fcl_cross_entropy_backward(fewcl_context *ctx, const fcl_tensor *logits,
                                        const fcl_tensor *labels, const fcl_tensor *dloss,
                                        fcl_tensor *dlogits);
/* correct [1] = number of rows whose argmax (first maximum on ties) equals the label. */
fewcl_status fcl_accuracy(fewcl_context *ctx, const fcl_tensor *logits, const fcl_tensor *labels,
                          fcl_tensor *correct);
/* labels[r] = ⌊r / per_class⌋ (queries ordered class by class, as in the episodes). */
fewcl_status fcl_episode_labels(fewcl_context *ctx, fcl_tensor *labels, int per_class);

#endif
