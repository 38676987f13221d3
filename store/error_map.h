/* The one conversion of foreign errors into RFS_E* codes for store/: LMDB's return codes and
 * the errno values that LMDB passes through or that file calls set. Not a public header. */
#ifndef STORE_ERROR_MAP_H
#define STORE_ERROR_MAP_H

#include <stdarg.h>
#include <stddef.h>

/* The RFS_E* code (lib/error.h) for rc, an LMDB code or an errno value other than 0:
 * MDB_NOTFOUND and ENOENT: RFS_ENOTFOUND; a full map, transaction, disk, quota or file:
 * RFS_ENOSPACE; MDB_BAD_VALSIZE: RFS_EINVAL; damaged pages: RFS_ECORRUPT; an environment of
 * another format or version: RFS_EFORMAT; ENOMEM: RFS_ENOMEM; anything else: RFS_EIO. */
int store__error_code(int rc);

/* Write "<context>: <text of rc>" into buf (len bytes, NUL-terminated, truncated if need be),
 * the context being fmt formatted with ap, and return store__error_code(rc). Example:
 * "put inode 42: MDB_MAP_FULL: Environment mapsize limit reached". */
int store__verror(char *buf, size_t len, int rc, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* store__verror with the arguments inline. */
int store__error(char *buf, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
