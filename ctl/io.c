/* Whole control frames on a blocking socket: both raftfsd's control server and raftfs-ctl use
 * these. Timeouts are the socket's own (SO_RCVTIMEO, SO_SNDTIMEO), set by the caller. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "ctl/proto.h"
#include "store/error.h"

int ctl_send(int fd, const struct ctl_msg *m)
{
    uint8_t buf[CTL_FRAME_MAX];
    size_t n = ctl_encode(m, buf, sizeof buf);
    if (n == 0)
        return RFS_EINVAL;
    for (size_t off = 0; off < n;) {
        /* MSG_NOSIGNAL: a peer that went away is an error here, not a SIGPIPE. */
        ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return RFS_EIO;
        off += (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes. Returns the bytes read before an end of stream (< n), or -1 with errno
 * set on an error or a timeout. */
static ssize_t read_full(int fd, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = recv(fd, p + off, n - off, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        off += (size_t)r;
    }
    return (ssize_t)off;
}

static int read_error(char *err, size_t errlen, const char *what)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        snprintf(err, errlen, "timed out reading the %s", what);
    else
        snprintf(err, errlen, "reading the %s: %s", what, strerror(errno));
    return RFS_EIO;
}

int ctl_recv(int fd, struct ctl_msg *m, char *err, size_t errlen)
{
    uint8_t h[CTL_HEADER];
    ssize_t r = read_full(fd, h, sizeof h);
    if (r < 0)
        return read_error(err, errlen, "frame header");
    if (r == 0) {
        snprintf(err, errlen, "the connection was closed");
        return RFS_ENOTFOUND;
    }
    if ((size_t)r < sizeof h) {
        snprintf(err, errlen, "the connection was closed inside a frame header");
        return RFS_EIO;
    }
    enum ctl_type type;
    uint32_t len;
    int rc = ctl_header_check(h, &type, &len, err, errlen);
    if (rc != 0)
        return rc;
    uint8_t payload[CTL_PAYLOAD_MAX];
    r = read_full(fd, payload, len);
    if (r < 0)
        return read_error(err, errlen, "frame payload");
    if ((size_t)r < len) {
        snprintf(err, errlen, "the connection was closed inside a %u-byte payload", len);
        return RFS_EIO;
    }
    return ctl_decode(type, payload, len, m, err, errlen);
}
