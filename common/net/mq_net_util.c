/*
 * mq_net_util: options and addresses for common/net/: defaults, "host:port"
 * parsing, resolving names to socket addresses and printing them back.
 * Pure functions apart from getaddrinfo; any thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_net.h"
#include "mq_net_int.h"
#include "mq_util.h"

void mq_net_opts_default(mq_net_opts_t *opts)
{
    opts->max_frame = 5u * 1024 * 1024 + 64 * 1024;
    opts->max_frame_hard = 64u * 1024 * 1024;
    opts->out_high_water = 4u * 1024 * 1024;
    opts->out_low_water = 1u * 1024 * 1024;
    opts->read_buf_size = 64u * 1024;
    opts->read_pool_bytes = 8u * 1024 * 1024;
}

void mq_net_opts_fix(const mq_net_opts_t *in, mq_net_opts_t *out)
{
    mq_net_opts_t def;
    mq_net_opts_default(&def);
    *out = in ? *in : def;
    /* Zero means "default" for every size; then the relations the read and
     * write paths rely on. A frame always needs its 16-byte header. */
    if (!out->max_frame) {
        out->max_frame = def.max_frame;
    }
    if (!out->max_frame_hard) {
        out->max_frame_hard = def.max_frame_hard;
    }
    if (!out->out_high_water) {
        out->out_high_water = def.out_high_water;
    }
    if (!out->read_buf_size) {
        out->read_buf_size = def.read_buf_size;
    }
    if (!out->read_pool_bytes) {
        out->read_pool_bytes = def.read_pool_bytes;
    }
    out->max_frame = MQ_MAX(out->max_frame, (size_t)MQ_NET_HDR_SIZE);
    /* frame_len is a u32, so nothing above 4 GiB + 3 can be announced. */
    out->max_frame_hard = MQ_MIN(out->max_frame_hard, (size_t)UINT32_MAX + 4);
    out->max_frame_hard = MQ_MAX(out->max_frame_hard, out->max_frame);
    out->read_buf_size = MQ_MAX(out->read_buf_size, (size_t)MQ_NET_HDR_SIZE);
    if (out->out_low_water > out->out_high_water) {
        out->out_low_water = out->out_high_water;
    }
}

void mq_net_client_opts_default(mq_net_client_opts_t *opts)
{
    mq_net_opts_default(&opts->net);
    opts->connect_timeout_ms = 5000;
    opts->backoff_min_ms = 100;
    opts->backoff_max_ms = 5000;
}

static bool mq_net_host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

mq_err_t mq_net_parse_hostport(const char *s, char *host, size_t cap, int *port)
{
    if (!s || !host || !port || cap == 0) {
        return MQ_EINVAL;
    }
    const char *hs;
    size_t hlen;
    const char *ps;
    if (s[0] == '[') {
        /* "[v6]:port": the brackets make the port's colon unambiguous. */
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':') {
            return MQ_EINVAL;
        }
        hs = s + 1;
        hlen = (size_t)(end - hs);
        ps = end + 2;
        for (size_t i = 0; i < hlen; i++) {
            char c = hs[i];
            bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            if (!hex && c != ':' && c != '.') {
                return MQ_EINVAL;
            }
        }
    } else {
        const char *colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':')) {
            return MQ_EINVAL;
        }
        hs = s;
        hlen = (size_t)(colon - s);
        ps = colon + 1;
        for (size_t i = 0; i < hlen; i++) {
            if (!mq_net_host_char_ok(hs[i])) {
                return MQ_EINVAL;
            }
        }
    }
    if (hlen == 0 || hlen >= cap) {
        return MQ_EINVAL;
    }
    if (*ps == '\0' || strlen(ps) > 5) {
        return MQ_EINVAL;
    }
    long p = 0;
    for (const char *c = ps; *c; c++) {
        if (*c < '0' || *c > '9') {
            return MQ_EINVAL;
        }
        p = p * 10 + (*c - '0');
    }
    if (p > 65535) {
        return MQ_EINVAL;
    }
    memcpy(host, hs, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return MQ_OK;
}

mq_err_t mq_net_addr_numeric(const char *host, int port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (port < 0 || port > 65535) {
        return MQ_EINVAL;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0) {
        return MQ_OK;
    }
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0) {
        return MQ_OK;
    }
    return MQ_EINVAL;
}

mq_err_t mq_net_addr_resolve(const char *host, int port, struct sockaddr_storage *out)
{
    if (!host || !*host) {
        return MQ_EINVAL;
    }
    if (mq_net_addr_numeric(host, port, out) == MQ_OK) {
        return MQ_OK;
    }
    if (port < 0 || port > 65535) {
        return MQ_EINVAL;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *res = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || !res) {
        MQ_LOG_WARN("net resolve failed host=%s err=%s", host, gai_strerror(rc));
        return MQ_ENOTFOUND;
    }
    /* Prefer IPv4, as the client does. */
    const struct addrinfo *pick = res;
    for (const struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    }
    MQ_ASSERT(pick->ai_addrlen <= sizeof(*out));
    memcpy(out, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    return MQ_OK;
}

void mq_net_addr_format(const struct sockaddr *addr, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
        uv_ip4_name(in, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
        uv_ip6_name(in6, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, cap, "?");
    }
}
