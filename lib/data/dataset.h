/* Datasets: the FS-CT JSON filelists (docs/spec.md §5.1) and plain image folders
 * (root/<class>/<image>). Images are grouped by class; classes are the sorted unique labels
 * (JSON) or the sorted folder names, which is the order the episode sampler indexes. */
#ifndef FEWCL_DATA_DATASET_H
#define FEWCL_DATA_DATASET_H

#include "../runtime/runtime.h"

typedef struct fcl_dataset {
    char source[512]; /* the file or folder it came from, for messages */
    int n_classes;
    int n_images;
    char **class_names; /* per class: label_names[label] when given, else the label or folder */
    int *class_label;   /* per class: the label as written in the file (JSON) or its index */
    int *class_start;   /* per class: first index into `paths` */
    int *class_count;   /* per class: number of images */
    char **paths;       /* image paths grouped by class, resolved against the data root */
} fcl_dataset;

/* Reads a filelist {"image_names": [...], "image_labels": [...], "label_names": [...]};
 * relative image paths are joined to `data_root` (NULL: the JSON file's folder). Errors name
 * the file and the offending entry. Images are not opened here. */
fewcl_status fcl_dataset_load_json(const char *json_path, const char *data_root, fcl_dataset **out);
/* Parses filelist JSON text already in memory (`label` names it in messages). */
fewcl_status fcl_dataset_parse_json(const char *label, const char *text, size_t len,
                                    const char *data_root, fcl_dataset **out);
/* Reads root/<class>/<image> (hidden entries skipped; .jpg .jpeg .png .bmp, any case). */
fewcl_status fcl_dataset_load_folder(const char *root, fcl_dataset **out);
/* A folder (fcl_dataset_load_folder) or a filelist (fcl_dataset_load_json), by what path is. */
fewcl_status fcl_dataset_open(const char *path, const char *data_root, fcl_dataset **out);
void fcl_dataset_free(fcl_dataset *d);
/* Checks that episodes of n_way classes with k_shot + n_query distinct images each can be
 * drawn; the error names the first class that is too small and the counts. */
fewcl_status fcl_dataset_check_episode(const fcl_dataset *d, int n_way, int k_shot, int n_query);

#endif
