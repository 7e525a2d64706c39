/* fuzz_file.h: the readers take paths, so each target writes its input to a file in a folder of its own,
   made once per process and removed at exit. Shared by the fuzz targets of tests/fuzz. */
#ifndef LATHE_FUZZ_FILE_H
#define LATHE_FUZZ_FILE_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[256];

static void fuzz_remove_dir(void) {
    char cmd[300];
    if (!fuzz_dir[0])
        return;
    /* the folder holds only what the targets wrote: a few files and at most one level of sub-folders */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir);
}

/* The folder of this process's files: in $TMPDIR, else in memory (/dev/shm) where there is one, else /tmp. */
static const char *fuzz_folder(void) {
    if (!fuzz_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp)
            tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/lathe-fuzz-XXXXXX", tmp);
        if (!mkdtemp(fuzz_dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_remove_dir);
        /* the readers' budget (runtime/budget.h), far below libFuzzer's -malloc_limit_mb, so that a file that
           asks for too much stops in the reader with its message rather than in libFuzzer as a crash */
        setenv("LATHE_READ_LIMIT", "256M", 0);
    }
    return fuzz_dir;
}

/* Writes data to fuzz_folder()/name (name may hold one '/' below a folder made before); returns the path
   (a static buffer). */
static const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_folder(), name);
    /* a new file each time: ext4 flushes a file truncated and written again to disk on close
       (auto_da_alloc), which made every input wait on the disk */
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fuzz: open");
        abort();
    }
    while (size > 0) {
        ssize_t w = write(fd, data, size);
        if (w <= 0) {
            perror("fuzz: write");
            abort();
        }
        data += w;
        size -= (size_t)w;
    }
    close(fd);
    return path;
}

#endif
