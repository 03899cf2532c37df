/*
 * mqb_common: what mqbench's subcommands share: option parsing helpers,
 * deterministic payloads derived from (ledger, entry) so that any later
 * process can check an entry's bytes, and result printing. The RocketMQ
 * benches (produce, consume) also share their plumbing here: signals, the
 * rpc client and access channels, QueryRoute, monotonic waits.
 */
#ifndef MQB_COMMON_H
#define MQB_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <time.h>

#include "mq_hist.h"
#include "mqc_rmq.h"
#include "rpc.h"

/* Parses "123", "64k", "1m", "2g" (powers of 1024). */
bool mqb_parse_size(const char *s, uint64_t *out);
/* The value of option name (a size as above) within [min, max], or a usage
 * error naming the subcommand and the option. */
uint64_t mqb_opt_num(const char *cmd, const char *name, const char *arg, uint64_t min,
                     uint64_t max);
/* The value of option name, a duration ("500ms", "30", "30s", "5m", "1h";
 * plain numbers are seconds), in milliseconds within [min_ms, max_ms], or a
 * usage error. */
uint64_t mqb_opt_duration_ms(const char *cmd, const char *name, const char *arg, uint64_t min_ms,
                             uint64_t max_ms);
/* Fills buf with the payload of (ledger, entry): a SplitMix64 stream. */
void mqb_payload(uint64_t ledger_id, int64_t entry_id, uint8_t *buf, size_t len);
/* Prints "label p50 .. p99 .. p999 .. max .. mean .." in microseconds. */
void mqb_print_latency(const char *label, const mq_hist_t *h);
/* Fails with a message and exit code 2. */
void mqb_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));

/* Prints one progress line (stderr) for a run elapsed_s seconds old. */
typedef void (*mqb_progress_cb)(double elapsed_s, void *arg);

/*
 * The rendezvous between a run's callbacks (on a loop thread) and the main
 * thread: callbacks publish progress and say when the run is done; the main
 * thread waits, printing a progress line every second when asked (the
 * default line, or the subcommand's own through a printer).
 */
typedef struct mqb_done {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    bool show_progress;
    uint64_t progress;
    mqb_progress_cb printer;
    void *printer_arg;
} mqb_done_t;

void mqb_done_init(mqb_done_t *d, bool show_progress);
/* Progress lines come from printer (called on the waiting thread, with the
 * rendezvous' lock held: it must not wait for a callback). */
void mqb_done_set_printer(mqb_done_t *d, mqb_progress_cb printer, void *arg);
void mqb_done_fini(mqb_done_t *d);
/* Callback side: how many operations are done so far / the run is over. */
void mqb_done_progress(mqb_done_t *d, uint64_t n);
void mqb_done_set(mqb_done_t *d);
/* Main thread: waits for mqb_done_set, then re-arms for the next phase. */
void mqb_done_wait(mqb_done_t *d, const char *what);

/* --- the RocketMQ benches (produce, consume) ----------------------------- */

/* Set by SIGINT/SIGTERM once mqb_signals_catch ran. */
extern volatile sig_atomic_t mqb_interrupted;
/* Catches SIGINT and SIGTERM into mqb_interrupted (cleared). Main thread. */
void mqb_signals_catch(void);
/* Gives SIGINT and SIGTERM their default actions back. Main thread. */
void mqb_signals_restore(void);

/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
void mqb_cond_init_mono(pthread_cond_t *cond);
/* *ts = CLOCK_MONOTONIC now plus ms milliseconds (for mqb_cond_init_mono's
 * timed waits). */
void mqb_deadline(struct timespec *ts, uint64_t ms);
/* Writes fmt into first (cap bytes) under mu unless first already holds a
 * description: keeps a run's first failure. Any thread. */
void mqb_error_keep(pthread_mutex_t *mu, char *first, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Starts the rpc client (*cl) and a channel to each access point
 * (chans[0..access->n)); false after printing "mqbench <cmd>: ..." to
 * stderr, with what did not start left NULL (the caller frees the rest). */
bool mqb_rpc_open(const char *cmd, const mqc_eps_t *access, rpc_client_t **cl,
                  rpc_channel_t **chans);
/* One QueryRoute (req, as mqc_route_request_encode made it) on ch, the
 * channel to access point ep, as client client_id: true with the route in
 * *rt (fini it) when the answer is OK with a queue on a broker endpoint;
 * false otherwise, with why ("<ep>: ...") and *fatal (a code that no retry
 * can change). Blocks up to timeout_ms. */
bool mqb_route_query(rpc_channel_t *ch, const char *ep, const char *client_id, const uint8_t *req,
                     size_t len, uint32_t timeout_ms, mqc_route_t *rt, bool *fatal, char *why,
                     size_t why_cap);
/* Heartbeat's answer: liveness only, as the official clients do (failures
 * are logged). An rpc_unary_cb, on the rpc client thread. */
void mqb_heartbeat_cb(rpc_status_t st, const char *details, const uint8_t *resp, size_t len,
                      void *arg);

int mqb_bookie_main(int argc, char **argv);
int mqb_disk_main(int argc, char **argv);
int mqb_ledger_main(int argc, char **argv);
int mqb_produce_main(int argc, char **argv);
int mqb_consume_main(int argc, char **argv);

#endif
