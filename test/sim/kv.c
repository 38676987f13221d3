/* The test state machine: a tiny key-value map. Commands and snapshots use a fixed
 * little-endian layout so that a snapshot taken on one node restores bit-exactly on another. */
#include <string.h>

#include "test/sim/sim.h"

#define SNAP_MAGIC 0x4b56534eu /* "NSVK" */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)p[i] << (8 * i);
    }
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

void sim_cmd_encode(const struct sim_cmd *cmd, uint8_t buf[SIM_CMD_BYTES])
{
    put32(buf, cmd->key);
    put64(buf + 4, cmd->value);
    put64(buf + 12, cmd->client);
    put64(buf + 20, cmd->request);
}

int sim_cmd_decode(const void *data, size_t len, struct sim_cmd *cmd)
{
    const uint8_t *p = data;
    if (len != SIM_CMD_BYTES || get32(p) >= SIM_KEYS) {
        return -1;
    }
    cmd->key = get32(p);
    cmd->value = get64(p + 4);
    cmd->client = get64(p + 12);
    cmd->request = get64(p + 20);
    return 0;
}

void sim_kv_apply(struct sim_kv *kv, const struct raft_entry *e)
{
    struct sim_cmd cmd;
    if (e->type == RAFT_ENTRY_COMMAND && sim_cmd_decode(e->data, e->len, &cmd) == 0) {
        kv->values[cmd.key] = cmd.value;
    }
    kv->applied_index = e->index;
    kv->applied_term = e->term;
}

uint64_t sim_kv_digest(const struct sim_kv *kv)
{
    return sim_hash(SIM_HASH_INIT, kv->values, sizeof kv->values);
}

void sim_kv_snapshot(const struct sim_kv *kv, uint8_t buf[SIM_SNAP_BYTES])
{
    put32(buf, SNAP_MAGIC);
    put64(buf + 4, kv->applied_index);
    put64(buf + 12, kv->applied_term);
    for (int k = 0; k < SIM_KEYS; k++) {
        put64(buf + 20 + 8 * k, kv->values[k]);
    }
    put64(buf + 20 + 8 * SIM_KEYS, sim_hash(SIM_HASH_INIT, buf, 20 + 8 * SIM_KEYS));
}

int sim_kv_restore(struct sim_kv *kv, const void *data, size_t len, uint64_t index, uint64_t term)
{
    const uint8_t *p = data;
    if (len != SIM_SNAP_BYTES || get32(p) != SNAP_MAGIC || get64(p + 4) != index ||
        get64(p + 12) != term ||
        get64(p + 20 + 8 * SIM_KEYS) != sim_hash(SIM_HASH_INIT, p, 20 + 8 * SIM_KEYS)) {
        return -1;
    }
    for (int k = 0; k < SIM_KEYS; k++) {
        kv->values[k] = get64(p + 20 + 8 * k);
    }
    kv->applied_index = index;
    kv->applied_term = term;
    return 0;
}
