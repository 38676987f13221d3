/* Unsynced apply (docs/disk-format.md, "Unsynced apply"): the crash marker keeps what a process
 * crash leaves and empties what a machine crash may have torn. A machine crash is played by
 * rewriting the marker as another boot would have left it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "test/unit/fsm_util.h"

static const struct store_fsm_options unsynced = {.root_time = {T0 - 100, 5},
                                                  .unsynced_apply = true};

static void marker_path(const struct fx *f, char *buf, size_t len)
{
    snprintf(buf, len, "%s/unsynced", f->dir);
}

static bool has_marker(const struct fx *f)
{
    char p[128];
    marker_path(f, p, sizeof p);
    return access(p, F_OK) == 0;
}

static void set_marker(const struct fx *f, const char *content)
{
    char p[128];
    marker_path(f, p, sizeof p);
    FILE *file = fopen(p, "w");
    assert_non_null(file);
    assert_true(fputs(content, file) >= 0);
    assert_int_equal(fclose(file), 0);
}

static uint64_t applied(const struct fx *f)
{
    uint64_t index;
    assert_int_equal(store_fsm_applied(f->fsm, &index, NULL), 0);
    return index;
}

static bool exists(const struct fx *f, const char *name)
{
    struct store_fsm_attr a;
    return store_fsm_lookup(f->fsm, STORE_FSM_ROOT_INO, name, strlen(name), &a) == 0;
}

/* A child opens f's store, creates "a" and "b", and dies without closing it: a process crash
 * after two acknowledged applies. */
static void die_after_two_creates(struct fx *f)
{
    store_fsm_close(f->fsm);
    f->fsm = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (store_fsm_open(f->dir, &unsynced, &f->fsm, NULL, 0) != 0 ||
            do_create(f, STORE_FSM_ROOT_INO, "a", 0644, 0).err != 0 ||
            do_create(f, STORE_FSM_ROOT_INO, "b", 0644, 0).err != 0)
            _exit(1);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    f->index += 2;
}

static void reopen(struct fx *f)
{
    assert_int_equal(store_fsm_open(f->dir, &unsynced, &f->fsm, NULL, 0), 0);
}

static void clean_close_syncs_and_removes_the_marker(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open_opts(&f, &unsynced), 0);
    assert_true(has_marker(&f));
    assert_int_equal(do_create(&f, STORE_FSM_ROOT_INO, "a", 0644, 0).err, 0);
    store_fsm_close(f.fsm);
    f.fsm = NULL;
    assert_false(has_marker(&f));
    reopen(&f);
    assert_false(store_fsm_was_emptied(f.fsm));
    assert_int_equal(applied(&f), 1);
    assert_true(exists(&f, "a"));
    fx_close(&f);
}

static void process_crash_keeps_every_apply(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open_opts(&f, &unsynced), 0);
    die_after_two_creates(&f);
    assert_true(has_marker(&f)); /* left by the dead child, with this boot's id */
    reopen(&f);
    assert_false(store_fsm_was_emptied(f.fsm));
    assert_int_equal(applied(&f), 2);
    assert_true(exists(&f, "a") && exists(&f, "b"));
    fx_close(&f);
}

static void machine_crash_empties_the_store(void **state)
{
    (void)state;
    static const char *const stale[] = {"00000000-0000-4000-8000-000000000000\n", "sync failed\n"};
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
        struct fx f;
        assert_int_equal(fx_open_opts(&f, &unsynced), 0);
        die_after_two_creates(&f);
        set_marker(&f, stale[i]);
        reopen(&f);
        assert_true(store_fsm_was_emptied(f.fsm));
        assert_int_equal(applied(&f), 0);
        assert_false(exists(&f, "a"));
        /* A new store with its root, open again in unsynced mode for this boot. */
        struct store_fsm_attr root;
        assert_int_equal(store_fsm_getattr(f.fsm, STORE_FSM_ROOT_INO, &root), 0);
        assert_true(has_marker(&f));
        f.index = 0;
        assert_int_equal(do_create(&f, STORE_FSM_ROOT_INO, "c", 0644, 0).err, 0);
        fx_close(&f);
    }
}

static void no_sync_keeps_no_marker(void **state)
{
    (void)state;
    struct store_fsm_options o = unsynced;
    o.no_sync = true;
    struct fx f;
    assert_int_equal(fx_open_opts(&f, &o), 0);
    assert_false(has_marker(&f));
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clean_close_syncs_and_removes_the_marker),
        cmocka_unit_test(process_crash_keeps_every_apply),
        cmocka_unit_test(machine_crash_empties_the_store),
        cmocka_unit_test(no_sync_keeps_no_marker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
