/* main() for a fuzz target built without libFuzzer: runs every file of the
 * directories (or the files) named on the command line through
 * LLVMFuzzerTestOneInput once, so corpus and crashers replay under ctest;
 * an input that crashes, or raises the peak memory over a limit, fails. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Like libFuzzer's -rss_limit_mb, tighter: no input of a few KB may cost a
 * gigabyte (ASan's quarantine of freed memory counts too). */
#define MAX_RSS_MB 1024

/* The file in a buffer of exactly its size, so ASan sees any overread. */
static int run_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return 0;
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) || sb.st_size < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        fclose(fp);
        return 0;
    }
    const size_t size = (size_t)sb.st_size;
    uint8_t *data = malloc(size ? size : 1);
    if (!data || fread(data, 1, size, fp) != size) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(data);
        fclose(fp);
        return 0;
    }
    fclose(fp);
    fprintf(stderr, "  %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss / 1024 > MAX_RSS_MB) {
        fprintf(stderr, "%s: peak memory %ld MB, over the %d MB limit\n", path, ru.ru_maxrss / 1024, MAX_RSS_MB);
        return 0;
    }
    return 1;
}

/* Hidden files (.gitkeep) and README files are not inputs. */
static int is_input(const struct dirent *e) { return e->d_name[0] != '.' && strncmp(e->d_name, "README", 6); }

int main(int argc, char **argv) {
    int files = 0, failed = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb)) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            if (run_file(argv[i])) files++;
            else failed = 1;
            continue;
        }
        struct dirent **names;
        const int n = scandir(argv[i], &names, is_input, alphasort);
        if (n < 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        for (int k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
            if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                if (run_file(path)) files++;
                else failed = 1;
            }
            free(names[k]);
        }
        free(names);
    }
    fprintf(stderr, "%s: %d inputs replayed\n", argv[0], files);
    /* No input at all means a wrong path, not a pass. */
    return failed || files == 0;
}
