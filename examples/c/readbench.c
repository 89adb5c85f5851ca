/* Reads a file in 1 MiB reads and prints its size and a cheap checksum (one byte per
 * 4 KiB), for the sandbox's file-read throughput figure (scripts/bench_wasi.py). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/input/big";
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    static unsigned char buffer[1 << 20];
    long long total = 0;
    unsigned sum = 0;
    ssize_t n;
    while ((n = read(fd, buffer, sizeof buffer)) > 0) {
        for (ssize_t i = 0; i < n; i += 4096) sum = sum * 31 + buffer[i];
        total += n;
    }
    printf("%lld bytes, checksum %08x\n", total, sum);
    return n < 0;
}
