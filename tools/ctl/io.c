/* Whole control frames on a blocking socket: both raftfsd's control server and raftfs-ctl use
 * these. Timeouts come from the socket (SO_RCVTIMEO, SO_SNDTIMEO), set by the caller; a receive
 * timeout bounds the whole frame, so a peer that sends a byte now and then cannot stretch it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "tools/ctl/proto.h"
#include "lib/error.h"

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

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Before each receive, the socket's timeout is what remains until deadline_us (0: no deadline).
 * Returns 0, or -1 with errno EAGAIN once the deadline passed. */
static int set_remaining(int fd, uint64_t deadline_us)
{
    if (deadline_us == 0)
        return 0;
    uint64_t now = now_us();
    if (now >= deadline_us) {
        errno = EAGAIN;
        return -1;
    }
    uint64_t left = deadline_us - now;
    struct timeval tv = {.tv_sec = (time_t)(left / 1000000), .tv_usec = (long)(left % 1000000)};
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* Read exactly n bytes by deadline_us. Returns the bytes read before an end of stream (< n),
 * or -1 with errno set on an error or a timeout. */
static ssize_t read_full(int fd, uint8_t *p, size_t n, uint64_t deadline_us)
{
    size_t off = 0;
    while (off < n) {
        if (set_remaining(fd, deadline_us) != 0)
            return -1;
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

static int recv_frame(int fd, struct ctl_msg *m, uint64_t deadline, char *err, size_t errlen);

int ctl_recv(int fd, struct ctl_msg *m, char *err, size_t errlen)
{
    struct timeval tv = {0};
    socklen_t tvlen = sizeof tv;
    uint64_t deadline = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen) == 0 &&
        (tv.tv_sec != 0 || tv.tv_usec != 0))
        deadline = now_us() + (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
    int rc = recv_frame(fd, m, deadline, err, errlen);
    if (deadline != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); /* the next frame's budget */
    return rc;
}

static int recv_frame(int fd, struct ctl_msg *m, uint64_t deadline, char *err, size_t errlen)
{
    uint8_t h[CTL_HEADER];
    ssize_t r = read_full(fd, h, sizeof h, deadline);
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
    r = read_full(fd, payload, len, deadline);
    if (r < 0)
        return read_error(err, errlen, "frame payload");
    if ((size_t)r < len) {
        snprintf(err, errlen, "the connection was closed inside a %u-byte payload", len);
        return RFS_EIO;
    }
    return ctl_decode(type, payload, len, m, err, errlen);
}
