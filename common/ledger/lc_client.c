/*
 * lc_client: the ledger client's life cycle: ZooKeeper (own or borrowed),
 * the bookie registry, the event loop, one connection per bookie shared by
 * every handle, and the master key.
 *
 * The master key is SHA-256("ledgermq-ledger:" + password); ledger metadata
 * keeps SHA-256 of the key, so a client with another password is refused
 * (MQ_EUNAUTHORIZED) before it can fence anything. Like BookKeeper's, the key
 * guards against mistakes, not attackers: ZooKeeper ACLs do that.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_int.h"
#include "mq_log.h"
#include "mq_util.h"

void lc_client_conf_default(lc_client_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->zk_servers = "127.0.0.1:2181";
    conf->zk_session_timeout_ms = 10000;
    conf->root = "/ledgermq";
    conf->ensemble_size = 5;
    conf->write_quorum = 3;
    conf->ack_quorum = 2;
    conf->add_timeout_ms = 5000;
    conf->read_timeout_ms = 5000;
    conf->speculative_read_timeout_ms = 500;
    conf->password = "";
}

static void lc_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int olen = 32;
    EVP_Digest(data, len, out, &olen, EVP_sha256(), NULL);
}

static void lc_client_derive_key(lc_client_t *cl, const char *password)
{
    size_t plen = strlen(password);
    static const char prefix[] = "ledgermq-ledger:";
    char *buf = mq_malloc(sizeof(prefix) + plen);
    memcpy(buf, prefix, sizeof(prefix) - 1);
    memcpy(buf + sizeof(prefix) - 1, password, plen);
    lc_sha256(buf, sizeof(prefix) - 1 + plen, cl->key);
    free(buf);
    uint8_t d[32];
    lc_sha256(cl->key, LC_KEY_LEN, d);
    for (int i = 0; i < 32; i++) {
        snprintf(cl->key_digest + 2 * i, 3, "%02x", d[i]);
    }
}

static bool lc_conf_valid(const lc_client_conf_t *c)
{
    return c->ensemble_size >= 1 && c->ensemble_size <= META_MAX_ENSEMBLE && c->write_quorum >= 1 &&
           c->write_quorum <= c->ensemble_size && c->ack_quorum >= 1 &&
           c->ack_quorum <= c->write_quorum && c->add_timeout_ms > 0 && c->read_timeout_ms > 0;
}

mq_err_t lc_client_new(const lc_client_conf_t *conf, lc_client_t **out)
{
    if (!lc_conf_valid(conf)) {
        MQ_LOG_ERROR("ledger client: bad quorum or timeouts ensemble=%d writeQuorum=%d "
                     "ackQuorum=%d (need 1 <= ack <= write <= ensemble <= %d)",
                     conf->ensemble_size, conf->write_quorum, conf->ack_quorum, META_MAX_ENSEMBLE);
        return MQ_EINVAL;
    }
    lc_client_t *cl = mq_calloc(1, sizeof(*cl));
    cl->conf = *conf;
    cl->root = mq_strdup(conf->root ? conf->root : "/ledgermq");
    cl->conf.root = cl->root;
    cl->conf.password = NULL;
    cl->conf.zk_servers = NULL;
    lc_client_derive_key(cl, conf->password ? conf->password : "");
    pthread_mutex_init(&cl->lock, NULL);
    mq_err_t err = MQ_OK;
    if (conf->zk) {
        cl->zk = conf->zk;
    } else {
        zk_client_opts_t zo = {conf->zk_session_timeout_ms, 15000, NULL};
        err = zk_client_new(conf->zk_servers, &zo, &cl->zk);
        cl->own_zk = err == MQ_OK;
    }
    if (err == MQ_OK) {
        err = meta_bookies_new(cl->zk, cl->root, NULL, NULL, &cl->bookies);
    }
    if (err != MQ_OK) {
        MQ_LOG_ERROR("ledger client: cannot start err=%s", mq_err_str(err));
        if (cl->own_zk) {
            zk_client_free(cl->zk);
        }
        pthread_mutex_destroy(&cl->lock);
        free(cl->root);
        free(cl);
        return err;
    }
    cl->loop = mq_net_loop_new("lc-loop");
    *out = cl;
    return MQ_OK;
}

struct mq_executor *lc_client_executor_new(lc_client_t *cl, const char *name)
{
    return mq_net_loop_executor_new(cl->loop, name);
}

void lc_client_free(lc_client_t *cl)
{
    if (!cl) {
        return;
    }
    /* Freeing the connections answers their pending requests (MQ_ECLOSED),
     * which releases the last references of freed handles. */
    for (size_t i = 0; i < cl->nslots; i++) {
        lc_bookie_free(cl->slots[i].bk);
    }
    MQ_ASSERT(atomic_load(&cl->handles) == 0);
    mq_net_loop_free(cl->loop);
    meta_bookies_free(cl->bookies);
    if (cl->own_zk) {
        zk_client_free(cl->zk);
    }
    pthread_mutex_destroy(&cl->lock);
    free(cl->slots);
    free(cl->root);
    free(cl);
}

zk_client_t *lc_client_zk(lc_client_t *cl)
{
    return cl->zk;
}

lc_bookie_t *lc_client_bookie(lc_client_t *cl, const char *id)
{
    pthread_mutex_lock(&cl->lock);
    for (size_t i = 0; i < cl->nslots; i++) {
        if (strcmp(cl->slots[i].id, id) == 0) {
            lc_bookie_t *bk = cl->slots[i].bk;
            pthread_mutex_unlock(&cl->lock);
            return bk;
        }
    }
    char addr[META_BOOKIE_ID_MAX];
    meta_bookies_address(cl->bookies, id, addr, sizeof(addr));
    lc_bookie_t *bk = NULL;
    if (lc_bookie_new(cl->loop, addr, &bk) != MQ_OK) {
        /* An unparsable address: requests to it fail like a dead bookie's,
         * through a client that can never connect. */
        MQ_LOG_WARN("ledger client: bad bookie address id=%s address=%s", id, addr);
        MQ_ASSERT(lc_bookie_new(cl->loop, "0.0.0.0:1", &bk) == MQ_OK);
    }
    if (cl->nslots == cl->cap_slots) {
        cl->cap_slots = cl->cap_slots ? cl->cap_slots * 2 : 16;
        cl->slots = mq_realloc(cl->slots, cl->cap_slots * sizeof(*cl->slots));
    }
    snprintf(cl->slots[cl->nslots].id, META_BOOKIE_ID_MAX, "%s", id);
    cl->slots[cl->nslots].bk = bk;
    cl->nslots++;
    pthread_mutex_unlock(&cl->lock);
    return bk;
}

/* --- waiting ------------------------------------------------------------------ */

void lc_wait_init(lc_wait_t *w)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->done = false;
    w->err = MQ_OK;
}

void lc_wait_done(lc_wait_t *w, mq_err_t err)
{
    pthread_mutex_lock(&w->lock);
    w->err = err;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

mq_err_t lc_wait_wait(lc_wait_t *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done) {
        pthread_cond_wait(&w->cond, &w->lock);
    }
    mq_err_t err = w->err;
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    return err;
}

/* --- handles -------------------------------------------------------------------- */

lc_ledger_t *lc_ledger_new(lc_client_t *cl, const meta_ledger_t *md, bool writer)
{
    lc_ledger_t *lh = mq_calloc(1, sizeof(*lh));
    lh->cl = cl;
    lh->refs = 1;
    lh->id = md->id;
    lh->writer = writer;
    meta_ledger_copy(&lh->md, md);
    lh->E = md->ensemble_size;
    lh->Qw = md->write_quorum;
    lh->Qa = md->ack_quorum;
    lh->last_pushed = -1;
    lh->lac = md->state == META_LEDGER_CLOSED ? md->last_entry_id : -1;
    lh->lac_length = md->state == META_LEDGER_CLOSED ? md->length : 0;
    lh->pushed_length = lh->lac_length;
    lc_pending_init(&lh->pending, lh->Qa);
    pthread_mutex_init(&lh->wlock, NULL);
    pthread_cond_init(&lh->wcond, NULL);
    atomic_init(&lh->lac_pub, lh->lac);
    atomic_init(&lh->closed_pub, md->state == META_LEDGER_CLOSED);
    lc_ledger_load_ensemble(lh);
    atomic_fetch_add(&cl->handles, 1);
    return lh;
}

void lc_ledger_load_ensemble(lc_ledger_t *lh)
{
    const meta_segment_t *seg = meta_ledger_last_segment(&lh->md);
    for (int i = 0; i < lh->E; i++) {
        lh->ens[i] = lc_client_bookie(lh->cl, seg->bookies[i]);
    }
}

void lc_ledger_publish(lc_ledger_t *lh)
{
    atomic_store(&lh->lac_pub, lh->lac);
    atomic_store(&lh->closed_pub, lh->md.state == META_LEDGER_CLOSED);
}

uint64_t lc_ledger_id(const lc_ledger_t *lh)
{
    return lh->id;
}

int64_t lc_ledger_lac(lc_ledger_t *lh)
{
    return atomic_load(&lh->lac_pub);
}

bool lc_ledger_closed(lc_ledger_t *lh)
{
    return atomic_load(&lh->closed_pub);
}

typedef struct lc_md_copy {
    lc_ledger_t *lh;
    meta_ledger_t *out;
} lc_md_copy_t;

static void lc_ledger_copy_md(void *arg)
{
    lc_md_copy_t *c = arg;
    meta_ledger_copy(c->out, &c->lh->md);
}

mq_err_t lc_ledger_metadata(lc_ledger_t *lh, meta_ledger_t *out)
{
    lc_md_copy_t c = {lh, out};
    if (mq_net_loop_on_thread(lh->cl->loop)) {
        lc_ledger_copy_md(&c);
        return MQ_OK;
    }
    mq_net_loop_run_sync(lh->cl->loop, lc_ledger_copy_md, &c);
    return MQ_OK;
}

void lc_ledger_ref(lc_ledger_t *lh)
{
    lh->refs++;
}

void lc_ledger_unref(lc_ledger_t *lh)
{
    MQ_ASSERT(lh->refs > 0);
    if (--lh->refs > 0) {
        return;
    }
    lc_client_t *cl = lh->cl;
    meta_ledger_fini(&lh->md);
    meta_ledger_fini(&lh->next_md);
    pthread_mutex_destroy(&lh->wlock);
    pthread_cond_destroy(&lh->wcond);
    free(lh);
    atomic_fetch_sub(&cl->handles, 1);
}

static void lc_ledger_timer_closed(uv_handle_t *h)
{
    lc_ledger_unref(h->data);
}

/* Loop: fails what is pending, closes the timer, drops the user's
 * reference. Requests still in flight keep the memory until they answer. */
static void lc_ledger_shutdown(void *arg)
{
    lc_ledger_t *lh = arg;
    lh->freeing = true;
    lh->closing = true;
    if (lc_write_pending(lh) > 0) {
        lc_write_fail_all(lh, MQ_ECLOSED);
    }
    if (lh->timer_init) {
        uv_timer_stop(&lh->retry_timer);
        uv_close((uv_handle_t *)&lh->retry_timer, lc_ledger_timer_closed);
    }
    lc_ledger_unref(lh);
}

void lc_ledger_free(lc_ledger_t *lh)
{
    if (!lh) {
        return;
    }
    if (mq_net_loop_on_thread(lh->cl->loop)) {
        /* A task of the client's executor (lc_client_executor_new). */
        lc_ledger_shutdown(lh);
        return;
    }
    mq_net_loop_run_sync(lh->cl->loop, lc_ledger_shutdown, lh);
}
