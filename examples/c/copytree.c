/* copytree: copy every file of a directory tree into another, 1 MiB at a time. The data
 * path's benchmark (scripts/bench_trees.py) runs it as `copytree /input /output` on a
 * GiB-scale tree: what a job costs to read and write, with no compute in between. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char buffer[1 << 20];
static unsigned long long copied;

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) { fprintf(stderr, "%s: %s\n", in ? to : from, strerror(errno)); return -1; }
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, in)) > 0) {
        if (fwrite(buffer, 1, n, out) != n) { fprintf(stderr, "%s: write failed\n", to); return -1; }
        copied += n;
    }
    fclose(in);
    return fclose(out) == 0 ? 0 : -1;
}

static int walk(const char *from, const char *to) {
    DIR *dir = opendir(from);
    if (!dir) { fprintf(stderr, "%s: %s\n", from, strerror(errno)); return -1; }
    struct dirent *entry;
    int status = 0;
    while (status == 0 && (entry = readdir(dir)) != NULL) {
        if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, "..")) continue;
        char source[4096], target[4096];
        snprintf(source, sizeof source, "%s/%s", from, entry->d_name);
        snprintf(target, sizeof target, "%s/%s", to, entry->d_name);
        struct stat st;
        if (stat(source, &st) != 0) { status = -1; break; }
        if (S_ISDIR(st.st_mode)) {
            if (mkdir(target, 0755) != 0 && errno != EEXIST) { status = -1; break; }
            status = walk(source, target);
        } else {
            status = copy_file(source, target);
        }
    }
    closedir(dir);
    return status;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: copytree FROM TO\n"); return 2; }
    if (walk(argv[1], argv[2]) != 0) return 1;
    printf("%llu bytes copied\n", copied);
    return 0;
}
