/*
 * mqc_rmq: see mqc_rmq.h.
 *
 * SendMessage is encoded in one pass into a growing buffer: the request's
 * repeated `messages` field is a callback that encodes each Message as a
 * sub-message, whose `body` is again a callback writing the raw bytes.
 * nanopb sizes a sub-message before writing it, so the body callback runs
 * twice per message; the sizing pass does not read the bytes, and the
 * caller's body callback (which may generate megabytes) runs once, before
 * both passes.
 */
#include "mqc_rmq.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "mq_util.h"
#include "rmq_service.pb.h"

/* ------------------------------------------------------------ endpoints */

bool mqc_ep_split(const char *ep, char *host, size_t host_cap, int *port)
{
    const char *hs = ep;
    const char *he;
    const char *ps;
    if (*ep == '[') {
        hs = ep + 1;
        he = strchr(hs, ']');
        if (!he || he[1] != ':') {
            return false;
        }
        ps = he + 2;
    } else {
        he = strchr(ep, ':');
        if (!he || strchr(he + 1, ':')) {
            /* No port, or an IPv6 address without brackets. */
            return false;
        }
        ps = he + 1;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= host_cap) {
        return false;
    }
    char *end;
    long p = strtol(ps, &end, 10);
    if (end == ps || *end != '\0' || p < 1 || p > 65535) {
        return false;
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';
    *port = (int)p;
    return true;
}

void mqc_ep_join(char *out, size_t cap, const char *host, int port)
{
    if (strchr(host, ':')) {
        snprintf(out, cap, "[%s]:%d", host, port);
    } else {
        snprintf(out, cap, "%s:%d", host, port);
    }
}

mq_err_t mqc_eps_parse(const char *s, mqc_eps_t *eps, char *why, size_t why_cap)
{
    eps->n = 0;
    const char *p = s ? s : "";
    for (;;) {
        size_t len = strcspn(p, ";,");
        const char *a = p;
        const char *b = p + len;
        while (a < b && (*a == ' ' || *a == '\t')) {
            a++;
        }
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) {
            b--;
        }
        if (b > a) {
            char one[MQC_EP_MAX];
            char host[MQC_EP_MAX];
            int port;
            size_t l = (size_t)(b - a);
            if (l >= sizeof(one)) {
                snprintf(why, why_cap, "endpoint too long: '%.40s...'", a);
                return MQ_EINVAL;
            }
            memcpy(one, a, l);
            one[l] = '\0';
            if (!mqc_ep_split(one, host, sizeof(host), &port)) {
                snprintf(why, why_cap, "bad endpoint '%s' (expected host:port or [v6]:port)", one);
                return MQ_EINVAL;
            }
            if (eps->n == MQC_EPS_MAX) {
                snprintf(why, why_cap, "more than %d endpoints", MQC_EPS_MAX);
                return MQ_EINVAL;
            }
            mqc_ep_join(eps->ep[eps->n++], MQC_EP_MAX, host, port);
        }
        if (p[len] == '\0') {
            break;
        }
        p += len + 1;
    }
    if (eps->n == 0) {
        snprintf(why, why_cap, "no endpoint in '%s'", s ? s : "");
        return MQ_EINVAL;
    }
    return MQ_OK;
}

/* Index of ep in eps, adding it when absent; SIZE_MAX when full. */
static size_t mqc_eps_intern(mqc_eps_t *eps, const char *ep)
{
    for (size_t i = 0; i < eps->n; i++) {
        if (strcmp(eps->ep[i], ep) == 0) {
            return i;
        }
    }
    if (eps->n == MQC_EPS_MAX) {
        return SIZE_MAX;
    }
    snprintf(eps->ep[eps->n], MQC_EP_MAX, "%s", ep);
    return eps->n++;
}

static apache_rocketmq_v2_AddressScheme mqc_scheme(const char *host)
{
    unsigned char tmp[16];
    if (inet_pton(AF_INET, host, tmp) == 1) {
        return apache_rocketmq_v2_AddressScheme_IPv4;
    }
    if (inet_pton(AF_INET6, host, tmp) == 1) {
        return apache_rocketmq_v2_AddressScheme_IPv6;
    }
    return apache_rocketmq_v2_AddressScheme_DOMAIN_NAME;
}

/* Endpoints{scheme, addresses} of eps. hosts (n * MQC_EP_MAX) and addrs (n)
 * are the caller's storage the result points into. */
static void mqc_endpoints_fill(apache_rocketmq_v2_Endpoints *e, const mqc_eps_t *eps,
                               char (*hosts)[MQC_EP_MAX], apache_rocketmq_v2_Address *addrs)
{
    for (size_t i = 0; i < eps->n; i++) {
        int port = 0;
        if (!mqc_ep_split(eps->ep[i], hosts[i], MQC_EP_MAX, &port)) {
            snprintf(hosts[i], MQC_EP_MAX, "%s", eps->ep[i]);
        }
        addrs[i].host = hosts[i];
        addrs[i].port = port;
    }
    e->scheme = eps->n ? mqc_scheme(hosts[0]) : apache_rocketmq_v2_AddressScheme_IPv4;
    e->addresses_count = (pb_size_t)eps->n;
    e->addresses = addrs;
}

/* -------------------------------------------------------------- headers */

static pthread_once_t mqc_once = PTHREAD_ONCE_INIT;
static char mqc_host[256];
static uint64_t mqc_seed;
static atomic_uint_fast64_t mqc_counter;

static void mqc_once_init(void)
{
    if (gethostname(mqc_host, sizeof(mqc_host)) != 0 || mqc_host[0] == '\0') {
        snprintf(mqc_host, sizeof(mqc_host), "localhost");
    }
    mqc_host[sizeof(mqc_host) - 1] = '\0';
    if (getrandom(&mqc_seed, sizeof(mqc_seed), 0) != (ssize_t)sizeof(mqc_seed)) {
        mqc_seed = mq_wall_ms() ^ ((uint64_t)getpid() << 32) ^ mq_now_ns();
    }
    atomic_init(&mqc_counter, 0);
}

const char *mqc_hostname(void)
{
    pthread_once(&mqc_once, mqc_once_init);
    return mqc_host;
}

/* A random-looking 64-bit value, different on every call. Any thread. */
static uint64_t mqc_random64(void)
{
    pthread_once(&mqc_once, mqc_once_init);
    return mq_mix64(mqc_seed ^ mq_mix64(atomic_fetch_add(&mqc_counter, 1)));
}

void mqc_md_init(mqc_md_t *h, const char *client_id)
{
    snprintf(h->client_id, sizeof(h->client_id), "%s", client_id ? client_id : "");
    /* A version-4 UUID, as the official clients send. */
    uint64_t a = mqc_random64();
    uint64_t b = mqc_random64();
    a = (a & ~0xF000ull) | 0x4000ull;
    b = (b & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;
    snprintf(h->request_id, sizeof(h->request_id), "%08x-%04x-%04x-%04x-%012llx",
             (unsigned)(a >> 32), (unsigned)((a >> 16) & 0xFFFF), (unsigned)(a & 0xFFFF),
             (unsigned)(b >> 48), (unsigned long long)(b & 0xFFFFFFFFFFFFull));
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(h->date_time, sizeof(h->date_time), "%Y%m%dT%H%M%SZ", &tm);
    size_t n = 0;
    h->md[n++] = (rpc_md_t){"x-mq-client-id", h->client_id};
    h->md[n++] = (rpc_md_t){"x-mq-language", MQC_LANGUAGE};
    h->md[n++] = (rpc_md_t){"x-mq-protocol", "v2"};
    h->md[n++] = (rpc_md_t){"x-mq-client-version", MQC_CLIENT_VERSION};
    h->md[n++] = (rpc_md_t){"x-mq-request-id", h->request_id};
    h->md[n++] = (rpc_md_t){"x-mq-date-time", h->date_time};
    h->n = n;
}

static void mqc_base36(char *out, size_t cap, uint64_t v)
{
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
        v /= 36;
    } while (v && n < sizeof(tmp));
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++) {
        out[i] = tmp[n - 1 - i];
    }
    out[i] = '\0';
}

void mqc_client_id_make(char *out, size_t cap, unsigned index)
{
    char t[16];
    mqc_base36(t, sizeof(t), mq_wall_ms());
    snprintf(out, cap, "%s@%d@%u@%s", mqc_hostname(), (int)getpid(), index, t);
}

/* ----------------------------------------------------------- message ids */

static void mqc_hex(char *out, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
}

static void mqc_msgid_prefix(char prefix[19], const uint8_t mac[6], uint16_t pid)
{
    uint8_t b[9];
    b[0] = 1;
    memcpy(b + 1, mac, 6);
    b[7] = (uint8_t)(pid >> 8);
    b[8] = (uint8_t)pid;
    mqc_hex(prefix, b, sizeof(b));
    prefix[18] = '\0';
}

/* The MAC of the first interface that is up, not loopback and has a
 * non-zero hardware address. False without one. */
static bool mqc_mac(uint8_t mac[6])
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0) {
        return false;
    }
    bool found = false;
    for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_PACKET || (i->ifa_flags & IFF_LOOPBACK)) {
            continue;
        }
        const struct sockaddr_ll *ll = (const struct sockaddr_ll *)(const void *)i->ifa_addr;
        if (ll->sll_halen != 6) {
            continue;
        }
        static const uint8_t zero[6];
        if (memcmp(ll->sll_addr, zero, 6) != 0) {
            memcpy(mac, ll->sll_addr, 6);
            found = true;
        }
    }
    freeifaddrs(ifs);
    return found;
}

void mqc_msgid_gen_init_with(mqc_msgid_gen_t *g, const uint8_t mac[6], uint16_t pid, uint32_t seq0)
{
    mqc_msgid_prefix(g->prefix, mac, pid);
    atomic_init(&g->seq, seq0);
}

void mqc_msgid_gen_init(mqc_msgid_gen_t *g)
{
    uint8_t mac[6];
    if (!mqc_mac(mac)) {
        uint64_t r = mqc_random64();
        memcpy(mac, &r, 6);
    }
    mqc_msgid_gen_init_with(g, mac, (uint16_t)getpid(), 0);
}

static uint32_t mqc_msgid_secs(void)
{
    uint64_t s = mq_wall_ms() / 1000;
    return s > MQC_MSGID_EPOCH ? (uint32_t)(s - MQC_MSGID_EPOCH) : 0;
}

static void mqc_msgid_tail(char *out, uint32_t secs, uint32_t seq)
{
    uint8_t b[8];
    mq_put_be32(b, secs);
    mq_put_be32(b + 4, seq);
    mqc_hex(out, b, sizeof(b));
    out[16] = '\0';
}

void mqc_msgid_next(mqc_msgid_gen_t *g, char out[MQC_MSGID_LEN + 1])
{
    uint32_t seq = atomic_fetch_add(&g->seq, 1);
    memcpy(out, g->prefix, 18);
    mqc_msgid_tail(out + 18, mqc_msgid_secs(), seq);
}

void mqc_msgid_format(char out[MQC_MSGID_LEN + 1], const uint8_t mac[6], uint16_t pid,
                      uint32_t secs, uint32_t seq)
{
    mqc_msgid_prefix(out, mac, pid);
    mqc_msgid_tail(out + 18, secs, seq);
}

static int mqc_unhex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool mqc_msgid_parse(const char *id, uint8_t mac[6], uint16_t *pid, uint32_t *secs, uint32_t *seq)
{
    if (!id || strlen(id) != MQC_MSGID_LEN) {
        return false;
    }
    uint8_t b[MQC_MSGID_LEN / 2];
    for (size_t i = 0; i < sizeof(b); i++) {
        int hi = mqc_unhex(id[2 * i]);
        int lo = mqc_unhex(id[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    if (b[0] != 1) {
        return false;
    }
    if (mac) {
        memcpy(mac, b + 1, 6);
    }
    if (pid) {
        *pid = (uint16_t)(b[7] << 8 | b[8]);
    }
    if (secs) {
        *secs = mq_get_be32(b + 9);
    }
    if (seq) {
        *seq = mq_get_be32(b + 13);
    }
    return true;
}

/* ---------------------------------------------------------------- codes */

/* X(name, retriable): every apache.rocketmq.v2.Code. A producer retries
 * server-side trouble and throttling; everything else is the request's
 * fault and fails the same way again. */
#define MQC_CODE_LIST(X)                                                                           \
    X(CODE_UNSPECIFIED, false)                                                                     \
    X(OK, false)                                                                                   \
    X(MULTIPLE_RESULTS, false)                                                                     \
    X(BAD_REQUEST, false)                                                                          \
    X(ILLEGAL_ACCESS_POINT, false)                                                                 \
    X(ILLEGAL_TOPIC, false)                                                                        \
    X(ILLEGAL_CONSUMER_GROUP, false)                                                               \
    X(ILLEGAL_MESSAGE_TAG, false)                                                                  \
    X(ILLEGAL_MESSAGE_KEY, false)                                                                  \
    X(ILLEGAL_MESSAGE_GROUP, false)                                                                \
    X(ILLEGAL_MESSAGE_PROPERTY_KEY, false)                                                         \
    X(INVALID_TRANSACTION_ID, false)                                                               \
    X(ILLEGAL_MESSAGE_ID, false)                                                                   \
    X(ILLEGAL_FILTER_EXPRESSION, false)                                                            \
    X(ILLEGAL_INVISIBLE_TIME, false)                                                               \
    X(ILLEGAL_DELIVERY_TIME, false)                                                                \
    X(INVALID_RECEIPT_HANDLE, false)                                                               \
    X(MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, false)                                                  \
    X(UNRECOGNIZED_CLIENT_TYPE, false)                                                             \
    X(MESSAGE_CORRUPTED, false)                                                                    \
    X(CLIENT_ID_REQUIRED, false)                                                                   \
    X(ILLEGAL_POLLING_TIME, false)                                                                 \
    X(ILLEGAL_OFFSET, false)                                                                       \
    X(ILLEGAL_LITE_TOPIC, false)                                                                   \
    X(INVALID_CLIENT_PROPERTIES, false)                                                            \
    X(UNAUTHORIZED, false)                                                                         \
    X(PAYMENT_REQUIRED, false)                                                                     \
    X(FORBIDDEN, false)                                                                            \
    X(NOT_FOUND, false)                                                                            \
    X(MESSAGE_NOT_FOUND, false)                                                                    \
    X(TOPIC_NOT_FOUND, false)                                                                      \
    X(CONSUMER_GROUP_NOT_FOUND, false)                                                             \
    X(OFFSET_NOT_FOUND, false)                                                                     \
    X(REQUEST_TIMEOUT, true)                                                                       \
    X(PAYLOAD_TOO_LARGE, false)                                                                    \
    X(MESSAGE_BODY_TOO_LARGE, false)                                                               \
    X(MESSAGE_BODY_EMPTY, false)                                                                   \
    X(PRECONDITION_FAILED, false)                                                                  \
    X(TOO_MANY_REQUESTS, true)                                                                     \
    X(LITE_TOPIC_QUOTA_EXCEEDED, false)                                                            \
    X(LITE_SUBSCRIPTION_QUOTA_EXCEEDED, false)                                                     \
    X(REQUEST_HEADER_FIELDS_TOO_LARGE, false)                                                      \
    X(MESSAGE_PROPERTIES_TOO_LARGE, false)                                                         \
    X(INTERNAL_ERROR, true)                                                                        \
    X(INTERNAL_SERVER_ERROR, true)                                                                 \
    X(HA_NOT_AVAILABLE, true)                                                                      \
    X(NOT_IMPLEMENTED, false)                                                                      \
    X(PROXY_TIMEOUT, true)                                                                         \
    X(MASTER_PERSISTENCE_TIMEOUT, true)                                                            \
    X(SLAVE_PERSISTENCE_TIMEOUT, true)                                                             \
    X(UNSUPPORTED, false)                                                                          \
    X(VERSION_UNSUPPORTED, false)                                                                  \
    X(VERIFY_FIFO_MESSAGE_UNSUPPORTED, false)                                                      \
    X(FAILED_TO_CONSUME_MESSAGE, false)

typedef struct mqc_code_info {
    int code;
    const char *name;
    bool retriable;
} mqc_code_info_t;

static const mqc_code_info_t mqc_codes[] = {
#define MQC_CODE_ROW(name, retriable) {apache_rocketmq_v2_Code_##name, #name, retriable},
    MQC_CODE_LIST(MQC_CODE_ROW)
#undef MQC_CODE_ROW
};

static const mqc_code_info_t *mqc_code_find(int code)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(mqc_codes); i++) {
        if (mqc_codes[i].code == code) {
            return &mqc_codes[i];
        }
    }
    return NULL;
}

const char *mqc_code_name(int code)
{
    const mqc_code_info_t *c = mqc_code_find(code);
    return c ? c->name : "UNKNOWN_CODE";
}

bool mqc_code_retriable(int code)
{
    const mqc_code_info_t *c = mqc_code_find(code);
    return c && c->retriable;
}

bool mqc_code_known(int code)
{
    return mqc_code_find(code) != NULL;
}

bool mqc_status_retriable(rpc_status_t st)
{
    return st == RPC_UNAVAILABLE || st == RPC_DEADLINE_EXCEEDED || st == RPC_RESOURCE_EXHAUSTED;
}

/* ------------------------------------------------------------- nanopb */

mq_err_t mqc_pb_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t **out, size_t *len)
{
    size_t size = 0;
    if (!pb_get_encoded_size(&size, fields, msg)) {
        return MQ_EPROTO;
    }
    uint8_t *buf = mq_malloc(size ? size : 1);
    pb_ostream_t os = pb_ostream_from_buffer(buf, size);
    if (!pb_encode(&os, fields, msg)) {
        free(buf);
        return MQ_EPROTO;
    }
    *out = buf;
    *len = os.bytes_written;
    return MQ_OK;
}

mq_err_t mqc_pb_decode(const pb_msgdesc_t *fields, const uint8_t *buf, size_t len, void *msg)
{
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    if (!pb_decode(&is, fields, msg)) {
        pb_release(fields, msg);
        return MQ_EPROTO;
    }
    return MQ_OK;
}

static void mqc_copy_str(char *out, size_t cap, const char *s)
{
    if (cap) {
        snprintf(out, cap, "%s", s ? s : "");
    }
}

/* ----------------------------------------------------------------- route */

mq_err_t mqc_route_request_encode(const char *topic, const mqc_eps_t *access, uint8_t **out,
                                  size_t *len)
{
    apache_rocketmq_v2_QueryRouteRequest r = apache_rocketmq_v2_QueryRouteRequest_init_zero;
    r.has_topic = true;
    r.topic.name = (char *)topic;
    size_t n = access ? access->n : 0;
    char(*hosts)[MQC_EP_MAX] = mq_calloc(n ? n : 1, sizeof(*hosts));
    apache_rocketmq_v2_Address *addrs = mq_calloc(n ? n : 1, sizeof(*addrs));
    if (n) {
        r.has_endpoints = true;
        mqc_endpoints_fill(&r.endpoints, access, hosts, addrs);
    }
    mq_err_t err = mqc_pb_encode(apache_rocketmq_v2_QueryRouteRequest_fields, &r, out, len);
    free(addrs);
    free(hosts);
    return err;
}

mq_err_t mqc_route_decode(const uint8_t *buf, size_t len, int *code, char *msg, size_t msg_cap,
                          mqc_route_t *rt)
{
    memset(rt, 0, sizeof(*rt));
    *code = 0;
    mqc_copy_str(msg, msg_cap, "");
    apache_rocketmq_v2_QueryRouteResponse r = apache_rocketmq_v2_QueryRouteResponse_init_zero;
    if (mqc_pb_decode(apache_rocketmq_v2_QueryRouteResponse_fields, buf, len, &r) != MQ_OK) {
        return MQ_EPROTO;
    }
    mq_err_t err = MQ_OK;
    if (r.has_status) {
        *code = (int)r.status.code;
        mqc_copy_str(msg, msg_cap, r.status.message);
    }
    rt->queues =
        mq_calloc(r.message_queues_count ? r.message_queues_count : 1, sizeof(*rt->queues));
    for (pb_size_t i = 0; i < r.message_queues_count; i++) {
        const apache_rocketmq_v2_MessageQueue *m = &r.message_queues[i];
        mqc_queue_t *q = &rt->queues[rt->nqueues++];
        q->id = m->id;
        q->perm = (int)m->permission;
        for (pb_size_t k = 0; k < m->accept_message_types_count; k++) {
            unsigned t = (unsigned)m->accept_message_types[k];
            if (t < 32) {
                q->types |= 1u << t;
            }
        }
        q->ep_index = SIZE_MAX;
        if (!m->has_broker) {
            continue;
        }
        mqc_copy_str(q->broker, sizeof(q->broker), m->broker.name);
        const apache_rocketmq_v2_Endpoints *e = &m->broker.endpoints;
        if (m->broker.has_endpoints && e->addresses_count > 0 && e->addresses[0].host &&
            e->addresses[0].host[0]) {
            mqc_ep_join(q->endpoint, sizeof(q->endpoint), e->addresses[0].host,
                        e->addresses[0].port);
            q->ep_index = mqc_eps_intern(&rt->eps, q->endpoint);
            if (q->ep_index == SIZE_MAX) {
                err = MQ_EPROTO;
            }
        }
    }
    pb_release(apache_rocketmq_v2_QueryRouteResponse_fields, &r);
    return err;
}

void mqc_route_fini(mqc_route_t *rt)
{
    free(rt->queues);
    memset(rt, 0, sizeof(*rt));
}

/* ----------------------------------------------------------------- send */

/* A pb_ostream_t target that grows up to a limit. */
typedef struct mqc_gbuf {
    uint8_t *p;
    size_t len;
    size_t cap;
    size_t limit;
    bool too_large;
} mqc_gbuf_t;

static bool mqc_gbuf_write(pb_ostream_t *s, const pb_byte_t *buf, size_t count)
{
    mqc_gbuf_t *g = s->state;
    if (count > g->limit - g->len) {
        g->too_large = true;
        return false;
    }
    if (g->len + count > g->cap) {
        size_t cap = MQ_MAX(g->cap * 2, g->len + count);
        g->cap = MQ_MIN(cap, g->limit);
        g->p = mq_realloc(g->p, g->cap);
    }
    memcpy(g->p + g->len, buf, count);
    g->len += count;
    return true;
}

typedef struct mqc_send_enc {
    const mqc_msg_t *msgs;
    size_t n;
    mqc_body_cb body_cb;
    void *arg;
    const uint8_t *body; /* of the message being encoded */
    size_t body_len;
} mqc_send_enc_t;

static bool mqc_enc_body(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
    const mqc_send_enc_t *e = *arg;
    if (!pb_encode_tag_for_field(s, f)) {
        return false;
    }
    /* In nanopb's sizing pass the stream has no callback and the bytes are
     * only counted, never read. */
    return pb_encode_string(s, e->body, e->body_len);
}

#define MQC_PROPS_INLINE 8

static bool mqc_enc_messages(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
    mqc_send_enc_t *e = *arg;
    for (size_t i = 0; i < e->n; i++) {
        const mqc_msg_t *mm = &e->msgs[i];
        e->body = mm->body ? mm->body : e->body_cb(i, mm, e->arg);
        e->body_len = mm->len;
        if (!e->body && mm->len) {
            return false;
        }
        apache_rocketmq_v2_Message m = apache_rocketmq_v2_Message_init_zero;
        m.has_topic = true;
        m.topic.name = (char *)mm->topic;
        apache_rocketmq_v2_Message_UserPropertiesEntry inline_props[MQC_PROPS_INLINE];
        apache_rocketmq_v2_Message_UserPropertiesEntry *props = inline_props;
        if (mm->nprops > MQC_PROPS_INLINE) {
            props = mq_malloc(mm->nprops * sizeof(*props));
        }
        for (size_t k = 0; k < mm->nprops; k++) {
            props[k].key = (char *)mm->props[k].key;
            props[k].value = (char *)mm->props[k].value;
        }
        m.user_properties_count = (pb_size_t)mm->nprops;
        m.user_properties = mm->nprops ? props : NULL;
        m.has_system_properties = true;
        apache_rocketmq_v2_SystemProperties *sp = &m.system_properties;
        sp->tag = (char *)mm->tag;
        char *keys[1] = {(char *)mm->key};
        if (mm->key) {
            sp->keys_count = 1;
            sp->keys = keys;
        }
        sp->message_id = (char *)mm->message_id;
        sp->body_encoding = apache_rocketmq_v2_Encoding_IDENTITY;
        sp->message_type = mm->type ? (apache_rocketmq_v2_MessageType)mm->type
                                    : (mm->group ? apache_rocketmq_v2_MessageType_FIFO
                                                 : apache_rocketmq_v2_MessageType_NORMAL);
        sp->has_born_timestamp = true;
        sp->born_timestamp.seconds = (int64_t)(mm->born_ms / 1000);
        sp->born_timestamp.nanos = (int32_t)(mm->born_ms % 1000 * 1000000);
        sp->born_host = (char *)mm->born_host;
        sp->message_group = (char *)mm->group;
        m.body.funcs.encode = mqc_enc_body;
        m.body.arg = e;
        bool ok = pb_encode_tag_for_field(s, f) &&
                  pb_encode_submessage(s, apache_rocketmq_v2_Message_fields, &m);
        if (props != inline_props) {
            free(props);
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

static size_t mqc_slen(const char *s)
{
    return s ? strlen(s) : 0;
}

mq_err_t mqc_send_encode(const mqc_msg_t *msgs, size_t n, mqc_body_cb body_cb, void *arg,
                         uint8_t **out, size_t *len)
{
    if (n == 0) {
        return MQ_EINVAL;
    }
    /* A first guess at the size, so that a request is written without
     * reallocation in the usual case: body, strings, and room for tags,
     * lengths and fixed fields. */
    size_t guess = 64;
    for (size_t i = 0; i < n; i++) {
        const mqc_msg_t *m = &msgs[i];
        if (!m->body && !body_cb) {
            return MQ_EINVAL;
        }
        guess += m->len + 96 + mqc_slen(m->topic) + mqc_slen(m->message_id) + mqc_slen(m->tag) +
                 mqc_slen(m->key) + mqc_slen(m->group) + mqc_slen(m->born_host);
        for (size_t k = 0; k < m->nprops; k++) {
            guess += 8 + mqc_slen(m->props[k].key) + mqc_slen(m->props[k].value);
        }
    }
    mqc_gbuf_t g = {0};
    g.limit = MQC_MAX_REQUEST_BYTES;
    if (guess > g.limit) {
        return MQ_ETOOLARGE;
    }
    g.cap = guess;
    g.p = mq_malloc(g.cap);
    mqc_send_enc_t enc = {.msgs = msgs, .n = n, .body_cb = body_cb, .arg = arg};
    apache_rocketmq_v2_SendMessageRequest r = apache_rocketmq_v2_SendMessageRequest_init_zero;
    r.messages.funcs.encode = mqc_enc_messages;
    r.messages.arg = &enc;
    pb_ostream_t os = {0};
    os.callback = mqc_gbuf_write;
    os.state = &g;
    os.max_size = SIZE_MAX;
    if (!pb_encode(&os, apache_rocketmq_v2_SendMessageRequest_fields, &r)) {
        free(g.p);
        return g.too_large ? MQ_ETOOLARGE : MQ_EPROTO;
    }
    *out = g.p;
    *len = g.len;
    return MQ_OK;
}

bool mqc_pb_bytes_ref(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    /* A buffer stream's state is its read pointer. */
    (void)f;
    mqc_bytes_t *b = *arg;
    b->data = s->state;
    b->len = s->bytes_left;
    return pb_read(s, NULL, s->bytes_left);
}

mq_err_t mqc_message_decode(const uint8_t *buf, size_t len, apache_rocketmq_v2_Message *m,
                            const uint8_t **body, size_t *body_len)
{
    mqc_bytes_t b = {(const uint8_t *)"", 0};
    memset(m, 0, sizeof(*m));
    m->body.funcs.decode = mqc_pb_bytes_ref;
    m->body.arg = &b;
    if (mqc_pb_decode(apache_rocketmq_v2_Message_fields, buf, len, m) != MQ_OK) {
        return MQ_EPROTO;
    }
    m->body.arg = NULL;
    *body = b.data;
    *body_len = b.len;
    return MQ_OK;
}

typedef struct mqc_send_dec {
    mqc_msg_visit_cb visit;
    void *arg;
    size_t i;
} mqc_send_dec_t;

static bool mqc_dec_messages(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    (void)f;
    mqc_send_dec_t *d = *arg;
    apache_rocketmq_v2_Message m;
    const uint8_t *body;
    size_t blen;
    size_t len = s->bytes_left;
    if (mqc_message_decode(s->state, len, &m, &body, &blen) != MQ_OK) {
        return false;
    }
    bool ok = d->visit(d->i++, &m, body, blen, d->arg);
    pb_release(apache_rocketmq_v2_Message_fields, &m);
    return ok && pb_read(s, NULL, len);
}

mq_err_t mqc_send_request_decode(const uint8_t *buf, size_t len, mqc_msg_visit_cb visit, void *arg)
{
    mqc_send_dec_t d = {visit, arg, 0};
    apache_rocketmq_v2_SendMessageRequest r = apache_rocketmq_v2_SendMessageRequest_init_zero;
    r.messages.funcs.decode = mqc_dec_messages;
    r.messages.arg = &d;
    return mqc_pb_decode(apache_rocketmq_v2_SendMessageRequest_fields, buf, len, &r);
}

mq_err_t mqc_send_response_decode(const uint8_t *buf, size_t len, mqc_send_resp_t *out)
{
    memset(out, 0, sizeof(*out));
    apache_rocketmq_v2_SendMessageResponse r = apache_rocketmq_v2_SendMessageResponse_init_zero;
    if (mqc_pb_decode(apache_rocketmq_v2_SendMessageResponse_fields, buf, len, &r) != MQ_OK) {
        return MQ_EPROTO;
    }
    if (r.has_status) {
        out->code = (int)r.status.code;
        mqc_copy_str(out->message, sizeof(out->message), r.status.message);
    }
    out->entries = mq_calloc(r.entries_count ? r.entries_count : 1, sizeof(*out->entries));
    out->n = r.entries_count;
    for (pb_size_t i = 0; i < r.entries_count; i++) {
        const apache_rocketmq_v2_SendResultEntry *e = &r.entries[i];
        mqc_send_entry_t *o = &out->entries[i];
        o->code = e->has_status ? (int)e->status.code : 0;
        o->queue_id = e->queue_id;
        o->offset = e->offset;
        mqc_copy_str(o->message_id, sizeof(o->message_id), e->message_id);
    }
    pb_release(apache_rocketmq_v2_SendMessageResponse_fields, &r);
    return MQ_OK;
}

void mqc_send_resp_fini(mqc_send_resp_t *r)
{
    free(r->entries);
    r->entries = NULL;
    r->n = 0;
}

/* --------------------------------------------- telemetry, heartbeat, bye */

mq_err_t mqc_settings_encode(const char *topic, const mqc_eps_t *access, uint32_t timeout_ms,
                             uint8_t **out, size_t *len)
{
    apache_rocketmq_v2_TelemetryCommand c = apache_rocketmq_v2_TelemetryCommand_init_zero;
    c.which_command = apache_rocketmq_v2_TelemetryCommand_settings_tag;
    apache_rocketmq_v2_Settings *s = &c.command.settings;
    s->has_client_type = true;
    s->client_type = apache_rocketmq_v2_ClientType_PRODUCER;
    size_t n = access ? access->n : 0;
    char(*hosts)[MQC_EP_MAX] = mq_calloc(n ? n : 1, sizeof(*hosts));
    apache_rocketmq_v2_Address *addrs = mq_calloc(n ? n : 1, sizeof(*addrs));
    if (n) {
        s->has_access_point = true;
        mqc_endpoints_fill(&s->access_point, access, hosts, addrs);
    }
    s->has_request_timeout = true;
    s->request_timeout.seconds = timeout_ms / 1000;
    s->request_timeout.nanos = (int32_t)(timeout_ms % 1000 * 1000000);
    /* What the official producers propose; the server answers its own. */
    s->has_backoff_policy = true;
    s->backoff_policy.max_attempts = 3;
    s->backoff_policy.which_strategy = apache_rocketmq_v2_RetryPolicy_exponential_backoff_tag;
    apache_rocketmq_v2_ExponentialBackoff *eb = &s->backoff_policy.strategy.exponential_backoff;
    eb->has_initial = true;
    eb->initial.nanos = 10 * 1000000;
    eb->has_max = true;
    eb->max.seconds = 1;
    eb->multiplier = 2.0f;
    apache_rocketmq_v2_Resource res = apache_rocketmq_v2_Resource_init_zero;
    res.name = (char *)topic;
    s->which_pub_sub = apache_rocketmq_v2_Settings_publishing_tag;
    s->pub_sub.publishing.topics_count = topic ? 1 : 0;
    s->pub_sub.publishing.topics = topic ? &res : NULL;
    s->has_user_agent = true;
    s->user_agent.language = apache_rocketmq_v2_Language_CPP;
    s->user_agent.version = MQC_CLIENT_VERSION;
    s->user_agent.platform = "Linux (LedgerMQ mqc)";
    s->user_agent.hostname = (char *)mqc_hostname();
    mq_err_t err = mqc_pb_encode(apache_rocketmq_v2_TelemetryCommand_fields, &c, out, len);
    free(addrs);
    free(hosts);
    return err;
}

mq_err_t mqc_telemetry_decode(const uint8_t *buf, size_t len, mqc_settings_reply_t *out)
{
    memset(out, 0, sizeof(*out));
    apache_rocketmq_v2_TelemetryCommand c = apache_rocketmq_v2_TelemetryCommand_init_zero;
    if (mqc_pb_decode(apache_rocketmq_v2_TelemetryCommand_fields, buf, len, &c) != MQ_OK) {
        return MQ_EPROTO;
    }
    out->code = c.has_status ? (int)c.status.code : 0;
    if (c.which_command == apache_rocketmq_v2_TelemetryCommand_settings_tag) {
        const apache_rocketmq_v2_Settings *s = &c.command.settings;
        out->has_settings = true;
        if (s->which_pub_sub == apache_rocketmq_v2_Settings_publishing_tag) {
            out->max_body_size = s->pub_sub.publishing.max_body_size;
        }
        if (s->has_backoff_policy) {
            out->max_attempts = s->backoff_policy.max_attempts;
        }
        if (s->which_pub_sub == apache_rocketmq_v2_Settings_subscription_tag) {
            const apache_rocketmq_v2_Subscription *sub = &s->pub_sub.subscription;
            out->has_subscription = true;
            out->fifo = sub->has_fifo && sub->fifo;
            out->receive_batch_size = sub->has_receive_batch_size ? sub->receive_batch_size : 0;
            if (sub->has_long_polling_timeout && sub->long_polling_timeout.seconds >= 0) {
                out->poll_ms = (uint32_t)MQ_MIN(
                    (uint64_t)sub->long_polling_timeout.seconds * 1000 +
                        (uint64_t)MQ_MAX(sub->long_polling_timeout.nanos, 0) / 1000000,
                    UINT32_MAX);
            }
        }
    }
    pb_release(apache_rocketmq_v2_TelemetryCommand_fields, &c);
    return MQ_OK;
}

mq_err_t mqc_heartbeat_encode(uint8_t **out, size_t *len)
{
    apache_rocketmq_v2_HeartbeatRequest r = apache_rocketmq_v2_HeartbeatRequest_init_zero;
    r.client_type = apache_rocketmq_v2_ClientType_PRODUCER;
    return mqc_pb_encode(apache_rocketmq_v2_HeartbeatRequest_fields, &r, out, len);
}

mq_err_t mqc_notify_encode(uint8_t **out, size_t *len)
{
    apache_rocketmq_v2_NotifyClientTerminationRequest r =
        apache_rocketmq_v2_NotifyClientTerminationRequest_init_zero;
    return mqc_pb_encode(apache_rocketmq_v2_NotifyClientTerminationRequest_fields, &r, out, len);
}

mq_err_t mqc_status_decode(const uint8_t *buf, size_t len, int *code, char *msg, size_t msg_cap)
{
    /* Every response's status is field 1; nanopb skips the others. */
    apache_rocketmq_v2_HeartbeatResponse r = apache_rocketmq_v2_HeartbeatResponse_init_zero;
    *code = 0;
    mqc_copy_str(msg, msg_cap, "");
    if (mqc_pb_decode(apache_rocketmq_v2_HeartbeatResponse_fields, buf, len, &r) != MQ_OK) {
        return MQ_EPROTO;
    }
    if (r.has_status) {
        *code = (int)r.status.code;
        mqc_copy_str(msg, msg_cap, r.status.message);
    }
    pb_release(apache_rocketmq_v2_HeartbeatResponse_fields, &r);
    return MQ_OK;
}

/* -------------------------------------------------------------- consume */

static void mqc_duration_ms(apache_rocketmq_v2_Duration *d, uint64_t ms)
{
    d->seconds = (int64_t)(ms / 1000);
    d->nanos = (int32_t)(ms % 1000 * 1000000);
}

static uint64_t mqc_ts_ms(const apache_rocketmq_v2_Timestamp *t)
{
    if (t->seconds < 0) {
        return 0;
    }
    return (uint64_t)t->seconds * 1000 + (uint64_t)MQ_MAX(t->nanos, 0) / 1000000;
}

mq_err_t mqc_consumer_settings_encode(int client_type, const char *group, const char *topic,
                                      const char *filter, const mqc_eps_t *access,
                                      uint32_t timeout_ms, uint32_t poll_ms, uint8_t **out,
                                      size_t *len)
{
    apache_rocketmq_v2_TelemetryCommand c = apache_rocketmq_v2_TelemetryCommand_init_zero;
    c.which_command = apache_rocketmq_v2_TelemetryCommand_settings_tag;
    apache_rocketmq_v2_Settings *s = &c.command.settings;
    s->has_client_type = true;
    s->client_type = (apache_rocketmq_v2_ClientType)client_type;
    size_t n = access ? access->n : 0;
    char(*hosts)[MQC_EP_MAX] = mq_calloc(n ? n : 1, sizeof(*hosts));
    apache_rocketmq_v2_Address *addrs = mq_calloc(n ? n : 1, sizeof(*addrs));
    if (n) {
        s->has_access_point = true;
        mqc_endpoints_fill(&s->access_point, access, hosts, addrs);
    }
    s->has_request_timeout = true;
    mqc_duration_ms(&s->request_timeout, timeout_ms);
    s->which_pub_sub = apache_rocketmq_v2_Settings_subscription_tag;
    apache_rocketmq_v2_Subscription *sub = &s->pub_sub.subscription;
    sub->has_group = group != NULL;
    sub->group.name = (char *)group;
    apache_rocketmq_v2_SubscriptionEntry entry = apache_rocketmq_v2_SubscriptionEntry_init_zero;
    entry.has_topic = true;
    entry.topic.name = (char *)topic;
    entry.has_expression = true;
    entry.expression.type = apache_rocketmq_v2_FilterType_TAG;
    entry.expression.expression = (char *)(filter ? filter : "*");
    sub->subscriptions_count = topic ? 1 : 0;
    sub->subscriptions = topic ? &entry : NULL;
    sub->has_long_polling_timeout = true;
    mqc_duration_ms(&sub->long_polling_timeout, poll_ms);
    s->has_user_agent = true;
    s->user_agent.language = apache_rocketmq_v2_Language_CPP;
    s->user_agent.version = MQC_CLIENT_VERSION;
    s->user_agent.platform = "Linux (LedgerMQ mqc)";
    s->user_agent.hostname = (char *)mqc_hostname();
    mq_err_t err = mqc_pb_encode(apache_rocketmq_v2_TelemetryCommand_fields, &c, out, len);
    free(addrs);
    free(hosts);
    return err;
}

mq_err_t mqc_heartbeat_group_encode(int client_type, const char *group, uint8_t **out, size_t *len)
{
    apache_rocketmq_v2_HeartbeatRequest r = apache_rocketmq_v2_HeartbeatRequest_init_zero;
    r.has_group = group != NULL;
    r.group.name = (char *)group;
    r.client_type = (apache_rocketmq_v2_ClientType)client_type;
    return mqc_pb_encode(apache_rocketmq_v2_HeartbeatRequest_fields, &r, out, len);
}

mq_err_t mqc_notify_group_encode(const char *group, uint8_t **out, size_t *len)
{
    apache_rocketmq_v2_NotifyClientTerminationRequest r =
        apache_rocketmq_v2_NotifyClientTerminationRequest_init_zero;
    r.has_group = group != NULL;
    r.group.name = (char *)group;
    return mqc_pb_encode(apache_rocketmq_v2_NotifyClientTerminationRequest_fields, &r, out, len);
}

mq_err_t mqc_recv_request_encode(const mqc_recv_req_t *q, uint8_t **out, size_t *len)
{
    apache_rocketmq_v2_ReceiveMessageRequest r = apache_rocketmq_v2_ReceiveMessageRequest_init_zero;
    r.has_group = q->group != NULL;
    r.group.name = (char *)q->group;
    if (q->topic) {
        r.has_message_queue = true;
        r.message_queue.has_topic = true;
        r.message_queue.topic.name = (char *)q->topic;
        r.message_queue.id = q->queue_id;
        r.message_queue.permission = apache_rocketmq_v2_Permission_READ_WRITE;
        if (q->broker) {
            r.message_queue.has_broker = true;
            r.message_queue.broker.name = (char *)q->broker;
        }
    }
    if (q->filter) {
        r.has_filter_expression = true;
        r.filter_expression.type = q->filter_type ? (apache_rocketmq_v2_FilterType)q->filter_type
                                                  : apache_rocketmq_v2_FilterType_TAG;
        r.filter_expression.expression = (char *)q->filter;
    }
    r.batch_size = q->batch;
    if (q->invisible_ms >= 0) {
        r.has_invisible_duration = true;
        mqc_duration_ms(&r.invisible_duration, (uint64_t)q->invisible_ms);
    }
    if (q->poll_ms >= 0) {
        r.has_long_polling_timeout = true;
        mqc_duration_ms(&r.long_polling_timeout, (uint64_t)q->poll_ms);
    }
    r.auto_renew = q->auto_renew;
    r.attempt_id = (char *)q->attempt_id;
    return mqc_pb_encode(apache_rocketmq_v2_ReceiveMessageRequest_fields, &r, out, len);
}

void mqc_recv_frame_fini(mqc_recv_frame_t *f)
{
    if (f->kind == MQC_FRAME_MESSAGE) {
        pb_release(apache_rocketmq_v2_Message_fields, &f->msg);
    }
    memset(f, 0, sizeof(*f));
}

/* Decodes the content field `tag` (bytes p, n) into f, replacing what an
 * earlier content field put there (a oneof: the last one wins). */
static mq_err_t mqc_recv_content(mqc_recv_frame_t *f, uint32_t tag, const uint8_t *p, size_t n)
{
    mqc_recv_frame_fini(f);
    if (tag == 1) {
        apache_rocketmq_v2_Status st = apache_rocketmq_v2_Status_init_zero;
        if (mqc_pb_decode(apache_rocketmq_v2_Status_fields, p, n, &st) != MQ_OK) {
            return MQ_EPROTO;
        }
        f->kind = MQC_FRAME_STATUS;
        f->code = (int)st.code;
        mqc_copy_str(f->message, sizeof(f->message), st.message);
        pb_release(apache_rocketmq_v2_Status_fields, &st);
        return MQ_OK;
    }
    if (tag == 2) {
        if (mqc_message_decode(p, n, &f->msg, &f->body, &f->body_len) != MQ_OK) {
            return MQ_EPROTO;
        }
        f->kind = MQC_FRAME_MESSAGE;
        return MQ_OK;
    }
    apache_rocketmq_v2_Timestamp ts = apache_rocketmq_v2_Timestamp_init_zero;
    if (mqc_pb_decode(apache_rocketmq_v2_Timestamp_fields, p, n, &ts) != MQ_OK) {
        return MQ_EPROTO;
    }
    f->kind = MQC_FRAME_DELIVERY_TS;
    f->delivery_ms = mqc_ts_ms(&ts);
    return MQ_OK;
}

mq_err_t mqc_recv_frame_decode(const uint8_t *buf, size_t len, mqc_recv_frame_t *f)
{
    /* By hand rather than with the generated oneof: nanopb clears a oneof
     * member before decoding it, which would drop the callback that takes
     * the message body without a copy. */
    memset(f, 0, sizeof(*f));
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    while (is.bytes_left > 0) {
        pb_wire_type_t wt;
        uint32_t tag;
        bool eof;
        if (!pb_decode_tag(&is, &wt, &tag, &eof)) {
            if (eof) {
                break;
            }
            return MQ_EPROTO;
        }
        if (tag >= 1 && tag <= 3 && wt == PB_WT_STRING) {
            uint32_t n;
            if (!pb_decode_varint32(&is, &n) || n > is.bytes_left) {
                return MQ_EPROTO;
            }
            const uint8_t *p = is.state;
            if (!pb_read(&is, NULL, n) || mqc_recv_content(f, tag, p, n) != MQ_OK) {
                return MQ_EPROTO;
            }
        } else if (!pb_skip_field(&is, wt)) {
            return MQ_EPROTO;
        }
    }
    return MQ_OK;
}

static const char *mqc_s(const char *s)
{
    return s ? s : "";
}

void mqc_delivery_view(const mqc_recv_frame_t *f, mqc_delivery_t *d)
{
    memset(d, 0, sizeof(*d));
    const apache_rocketmq_v2_Message *m = &f->msg;
    const apache_rocketmq_v2_SystemProperties *sp = &m->system_properties;
    d->m = m;
    d->topic = mqc_s(m->has_topic ? m->topic.name : NULL);
    d->message_id = mqc_s(sp->message_id);
    d->receipt_handle = mqc_s(sp->receipt_handle);
    d->tag = mqc_s(sp->tag);
    d->group = mqc_s(sp->message_group);
    d->digest = mqc_s(sp->has_body_digest ? sp->body_digest.checksum : NULL);
    d->digest_type = sp->has_body_digest ? (int)sp->body_digest.type : 0;
    d->dlq_topic = mqc_s(sp->has_dead_letter_queue ? sp->dead_letter_queue.topic : NULL);
    d->dlq_message_id = mqc_s(sp->has_dead_letter_queue ? sp->dead_letter_queue.message_id : NULL);
    d->queue_id = sp->queue_id;
    d->queue_offset = sp->has_queue_offset ? sp->queue_offset : -1;
    d->attempt = sp->has_delivery_attempt ? sp->delivery_attempt : 0;
    d->born_ms = sp->has_born_timestamp ? mqc_ts_ms(&sp->born_timestamp) : 0;
    d->store_ms = sp->has_store_timestamp ? mqc_ts_ms(&sp->store_timestamp) : 0;
    d->body = f->body;
    d->body_len = f->body_len;
}

const char *mqc_delivery_prop(const mqc_delivery_t *d, const char *key)
{
    for (pb_size_t i = 0; i < d->m->user_properties_count; i++) {
        const apache_rocketmq_v2_Message_UserPropertiesEntry *e = &d->m->user_properties[i];
        if (e->key && strcmp(e->key, key) == 0) {
            return mqc_s(e->value);
        }
    }
    return NULL;
}

/* Upper-case hex of a digest of data made with md; false if OpenSSL fails
 * (out of memory). */
static bool mqc_digest_hex(const EVP_MD *md, const uint8_t *data, size_t len, char *out, size_t cap)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (!EVP_Digest(len ? data : (const uint8_t *)"", len, d, &dlen, md, NULL) ||
        cap < 2 * (size_t)dlen + 1) {
        return false;
    }
    mqc_hex(out, d, dlen);
    out[2 * dlen] = '\0';
    return true;
}

void mqc_md5_hex(const uint8_t *data, size_t len, char out[33])
{
    if (!mqc_digest_hex(EVP_md5(), data, len, out, 33)) {
        out[0] = '\0';
    }
}

bool mqc_delivery_digest_ok(const mqc_delivery_t *d)
{
    char want[2 * EVP_MAX_MD_SIZE + 1];
    const EVP_MD *md;
    switch (d->digest_type) {
    case apache_rocketmq_v2_DigestType_MD5:
        md = EVP_md5();
        break;
    case apache_rocketmq_v2_DigestType_SHA1:
        md = EVP_sha1();
        break;
    default:
        return false;
    }
    return mqc_digest_hex(md, d->body, d->body_len, want, sizeof(want)) &&
           strcasecmp(want, d->digest) == 0;
}

mq_err_t mqc_ack_encode(const char *group, const char *topic, const mqc_ack_entry_t *e, size_t n,
                        uint8_t **out, size_t *len)
{
    if (n == 0 || n > UINT16_MAX) {
        return MQ_EINVAL;
    }
    apache_rocketmq_v2_AckMessageRequest r = apache_rocketmq_v2_AckMessageRequest_init_zero;
    r.has_group = group != NULL;
    r.group.name = (char *)group;
    r.has_topic = topic != NULL;
    r.topic.name = (char *)topic;
    apache_rocketmq_v2_AckMessageEntry *entries = mq_calloc(n, sizeof(*entries));
    for (size_t i = 0; i < n; i++) {
        entries[i].message_id = (char *)e[i].message_id;
        entries[i].receipt_handle = (char *)e[i].receipt_handle;
    }
    r.entries_count = (pb_size_t)n;
    r.entries = entries;
    mq_err_t err = mqc_pb_encode(apache_rocketmq_v2_AckMessageRequest_fields, &r, out, len);
    free(entries);
    return err;
}

mq_err_t mqc_ack_response_decode(const uint8_t *buf, size_t len, mqc_ack_resp_t *out)
{
    memset(out, 0, sizeof(*out));
    apache_rocketmq_v2_AckMessageResponse r = apache_rocketmq_v2_AckMessageResponse_init_zero;
    if (mqc_pb_decode(apache_rocketmq_v2_AckMessageResponse_fields, buf, len, &r) != MQ_OK) {
        return MQ_EPROTO;
    }
    if (r.has_status) {
        out->code = (int)r.status.code;
        mqc_copy_str(out->message, sizeof(out->message), r.status.message);
    }
    out->entries = mq_calloc(r.entries_count ? r.entries_count : 1, sizeof(*out->entries));
    out->n = r.entries_count;
    for (pb_size_t i = 0; i < r.entries_count; i++) {
        const apache_rocketmq_v2_AckMessageResultEntry *e = &r.entries[i];
        out->entries[i].code = e->has_status ? (int)e->status.code : 0;
        mqc_copy_str(out->entries[i].message_id, sizeof(out->entries[i].message_id), e->message_id);
    }
    pb_release(apache_rocketmq_v2_AckMessageResponse_fields, &r);
    return MQ_OK;
}

void mqc_ack_resp_fini(mqc_ack_resp_t *r)
{
    free(r->entries);
    r->entries = NULL;
    r->n = 0;
}

mq_err_t mqc_change_encode(const char *group, const char *topic, const char *receipt_handle,
                           const char *message_id, int64_t invisible_ms, uint8_t **out, size_t *len)
{
    apache_rocketmq_v2_ChangeInvisibleDurationRequest r =
        apache_rocketmq_v2_ChangeInvisibleDurationRequest_init_zero;
    r.has_group = group != NULL;
    r.group.name = (char *)group;
    r.has_topic = topic != NULL;
    r.topic.name = (char *)topic;
    r.receipt_handle = (char *)receipt_handle;
    r.message_id = (char *)message_id;
    if (invisible_ms >= 0) {
        r.has_invisible_duration = true;
        mqc_duration_ms(&r.invisible_duration, (uint64_t)invisible_ms);
    }
    return mqc_pb_encode(apache_rocketmq_v2_ChangeInvisibleDurationRequest_fields, &r, out, len);
}

mq_err_t mqc_change_response_decode(const uint8_t *buf, size_t len, int *code, char *msg,
                                    size_t msg_cap, char *handle, size_t handle_cap)
{
    *code = 0;
    mqc_copy_str(msg, msg_cap, "");
    mqc_copy_str(handle, handle_cap, "");
    apache_rocketmq_v2_ChangeInvisibleDurationResponse r =
        apache_rocketmq_v2_ChangeInvisibleDurationResponse_init_zero;
    if (mqc_pb_decode(apache_rocketmq_v2_ChangeInvisibleDurationResponse_fields, buf, len, &r) !=
        MQ_OK) {
        return MQ_EPROTO;
    }
    if (r.has_status) {
        *code = (int)r.status.code;
        mqc_copy_str(msg, msg_cap, r.status.message);
    }
    mqc_copy_str(handle, handle_cap, r.receipt_handle);
    pb_release(apache_rocketmq_v2_ChangeInvisibleDurationResponse_fields, &r);
    return MQ_OK;
}
