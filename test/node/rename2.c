/* rename2: renameat2(2) from the shell, for the POSIX tests (test/bats/0210-posix.bats), since
 * mv(1) has no RENAME_EXCHANGE. Not installed.
 *
 *   rename2 [noreplace|exchange|whiteout|0] OLD NEW
 *
 * Exits 0 on success; otherwise prints the errno's name and text ("EEXIST: File exists") and
 * exits 1; 2 on bad usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        unsigned flags;
    } modes[] = {{"0", 0},
                 {"noreplace", RENAME_NOREPLACE},
                 {"exchange", RENAME_EXCHANGE},
                 {"whiteout", RENAME_WHITEOUT}};
    if (argc != 4)
        goto usage;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(argv[1], modes[i].name) != 0)
            continue;
        if (syscall(SYS_renameat2, AT_FDCWD, argv[2], AT_FDCWD, argv[3], modes[i].flags) == 0)
            return 0;
        int err = errno;
        printf("%s: %s\n", strerrorname_np(err), strerror(err));
        return 1;
    }
usage:
    fprintf(stderr, "usage: rename2 noreplace|exchange|whiteout|0 OLD NEW\n");
    return 2;
}
