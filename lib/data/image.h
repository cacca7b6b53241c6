/* Images: decoding (stb_image: JPEG, PNG, BMP; grey or RGB, always returned as RGB) and the
 * torchvision transforms of the reference (docs/maths.md §8) on 8-bit images: Resize of the
 * shorter side with PIL's antialiased bilinear filter, CenterCrop, ToTensor and ImageNet
 * Normalize. */
#ifndef FEWCL_DATA_IMAGE_H
#define FEWCL_DATA_IMAGE_H

#include "../runtime/runtime.h"

#define FCL_IMAGE_MAX_SIDE 16384 /* larger headers are rejected before decoding */

typedef struct fcl_image {
    int w, h;
    unsigned char *rgb; /* h rows of w RGB triples */
} fcl_image;

fewcl_status fcl_image_load(const char *path, fcl_image *out);
/* Decodes a file already in memory; `label` names it in messages. */
fewcl_status fcl_image_decode(const char *label, const unsigned char *bytes, size_t len,
                              fcl_image *out);
void fcl_image_free(fcl_image *img);
/* Resamples to exactly w x h with PIL's bilinear filter (support widened by the scale when
 * shrinking, i.e. antialiased), horizontal pass then vertical, each rounded to 8 bits. */
fewcl_status fcl_image_resize(const fcl_image *in, int w, int h, fcl_image *out);
/* torchvision Resize(size) with an int: the shorter side becomes `size`, the longer
 * int(size·long/short). */
fewcl_status fcl_image_resize_shorter(const fcl_image *in, int size, fcl_image *out);
/* A copy of the w x h region at (x, y); the region must lie inside the image. */
fewcl_status fcl_image_crop(const fcl_image *in, int x, int y, int w, int h, fcl_image *out);
/* Mirrors the image left to right, in place. */
void fcl_image_flip(fcl_image *img);
/* CenterCrop(size) (offsets round((H−size)/2), Python's half-to-even rounding), ToTensor and
 * Normalize(ImageNet mean/std) into chw[3·size·size]. The image must be at least size². */
fewcl_status fcl_image_to_tensor(const fcl_image *in, int size, float *chw);

#endif
