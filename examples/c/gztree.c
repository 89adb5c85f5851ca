/* gztree: gzip every file of a directory tree into another, with zlib (built from source
 * beside it: examples/third_party/zlib). A job runs it as
 *     gztree /input /output
 * and leaves /output/<path>.gz for every /input/<path>; it prints one line per file and a
 * total, and exits non-zero on the first error. Plain C and POSIX: it runs natively too. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "zlib.h"

static unsigned long long total_in, total_out;
static unsigned files;

static int compress_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) { fprintf(stderr, "%s: %s\n", from, strerror(errno)); return -1; }
    gzFile out = gzopen(to, "wb");
    if (!out) { fprintf(stderr, "%s: cannot create\n", to); fclose(in); return -1; }
    static char buffer[1 << 16];
    size_t n;
    unsigned long long bytes = 0;
    while ((n = fread(buffer, 1, sizeof buffer, in)) > 0) {
        if (gzwrite(out, buffer, (unsigned)n) != (int)n) {
            fprintf(stderr, "%s: write failed\n", to); gzclose(out); fclose(in); return -1;
        }
        bytes += n;
    }
    fclose(in);
    if (gzclose(out) != Z_OK) { fprintf(stderr, "%s: close failed\n", to); return -1; }
    struct stat st;
    if (stat(to, &st) != 0) return -1;
    printf("%s %llu -> %lld\n", from, bytes, (long long)st.st_size);
    total_in += bytes;
    total_out += (unsigned long long)st.st_size;
    files++;
    return 0;
}

static int walk(const char *from, const char *to) {
    DIR *dir = opendir(from);
    if (!dir) { fprintf(stderr, "%s: %s\n", from, strerror(errno)); return -1; }
    /* Read every name first, then sort: the order (and so the output) is the same on
     * every machine, whatever order the directory lists them in. */
    char **names = NULL;
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, "..")) continue;
        names = realloc(names, (count + 1) * sizeof *names);
        names[count++] = strdup(entry->d_name);
    }
    closedir(dir);
    qsort(names, count, sizeof *names, (int (*)(const void *, const void *))strcmp);
    int status = 0;
    for (size_t i = 0; i < count && status == 0; i++) {
        char source[4096], target[4096];
        snprintf(source, sizeof source, "%s/%s", from, names[i]);
        struct stat st;
        if (stat(source, &st) != 0) { status = -1; break; }
        if (S_ISDIR(st.st_mode)) {
            snprintf(target, sizeof target, "%s/%s", to, names[i]);
            if (mkdir(target, 0755) != 0 && errno != EEXIST) {
                fprintf(stderr, "%s: %s\n", target, strerror(errno)); status = -1; break;
            }
            status = walk(source, target);
        } else {
            snprintf(target, sizeof target, "%s/%s.gz", to, names[i]);
            status = compress_file(source, target);
        }
    }
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    return status;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: gztree FROM TO\n"); return 2; }
    if (walk(argv[1], argv[2]) != 0) return 1;
    printf("%u files, %llu bytes -> %llu bytes\n", files, total_in, total_out);
    return 0;
}
