/* The demo dataset: Omniglot-style glyph classes rendered from the installed DejaVu fonts, so
 * `fewcl demo` needs no download. Each class is one character; each sample is that character
 * in another DejaVu face with a small random affine distortion; whole scripts go to one split
 * (base / val / novel), so the novel classes are new alphabets. Written as an ordinary FS-CT
 * JSON-filelist dataset: <out>/{base,val,novel}.json with paths relative to <out>. */
#ifndef FEWCL_DATA_DEMO_H
#define FEWCL_DATA_DEMO_H

#include <stdint.h>

#include "../runtime/runtime.h"

#define FCL_DEMO_FONT_DIR "/usr/share/fonts/truetype/dejavu"
/* Written last into <out>/version by fcl_demo_render; raised whenever the scripts, splits or
 * drawing change, so a folder rendered by an older fewcl is rendered again, not reused.
 * 1: 445/25/81 classes; 2: val adds Lao, base adds Latin-1/Extended-A/B, IPA, Cyrillic
 * Supplement. */
#define FCL_DEMO_DATA_VERSION 2

typedef struct fcl_demo_options {
    const char *out_dir;
    const char *font_dir; /* NULL: FCL_DEMO_FONT_DIR */
    int images_per_class; /* e.g. 20 */
    int size;             /* square image side in pixels, e.g. 84 */
    int min_faces;        /* a character is a class only if this many faces draw it */
    uint64_t seed;
} fcl_demo_options;

typedef struct fcl_demo_summary {
    int faces;
    int classes[3]; /* base, val, novel */
    int images;
} fcl_demo_summary;

fewcl_status fcl_demo_render(const fcl_demo_options *opt, fcl_demo_summary *summary);

#endif
