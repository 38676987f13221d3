/* libFuzzer harness for the parser of raftfs.conf: any bytes are accepted or refused with a
 * message that names the file, and what is accepted holds only values the setters allow. */
#include <stdlib.h>
#include <string.h>

#include "lib/error.h"
#include "tools/raftfsd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct args a;
    char err[512] = "";
    config_init(&a);
    int rc = config_parse(&a, "f.conf", (const char *)data, size, err, sizeof err);
    if (rc != 0) {
        if (rc != RFS_EINVAL || strncmp(err, "f.conf:", 7) != 0 || a.text != NULL)
            abort();
        return 0;
    }
    if (a.op_timeout_ms < 1000 || a.op_timeout_ms > 3600 * 1000 || a.max_file_size == 0 ||
        a.max_file_size > (64u << 20) || a.peers.n > RAFT_MAX_SERVERS ||
        a.consistency > FS_CONSISTENCY_LOCAL || a.cluster_id[0] == '\0' ||
        strlen(a.cluster_id) > 64 || (a.listen != NULL && strchr(a.listen, ':') == NULL))
        abort();
    for (unsigned i = 0; i < a.peers.n; i++)
        if (a.peers.servers[i].id == 0 ||
            raft_configuration_get(&a.peers, a.peers.servers[i].id) != &a.peers.servers[i])
            abort();
    config_free(&a);
    return 0;
}
