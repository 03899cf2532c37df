/*
 * br_pb: see br_pb.h.
 */
#include "br_pb.h"

#include <arpa/inet.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_util.h"

mq_err_t br_pb_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t **out, size_t *len)
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

mq_err_t br_pb_decode(const pb_msgdesc_t *fields, const uint8_t *buf, size_t len, void *msg,
                      char *errbuf, size_t errlen)
{
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    if (!pb_decode(&is, fields, msg)) {
        if (errbuf) {
            snprintf(errbuf, errlen, "undecodable request: %s", PB_GET_ERROR(&is));
        }
        pb_release(fields, msg);
        return MQ_EPROTO;
    }
    return MQ_OK;
}

bool br_pb_decode_bytes_ref(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    br_pb_bytes_t *b = *arg;
    /* A buffer stream's state is the read pointer: take the bytes in place
     * and skip them. */
    b->data = stream->state;
    b->len = stream->bytes_left;
    b->seen = true;
    return pb_read(stream, NULL, stream->bytes_left);
}

bool br_pb_encode_bytes(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const br_pb_bytes_t *b = *arg;
    if (!pb_encode_tag_for_field(stream, field)) {
        return false;
    }
    return pb_encode_string(stream, b->data, b->len);
}

void br_pb_endpoints(const char *endpoint, char *host, size_t cap, apache_rocketmq_v2_Address *addr,
                     apache_rocketmq_v2_Endpoints *out)
{
    const char *colon = strrchr(endpoint, ':');
    size_t hl = colon ? (size_t)(colon - endpoint) : strlen(endpoint);
    if (hl >= cap) {
        hl = cap - 1;
    }
    memcpy(host, endpoint, hl);
    host[hl] = '\0';
    addr->host = host;
    addr->port = colon ? atoi(colon + 1) : 0;
    unsigned char tmp[16];
    if (inet_pton(AF_INET, host, tmp) == 1) {
        out->scheme = apache_rocketmq_v2_AddressScheme_IPv4;
    } else if (inet_pton(AF_INET6, host, tmp) == 1) {
        out->scheme = apache_rocketmq_v2_AddressScheme_IPv6;
    } else {
        out->scheme = apache_rocketmq_v2_AddressScheme_DOMAIN_NAME;
    }
    out->addresses_count = 1;
    out->addresses = addr;
}
