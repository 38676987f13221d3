/* CRC32C with the x86 SSE4.2 instruction when present, slicing-by-one table otherwise. */
#include <stdbool.h>

#include "lib/crc32c.h"

#define POLY 0x82f63b78u /* Castagnoli, reflected */

static uint32_t table[256];
static bool table_ready;

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[i] = c;
    }
    __atomic_store_n(&table_ready, true, __ATOMIC_RELEASE);
}

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE))
        table_init(); /* idempotent: racing threads write the same values */
    while (len--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <string.h>

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
                                                         size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
    while (len--)
        crc = _mm_crc32_u8(crc, *p++);
    return crc;
}

static bool have_hw(void)
{
    return __builtin_cpu_supports("sse4.2");
}
#else
static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t len)
{
    return crc_sw(crc, p, len);
}

static bool have_hw(void)
{
    return false;
}
#endif

uint32_t rfs_crc32c(uint32_t crc, const void *buf, size_t len)
{
    crc = ~crc;
    crc = have_hw() ? crc_hw(crc, buf, len) : crc_sw(crc, buf, len);
    return ~crc;
}
