/* WASI conformance for the ComputeShare sandbox, in C (wasi-libc).
 *
 * Exercises arguments, environment, clocks, randomness, /input (read, seek, stat,
 * readdir), /output (write, mkdir, rename, unlink), /tmp, refused escapes and sleeping,
 * and prints a report that must be identical on every replica.
 *
 *   conformance                 the full report
 *   conformance fill DIR        writes 64 KiB blocks to DIR/fill until a write fails
 *   conformance files DIR N     creates up to N empty files in DIR until one fails
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void check(const char *what, int ok) { printf("%s: %s\n", what, ok ? "ok" : "FAILED"); }

static void refused(const char *what, int result) {
    printf("%s: %s errno=%d\n", what, result < 0 ? "refused" : "ALLOWED", result < 0 ? errno : 0);
}

static int compare(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(const char *path) {
    DIR *dir = opendir(path);
    if (!dir) {
        printf("list %s: errno=%d\n", path, errno);
        return;
    }
    char *names[64];
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) && count < 64) {
        names[count++] = strdup(entry->d_name);
    }
    closedir(dir);
    /* The sandbox lists in name order already: print as listed, then check. */
    printf("list %s:", path);
    for (int i = 0; i < count; i++) printf(" %s", names[i]);
    printf("\n");
    char *sorted[64];
    memcpy(sorted, names, sizeof(char *) * count);
    qsort(sorted, count, sizeof(char *), compare);
    int same = 1;
    for (int i = 0; i < count; i++) same &= sorted[i] == names[i];
    check("listing sorted", same);
    for (int i = 0; i < count; i++) free(names[i]);
}

static long write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -errno;
    size_t n = fwrite(text, 1, strlen(text), f);
    if (fclose(f) != 0) return -errno;
    return (long)n;
}

static int fill(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/fill", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        printf("open %s: errno=%d\n", path, errno);
        return 1;
    }
    static char block[65536];
    memset(block, 'x', sizeof block);
    long long total = 0;
    for (;;) {
        ssize_t n = write(fd, block, sizeof block);
        if (n < 0) {
            printf("fill %s: %lld bytes, then errno=%d\n", dir, total, errno);
            break;
        }
        total += n;
    }
    struct stat st;
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    close(fd);
    return 0;
}

static void count_entries(const char *path) {
    DIR *dir = opendir(path);
    long entries = 0;
    char last[256] = "", previous[256] = "";
    int ordered = 1;
    struct dirent *entry;
    while (dir && (entry = readdir(dir))) {
        entries++;
        strcpy(previous, last);
        strncpy(last, entry->d_name, sizeof last - 1);
        if (entries > 2 && strcmp(previous, last) >= 0) ordered = 0;
    }
    if (dir) closedir(dir);
    printf("listed %ld entries, %s, last %s\n", entries, ordered ? "sorted" : "UNSORTED", last);
}

static int files(const char *dir, int most) {
    char path[256];
    for (int i = 0; i < most; i++) {
        snprintf(path, sizeof path, "%s/f%d", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        if (fd < 0) {
            printf("files %s: %d created, then errno=%d\n", dir, i, errno);
            count_entries(dir);
            return 0;
        }
        close(fd);
    }
    printf("files %s: %d created\n", dir, most);
    count_entries(dir);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "fill") == 0) return fill(argv[2]);
    if (argc == 4 && strcmp(argv[1], "files") == 0) return files(argv[2], atoi(argv[3]));

    printf("argc %d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d] %s\n", i, argv[i]);
    int envs = 0;
    for (char **e = environ; *e; e++) envs++;
    printf("environ %d GREETING=%s\n", envs, getenv("GREETING") ? getenv("GREETING") : "(unset)");

    /* clocks: virtual, deterministic, monotonic */
    struct timespec a, b, res;
    clock_gettime(CLOCK_REALTIME, &a);
    printf("realtime %lld.%09ld\n", (long long)a.tv_sec, a.tv_nsec);
    check("realtime after 2025-01-01", a.tv_sec >= 1735689600);
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    check("monotonic increases", b.tv_sec > a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec > a.tv_nsec));
    clock_getres(CLOCK_MONOTONIC, &res);
    printf("resolution %ld ns\n", res.tv_nsec);
    printf("time() %lld\n", (long long)time(NULL));

    /* randomness: seeded by the job */
    unsigned char random[16];
    check("getentropy", getentropy(random, sizeof random) == 0);
    printf("random ");
    for (int i = 0; i < 16; i++) printf("%02x", random[i]);
    printf("\n");

    /* /input */
    FILE *f = fopen("/input/hello.txt", "r");
    char line[256] = {0};
    check("open /input/hello.txt", f != NULL);
    if (f) {
        fgets(line, sizeof line, f);
        printf("hello.txt: %s", line);
        fseek(f, 6, SEEK_SET);
        printf("ftell after seek %ld, next char %c\n", ftell(f), fgetc(f));
        fseek(f, -2, SEEK_END);
        printf("ftell from end %ld\n", ftell(f));
        fclose(f);
    }
    struct stat st;
    check("stat /input/hello.txt", stat("/input/hello.txt", &st) == 0);
    printf("size %lld regular %d\n", (long long)st.st_size, S_ISREG(st.st_mode));
    check("stat /input/data is a directory", stat("/input/data", &st) == 0 && S_ISDIR(st.st_mode));
    int fd = open("/input/data/numbers.txt", O_RDONLY);
    char buf[64] = {0};
    ssize_t got = pread(fd, buf, 5, 3);
    printf("pread %zd: %.5s\n", got, buf);
    printf("lseek end %lld\n", (long long)lseek(fd, 0, SEEK_END));
    printf("read at end %zd\n", read(fd, buf, sizeof buf));
    close(fd);
    list("/input");
    list("/input/data");

    /* refused: escapes, writes to /input, symlinks */
    refused("open ../etc/passwd", open("../etc/passwd", O_RDONLY));
    refused("open /etc/passwd", open("/etc/passwd", O_RDONLY));
    refused("open /input/../../etc/passwd", open("/input/../../etc/passwd", O_RDONLY));
    refused("open /input/data/../../x", open("/input/data/../../x", O_RDONLY));
    refused("write /input/new", open("/input/new", O_WRONLY | O_CREAT, 0644));
    refused("truncate /input/hello.txt", open("/input/hello.txt", O_WRONLY | O_TRUNC));
    refused("unlink /input/hello.txt", unlink("/input/hello.txt"));
    refused("mkdir /input/d", mkdir("/input/d", 0755));
    refused("symlink /tmp/link", symlink("/input/hello.txt", "/tmp/link"));
    refused("link /tmp/hard", link("/input/hello.txt", "/tmp/hard"));
    refused("readlink /input/hello.txt", (int)readlink("/input/hello.txt", buf, sizeof buf));
    write_file("/tmp/cross", "x");
    refused("rename across preopens", rename("/tmp/cross", "/output/cross"));
    unlink("/tmp/cross");
    refused("open missing", open("/input/missing", O_RDONLY));

    /* /tmp: in memory */
    printf("write /tmp/scratch %ld\n", write_file("/tmp/scratch", "scratch data 0123456789\n"));
    fd = open("/tmp/scratch", O_RDWR);
    check("ftruncate /tmp/scratch", ftruncate(fd, 7) == 0);
    fstat(fd, &st);
    printf("size after truncate %lld\n", (long long)st.st_size);
    lseek(fd, 0, SEEK_END);
    write(fd, "!", 1);
    lseek(fd, 0, SEEK_SET);
    memset(buf, 0, sizeof buf);
    printf("read back %zd: %s\n", read(fd, buf, sizeof buf), buf);
    close(fd);
    check("mkdir /tmp/d", mkdir("/tmp/d", 0755) == 0);
    check("rename into /tmp/d", rename("/tmp/scratch", "/tmp/d/moved") == 0);
    list("/tmp/d");
    refused("rmdir non-empty /tmp/d", rmdir("/tmp/d"));
    check("unlink /tmp/d/moved", unlink("/tmp/d/moved") == 0);
    check("rmdir /tmp/d", rmdir("/tmp/d") == 0);
    list("/tmp");

    /* /output: real files */
    printf("write /output/report.txt %ld\n", write_file("/output/report.txt", "a report\n"));
    check("mkdir /output/sub", mkdir("/output/sub", 0755) == 0);
    printf("write /output/sub/a.txt %ld\n", write_file("/output/sub/a.txt", "first name\n"));
    check("rename a.txt to b.txt", rename("/output/sub/a.txt", "/output/sub/b.txt") == 0);
    printf("write /output/gone %ld\n", write_file("/output/gone", "removed\n"));
    check("unlink /output/gone", unlink("/output/gone") == 0);
    FILE *out = fopen("/output/sub/b.txt", "a");
    fprintf(out, "appended\n");
    fclose(out);
    refused("rename ../escape", rename("/output/report.txt", "/output/../escape"));
    list("/output");
    list("/output/sub");

    /* sleeping advances virtual time, and nothing else */
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct timespec nap = {2, 500000000};
    nanosleep(&nap, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long slept = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    check("slept at least 2.5 s of virtual time", slept >= 2500000000LL);
    check("and less than 2.6 s", slept < 2600000000LL);
    fflush(stdout);
    fprintf(stderr, "stderr is accepted and discarded\n");
    printf("done\n");
    return 0;
}
