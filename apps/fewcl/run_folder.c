/* Run folders (see run_folder.h). */
#include "run_folder.h"

#include <stdio.h>
#include <sys/stat.h>

int run_folder_has_run(const char *dir) {
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/last.safetensors", dir);
    return stat(path, &sb) == 0;
}
