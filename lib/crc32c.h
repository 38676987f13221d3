/* CRC32C (Castagnoli), the checksum of log entries, snapshots and wire frames. */
#ifndef RFS_CRC32C_H
#define RFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (0 to start) over len bytes of buf and return the new value. Uses the SSE4.2
 * instruction when the processor has it, a table otherwise; both give the same result. */
uint32_t rfs_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
