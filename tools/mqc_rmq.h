/*
 * mqc_rmq: the client side of RocketMQ 5's gRPC protocol
 * (apache.rocketmq.v2.MessagingService) in small, pure pieces, for our own
 * tools and tests: endpoint lists, the request headers every call carries,
 * message ids as the official clients make them, QueryRoute, SendMessage
 * (bodies given as raw bytes or produced through a callback at encode time,
 * never copied into a nanopb struct), Telemetry settings, Heartbeat,
 * NotifyClientTermination, and the table of RocketMQ status codes.
 *
 * The consume side: consumer Settings and Heartbeat, ReceiveMessage
 * requests and the frames of its response stream (status, messages,
 * delivery timestamp) with a flat view of a delivered message and its body
 * digest check, AckMessage and ChangeInvisibleDuration.
 *
 * Users: mqbench produce and consume, mqadmin (decoding stored messages),
 * unit and integration tests. Nothing here does I/O: callers send the
 * encoded bytes with rpc_channel_* (rpc.h), or use mqc_recv.h's calls.
 *
 * Threads: every function is pure or works on caller's storage, except
 * mqc_msgid_next and mqc_md_init, which are thread-safe (atomic counters).
 * Encoded buffers are heap (free()); decoded results live in the caller's
 * struct until its *_fini.
 */
#ifndef MQC_RMQ_H
#define MQC_RMQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>

#include "mq_err.h"
#include "rmq_definition.pb.h"
#include "rpc.h"

/* gRPC method paths of the messaging service. */
#define MQC_SVC "/apache.rocketmq.v2.MessagingService/"
#define MQC_QUERY_ROUTE MQC_SVC "QueryRoute"
#define MQC_SEND_MESSAGE MQC_SVC "SendMessage"
#define MQC_HEARTBEAT MQC_SVC "Heartbeat"
#define MQC_TELEMETRY MQC_SVC "Telemetry"
#define MQC_NOTIFY_TERMINATION MQC_SVC "NotifyClientTermination"
#define MQC_RECEIVE_MESSAGE MQC_SVC "ReceiveMessage"
#define MQC_ACK_MESSAGE MQC_SVC "AckMessage"
#define MQC_CHANGE_INVISIBLE MQC_SVC "ChangeInvisibleDuration"

/* The largest request our rpc client sends (rpc_client.c's channel limit). */
#define MQC_MAX_REQUEST_BYTES (16u * 1024 * 1024)

/* ------------------------------------------------------------ endpoints */

#define MQC_EP_MAX 272 /* "host:port" or "[v6]:port" with a 255-char host */
#define MQC_EPS_MAX 64

/* A list of "host:port" endpoints ("h1:p1;h2:p2", RocketMQ's syntax; ','
 * accepted too). IPv6 hosts are written "[::1]:8081". */
typedef struct mqc_eps {
    size_t n;
    char ep[MQC_EPS_MAX][MQC_EP_MAX];
} mqc_eps_t;

/* MQ_EINVAL (with the reason in why) when an element has no host, no port
 * or a port outside 1..65535, or there are none or too many. */
mq_err_t mqc_eps_parse(const char *s, mqc_eps_t *eps, char *why, size_t why_cap);
/* Splits "host:port" (host without brackets) in place of the caller's
 * buffers. False when malformed. */
bool mqc_ep_split(const char *ep, char *host, size_t host_cap, int *port);
/* "host:port" from a host and port, bracketing IPv6 hosts. */
void mqc_ep_join(char *out, size_t cap, const char *host, int port);

/* -------------------------------------------------------------- headers */

#define MQC_MD_MAX 7
#define MQC_CLIENT_ID_MAX 128
/* x-mq-language: one of the names Apache RocketMQ's LanguageCode knows. */
#define MQC_LANGUAGE "CPP"
#define MQC_CLIENT_VERSION "5.0.0"

/* The metadata of one request: x-mq-client-id, x-mq-language,
 * x-mq-protocol (v2), x-mq-client-version, x-mq-request-id (fresh per
 * mqc_md_init) and x-mq-date-time. md points into this struct: keep it
 * alive until the rpc call was started (rpc copies it). */
typedef struct mqc_md {
    rpc_md_t md[MQC_MD_MAX];
    size_t n;
    char client_id[MQC_CLIENT_ID_MAX];
    char request_id[40];
    char date_time[20];
} mqc_md_t;

/* Fills h for one request of client_id (copied). Any thread. */
void mqc_md_init(mqc_md_t *h, const char *client_id);
/* A client id like the official clients' "host@pid@index@base36(ms)". */
void mqc_client_id_make(char *out, size_t cap, unsigned index);
/* This machine's host name ("localhost" when unknown), for born_host. */
const char *mqc_hostname(void);

/* ----------------------------------------------------------- message ids */

#define MQC_MSGID_LEN 34
/* Seconds since 2021-01-01T00:00:00Z is the id's time field. */
#define MQC_MSGID_EPOCH 1609459200

/*
 * Message ids as the official clients make them (v1): "01", 6 bytes of a
 * MAC address, the low 2 bytes of the pid, 4 bytes of seconds since
 * 2021-01-01 and a 4-byte sequence, as 34 upper-case hex digits. One
 * generator per process; ids are unique until the sequence wraps (2^32).
 */
typedef struct mqc_msgid_gen {
    char prefix[19]; /* "01" + MAC + pid */
    atomic_uint seq;
} mqc_msgid_gen_t;

/* Uses the first non-loopback interface's MAC (random bytes without one)
 * and getpid(). */
void mqc_msgid_gen_init(mqc_msgid_gen_t *g);
/* Fixed fields, for tests. */
void mqc_msgid_gen_init_with(mqc_msgid_gen_t *g, const uint8_t mac[6], uint16_t pid, uint32_t seq0);
/* Writes the next id and its NUL into out. Any thread. */
void mqc_msgid_next(mqc_msgid_gen_t *g, char out[MQC_MSGID_LEN + 1]);
/* The id of the given fields (pure). */
void mqc_msgid_format(char out[MQC_MSGID_LEN + 1], const uint8_t mac[6], uint16_t pid,
                      uint32_t secs, uint32_t seq);
/* True for a well-formed v1 id; its fields in the optional outputs. */
bool mqc_msgid_parse(const char *id, uint8_t mac[6], uint16_t *pid, uint32_t *secs, uint32_t *seq);

/* ---------------------------------------------------------------- codes */

/* The code's name, e.g. "TOO_MANY_REQUESTS" for 42900; "UNKNOWN_CODE" for
 * codes outside the table. */
const char *mqc_code_name(int code);
/* True for codes the official producers retry: INTERNAL_ERROR,
 * INTERNAL_SERVER_ERROR, HA_NOT_AVAILABLE, TOO_MANY_REQUESTS,
 * REQUEST_TIMEOUT, PROXY_TIMEOUT, MASTER/SLAVE_PERSISTENCE_TIMEOUT. */
bool mqc_code_retriable(int code);
/* True when the code is in the table (for tests). */
bool mqc_code_known(int code);
/* True for gRPC statuses worth a retry on another endpoint: UNAVAILABLE,
 * DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED. */
bool mqc_status_retriable(rpc_status_t st);

/* ----------------------------------------------------------------- route */

typedef struct mqc_queue {
    int id;
    int perm;       /* apache_rocketmq_v2_Permission */
    unsigned types; /* bit (1u << MessageType) for each accepted type */
    char broker[128];
    char endpoint[MQC_EP_MAX]; /* the broker's first address; "" if none */
    size_t ep_index;           /* into mqc_route_t.eps */
} mqc_queue_t;

typedef struct mqc_route {
    mqc_queue_t *queues;
    size_t nqueues;
    mqc_eps_t eps; /* distinct broker endpoints, in order of first use */
} mqc_route_t;

/* QueryRouteRequest{topic, endpoints = the access points}. */
mq_err_t mqc_route_request_encode(const char *topic, const mqc_eps_t *access, uint8_t **out,
                                  size_t *len);
/* Decodes a QueryRouteResponse. *code gets the response's status code (0
 * when absent) and msg its text; rt is filled (possibly empty) either way.
 * MQ_EPROTO when undecodable or a queue has more endpoints than fit. */
mq_err_t mqc_route_decode(const uint8_t *buf, size_t len, int *code, char *msg, size_t msg_cap,
                          mqc_route_t *rt);
void mqc_route_fini(mqc_route_t *rt);

/* ----------------------------------------------------------------- send */

typedef struct mqc_prop {
    const char *key;
    const char *value;
} mqc_prop_t;

/* One message to encode; every pointer is borrowed for the encode call. */
typedef struct mqc_msg {
    const char *topic;
    const char *message_id;
    const char *tag;   /* NULL: none */
    const char *key;   /* NULL: no keys */
    const char *group; /* NULL: none; set: a FIFO message */
    const char *born_host;
    uint64_t born_ms;
    int type; /* MessageType; 0: FIFO with a group, else NORMAL */
    const mqc_prop_t *props;
    size_t nprops;
    const uint8_t *body; /* NULL: produced by the body callback */
    size_t len;          /* body bytes either way */
} mqc_msg_t;

/* Produces the body of msgs[i] when its body is NULL: returns len bytes
 * that stay valid until the next call. Called once per such message, in
 * order, on the encoding thread. */
typedef const uint8_t *(*mqc_body_cb)(size_t i, const mqc_msg_t *m, void *arg);

/* SendMessageRequest{messages}: *out (free()) and *len. MQ_ETOOLARGE over
 * MQC_MAX_REQUEST_BYTES, MQ_EINVAL for n == 0 or a NULL body without a
 * callback, MQ_EPROTO when nanopb refuses. */
mq_err_t mqc_send_encode(const mqc_msg_t *msgs, size_t n, mqc_body_cb body_cb, void *arg,
                         uint8_t **out, size_t *len);

/* One decoded message: m (nanopb, released after the callback returns) and
 * its body (a pointer into the buffer being decoded). Return false to stop. */
typedef bool (*mqc_msg_visit_cb)(size_t i, const apache_rocketmq_v2_Message *m, const uint8_t *body,
                                 size_t len, void *arg);
/* Decodes a SendMessageRequest, calling visit for each message.
 * MQ_EPROTO when undecodable or stopped. */
mq_err_t mqc_send_request_decode(const uint8_t *buf, size_t len, mqc_msg_visit_cb visit, void *arg);
/* Decodes one apache.rocketmq.v2.Message (e.g. a stored one). On MQ_OK
 * the caller releases *m with pb_release(apache_rocketmq_v2_Message_fields);
 * *body points into buf. */
mq_err_t mqc_message_decode(const uint8_t *buf, size_t len, apache_rocketmq_v2_Message *m,
                            const uint8_t **body, size_t *body_len);

typedef struct mqc_send_entry {
    int code;
    int queue_id; /* LedgerMQ's extension field 1001 (0 when absent) */
    int64_t offset;
    char message_id[64]; /* truncated if longer */
} mqc_send_entry_t;

typedef struct mqc_send_resp {
    int code; /* top-level status; 0 when absent */
    char message[160];
    mqc_send_entry_t *entries;
    size_t n;
} mqc_send_resp_t;

/* Decodes a SendMessageResponse into r (release with mqc_send_resp_fini,
 * also after a failure). MQ_EPROTO when undecodable. */
mq_err_t mqc_send_response_decode(const uint8_t *buf, size_t len, mqc_send_resp_t *r);
void mqc_send_resp_fini(mqc_send_resp_t *r);

/* --------------------------------------------- telemetry, heartbeat, bye */

/* TelemetryCommand{settings} of a producer publishing topic: client type,
 * access point, request timeout, user agent, exponential backoff. */
mq_err_t mqc_settings_encode(const char *topic, const mqc_eps_t *access, uint32_t timeout_ms,
                             uint8_t **out, size_t *len);
/* The parts of a server's TelemetryCommand a producer uses: its status
 * code (0 when absent), whether it carries settings, and from those the
 * maximum body size (0 when absent) and the retry attempts (0 when absent). */
typedef struct mqc_settings_reply {
    int code;
    bool has_settings;
    int32_t max_body_size;
    int32_t max_attempts;
    /* Consumers' settings (subscription): */
    bool has_subscription;
    bool fifo;                  /* the group consumes in order */
    int32_t receive_batch_size; /* 0 when absent */
    uint32_t poll_ms;           /* long_polling_timeout; 0 when absent */
} mqc_settings_reply_t;
mq_err_t mqc_telemetry_decode(const uint8_t *buf, size_t len, mqc_settings_reply_t *out);
/* HeartbeatRequest{client_type = PRODUCER}. */
mq_err_t mqc_heartbeat_encode(uint8_t **out, size_t *len);
/* NotifyClientTerminationRequest{} (a producer has no group). */
mq_err_t mqc_notify_encode(uint8_t **out, size_t *len);
/* The status code of any response that starts with `Status status = 1`
 * (Heartbeat, NotifyClientTermination, ...); 0 when absent. */
mq_err_t mqc_status_decode(const uint8_t *buf, size_t len, int *code, char *msg, size_t msg_cap);

/* -------------------------------------------------------------- consume */

/* TelemetryCommand{settings} of a consumer (client_type SIMPLE_CONSUMER or
 * PUSH_CONSUMER) of group reading topic with a TAG filter (NULL: "*"):
 * access point, request timeout, user agent and subscription{group,
 * [{topic, filter}], long_polling_timeout = poll_ms}. */
mq_err_t mqc_consumer_settings_encode(int client_type, const char *group, const char *topic,
                                      const char *filter, const mqc_eps_t *access,
                                      uint32_t timeout_ms, uint32_t poll_ms, uint8_t **out,
                                      size_t *len);
/* HeartbeatRequest{group, client_type} (group NULL: none). */
mq_err_t mqc_heartbeat_group_encode(int client_type, const char *group, uint8_t **out, size_t *len);
/* NotifyClientTerminationRequest{group} (group NULL: none). */
mq_err_t mqc_notify_group_encode(const char *group, uint8_t **out, size_t *len);

/* A ReceiveMessageRequest. Optional fields are left out when negative or
 * NULL, so that tests can send any combination. */
typedef struct mqc_recv_req {
    const char *group;    /* NULL: no group */
    const char *topic;    /* message_queue.topic; NULL: no message_queue */
    int32_t queue_id;     /* message_queue.id (-1 as push assignments) */
    const char *broker;   /* message_queue.broker.name; NULL: no broker */
    const char *filter;   /* filter_expression.expression; NULL: none */
    int filter_type;      /* apache_rocketmq_v2_FilterType; 0: TAG */
    int32_t batch;        /* batch_size */
    int64_t invisible_ms; /* invisible_duration; < 0: not set */
    int64_t poll_ms;      /* long_polling_timeout; < 0: not set */
    bool auto_renew;
    const char *attempt_id; /* NULL: none */
} mqc_recv_req_t;

mq_err_t mqc_recv_request_encode(const mqc_recv_req_t *r, uint8_t **out, size_t *len);

/* One ReceiveMessageResponse frame: its oneof `content` is a status, a
 * message or the delivery timestamp. */
typedef enum mqc_frame_kind {
    MQC_FRAME_NONE = 0, /* no content (a server bug; clients skip it) */
    MQC_FRAME_STATUS = 1,
    MQC_FRAME_MESSAGE = 2,
    MQC_FRAME_DELIVERY_TS = 3,
} mqc_frame_kind_t;

typedef struct mqc_recv_frame {
    mqc_frame_kind_t kind;
    int code;          /* STATUS */
    char message[160]; /* STATUS */
    uint64_t delivery_ms;
    apache_rocketmq_v2_Message msg; /* MESSAGE; released by mqc_recv_frame_fini */
    const uint8_t *body;            /* MESSAGE: points into the decoded buffer */
    size_t body_len;
} mqc_recv_frame_t;

/* Decodes one frame (the buffer must outlive the use of body). MQ_EPROTO
 * when undecodable; f needs mqc_recv_frame_fini either way. */
mq_err_t mqc_recv_frame_decode(const uint8_t *buf, size_t len, mqc_recv_frame_t *f);
void mqc_recv_frame_fini(mqc_recv_frame_t *f);

/* A delivered message's fields in one flat view, borrowed from its frame.
 * Strings are "" when absent, times 0. */
typedef struct mqc_delivery {
    const char *topic;
    const char *message_id;
    const char *receipt_handle;
    const char *tag;
    const char *group;
    const char *digest;         /* body_digest.checksum */
    int digest_type;            /* apache_rocketmq_v2_DigestType */
    const char *dlq_topic;      /* dead_letter_queue.topic */
    const char *dlq_message_id; /* dead_letter_queue.message_id */
    int32_t queue_id;
    int64_t queue_offset; /* -1 when absent */
    int32_t attempt;      /* delivery_attempt; 0 when absent */
    uint64_t born_ms;
    uint64_t store_ms;
    const uint8_t *body;
    size_t body_len;
    const apache_rocketmq_v2_Message *m; /* keys, user properties */
} mqc_delivery_t;

void mqc_delivery_view(const mqc_recv_frame_t *f, mqc_delivery_t *d);
/* The value of user property key, or NULL. */
const char *mqc_delivery_prop(const mqc_delivery_t *d, const char *key);
/* Upper-case hex MD5 of data (what body_digest carries), 32 digits and NUL. */
void mqc_md5_hex(const uint8_t *data, size_t len, char out[33]);
/* True when the body matches the digest (MD5 or SHA1, upper or lower hex;
 * CRC32 in upper hex as Go checks it). False without a digest. */
bool mqc_delivery_digest_ok(const mqc_delivery_t *d);

typedef struct mqc_ack_entry {
    const char *message_id;
    const char *receipt_handle;
} mqc_ack_entry_t;

/* AckMessageRequest{group, topic, entries}. MQ_EINVAL for n == 0. */
mq_err_t mqc_ack_encode(const char *group, const char *topic, const mqc_ack_entry_t *e, size_t n,
                        uint8_t **out, size_t *len);

typedef struct mqc_ack_result {
    int code;
    char message_id[64];
} mqc_ack_result_t;

typedef struct mqc_ack_resp {
    int code; /* top-level status; 0 when absent */
    char message[160];
    mqc_ack_result_t *entries;
    size_t n;
} mqc_ack_resp_t;

/* Decodes an AckMessageResponse (release with mqc_ack_resp_fini, also
 * after a failure). MQ_EPROTO when undecodable. */
mq_err_t mqc_ack_response_decode(const uint8_t *buf, size_t len, mqc_ack_resp_t *r);
void mqc_ack_resp_fini(mqc_ack_resp_t *r);

/* ChangeInvisibleDurationRequest{group, topic, receipt_handle,
 * invisible_duration (< 0: not set), message_id}. */
mq_err_t mqc_change_encode(const char *group, const char *topic, const char *receipt_handle,
                           const char *message_id, int64_t invisible_ms, uint8_t **out,
                           size_t *len);
/* Decodes a ChangeInvisibleDurationResponse: status code (0 when absent),
 * its text and the new receipt handle ("" when absent). */
mq_err_t mqc_change_response_decode(const uint8_t *buf, size_t len, int *code, char *msg,
                                    size_t msg_cap, char *handle, size_t handle_cap);

/* ------------------------------------------------------------- nanopb */

/* A bytes field seen in place: a pointer into the buffer being decoded. */
typedef struct mqc_bytes {
    const uint8_t *data;
    size_t len;
} mqc_bytes_t;

/* pb_callback_t decode function taking an mqc_bytes_t as arg: the field's
 * bytes without a copy. Only for streams from pb_istream_from_buffer. */
bool mqc_pb_bytes_ref(pb_istream_t *stream, const pb_field_t *field, void **arg);

/* Encodes msg into a heap buffer: *out (free()) and *len. */
mq_err_t mqc_pb_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t **out, size_t *len);
/* Decodes buf into msg (callbacks already set in msg are kept); on
 * failure msg is released and MQ_EPROTO returned. Release with pb_release. */
mq_err_t mqc_pb_decode(const pb_msgdesc_t *fields, const uint8_t *buf, size_t len, void *msg);

#endif
