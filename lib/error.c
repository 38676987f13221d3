/* Text of the raftfs error codes, generated from the table in error.h. */
#include <string.h>

#include "lib/error.h"

static const char *const messages[] = {
#define RFS_MSG_(name, msg) [name - RFS_ERROR_BASE - 1] = msg,
    RFS_ERRORS(RFS_MSG_)
#undef RFS_MSG_
};

const char *rfs_strerror(int code)
{
    if (code == 0)
        return "success";
    if (code > RFS_ERROR_BASE && code < RFS_ERROR_END)
        return messages[code - RFS_ERROR_BASE - 1];
    if (code > 0 && code < RFS_ERROR_BASE)
        return strerror(code);
    return "unknown error";
}
