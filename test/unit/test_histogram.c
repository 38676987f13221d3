/* The runtime's latency histograms: percentiles within a factor of two of the truth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "raft/runtime/runtime.h"

static void percentiles_bound_the_samples(void **state)
{
    (void)state;
    struct raft_histogram h;
    memset(&h, 0, sizeof h);
    assert_int_equal(raft_histogram_percentile(&h, 50), 0);
    /* 90 samples of 100 us and 10 of 10,000 us, placed as the runtime places them. */
    h.buckets[6] = 90;  /* [64, 128) */
    h.buckets[13] = 10; /* [8192, 16384) */
    h.count = 100;
    uint64_t p50 = raft_histogram_percentile(&h, 50);
    uint64_t p95 = raft_histogram_percentile(&h, 95);
    assert_true(p50 >= 100 && p50 <= 200);
    assert_true(p95 >= 10000 && p95 <= 20000);
    assert_int_equal(raft_histogram_percentile(&h, 90), 128);
    assert_int_equal(raft_histogram_percentile(&h, 91), 16384);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percentiles_bound_the_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
