/* Cluster configurations and their encoding, the payload of RAFT_ENTRY_CONFIG entries:
 *   u8 version (1) | u8 count | count x { u64 id (LE) | u8 suffrage | u8 addrlen | addr }
 * Decoding checks every length, so a corrupt entry is refused, never read past its end. */
#include <string.h>

#include "lib/le.h"
#include "raft/internal.h"

#define CONF_VERSION 1

size_t raft_configuration_encoded_size(const struct raft_configuration *c)
{
    size_t n = 2;
    for (unsigned i = 0; i < c->n; i++)
        n += 10 + strnlen(c->servers[i].address, RAFT_ADDRESS_MAX - 1);
    return n;
}

void raft_configuration_encode(const struct raft_configuration *c, uint8_t *buf)
{
    uint8_t *p = buf;
    *p++ = CONF_VERSION;
    *p++ = (uint8_t)c->n;
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_server *s = &c->servers[i];
        size_t len = strnlen(s->address, RAFT_ADDRESS_MAX - 1);
        rfs_put_le64(p, s->id);
        p += 8;
        *p++ = (uint8_t)s->suffrage;
        *p++ = (uint8_t)len;
        memcpy(p, s->address, len);
        p += len;
    }
}

int raft_configuration_decode(const uint8_t *buf, size_t len, struct raft_configuration *c)
{
    memset(c, 0, sizeof *c);
    if (len < 2 || buf[0] != CONF_VERSION || buf[1] > RAFT_MAX_SERVERS)
        return RAFT_EINVAL;
    unsigned n = buf[1];
    size_t pos = 2;
    for (unsigned i = 0; i < n; i++) {
        if (len - pos < 10)
            return RAFT_EINVAL;
        struct raft_server *s = &c->servers[i];
        s->id = rfs_get_le64(buf + pos);
        uint8_t suffrage = buf[pos + 8];
        size_t alen = buf[pos + 9];
        pos += 10;
        if (s->id == 0 || (suffrage != RAFT_VOTER && suffrage != RAFT_LEARNER) ||
            alen >= RAFT_ADDRESS_MAX || len - pos < alen || memchr(buf + pos, 0, alen) != NULL)
            return RAFT_EINVAL;
        s->suffrage = suffrage;
        memcpy(s->address, buf + pos, alen);
        s->address[alen] = '\0';
        pos += alen;
        for (unsigned j = 0; j < i; j++)
            if (c->servers[j].id == s->id)
                return RAFT_EINVAL;
    }
    if (pos != len)
        return RAFT_EINVAL;
    c->n = n;
    return 0;
}

const struct raft_server *raft_configuration_get(const struct raft_configuration *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == id)
            return &c->servers[i];
    return NULL;
}

unsigned raft_configuration_voters(const struct raft_configuration *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->n; i++)
        n += c->servers[i].suffrage == RAFT_VOTER;
    return n;
}

static int make_entry(const struct raft_configuration *conf, uint64_t index, uint64_t term,
                      uint8_t *buf, struct raft_entry *entry)
{
    if (raft_configuration_voters(conf) == 0)
        return RAFT_ENOQUORUM;
    raft_configuration_encode(conf, buf);
    entry->index = index;
    entry->term = term;
    entry->type = RAFT_ENTRY_CONFIG;
    entry->len = (uint32_t)raft_configuration_encoded_size(conf);
    entry->data = buf;
    return 0;
}

int raft_bootstrap_entry(const struct raft_configuration *conf, uint8_t *buf,
                         struct raft_entry *entry)
{
    return make_entry(conf, 1, 1, buf, entry);
}

int raft_recover_entry(const struct raft_configuration *conf, uint64_t last_index, uint64_t term,
                       uint8_t *buf, struct raft_entry *entry)
{
    if (term == 0)
        return RAFT_EINVAL;
    return make_entry(conf, last_index + 1, term, buf, entry);
}
