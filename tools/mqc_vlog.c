/*
 * mqc_vlog: see mqc_vlog.h.
 */
#include "mqc_vlog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mq_util.h"

#define MQC_VLOG_BUF (1u << 20)

struct mqc_vlog {
    int fd;
    char *buf;
    size_t len;
    uint64_t lines;
    mq_err_t err;
};

/* Length of s up to its first space or control character. */
static size_t mqc_vlog_token_len(const char *s)
{
    size_t n = 0;
    while (s[n] && (unsigned char)s[n] > ' ' && s[n] != 0x7f) {
        n++;
    }
    return n;
}

size_t mqc_vrec_format(const mqc_vrec_t *rec, char *buf, size_t cap)
{
    int idl = (int)mqc_vlog_token_len(rec->message_id);
    int gl = (int)mqc_vlog_token_len(rec->group);
    int n = snprintf(buf, cap, "%d %" PRId64 " %" PRIu64 " %" PRIu64 " %08" PRIx32 " %.*s%s%.*s\n",
                     rec->queue, rec->offset, rec->producer, rec->seq, rec->crc, idl,
                     rec->message_id, gl ? " " : "", gl, rec->group);
    if (n < 0 || (size_t)n >= cap) {
        return 0;
    }
    return (size_t)n;
}

/* Copies the token at *p into out (cap bytes) and moves *p past it and the
 * blanks after it. False when there is no token or it does not fit. */
static bool mqc_vlog_token(const char **p, char *out, size_t cap)
{
    size_t n = mqc_vlog_token_len(*p);
    if (n == 0 || n >= cap) {
        return false;
    }
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    while (**p == ' ' || **p == '\t') {
        (*p)++;
    }
    return true;
}

static bool mqc_vlog_num(const char *tok, bool is_signed, bool hex, uint64_t *u, int64_t *s)
{
    char *end;
    errno = 0;
    if (is_signed) {
        long long v = strtoll(tok, &end, 10);
        *s = v;
    } else {
        if (tok[0] == '-' || tok[0] == '+') {
            return false;
        }
        unsigned long long v = strtoull(tok, &end, hex ? 16 : 10);
        *u = v;
    }
    return errno == 0 && end != tok && *end == '\0';
}

bool mqc_vrec_parse(const char *line, mqc_vrec_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    const char *p = line;
    char tok[MQC_VLOG_FIELD_MAX];
    uint64_t u = 0;
    int64_t s = 0;
    if (!mqc_vlog_token(&p, tok, sizeof(tok)) || !mqc_vlog_num(tok, true, false, &u, &s) || s < 0 ||
        s > INT32_MAX) {
        return false;
    }
    rec->queue = (int)s;
    if (!mqc_vlog_token(&p, tok, sizeof(tok)) || !mqc_vlog_num(tok, true, false, &u, &s)) {
        return false;
    }
    rec->offset = s;
    if (!mqc_vlog_token(&p, tok, sizeof(tok)) || !mqc_vlog_num(tok, false, false, &u, &s)) {
        return false;
    }
    rec->producer = u;
    if (!mqc_vlog_token(&p, tok, sizeof(tok)) || !mqc_vlog_num(tok, false, false, &u, &s)) {
        return false;
    }
    rec->seq = u;
    if (!mqc_vlog_token(&p, tok, sizeof(tok)) || strlen(tok) != 8 ||
        !mqc_vlog_num(tok, false, true, &u, &s)) {
        return false;
    }
    rec->crc = (uint32_t)u;
    if (!mqc_vlog_token(&p, rec->message_id, sizeof(rec->message_id))) {
        return false;
    }
    if (*p && *p != '\n' && *p != '\r' && !mqc_vlog_token(&p, rec->group, sizeof(rec->group))) {
        return false;
    }
    while (*p == '\r' || *p == '\n') {
        p++;
    }
    return *p == '\0';
}

mq_err_t mqc_vlog_open(const char *path, mqc_vlog_t **out)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return mq_err_from_errno(errno);
    }
    mqc_vlog_t *vl = mq_calloc(1, sizeof(*vl));
    vl->fd = fd;
    vl->buf = mq_malloc(MQC_VLOG_BUF);
    *out = vl;
    return MQ_OK;
}

static void mqc_vlog_flush(mqc_vlog_t *vl)
{
    size_t off = 0;
    while (off < vl->len && vl->err == MQ_OK) {
        ssize_t n = write(vl->fd, vl->buf + off, vl->len - off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            vl->err = mq_err_from_errno(errno);
            break;
        }
        off += (size_t)n;
    }
    vl->len = 0;
}

void mqc_vlog_add(mqc_vlog_t *vl, const mqc_vrec_t *rec)
{
    if (vl->err != MQ_OK) {
        return;
    }
    if (MQC_VLOG_BUF - vl->len < MQC_VLOG_LINE_MAX) {
        mqc_vlog_flush(vl);
    }
    size_t n = mqc_vrec_format(rec, vl->buf + vl->len, MQC_VLOG_BUF - vl->len);
    vl->len += n;
    vl->lines++;
}

uint64_t mqc_vlog_lines(const mqc_vlog_t *vl)
{
    return vl->lines;
}

mq_err_t mqc_vlog_close(mqc_vlog_t *vl)
{
    if (!vl) {
        return MQ_OK;
    }
    mqc_vlog_flush(vl);
    if (close(vl->fd) != 0 && vl->err == MQ_OK) {
        vl->err = mq_err_from_errno(errno);
    }
    mq_err_t err = vl->err;
    free(vl->buf);
    free(vl);
    return err;
}

mq_err_t mqc_vlog_read(const char *path, mqc_vlog_read_cb cb, void *arg, uint64_t *bad_line)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        return mq_err_from_errno(errno);
    }
    char *line = NULL;
    size_t cap = 0;
    uint64_t no = 0;
    mq_err_t err = MQ_OK;
    for (;;) {
        errno = 0;
        ssize_t n = getline(&line, &cap, f);
        if (n < 0) {
            if (errno != 0) {
                err = mq_err_from_errno(errno);
            }
            break;
        }
        no++;
        if (line[0] == '\n' || line[0] == '\0' || (line[0] == '\r' && line[1] == '\n')) {
            continue;
        }
        mqc_vrec_t rec;
        if (!mqc_vrec_parse(line, &rec)) {
            if (bad_line) {
                *bad_line = no;
            }
            err = MQ_ECORRUPT;
            break;
        }
        if (!cb(&rec, arg)) {
            break;
        }
    }
    free(line);
    fclose(f);
    return err;
}
