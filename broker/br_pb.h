/*
 * br_pb: nanopb helpers shared by the broker's services: encoding a message
 * into a heap buffer, decoding with a clear error, strings and durations,
 * and RocketMQ's Endpoints. Any thread.
 */
#ifndef BR_PB_H
#define BR_PB_H

#include <pb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"
#include "rmq_definition.pb.h"

/* Encodes msg; *out (free()) and *len. MQ_EPROTO if nanopb refuses. */
mq_err_t br_pb_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t **out, size_t *len);
/* Decodes buf into msg (zeroed first; callbacks already set in msg are
 * kept). On failure msg is released and MQ_EPROTO returned, with nanopb's
 * reason in errbuf. Release a decoded msg with pb_release. */
mq_err_t br_pb_decode(const pb_msgdesc_t *fields, const uint8_t *buf, size_t len, void *msg,
                      char *errbuf, size_t errlen);
/* s, or "" for NULL. */
static inline const char *br_pb_str(const char *s)
{
    return s ? s : "";
}

/* A body (bytes field) seen by a decode callback: a pointer into the buffer
 * being decoded (valid while that buffer is). */
typedef struct br_pb_bytes {
    const uint8_t *data;
    size_t len;
    bool seen;
} br_pb_bytes_t;

/* pb_callback_t decode function taking a br_pb_bytes_t as arg; works on
 * streams made by pb_istream_from_buffer only (no copy). */
bool br_pb_decode_bytes_ref(pb_istream_t *stream, const pb_field_t *field, void **arg);
/* pb_callback_t encode function writing a br_pb_bytes_t as a bytes field. */
bool br_pb_encode_bytes(pb_ostream_t *stream, const pb_field_t *field, void *const *arg);

/* Fills out as the one address of endpoint "host:port" (scheme IPv4, IPv6
 * or domain name, from the host). The host is copied into host (cap
 * bytes); out points at addr and addr at host, so both must outlive out. */
void br_pb_endpoints(const char *endpoint, char *host, size_t cap, apache_rocketmq_v2_Address *addr,
                     apache_rocketmq_v2_Endpoints *out);

#endif
