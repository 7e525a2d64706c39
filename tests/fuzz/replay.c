/* replay.c: a main for the fuzz targets outside libFuzzer, so that the ordinary builds (gcc, Release and
   ASan) run every input of a seed corpus through its target as a regression test (tests/fuzz/replay.cmake).
   Arguments are files or folders of files; a target reports a failure by crashing, as under libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int inputs = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *dir = opendir(argv[i]);
            struct dirent *ent;
            while (dir && (ent = readdir(dir))) {
                if (ent->d_name[0] == '.')
                    continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], ent->d_name);
                bad += replay_file(path);
                inputs++;
            }
            if (dir)
                closedir(dir);
        } else {
            bad += replay_file(argv[i]);
            inputs++;
        }
    }
    printf("replayed %d inputs\n", inputs);
    return bad || inputs == 0;
}
