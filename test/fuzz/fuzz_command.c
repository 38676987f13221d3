/* libFuzzer harness for the command decoder: any bytes must decode or be refused with
 * RFS_EDECODE, a decoded command must re-encode to the same bytes, and applying it to a
 * scratch store must give a result, never a crash or a store error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/error.h"
#include "store/fsm.h"

static struct store_fsm *fsm;
static uint64_t next_index;
static char dir[64];

static void cleanup(void)
{
    char p[128];
    store_fsm_close(fsm);
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store_cmd cmd;
    int r = store_cmd_decode(data, size, &cmd);
    if (r != 0) {
        if (r != RFS_EDECODE)
            abort();
        return 0;
    }
    uint8_t *again = malloc(size);
    size_t len = 0;
    if (again == NULL || store_cmd_encode(&cmd, again, size, &len) != 0 || len != size ||
        memcmp(again, data, size) != 0)
        abort();
    free(again);

    if (fsm == NULL) {
        /* A small limit: a long run fills it and goes on through ENOSPC answers. */
        struct store_fsm_options o = {.space_limit = 8 << 20, .no_sync = true};
        snprintf(dir, sizeof dir, "/dev/shm/rfs-fuzz-XXXXXX");
        if (mkdtemp(dir) == NULL || store_fsm_open(dir, &o, &fsm, NULL, 0) != 0)
            abort();
        atexit(cleanup);
    }
    /* Point inode and session fields at ones that may exist (session IDs are entry indexes),
     * so commands get past ENOENT and ENOLCK. */
    cmd.ino = cmd.ino % (next_index + 3);
    cmd.ino2 = cmd.ino2 % (next_index + 3);
    cmd.session = cmd.session % (next_index + 1);
    cmd.index = ++next_index;
    struct store_fsm_result res;
    r = store_fsm_apply_batch(fsm, next_index, 1, &cmd, 1, &res);
    if (r != 0 || res.err < 0 || res.err >= 1000)
        abort();
    return 0;
}
