/*
 * mqbench ledger: writes ledgers through the ledger client ((E, Qw, Qa)
 * striping, quorum acks, ensemble changes) and reports entries/s, MB/s and
 * add latency percentiles; --verify reads every entry back through a reader
 * and checks its bytes (payloads derive from (ledger, entry)); --recover ID
 * opens a ledger with recovery and reports where it ended; --show ID prints
 * a ledger's metadata record.
 *
 * Threads: adds are issued from the ledger client's callbacks (the
 * completion of one add issues the next), on the client's loop thread; the
 * main thread starts the run, prints progress and waits.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_conf.h"
#include "lc_ledger.h"
#include "meta_store.h"
#include "mq_log.h"
#include "mq_util.h"
#include "mqb_common.h"

#define MQB_LCMD "ledger"

typedef struct mqb_lrun {
    lc_client_t *cl;
    lc_ledger_t **lhs;
    uint64_t nledgers;
    int64_t entries;
    uint64_t size;
    uint64_t inflight_max;
    bool progress;

    /* loop thread */
    int64_t *next;
    size_t rr;
    uint64_t inflight;
    uint64_t ok;
    uint64_t failed;
    mq_err_t first_err;
    bool stop;
    mq_hist_t hist;
    uint8_t *payload;

    mqb_done_t sync; /* shared with the main thread */
} mqb_lrun_t;

typedef struct mqb_lop {
    mqb_lrun_t *run;
    uint64_t t0;
} mqb_lop_t;

static void mqb_l_usage(FILE *out)
{
    fprintf(out, "usage: mqbench ledger --zk H:P [options]\n\n"
                 "  --zk H:P[,H:P]     ZooKeeper\n"
                 "  --root PATH        metadata root (default /ledgermq)\n"
                 "  --ensemble E       ensemble size (default 5)\n"
                 "  --write-quorum Qw  copies of each entry (default 3)\n"
                 "  --ack-quorum Qa    acks before an add completes (default 2)\n"
                 "  --ledgers N        ledgers written at once (default 1)\n"
                 "  --entries M        entries per ledger (default 10000)\n"
                 "  --size S           payload bytes per entry (default 1024)\n"
                 "  --inflight K       adds in flight in total (default 64)\n"
                 "  --verify           read every entry back and check its bytes\n"
                 "  --keep-open        do not close the ledgers after writing\n"
                 "  --recover ID       open ledger ID with recovery (with --verify: check it)\n"
                 "  --show ID          print ledger ID's metadata record\n"
                 "  --password P       master-key password (default empty)\n"
                 "  --progress         a progress line every second on stderr\n"
                 "  --help-config      every ledger client key, its default and meaning\n"
                 "\nexit status: 0 all good; 1 verification failed; 3 adds failed; 2 usage\n");
}

static void mqb_l_issue(mqb_lrun_t *run);

static void mqb_l_added(mq_err_t err, int64_t entry_id, void *arg)
{
    mqb_lop_t *op = arg;
    mqb_lrun_t *run = op->run;
    MQ_UNUSED(entry_id);
    run->inflight--;
    if (err == MQ_OK) {
        mq_hist_add(&run->hist, mq_now_ns() - op->t0);
        run->ok++;
    } else {
        run->failed++;
        if (run->first_err == MQ_OK) {
            run->first_err = err;
        }
        run->stop = true;
    }
    free(op);
    mqb_l_issue(run);
}

static void mqb_l_issue(mqb_lrun_t *run)
{
    while (!run->stop && run->inflight < run->inflight_max) {
        size_t i = SIZE_MAX;
        for (uint64_t k = 0; k < run->nledgers; k++) {
            size_t j = (run->rr + k) % run->nledgers;
            if (run->next[j] < run->entries) {
                i = j;
                break;
            }
        }
        if (i == SIZE_MAX) {
            break;
        }
        run->rr = (i + 1) % run->nledgers;
        lc_ledger_t *lh = run->lhs[i];
        int64_t e = run->next[i]++;
        mqb_payload(lc_ledger_id(lh), e, run->payload, run->size);
        mqb_lop_t *op = mq_malloc(sizeof(*op));
        op->run = run;
        op->t0 = mq_now_ns();
        run->inflight++;
        if (lc_ledger_add_async(lh, run->payload, run->size, mqb_l_added, op) != MQ_OK) {
            run->inflight--;
            free(op);
            run->failed++;
            run->stop = true;
        }
    }
    mqb_done_progress(&run->sync, run->ok);
    bool more = false;
    for (uint64_t i = 0; i < run->nledgers && !more; i++) {
        more = run->next[i] < run->entries;
    }
    if (run->inflight == 0 && (run->stop || !more)) {
        mqb_done_set(&run->sync);
    }
}

/* Posted through a first add's callback: the run starts on the loop. */
static void mqb_l_kick(mq_err_t err, int64_t entry_id, void *arg)
{
    mqb_l_added(err, entry_id, arg);
}

/* Reads entries 0..last of lh back and checks each payload's bytes. */
static int mqb_l_verify(lc_ledger_t *lh, int64_t last, uint64_t size)
{
    uint64_t id = lc_ledger_id(lh);
    uint8_t *want = mq_malloc(size ? size : 1);
    int bad = 0;
    for (int64_t e = 0; e <= last; e++) {
        mq_slice_t p;
        mq_err_t err = lc_ledger_read(lh, e, &p);
        if (err != MQ_OK) {
            if (bad++ < 10) {
                fprintf(stderr, "MISSING ledger=%" PRIu64 " entry=%" PRId64 ": %s\n", id, e,
                        mq_err_name(err));
            }
            continue;
        }
        mqb_payload(id, e, want, p.len);
        if (p.len != size || memcmp(want, p.ptr, p.len) != 0) {
            if (bad++ < 10) {
                fprintf(stderr, "GARBAGE ledger=%" PRIu64 " entry=%" PRId64 " len=%zu\n", id, e,
                        p.len);
            }
        }
        mq_slice_release(&p);
    }
    free(want);
    return bad;
}

static int mqb_l_show(lc_client_t *cl, const char *root, uint64_t id)
{
    meta_ledger_t md;
    mq_err_t err = meta_ledger_read(lc_client_zk(cl), root, id, &md);
    if (err != MQ_OK) {
        fprintf(stderr, "mqbench ledger: ledger %" PRIu64 ": %s\n", id, mq_err_str(err));
        return 1;
    }
    char *text;
    size_t len;
    if (meta_ledger_encode(&md, &text, &len) == MQ_OK) {
        fwrite(text, 1, len, stdout);
        free(text);
    }
    meta_ledger_fini(&md);
    return 0;
}

static int mqb_l_recover(lc_client_t *cl, uint64_t id, bool verify, uint64_t size)
{
    uint64_t t0 = mq_now_ns();
    lc_ledger_t *lh;
    mq_err_t err = lc_ledger_recover(cl, id, &lh);
    if (err != MQ_OK) {
        printf("recover: ledger %" PRIu64 " FAILED: %s (%s)\n", id, mq_err_name(err),
               mq_err_str(err));
        return 1;
    }
    int64_t last = lc_ledger_lac(lh);
    printf("recover: ledger %" PRIu64 " closed at last entry %" PRId64 " in %.1f ms\n", id, last,
           (double)(mq_now_ns() - t0) / 1e6);
    int code = 0;
    if (verify) {
        int bad = mqb_l_verify(lh, last, size);
        printf("verify: %" PRId64 " entries, %d bad: %s\n", last + 1, bad, bad ? "FAILED" : "OK");
        code = bad ? 1 : 0;
    }
    lc_ledger_free(lh);
    return code;
}

int mqb_ledger_main(int argc, char **argv)
{
    static struct option longopts[] = {
        {"conf", required_argument, NULL, 'c'},
        {"zk", required_argument, NULL, 'z'},
        {"root", required_argument, NULL, 'R'},
        {"ensemble", required_argument, NULL, 'E'},
        {"write-quorum", required_argument, NULL, 'W'},
        {"ack-quorum", required_argument, NULL, 'A'},
        {"ledgers", required_argument, NULL, 'l'},
        {"entries", required_argument, NULL, 'e'},
        {"size", required_argument, NULL, 's'},
        {"inflight", required_argument, NULL, 'k'},
        {"verify", no_argument, NULL, 'v'},
        {"keep-open", no_argument, NULL, 'o'},
        {"recover", required_argument, NULL, 'r'},
        {"show", required_argument, NULL, 'S'},
        {"password", required_argument, NULL, 'P'},
        {"progress", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Defaults, then the config file (-c), then options. */
    const char *conf_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help-config") == 0) {
            mq_conf_print_help(stdout, lc_conf_keys, lc_conf_nkeys);
            return 0;
        }
        if (strcmp(argv[i], "--help-config-markdown") == 0) {
            mq_conf_print_markdown(stdout, lc_conf_keys, lc_conf_nkeys);
            return 0;
        }
    }
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--conf") == 0) {
            conf_path = argv[i + 1];
        }
    }
    lc_conf_t lconf;
    char cerr[1024];
    if (mq_conf_load(lc_conf_keys, lc_conf_nkeys, &lconf, conf_path, NULL, 0, cerr, sizeof(cerr)) !=
        MQ_OK) {
        fprintf(stderr, "mqbench ledger: %s\n", cerr);
        return 2;
    }
    lc_client_conf_t conf;
    if (lc_conf_apply(&lconf, &conf, cerr, sizeof(cerr)) != MQ_OK) {
        fprintf(stderr, "mqbench ledger: %s: %s\n", conf_path ? conf_path : "defaults", cerr);
        mq_conf_fini(lc_conf_keys, lc_conf_nkeys, &lconf);
        return 2;
    }
    mqb_lrun_t run;
    memset(&run, 0, sizeof(run));
    run.nledgers = 1;
    run.entries = 10000;
    run.size = 1024;
    run.inflight_max = 64;
    bool verify = false;
    bool keep_open = false;
    int64_t recover_id = -1;
    int64_t show_id = -1;
    uint64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            break;
        case 'z':
            conf.zk_servers = optarg;
            break;
        case 'R':
            conf.root = optarg;
            break;
        case 'E':
        case 'W':
        case 'A':
            v = mqb_opt_num(MQB_LCMD, "quorum size", optarg, 1, META_MAX_ENSEMBLE);
            *(c == 'E'   ? &conf.ensemble_size
              : c == 'W' ? &conf.write_quorum
                         : &conf.ack_quorum) = (int)v;
            break;
        case 'l':
            run.nledgers = mqb_opt_num(MQB_LCMD, "--ledgers", optarg, 1, UINT64_MAX);
            break;
        case 'e':
            run.entries = (int64_t)mqb_opt_num(MQB_LCMD, "--entries", optarg, 1, 1ull << 40);
            break;
        case 's':
            run.size = mqb_opt_num(MQB_LCMD, "--size", optarg, 0, (4ull << 20));
            break;
        case 'k':
            run.inflight_max = mqb_opt_num(MQB_LCMD, "--inflight", optarg, 1, UINT64_MAX);
            break;
        case 'v':
            verify = true;
            break;
        case 'o':
            keep_open = true;
            break;
        case 'r':
        case 'S':
            v = mqb_opt_num(MQB_LCMD, "ledger id", optarg, 1, UINT64_MAX);
            *(c == 'r' ? &recover_id : &show_id) = (int64_t)v;
            break;
        case 'P':
            conf.password = optarg;
            break;
        case 'p':
            run.progress = true;
            break;
        case 'h':
            mqb_l_usage(stdout);
            mq_conf_fini(lc_conf_keys, lc_conf_nkeys, &lconf);
            return 0;
        default:
            mqb_l_usage(stderr);
            mq_conf_fini(lc_conf_keys, lc_conf_nkeys, &lconf);
            return 2;
        }
    }
    if (conf.ack_quorum > conf.write_quorum || conf.write_quorum > conf.ensemble_size) {
        mqb_usage_error(MQB_LCMD, "need ack-quorum <= write-quorum <= ensemble");
    }
    mq_log_level = MQ_LOG_LVL_WARN;
    mq_err_t err = lc_client_new(&conf, &run.cl);
    if (err != MQ_OK) {
        fprintf(stderr, "mqbench ledger: cannot start the ledger client: %s\n", mq_err_str(err));
        mq_conf_fini(lc_conf_keys, lc_conf_nkeys, &lconf);
        return 1;
    }
    int code = 0;
    if (show_id >= 0) {
        code = mqb_l_show(run.cl, conf.root, (uint64_t)show_id);
        lc_client_free(run.cl);
        mq_conf_fini(lc_conf_keys, lc_conf_nkeys, &lconf);
        return code;
    }
    if (recover_id >= 0) {
        code = mqb_l_recover(run.cl, (uint64_t)recover_id, verify, run.size);
        lc_client_free(run.cl);
        mq_conf_fini(lc_conf_keys, lc_conf_nkeys, &lconf);
        return code;
    }

    run.lhs = mq_calloc(run.nledgers, sizeof(*run.lhs));
    run.next = mq_calloc(run.nledgers, sizeof(*run.next));
    run.payload = mq_malloc(run.size ? run.size : 1);
    mqb_done_init(&run.sync, run.progress);
    mq_hist_init(&run.hist);
    for (uint64_t i = 0; i < run.nledgers; i++) {
        err = lc_ledger_create(run.cl, NULL, &run.lhs[i]);
        if (err != MQ_OK) {
            fprintf(stderr, "mqbench ledger: cannot create a ledger: %s (%s)\n", mq_err_name(err),
                    mq_err_str(err));
            for (uint64_t k = 0; k < i; k++) {
                lc_ledger_free(run.lhs[k]);
            }
            lc_client_free(run.cl);
            mq_conf_fini(lc_conf_keys, lc_conf_nkeys, &lconf);
            return 1;
        }
    }
    /* The first add is issued from here; its completion (on the loop)
     * issues the rest, so the run's state is only touched on the loop. */
    uint64_t t0 = mq_now_ns();
    mqb_lop_t *first = mq_malloc(sizeof(*first));
    first->run = &run;
    first->t0 = mq_now_ns();
    run.inflight = 1;
    mqb_payload(lc_ledger_id(run.lhs[0]), 0, run.payload, run.size);
    run.next[0] = 1;
    run.rr = run.nledgers > 1 ? 1 : 0;
    if (lc_ledger_add_async(run.lhs[0], run.payload, run.size, mqb_l_kick, first) != MQ_OK) {
        fprintf(stderr, "mqbench ledger: first add refused\n");
        return 1;
    }
    mqb_done_wait(&run.sync, "write");
    double secs = (double)(mq_now_ns() - t0) / 1e9;
    for (uint64_t i = 0; i < run.nledgers && !keep_open; i++) {
        mq_err_t close_err = lc_ledger_close(run.lhs[i]);
        if (close_err != MQ_OK) {
            fprintf(stderr, "mqbench ledger: close of ledger %" PRIu64 ": %s\n",
                    lc_ledger_id(run.lhs[i]), mq_err_name(close_err));
            code = 3;
        }
    }
    printf("mqbench ledger: %" PRIu64 " entries of %" PRIu64 " B acknowledged (%" PRIu64
           " failed) at (%d,%d,%d) on %" PRIu64 " ledger(s), %" PRIu64 " in flight, %.3f s\n",
           run.ok, run.size, run.failed, conf.ensemble_size, conf.write_quorum, conf.ack_quorum,
           run.nledgers, run.inflight_max, secs);
    printf("throughput: %.0f entries/s, %.2f MB/s\n", (double)run.ok / secs,
           (double)run.ok * (double)run.size / secs / 1e6);
    mqb_print_latency("add", &run.hist);
    printf("ledgers:");
    for (uint64_t i = 0; i < run.nledgers; i++) {
        printf(" %" PRIu64, lc_ledger_id(run.lhs[i]));
    }
    printf("\n");
    if (run.failed) {
        printf("first error: %s (%s)\n", mq_err_name(run.first_err), mq_err_str(run.first_err));
        code = 3;
    }
    if (verify) {
        int bad = 0;
        int64_t total = 0;
        for (uint64_t i = 0; i < run.nledgers; i++) {
            lc_ledger_t *rd;
            err = lc_ledger_open(run.cl, lc_ledger_id(run.lhs[i]), &rd);
            if (err != MQ_OK) {
                bad++;
                continue;
            }
            int64_t last = lc_ledger_lac(rd);
            total += last + 1;
            bad += mqb_l_verify(rd, last, run.size);
            lc_ledger_free(rd);
        }
        printf("verify: %" PRId64 " entries read back, %d bad: %s\n", total, bad,
               bad ? "FAILED" : "OK");
        if (bad) {
            code = 1;
        }
    }
    for (uint64_t i = 0; i < run.nledgers; i++) {
        lc_ledger_free(run.lhs[i]);
    }
    lc_client_free(run.cl);
    free(run.lhs);
    free(run.next);
    free(run.payload);
    mqb_done_fini(&run.sync);
    mq_conf_fini(lc_conf_keys, lc_conf_nkeys, &lconf);
    return code;
}
