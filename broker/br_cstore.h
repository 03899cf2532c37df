/*
 * br_cstore: where a cursor's records live (Pulsar's cursor ledger). The
 * store does not know what a record means (br_cursor encodes them); it keeps
 * them durable, in order, and gives them back after a takeover.
 *
 * Layout. The znode <root>/cursors/<group>/<topic>/<queue> holds a small
 * text record with a CRC (our usual framing): the current cursor ledger's
 * id and its creation time. The cursor ledger (an lc ledger with the
 * client's default ensemble, e.g. (5,3,2)) holds entries; an entry is one
 * or more records, each framed as u32 little-endian length + bytes. The
 * first entry of every cursor ledger is a snapshot record.
 *
 * Open (takeover, blocking): read the znode; if there is a ledger, open it
 * with recovery (this fences a previous owner still writing it) and hand
 * every record of every entry to replay, in order; then create a new
 * ledger, write the caller's snapshot as its first entry, switch the znode
 * to it by CAS (version from the read; MQ_EBADVERSION if another broker
 * changed it: the caller lost the queue) and delete the old ledger. A
 * missing znode means a new cursor: no replay, the znode is created.
 *
 * Append (any thread, async): records queue up and are packed into one
 * entry while earlier entries are in flight (at most a few at once), so
 * acks arriving together cost one bookie add. Callbacks run in append
 * order, on the ledger client's thread: do not block in them.
 *
 * Roll (compaction, blocking): a new ledger starting with the caller's
 * snapshot replaces the current one (same steps as open, without replay).
 * The caller takes the snapshot on its executor key and calls
 * br_cstore_roll_begin at once; records appended after that are written to
 * the new ledger after the snapshot.
 *
 * Any add error (MQ_EFENCED when another broker took over) breaks the
 * store: the failing and every later append fail with that error and
 * br_cstore_broken() turns true; only a new open recovers.
 */
#ifndef BR_CSTORE_H
#define BR_CSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lc_ledger.h"
#include "mq_err.h"
#include "zk_client.h"

typedef struct br_cstore br_cstore_t;

typedef mq_err_t (*br_cstore_replay_cb)(const uint8_t *rec, size_t len, void *arg);
typedef void (*br_cstore_done_cb)(mq_err_t err, void *arg);

typedef struct br_cstore_conf {
    lc_client_t *lc; /* borrowed */
    zk_client_t *zk; /* borrowed */
    const char *root;
    const char *group;
    const char *topic;
    int queue;
} br_cstore_conf_t;

/* Takes over the cursor (see above). replay gets every stored record; a
 * replay error other than MQ_OK stops the open with it. snapshot (the
 * caller's state after replay) is produced by snap_cb once replay is
 * over: *snap and *snap_len must stay valid until br_cstore_open returns.
 * Blocking: not from a ledger-client or ZooKeeper callback. */
typedef mq_err_t (*br_cstore_snap_cb)(const uint8_t **snap, size_t *snap_len, void *arg);
mq_err_t br_cstore_open(const br_cstore_conf_t *conf, br_cstore_replay_cb replay,
                        br_cstore_snap_cb snap_cb, void *arg, br_cstore_t **out);

/* Whether the cursor has a store: MQ_OK (its znode exists), MQ_ENOTFOUND
 * (a new cursor) or ZooKeeper's error. One read. */
mq_err_t br_cstore_exists(const br_cstore_conf_t *conf);
/* As br_cstore_open, but MQ_ENOTFOUND (nothing written) when the cursor has
 * no store yet. Blocking. */
mq_err_t br_cstore_open_existing(const br_cstore_conf_t *conf, br_cstore_replay_cb replay,
                                 br_cstore_snap_cb snap_cb, void *arg, br_cstore_t **out);
/* Creates the store of a new cursor with snap as its first record, as
 * br_cstore_open does for a missing znode; MQ_EBADVERSION when the cursor
 * has a store by now (another broker made it). Blocking. */
mq_err_t br_cstore_create(const br_cstore_conf_t *conf, const void *snap, size_t snap_len,
                          br_cstore_t **out);

/* Appends one record (copied). cb runs exactly once (if this returns
 * MQ_OK) when the record is durable or failed. MQ_EFENCED / MQ_ECLOSED
 * right away when the store is broken or closed. */
mq_err_t br_cstore_append(br_cstore_t *cs, const void *rec, size_t len, br_cstore_done_cb cb,
                          void *arg);

/* Entries written to the current ledger so far (decides compaction). */
uint64_t br_cstore_entries(br_cstore_t *cs);
/* Announces a roll: call it together with taking the snapshot (on the
 * cursor's executor key, before any later record is appended). From here
 * on records wait for the new ledger, after the snapshot, so none written
 * after the snapshot can land in the old ledger and be dropped with it.
 * br_cstore_roll (or br_cstore_close) must follow. */
void br_cstore_roll_begin(br_cstore_t *cs);
/* Compaction (see above). Blocking. */
mq_err_t br_cstore_roll(br_cstore_t *cs, const void *snap, size_t snap_len);
bool br_cstore_broken(br_cstore_t *cs);
/* Planned handover: waits for pending appends, writes snap (may be NULL)
 * as a last entry, closes the ledger. Appends fail MQ_ECLOSED after.
 * Blocking. */
mq_err_t br_cstore_close(br_cstore_t *cs, const void *snap, size_t snap_len);
/* Frees the handle (pending appends fail MQ_ECLOSED). Not from a callback. */
void br_cstore_free(br_cstore_t *cs);

/* Deletes the cursor's znode and ledger (group or topic deleted). */
mq_err_t br_cstore_delete(const br_cstore_conf_t *conf);

#endif
