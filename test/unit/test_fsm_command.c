/* Command encoding: round trips of every type, and refusal of malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <cmocka.h>

#include "store/command.h"
#include "lib/error.h"

/* A command of the given type with every field set (encoders ignore what the type lacks). */
static struct store_cmd sample(uint8_t type)
{
    static const uint8_t data[] = {0, 1, 2, 0xff, 'd', 'a', 't', 'a'};
    struct store_cmd c = {
        .type = type,
        .time_sec = -5,
        .time_nsec = 999999999,
        .ino = 0x0102030405060708ull,
        .ino2 = UINT64_MAX,
        .flags = 0x80000001u,
        .mode = 0100644,
        .uid = 1000,
        .gid = 0xfffffffeu,
        .rdev = 77,
        .valid = 0xff,
        .size = 1ull << 40,
        .offset = 12345,
        .holders = 0x8000000000000005ull,
        .atime_sec = 1,
        .atime_nsec = 2,
        .mtime_sec = INT64_MIN,
        .mtime_nsec = 4,
        .name = "name",
        .name_len = 4,
        .name2 = "other-name",
        .name2_len = 10,
        .data = data,
        .data_len = sizeof data,
        .node = 0x1122334455667788ull,
        .session = UINT64_MAX - 1,
        .owner = 0xfedcba9876543210ull,
        .request = 42,
        .start = 1ull << 62,
        .len = 3,
        .pid = 0xffffffffu,
        .delay_ms = 15000,
        .lock_kind = STORE_CMD_LOCK_POSIX,
        .lock_type = STORE_CMD_LOCK_WRITE,
    };
    return c;
}

/* Which fields each type carries, to compare only those after a round trip. */
static void assert_same(uint8_t type, const struct store_cmd *a, const struct store_cmd *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->time_sec, b->time_sec);
    assert_int_equal(a->time_nsec, b->time_nsec);
    if (type != STORE_CMD_SESSION_OPEN && type != STORE_CMD_SESSION_END &&
        type != STORE_CMD_SESSION_RENEW)
        assert_int_equal(a->ino, b->ino);
    switch (type) {
    case STORE_CMD_LINK:
    case STORE_CMD_RENAME: assert_int_equal(a->ino2, b->ino2); break;
    }
    if (type == STORE_CMD_SETATTR) {
        assert_int_equal(a->valid, b->valid);
        assert_int_equal(a->size, b->size);
        assert_int_equal(a->atime_sec, b->atime_sec);
        assert_int_equal(a->atime_nsec, b->atime_nsec);
        assert_int_equal(a->mtime_sec, b->mtime_sec);
        assert_int_equal(a->mtime_nsec, b->mtime_nsec);
        assert_int_equal(a->mode, b->mode);
        assert_int_equal(a->uid, b->uid);
        assert_int_equal(a->gid, b->gid);
    }
    if (type == STORE_CMD_WRITE)
        assert_int_equal(a->offset, b->offset);
    if (type == STORE_CMD_UNLINK || type == STORE_CMD_RMDIR || type == STORE_CMD_RENAME ||
        type == STORE_CMD_FORGET)
        assert_int_equal(a->holders, b->holders);
    if (type == STORE_CMD_MKNOD)
        assert_int_equal(a->rdev, b->rdev);
    if (type == STORE_CMD_SESSION_OPEN || type == STORE_CMD_SESSION_RENEW)
        assert_int_equal(a->node, b->node);
    if (type == STORE_CMD_SESSION_END || type == STORE_CMD_SESSION_RENEW)
        assert_int_equal(a->delay_ms, b->delay_ms);
    if (type >= STORE_CMD_SESSION_END && type < STORE_CMD_SESSION_RENEW)
        assert_int_equal(a->session, b->session);
    if (type == STORE_CMD_FALLOCATE) {
        assert_int_equal(a->flags, b->flags);
        assert_int_equal(a->offset, b->offset);
        assert_int_equal(a->len, b->len);
    }
    if (type == STORE_CMD_LOCK || type == STORE_CMD_LOCK_RELEASE) {
        assert_int_equal(a->owner, b->owner);
        assert_int_equal(a->lock_kind, b->lock_kind);
    }
    if (type == STORE_CMD_LOCK || type == STORE_CMD_LOCK_CANCEL)
        assert_int_equal(a->request, b->request);
    if (type == STORE_CMD_LOCK) {
        assert_int_equal(a->pid, b->pid);
        assert_int_equal(a->lock_type, b->lock_type);
        assert_int_equal(a->start, b->start);
        assert_int_equal(a->len, b->len);
        assert_int_equal(a->flags, b->flags);
    }
    if (b->name_len) {
        assert_int_equal(a->name_len, b->name_len);
        assert_memory_equal(a->name, b->name, a->name_len);
    }
    if (b->name2_len) {
        assert_int_equal(a->name2_len, b->name2_len);
        assert_memory_equal(a->name2, b->name2, a->name2_len);
    }
    if (b->data_len) {
        assert_int_equal(a->data_len, b->data_len);
        assert_memory_equal(a->data, b->data, a->data_len);
    }
}

static void round_trip_every_type(void **state)
{
    (void)state;
    for (uint8_t type = 1; type < STORE_CMD_TYPE_END; type++) {
        struct store_cmd c = sample(type), d;
        uint8_t buf[256], again[256];
        size_t len, len2;
        size_t need = store_cmd_encoded_size(&c);
        assert_true(need > 0);
        assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
        assert_int_equal(len, need);
        assert_int_equal(buf[0], store_cmd_version_of(type));
        assert_int_equal(buf[0], type < STORE_CMD_SESSION_OPEN    ? 1
                                 : type < STORE_CMD_SESSION_RENEW ? 2
                                                                  : 3);
        assert_int_equal(buf[1], type);
        assert_int_equal(store_cmd_decode(buf, len, &d), 0);
        assert_same(type, &c, &d);
        /* Decoded fields point into the buffer (borrowed, no copy). */
        if (d.name_len)
            assert_true((const uint8_t *)d.name > buf && (const uint8_t *)d.name < buf + len);
        /* Re-encoding the decoded command gives the same bytes. */
        assert_int_equal(store_cmd_encode(&d, again, sizeof again, &len2), 0);
        assert_int_equal(len2, len);
        assert_memory_equal(buf, again, len);
        assert_string_not_equal(store_cmd_type_name(type), "unknown");
    }
    assert_string_equal(store_cmd_type_name(0), "unknown");
}

static void known_bytes(void **state)
{
    (void)state;
    /* unlink(parent 1, "ab", KEEP_OPEN, holders nodes 1 and 3) at 2:3, byte by byte as
     * docs/fsm-format.md says. */
    static const uint8_t want[] = {
        1, 4,                                   /* version, type UNLINK */
        2, 0, 0,   0,   0, 0, 0, 0, 3, 0, 0, 0, /* time */
        1, 0, 0,   0,   0, 0, 0, 0,             /* parent */
        0, 1, 0,   0,                           /* flags */
        5, 0, 0,   0,   0, 0, 0, 0,             /* holders */
        2, 0, 'a', 'b',                         /* name */
    };
    struct store_cmd c = {.type = STORE_CMD_UNLINK,
                          .time_sec = 2,
                          .time_nsec = 3,
                          .ino = 1,
                          .flags = STORE_CMD_KEEP_OPEN,
                          .holders = 5,
                          .name = "ab",
                          .name_len = 2};
    uint8_t buf[64];
    size_t len;
    assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
}

static void known_bytes_of_a_lock(void **state)
{
    (void)state;
    /* lock(inode 9, session 7, owner 5, request 3, pid 2, POSIX, WRITE, start 16, len 0, WAIT)
     * at 2:3, byte by byte as docs/fsm-format.md says. */
    static const uint8_t want[] = {
        2,  17,                   /* version, type LOCK */
        2,  0,  0, 0, 0, 0, 0, 0, /* time */
        3,  0,  0, 0,             /* time nsec */
        9,  0,  0, 0, 0, 0, 0, 0, /* inode */
        7,  0,  0, 0, 0, 0, 0, 0, /* session */
        5,  0,  0, 0, 0, 0, 0, 0, /* owner */
        3,  0,  0, 0, 0, 0, 0, 0, /* request */
        2,  0,  0, 0,             /* pid */
        2,  1,                    /* kind POSIX, type WRITE */
        16, 0,  0, 0, 0, 0, 0, 0, /* start */
        0,  0,  0, 0, 0, 0, 0, 0, /* len */
        1,  0,  0, 0,             /* flags WAIT */
    };
    struct store_cmd c = {.type = STORE_CMD_LOCK,
                          .time_sec = 2,
                          .time_nsec = 3,
                          .ino = 9,
                          .session = 7,
                          .owner = 5,
                          .request = 3,
                          .pid = 2,
                          .lock_kind = STORE_CMD_LOCK_POSIX,
                          .lock_type = STORE_CMD_LOCK_WRITE,
                          .start = 16,
                          .flags = STORE_CMD_LOCK_WAIT};
    uint8_t buf[96];
    size_t len;
    assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
}

static void known_bytes_of_a_fallocate(void **state)
{
    (void)state;
    /* fallocate(inode 9, PUNCH_HOLE|KEEP_SIZE, offset 4096, len 5) at 2:3. */
    static const uint8_t want[] = {
        3, 21,                   /* version, type FALLOCATE */
        2, 0,  0, 0, 0, 0, 0, 0, /* time */
        3, 0,  0, 0,             /* time nsec */
        9, 0,  0, 0, 0, 0, 0, 0, /* inode */
        3, 0,  0, 0,             /* flags */
        0, 16, 0, 0, 0, 0, 0, 0, /* offset */
        5, 0,  0, 0, 0, 0, 0, 0, /* len */
    };
    struct store_cmd c = {.type = STORE_CMD_FALLOCATE,
                          .time_sec = 2,
                          .time_nsec = 3,
                          .ino = 9,
                          .flags = STORE_CMD_FALLOC_PUNCH_HOLE | STORE_CMD_FALLOC_KEEP_SIZE,
                          .offset = 4096,
                          .len = 5};
    uint8_t buf[64];
    size_t len;
    assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
}

/* MKNOD is version 1, or version 3 when it makes a device or socket (version 1 refused them):
 * a build that predates version 3 refuses the entry instead of answering EPERM. */
static void mknod_of_a_device_is_version_3(void **state)
{
    (void)state;
    const uint32_t modes[] = {S_IFCHR, S_IFBLK, S_IFSOCK, S_IFIFO, S_IFREG, 0};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        struct store_cmd c = sample(STORE_CMD_MKNOD), d;
        c.mode = modes[i] | 0640;
        bool is_special = i < 3;
        assert_int_equal(store_cmd_is_special_mode(c.mode), is_special);
        uint8_t buf[256];
        size_t len;
        assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
        assert_int_equal(buf[0], is_special ? 3 : 1);
        assert_int_equal(store_cmd_version(&c), buf[0]);
        assert_int_equal(store_cmd_decode(buf, len, &d), 0);
        assert_int_equal(d.version, buf[0]);
        assert_int_equal(d.mode, c.mode);
        /* Version 2 never; version 1 for every mode (old logs); version 3 only for these. */
        buf[0] = 2;
        assert_int_equal(store_cmd_decode(buf, len, &d), RFS_EDECODE);
        buf[0] = 1;
        assert_int_equal(store_cmd_decode(buf, len, &d), 0);
        assert_int_equal(d.version, 1);
        buf[0] = 3;
        assert_int_equal(store_cmd_decode(buf, len, &d), is_special ? 0 : RFS_EDECODE);
    }
}

static void encode_errors(void **state)
{
    (void)state;
    struct store_cmd c = sample(STORE_CMD_CREATE);
    uint8_t buf[256];
    size_t len;
    assert_int_equal(store_cmd_encode(&c, buf, 10, &len), RFS_ERANGE);
    c.type = 0;
    assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), RFS_EINVAL);
    c.type = STORE_CMD_TYPE_END;
    assert_int_equal(store_cmd_encoded_size(&c), 0);
    c = sample(STORE_CMD_CREATE);
    c.name_len = 70000;
    assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), RFS_EINVAL);
    c = sample(STORE_CMD_SYMLINK);
    c.data_len = 70000; /* symlink targets have a 16-bit length */
    assert_int_equal(store_cmd_encoded_size(&c), 0);
    c = sample(STORE_CMD_CREATE);
    c.time_nsec = 1000000000;
    assert_int_equal(store_cmd_encoded_size(&c), 0);
    c = sample(STORE_CMD_SETATTR);
    c.mtime_nsec = 1000000000;
    assert_int_equal(store_cmd_encoded_size(&c), 0);
}

static void every_truncation_is_refused(void **state)
{
    (void)state;
    for (uint8_t type = 1; type < STORE_CMD_TYPE_END; type++) {
        struct store_cmd c = sample(type), d;
        uint8_t buf[256];
        size_t len;
        assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
        for (size_t cut = 0; cut < len; cut++) {
            /* A copy of exactly cut bytes, so ASan sees any read past it. */
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, buf, cut);
            assert_int_equal(store_cmd_decode(p, cut, &d), RFS_EDECODE);
            free(p);
        }
        buf[len] = 0;
        assert_int_equal(store_cmd_decode(buf, len + 1, &d), RFS_EDECODE);
    }
    struct store_cmd d;
    assert_int_equal(store_cmd_decode(NULL, 0, &d), RFS_EDECODE);
}

static void bad_header_fields_are_refused(void **state)
{
    (void)state;
    struct store_cmd c = sample(STORE_CMD_SETATTR), d;
    uint8_t buf[256];
    size_t len;
    assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
    assert_int_equal(store_cmd_decode(buf, len, &d), 0);
    uint8_t bad[256];
    memcpy(bad, buf, len);
    bad[0] = 2; /* version: SETATTR exists only as version 1 */
    assert_int_equal(store_cmd_decode(bad, len, &d), RFS_EDECODE);
    bad[0] = STORE_CMD_VERSION + 1;
    assert_int_equal(store_cmd_decode(bad, len, &d), RFS_EDECODE);
    memcpy(bad, buf, len);
    bad[1] = 0; /* type */
    assert_int_equal(store_cmd_decode(bad, len, &d), RFS_EDECODE);
    bad[1] = STORE_CMD_TYPE_END;
    assert_int_equal(store_cmd_decode(bad, len, &d), RFS_EDECODE);
    memcpy(bad, buf, len);
    bad[13] = 0x7f; /* command nsec >= 10^9 */
    assert_int_equal(store_cmd_decode(bad, len, &d), RFS_EDECODE);
    /* A version 2 type under version byte 1. */
    c = sample(STORE_CMD_LOCK);
    assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
    assert_int_equal(store_cmd_decode(buf, len, &d), 0);
    buf[0] = 1;
    assert_int_equal(store_cmd_decode(buf, len, &d), RFS_EDECODE);
    /* A name length pointing past the end. */
    c = sample(STORE_CMD_MKDIR);
    assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
    buf[len - 5] = 0xff; /* high byte of the 16-bit name length */
    assert_int_equal(store_cmd_decode(buf, len, &d), RFS_EDECODE);
    assert_int_equal(d.type, 0); /* a refused decode leaves nothing behind */
}

static void random_bytes_never_crash(void **state)
{
    (void)state;
    unsigned seed = 12345;
    uint8_t buf[96];
    int accepted = 0;
    for (int i = 0; i < 200000; i++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rand_r(&seed);
        /* Bias toward valid headers so the bodies get exercised. */
        if (len > 2 && (i & 1)) {
            buf[1] = (uint8_t)(1 + rand_r(&seed) % (STORE_CMD_TYPE_END - 1));
            buf[0] = (uint8_t)store_cmd_version_of(buf[1]);
            if (len > 13)
                buf[13] = 0;
        }
        struct store_cmd d;
        int r = store_cmd_decode(buf, len, &d);
        assert_true(r == 0 || r == RFS_EDECODE);
        if (r == 0) {
            accepted++;
            uint8_t again[96];
            size_t len2;
            assert_int_equal(store_cmd_encode(&d, again, sizeof again, &len2), 0);
            assert_int_equal(len2, len);
            /* The one command with two encodings: a version 1 MKNOD of a device or socket
             * (from logs of older builds) means another command, EPERM, and is encoded under
             * version 3 again. */
            if (d.type == STORE_CMD_MKNOD && d.version == 1 && store_cmd_is_special_mode(d.mode))
                again[0] = 1;
            assert_memory_equal(again, buf, len);
        }
    }
    assert_true(accepted > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_type),
        cmocka_unit_test(known_bytes),
        cmocka_unit_test(known_bytes_of_a_lock),
        cmocka_unit_test(known_bytes_of_a_fallocate),
        cmocka_unit_test(mknod_of_a_device_is_version_3),
        cmocka_unit_test(encode_errors),
        cmocka_unit_test(every_truncation_is_refused),
        cmocka_unit_test(bad_header_fields_are_refused),
        cmocka_unit_test(random_bytes_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
