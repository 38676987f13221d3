/* The one conversion of foreign errors (LMDB, errno) into RFS_E* codes for store/, with the
 * context a message needs (CONVENTIONS.md, "Errors"). */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>

#include "lib/error.h"
#include "store/error_map.h"

int store__error_code(int rc)
{
    switch (rc) {
    case MDB_NOTFOUND:
    case ENOENT: return RFS_ENOTFOUND;
    /* A transaction with too many dirty pages is storage that ran out, like a full map:
     * the request itself was valid. */
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return RFS_ENOSPACE;
    case MDB_BAD_VALSIZE: return RFS_EINVAL;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND: return RFS_ECORRUPT;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE: return RFS_EFORMAT;
    case ENOMEM: return RFS_ENOMEM;
    default: return RFS_EIO;
    }
}

int store__verror(char *buf, size_t len, int rc, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, len, fmt, ap);
    /* mdb_strerror gives strerror's text for an errno value. */
    if (n >= 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, ": %s", mdb_strerror(rc));
    return store__error_code(rc);
}

int store__error(char *buf, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int code = store__verror(buf, len, rc, fmt, ap);
    va_end(ap);
    return code;
}
