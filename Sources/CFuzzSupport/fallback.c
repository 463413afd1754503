#include "fuzz_support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path, tokend_fuzz_callback callback) {
    FILE *file = fopen(path, "rb");
    if (!file) { fprintf(stderr, "cannot read %s\n", path); return 1; }
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
    size_t read = fread(data, 1, (size_t)size, file);
    fclose(file);
    callback(data, read);
    free(data);
    return 0;
}

static int run_path(const char *path, tokend_fuzz_callback callback, int *count) {
    struct stat info;
    if (stat(path, &info) != 0) { fprintf(stderr, "no such file %s\n", path); return 1; }
    if (!S_ISDIR(info.st_mode)) { (*count)++; return run_file(path, callback); }
    DIR *directory = opendir(path);
    if (!directory) return 1;
    struct dirent *entry;
    int failed = 0;
    while ((entry = readdir(directory))) {
        if (entry->d_name[0] == '.') continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
        failed |= run_path(child, callback, count);
    }
    closedir(directory);
    return failed;
}

/// Weak: libFuzzer's definition wins when it is linked in.
__attribute__((weak)) int LLVMFuzzerRunDriver(int *argc, char ***argv, tokend_fuzz_callback callback) {
    int failed = 0, count = 0;
    for (int index = 1; index < *argc; index++) {
        const char *argument = (*argv)[index];
        if (argument[0] == '-') continue;
        failed |= run_path(argument, callback, &count);
    }
    fprintf(stderr, "replayed %d inputs without a crash\n", count);
    return failed;
}
