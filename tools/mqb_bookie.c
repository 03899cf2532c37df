/*
 * mqbench bookie: writes entries straight to bookies (no ledger client, no
 * replication: ledger i goes to bookie i mod n) with K adds in flight, and
 * reports entries/s, MB/s and add latency percentiles. Payloads derive from
 * (ledger, entry), so --verify (in this run, or in a later process with
 * --verify-only and the --ack-log of the writing run) reads every entry back
 * and checks: each acknowledged entry must come back byte-identical; an
 * unacknowledged one may be absent or identical; anything else is a failure.
 *
 * Threads: all requests are issued and completed on one net loop thread (the
 * completion of one add issues the next), so the run's state needs no locks;
 * the main thread only starts the run, prints progress and waits.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_bookie.h"
#include "lc_entry.h"
#include "mq_log.h"
#include "mq_net.h"
#include "mq_util.h"
#include "mqb_common.h"

#define MQB_CMD "bookie"

typedef struct mqb_ledger {
    uint64_t id;
    size_t bookie;
    int64_t next;   /* next entry to issue */
    int64_t limit;  /* entries 0..limit-1 are written / checked */
    int64_t lac;    /* highest entry such that all below are acknowledged */
    uint8_t *acked; /* bitmap over 0..limit-1 */
} mqb_ledger_t;

typedef struct mqb_run {
    /* options */
    char **addrs;
    size_t naddrs;
    uint64_t nledgers;
    int64_t entries;
    uint64_t size;
    uint64_t inflight_max;
    uint32_t timeout_ms;
    bool recovery;
    char master_key[65];

    mq_net_loop_t *loop;
    lc_bookie_t **bookies;
    mqb_ledger_t *ledgers;
    FILE *ack_log;

    /* loop thread only */
    bool verifying;
    size_t rr;
    uint64_t inflight;
    uint64_t ok;
    uint64_t failed;
    uint64_t bytes;
    bool stop_issuing;
    mq_err_t first_err;
    char first_msg[200];
    mq_hist_t hist;
    /* verification counts */
    uint64_t v_ok;
    uint64_t v_missing;
    uint64_t v_garbage;
    uint64_t v_errors;
    uint64_t v_unacked_present;
    uint64_t v_unacked_absent;

    mqb_done_t sync; /* shared with the main thread */
} mqb_run_t;

typedef struct mqb_op {
    mqb_run_t *run;
    mqb_ledger_t *lg;
    int64_t entry_id;
    uint64_t t0;
} mqb_op_t;

static void mqb_bk_usage(FILE *out)
{
    fprintf(out,
            "usage: mqbench bookie --bookies H:P[,H:P..] [options]\n\n"
            "  --bookies LIST     bookies to write to; ledger i goes to bookie i mod n\n"
            "  --ledgers N        ledgers (default 1)\n"
            "  --entries M        entries per ledger (default 10000)\n"
            "  --size S           payload bytes per entry, e.g. 1024 or 64k (default 1024)\n"
            "  --inflight K       adds (or reads) in flight in total (default 64)\n"
            "  --verify           after writing, read every entry back and check its bytes\n"
            "  --verify-only      only verify; needs --ack-log from the writing run\n"
            "  --ack-log FILE     record acknowledged entries (write) / read them (verify-only)\n"
            "  --ledger-base ID   first ledger id (default derived from the clock)\n"
            "  --master-key STR   master key (default mqbench)\n"
            "  --recovery         send adds with the RECOVERY flag\n"
            "  --timeout-ms T     per-request timeout (default 10000)\n"
            "  --progress         print a progress line every second on stderr\n"
            "\nexit status: 0 all good; 1 verification failed; 3 some adds failed; 2 usage\n");
}

/* --- writing (loop thread) ----------------------------------------------- */

static void mqb_issue(mqb_run_t *run);

static void mqb_record_failure(mqb_run_t *run, mq_err_t err, const char *msg)
{
    run->failed++;
    if (run->first_err == MQ_OK) {
        run->first_err = err;
        snprintf(run->first_msg, sizeof(run->first_msg), "%s", msg ? msg : "");
    }
    run->stop_issuing = true;
}

static void mqb_mark_acked(mqb_ledger_t *lg, int64_t e)
{
    lg->acked[e / 8] |= (uint8_t)(1u << (e % 8));
    while (lg->lac + 1 < lg->limit &&
           (lg->acked[(lg->lac + 1) / 8] & (1u << ((lg->lac + 1) % 8)))) {
        lg->lac++;
    }
}

static bool mqb_is_acked(const mqb_ledger_t *lg, int64_t e)
{
    return e < lg->limit && (lg->acked[e / 8] & (1u << (e % 8))) != 0;
}

static void mqb_add_done(const lc_bk_result_t *res, void *arg)
{
    mqb_op_t *op = arg;
    mqb_run_t *run = op->run;
    run->inflight--;
    if (res->err == MQ_OK) {
        mq_hist_add(&run->hist, mq_now_ns() - op->t0);
        run->ok++;
        run->bytes += run->size;
        mqb_mark_acked(op->lg, op->entry_id);
        if (run->ack_log) {
            fprintf(run->ack_log, "A %" PRIu64 " %" PRId64 "\n", op->lg->id, op->entry_id);
        }
    } else {
        mqb_record_failure(run, res->err, res->message);
    }
    free(op);
    mqb_issue(run);
}

static mqb_ledger_t *mqb_next_ledger(mqb_run_t *run)
{
    for (uint64_t k = 0; k < run->nledgers; k++) {
        mqb_ledger_t *lg = &run->ledgers[(run->rr + k) % run->nledgers];
        if (lg->next < lg->limit) {
            run->rr = (run->rr + k + 1) % run->nledgers;
            return lg;
        }
    }
    return NULL;
}

static void mqb_read_done(const lc_bk_result_t *res, void *arg);

static void mqb_issue(mqb_run_t *run)
{
    while (!run->stop_issuing && run->inflight < run->inflight_max) {
        mqb_ledger_t *lg = mqb_next_ledger(run);
        if (!lg) {
            break;
        }
        mqb_op_t *op = mq_malloc(sizeof(*op));
        op->run = run;
        op->lg = lg;
        op->entry_id = lg->next++;
        op->t0 = mq_now_ns();
        lc_bookie_t *bk = run->bookies[lg->bookie];
        size_t klen = strlen(run->master_key);
        mq_err_t err;
        if (run->verifying) {
            err = lc_bookie_read(bk, lg->id, op->entry_id, 0, NULL, 0, run->timeout_ms,
                                 mqb_read_done, op);
        } else {
            mq_buf_t *buf = mq_buf_new(LC_ENTRY_HDR_SIZE + run->size);
            mqb_payload(lg->id, op->entry_id, buf->data + LC_ENTRY_HDR_SIZE, run->size);
            lc_entry_write_hdr(buf->data, lg->id, op->entry_id, lg->lac,
                               (uint64_t)(op->entry_id + 1) * run->size,
                               buf->data + LC_ENTRY_HDR_SIZE, run->size);
            buf->len = LC_ENTRY_HDR_SIZE + run->size;
            mq_slice_t s = {buf, buf->data, buf->len};
            err = lc_bookie_add(bk, lg->id, op->entry_id, (const uint8_t *)run->master_key, klen,
                                run->recovery ? LC_BK_ADD_RECOVERY : 0, &s, run->timeout_ms,
                                mqb_add_done, op);
            mq_buf_unref(buf);
        }
        if (err != MQ_OK) {
            free(op);
            mqb_record_failure(run, err, "request not sent");
            break;
        }
        run->inflight++;
    }
    mqb_done_progress(&run->sync, run->verifying ? run->v_ok : run->ok);
    if (run->inflight == 0 && (run->stop_issuing || !mqb_next_ledger(run))) {
        mqb_done_set(&run->sync);
    }
}

static void mqb_issue_task(void *arg)
{
    mqb_issue(arg);
}

/* --- verifying (loop thread) ----------------------------------------------- */

static void mqb_read_done(const lc_bk_result_t *res, void *arg)
{
    mqb_op_t *op = arg;
    mqb_run_t *run = op->run;
    mqb_ledger_t *lg = op->lg;
    run->inflight--;
    bool acked = mqb_is_acked(lg, op->entry_id);
    if (res->err == MQ_OK) {
        mq_hist_add(&run->hist, mq_now_ns() - op->t0);
        size_t plen = res->data.len - LC_ENTRY_HDR_SIZE;
        uint8_t *want = mq_malloc(plen ? plen : 1);
        mqb_payload(lg->id, op->entry_id, want, plen);
        bool same = plen == run->size && memcmp(want, res->data.ptr + LC_ENTRY_HDR_SIZE, plen) == 0;
        free(want);
        if (!same) {
            run->v_garbage++;
            fprintf(stderr, "GARBAGE ledger=%" PRIu64 " entry=%" PRId64 " len=%zu\n", lg->id,
                    op->entry_id, plen);
        } else if (acked) {
            run->v_ok++;
        } else {
            run->v_unacked_present++;
        }
    } else if (res->err == MQ_ENOENTRY || res->err == MQ_ENOLEDGER) {
        if (acked) {
            run->v_missing++;
            fprintf(stderr, "MISSING ledger=%" PRIu64 " entry=%" PRId64 " (%s)\n", lg->id,
                    op->entry_id, mq_err_name(res->err));
        } else {
            run->v_unacked_absent++;
        }
    } else {
        run->v_errors++;
        if (run->v_errors <= 10) {
            fprintf(stderr, "ERROR reading ledger=%" PRIu64 " entry=%" PRId64 ": %s %s\n", lg->id,
                    op->entry_id, mq_err_name(res->err), res->message ? res->message : "");
        }
        if (res->err == MQ_ECONN || res->err == MQ_ECLOSED) {
            run->stop_issuing = true;
        }
    }
    free(op);
    mqb_issue(run);
}

/* --- the run -------------------------------------------------------------------- */

static bool mqb_load_ack_log(mqb_run_t *run, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mqbench bookie: cannot read %s: %s\n", path, strerror(errno));
        return false;
    }
    char line[256];
    size_t cap = 0;
    while (fgets(line, sizeof(line), f)) {
        uint64_t a;
        uint64_t b;
        int64_t e;
        if (sscanf(line, "size %" SCNu64, &a) == 1) {
            run->size = a;
        } else if (sscanf(line, "entries %" SCNu64, &a) == 1 && a > 0 && a < (1ull << 40)) {
            run->entries = (int64_t)a;
        } else if (sscanf(line, "L %" SCNu64 " %" SCNu64, &a, &b) == 2) {
            if (run->nledgers == cap) {
                cap = cap ? cap * 2 : 16;
                run->ledgers = mq_realloc(run->ledgers, cap * sizeof(*run->ledgers));
            }
            mqb_ledger_t *lg = &run->ledgers[run->nledgers++];
            memset(lg, 0, sizeof(*lg));
            lg->id = a;
            lg->bookie = (size_t)b;
            lg->lac = -1;
            lg->limit = run->entries;
            lg->acked = mq_calloc((size_t)(run->entries / 8 + 1), 1);
        } else if (sscanf(line, "A %" SCNu64 " %" SCNd64, &a, &e) == 2) {
            for (uint64_t i = 0; i < run->nledgers; i++) {
                if (run->ledgers[i].id == a && e >= 0 && e < run->ledgers[i].limit) {
                    mqb_mark_acked(&run->ledgers[i], e);
                }
            }
        }
    }
    fclose(f);
    for (uint64_t i = 0; i < run->nledgers; i++) {
        if (run->ledgers[i].bookie >= run->naddrs) {
            fprintf(stderr, "mqbench bookie: ack log names bookie #%zu, only %zu given\n",
                    run->ledgers[i].bookie, run->naddrs);
            return false;
        }
    }
    return run->nledgers > 0;
}

int mqb_bookie_main(int argc, char **argv)
{
    static struct option longopts[] = {
        {"bookies", required_argument, NULL, 'b'},
        {"ledgers", required_argument, NULL, 'l'},
        {"entries", required_argument, NULL, 'e'},
        {"size", required_argument, NULL, 's'},
        {"inflight", required_argument, NULL, 'k'},
        {"verify", no_argument, NULL, 'v'},
        {"verify-only", no_argument, NULL, 'V'},
        {"ack-log", required_argument, NULL, 'a'},
        {"ledger-base", required_argument, NULL, 'B'},
        {"master-key", required_argument, NULL, 'm'},
        {"recovery", no_argument, NULL, 'r'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"progress", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    mqb_run_t run;
    memset(&run, 0, sizeof(run));
    run.nledgers = 1;
    run.entries = 10000;
    run.size = 1024;
    run.inflight_max = 64;
    run.timeout_ms = 10000;
    snprintf(run.master_key, sizeof(run.master_key), "mqbench");
    const char *bookies = NULL;
    const char *ack_path = NULL;
    bool verify = false;
    bool verify_only = false;
    bool progress = false;
    uint64_t base = (mq_wall_ms() & 0xffffffffffull) << 12;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            bookies = optarg;
            break;
        case 'l':
            run.nledgers = mqb_opt_num(MQB_CMD, "--ledgers", optarg, 1, UINT64_MAX);
            break;
        case 'e':
            run.entries = (int64_t)mqb_opt_num(MQB_CMD, "--entries", optarg, 1, 1ull << 40);
            break;
        case 's':
            run.size = mqb_opt_num(MQB_CMD, "--size", optarg, 0, (64ull << 20));
            break;
        case 'k':
            run.inflight_max = mqb_opt_num(MQB_CMD, "--inflight", optarg, 1, UINT64_MAX);
            break;
        case 'v':
            verify = true;
            break;
        case 'V':
            verify_only = true;
            break;
        case 'a':
            ack_path = optarg;
            break;
        case 'B':
            base = mqb_opt_num(MQB_CMD, "--ledger-base", optarg, 0, UINT64_MAX);
            break;
        case 'm':
            if (strlen(optarg) == 0 || strlen(optarg) > 64) {
                mqb_usage_error(MQB_CMD, "--master-key must be 1..64 bytes");
            }
            snprintf(run.master_key, sizeof(run.master_key), "%s", optarg);
            break;
        case 'r':
            run.recovery = true;
            break;
        case 't':
            run.timeout_ms = (uint32_t)mqb_opt_num(MQB_CMD, "--timeout-ms", optarg, 1, 600000);
            break;
        case 'p':
            progress = true;
            break;
        case 'h':
            mqb_bk_usage(stdout);
            return 0;
        default:
            mqb_bk_usage(stderr);
            return 2;
        }
    }
    if (!bookies) {
        mqb_usage_error(MQB_CMD, "--bookies is required");
    }
    if (verify_only && !ack_path) {
        mqb_usage_error(MQB_CMD, "--verify-only needs the --ack-log of the writing run");
    }
    mq_log_level = MQ_LOG_LVL_WARN;
    char *list = mq_strdup(bookies);
    size_t cap = 4;
    run.addrs = mq_malloc(cap * sizeof(*run.addrs));
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (run.naddrs == cap) {
            cap *= 2;
            run.addrs = mq_realloc(run.addrs, cap * sizeof(*run.addrs));
        }
        run.addrs[run.naddrs++] = mq_strdup(tok);
    }
    free(list);
    if (run.naddrs == 0) {
        mqb_usage_error(MQB_CMD, "--bookies is empty");
    }

    if (verify_only) {
        run.nledgers = 0;
        if (!mqb_load_ack_log(&run, ack_path)) {
            fprintf(stderr, "mqbench bookie: no ledgers in ack log %s\n", ack_path);
            return 2;
        }
    } else {
        run.ledgers = mq_calloc(run.nledgers, sizeof(*run.ledgers));
        for (uint64_t i = 0; i < run.nledgers; i++) {
            mqb_ledger_t *lg = &run.ledgers[i];
            lg->id = base + i;
            lg->bookie = i % run.naddrs;
            lg->limit = run.entries;
            lg->lac = -1;
            lg->acked = mq_calloc((size_t)(run.entries / 8 + 1), 1);
        }
        if (ack_path) {
            run.ack_log = fopen(ack_path, "w");
            if (!run.ack_log) {
                fprintf(stderr, "mqbench bookie: cannot write %s: %s\n", ack_path, strerror(errno));
                return 2;
            }
            fprintf(run.ack_log, "# mqbench ack log v1\nsize %" PRIu64 "\nentries %" PRId64 "\n",
                    run.size, run.entries);
            for (uint64_t i = 0; i < run.nledgers; i++) {
                fprintf(run.ack_log, "L %" PRIu64 " %zu\n", run.ledgers[i].id,
                        run.ledgers[i].bookie);
            }
        }
    }

    mqb_done_init(&run.sync, progress);
    run.loop = mq_net_loop_new("mqbench");
    run.bookies = mq_calloc(run.naddrs, sizeof(*run.bookies));
    for (size_t i = 0; i < run.naddrs; i++) {
        if (lc_bookie_new(run.loop, run.addrs[i], &run.bookies[i]) != MQ_OK) {
            mqb_usage_error(MQB_CMD, "bad bookie address '%s'", run.addrs[i]);
        }
    }

    int code = 0;
    if (!verify_only) {
        mq_hist_init(&run.hist);
        uint64_t t0 = mq_now_ns();
        mq_net_loop_post(run.loop, mqb_issue_task, &run);
        mqb_done_wait(&run.sync, "write");
        double secs = (double)(mq_now_ns() - t0) / 1e9;
        if (run.ack_log) {
            fclose(run.ack_log);
            run.ack_log = NULL;
        }
        printf("mqbench bookie: %" PRIu64 " entries of %" PRIu64 " B acknowledged (%" PRIu64
               " failed) on %zu bookie(s), %" PRIu64 " ledger(s), %" PRIu64 " in flight, %.3f s\n",
               run.ok, run.size, run.failed, run.naddrs, run.nledgers, run.inflight_max, secs);
        printf("throughput: %.0f entries/s, %.2f MB/s\n", (double)run.ok / secs,
               (double)run.bytes / secs / 1e6);
        mqb_print_latency("add", &run.hist);
        if (run.failed) {
            printf("first error: %s (%s) %s\n", mq_err_name(run.first_err),
                   mq_err_str(run.first_err), run.first_msg);
            code = 3;
        }
    }
    if (verify || verify_only) {
        run.verifying = true;
        run.stop_issuing = false;
        run.inflight = 0;
        mq_hist_init(&run.hist);
        for (uint64_t i = 0; i < run.nledgers; i++) {
            run.ledgers[i].next = 0;
        }
        uint64_t t0 = mq_now_ns();
        mq_net_loop_post(run.loop, mqb_issue_task, &run);
        mqb_done_wait(&run.sync, "verify");
        double secs = (double)(mq_now_ns() - t0) / 1e9;
        uint64_t checked = run.v_ok + run.v_missing + run.v_garbage + run.v_errors +
                           run.v_unacked_present + run.v_unacked_absent;
        printf(
            "verify: %" PRIu64 " entries checked in %.3f s: %" PRIu64 " acknowledged and intact, "
            "%" PRIu64 " acknowledged but MISSING, %" PRIu64 " GARBAGE, %" PRIu64
            " read errors, %" PRIu64 " unacknowledged present, %" PRIu64 " unacknowledged absent\n",
            checked, secs, run.v_ok, run.v_missing, run.v_garbage, run.v_errors,
            run.v_unacked_present, run.v_unacked_absent);
        mqb_print_latency("read", &run.hist);
        bool complete = true;
        for (uint64_t i = 0; i < run.nledgers; i++) {
            complete = complete && run.ledgers[i].next == run.ledgers[i].limit;
        }
        if (run.v_missing || run.v_garbage || run.v_errors || !complete) {
            printf("verify: FAILED\n");
            code = 1;
        } else {
            printf("verify: OK\n");
        }
    }

    for (size_t i = 0; i < run.naddrs; i++) {
        lc_bookie_free(run.bookies[i]);
        free(run.addrs[i]);
    }
    mq_net_loop_free(run.loop);
    for (uint64_t i = 0; i < run.nledgers; i++) {
        free(run.ledgers[i].acked);
    }
    free(run.ledgers);
    free(run.bookies);
    free(run.addrs);
    mqb_done_fini(&run.sync);
    return code;
}
