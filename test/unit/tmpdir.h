/* Temporary directories and seeds for unit tests (header-only, included by test programs). */
#ifndef TEST_UNIT_TMPDIR_H
#define TEST_UNIT_TMPDIR_H

#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Make a fresh directory under $TMPDIR (or /tmp); the caller frees the result and removes the
 * directory with tmpdir_remove(). Aborts on failure: tests cannot run without it. */
static inline char *tmpdir_make(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    char *path;
    if (asprintf(&path, "%s/raftfs-%s-XXXXXX", base, tag) < 0)
        abort();
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return path;
}

static inline int tmpdir_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Remove the directory tree and free path. NULL is allowed. */
static inline void tmpdir_remove(char *path)
{
    if (path == NULL)
        return;
    nftw(path, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

/* Seed for randomized tests: RAFTFS_SEED if set, otherwise from the clock and pid. */
static inline uint64_t test_seed(void)
{
    const char *s = getenv("RAFTFS_SEED");
    if (s != NULL && s[0] != '\0')
        return strtoull(s, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^
           ((uint64_t)getpid() << 32);
}

/* splitmix64: small, good enough, and the same everywhere. */
static inline uint64_t test_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
