/* libFuzzer harness: arbitrary bytes as a received snapshot file. The in-memory decoder and
 * the file path (receive, verify, read back) must never crash and must agree. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ftw.h>

#include "lib/error.h"
#include "store/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store_snapshot_dir *sd;
static char dir[256];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void cleanup(void)
{
    store_snapshot_dir_close(sd);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* A directory on tmpfs when there is one: the receive path fsyncs, which is free there. */
static void init(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/raftfs-fuzz-XXXXXX", base ? base : "/tmp");
    char eb[256];
    if (mkdtemp(dir) == NULL || store_snapshot_dir_open(dir, NULL, &sd, eb, sizeof eb) != 0) {
        fprintf(stderr, "fuzz_snapshot: cannot set up %s\n", dir);
        abort();
    }
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sd == NULL)
        init();

    struct store_snapshot_header h;
    int hrc = store_snapshot_header_decode(data, size, &h);
    if (hrc == 0) {
        /* Touch every byte the decoder says belongs to the config: ASan checks the bounds. */
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < h.meta.config_len; i++)
            sum ^= ((const uint8_t *)h.meta.config)[i];
        (void)sum;
    }
    int mrc = store_snapshot_image_verify(data, size, &h);

    /* The same bytes through the file path, in chunks whose size the input picks. */
    uint64_t index = hrc == 0 ? h.meta.index : 1, term = hrc == 0 ? h.meta.term : 1;
    struct store_snapshot_receiver *w;
    if (store_snapshot_receive_begin(sd, index, term, &w) != 0)
        abort();
    size_t chunk = size > 0 ? 1 + data[size - 1] * 37u : 1;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (store_snapshot_receive_write(w, off, data + off, n) != 0)
            abort();
    }
    int frc = store_snapshot_receive_finish(w, NULL);
    if ((frc == 0) != (mrc == 0)) {
        fprintf(stderr, "memory says %d, file says %d\n", mrc, frc);
        abort();
    }
    if (frc == 0) {
        /* Accepted: it must read back byte for byte. */
        struct store_snapshot_reader *r;
        if (store_snapshot_open(sd, index, term, &r) != 0 || store_snapshot_reader_size(r) != size)
            abort();
        uint8_t *back = malloc(size ? size : 1);
        size_t got;
        if (store_snapshot_reader_read(r, 0, back, size, &got) != 0 || got != size ||
            memcmp(back, data, size) != 0)
            abort();
        free(back);
        store_snapshot_reader_close(r);
    }
    return 0;
}
