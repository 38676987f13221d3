/* What --version of raftfsd and raftfs-ctl reports: the build's version (git describe at build
 * time, or the VERSION file of a release; the Makefile passes it) and the version of every
 * format on disk and on the wire that raftfs reads and writes. */
#ifndef CTL_VERSION_H
#define CTL_VERSION_H

#include <stdio.h>

enum { CTL_USED_BY_DAEMON = 1, CTL_USED_BY_CTL = 2 };

struct ctl_format {
    const char *kind; /* "disk", "log entry" or "wire" */
    const char *name;
    unsigned version;
    unsigned used_by; /* CTL_USED_BY_* bits */
};

/* The build's version: a static string. */
const char *ctl_build_version(void);

/* The formats, in a static table of *n entries. */
const struct ctl_format *ctl_formats(unsigned *n);

/* Print "PROGRAM VERSION", then "KIND format: NAME VERSION" for every format that a program of
 * used_by (CTL_USED_BY_*) uses, to f. */
void ctl_version_print(FILE *f, const char *program, unsigned used_by);

#endif
