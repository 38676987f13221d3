/* --version of raftfsd and raftfs-ctl: one table of the formats, taken from the headers that
 * define them, so that what is reported is what the build checks. */
#include "tools/ctl/version.h"
#include "raft/net/transport.h"
#include "store/command.h"
#include "store/fsm.h"
#include "store/logstore.h"
#include "store/snapshot.h"
#include "tools/ctl/proto.h"

#ifndef RAFTFS_VERSION
#define RAFTFS_VERSION "unknown" /* built without the Makefile */
#endif

static const struct ctl_format formats[] = {
    {"disk", "state machine", STORE_FSM_FORMAT_VERSION, CTL_USED_BY_DAEMON},
    {"disk", "log", STORE_LOG_FORMAT_VERSION, CTL_USED_BY_DAEMON | CTL_USED_BY_CTL},
    {"disk", "snapshot", STORE_SNAPSHOT_VERSION, CTL_USED_BY_DAEMON | CTL_USED_BY_CTL},
    {"log entry", "command", STORE_CMD_VERSION, CTL_USED_BY_DAEMON},
    {"wire", "transport frame", RAFT__FRAME_VERSION, CTL_USED_BY_DAEMON},
    {"wire", "transport handshake", RAFT__HELLO_VERSION, CTL_USED_BY_DAEMON},
    {"wire", "control protocol", CTL_VERSION, CTL_USED_BY_DAEMON | CTL_USED_BY_CTL},
};

const char *ctl_build_version(void)
{
    return RAFTFS_VERSION;
}

const struct ctl_format *ctl_formats(unsigned *n)
{
    *n = sizeof formats / sizeof formats[0];
    return formats;
}

void ctl_version_print(FILE *f, const char *program, unsigned used_by)
{
    fprintf(f, "%s %s\n", program, RAFTFS_VERSION);
    for (unsigned i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i].used_by & used_by)
            fprintf(f, "%s format: %s %u\n", formats[i].kind, formats[i].name, formats[i].version);
}
