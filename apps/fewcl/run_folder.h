/* Run folders for `fewcl train`: whether a folder holds a run (its settings and state are read
 * with fewcl_run_read). */
#ifndef FEWCL_APP_RUN_FOLDER_H
#define FEWCL_APP_RUN_FOLDER_H

/* Whether dir/last.safetensors exists: the folder holds a run that --resume can continue. */
int run_folder_has_run(const char *dir);

#endif
