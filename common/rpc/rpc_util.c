/*
 * rpc_util: the small pieces the server and client halves of common/rpc
 * share: status names, marking completion-queue threads, flattening
 * received byte buffers into one range, building byte buffers to send, the
 * FIFO of queued sends, copying outgoing metadata into gRPC slices, and
 * deadlines. Everything here is thread-safe or works on state its caller
 * locks.
 */
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"
#include "rpc_int.h"

static const char *const rpc_status_names[] = {
    [RPC_OK] = "OK",
    [RPC_CANCELLED] = "CANCELLED",
    [RPC_UNKNOWN] = "UNKNOWN",
    [RPC_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [RPC_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
    [RPC_NOT_FOUND] = "NOT_FOUND",
    [RPC_ALREADY_EXISTS] = "ALREADY_EXISTS",
    [RPC_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [RPC_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
    [RPC_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
    [RPC_ABORTED] = "ABORTED",
    [RPC_OUT_OF_RANGE] = "OUT_OF_RANGE",
    [RPC_UNIMPLEMENTED] = "UNIMPLEMENTED",
    [RPC_INTERNAL] = "INTERNAL",
    [RPC_UNAVAILABLE] = "UNAVAILABLE",
    [RPC_DATA_LOSS] = "DATA_LOSS",
    [RPC_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *rpc_status_name(rpc_status_t st)
{
    if ((unsigned)st < MQ_ARRAY_LEN(rpc_status_names)) {
        return rpc_status_names[st];
    }
    return "INVALID_STATUS";
}

static _Thread_local bool rpc_cq_thread;

void rpc_cq_thread_enter(const char *name)
{
    rpc_cq_thread = true;
    mq_log_thread_name(name);
}

bool rpc_cq_thread_is_self(void)
{
    return rpc_cq_thread;
}

bool rpc_flat_init(rpc_flat_t *flat, grpc_byte_buffer *bb)
{
    flat->owned = false;
    if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
        bb->data.raw.slice_buffer.count == 1) {
        /* The common case needs no copy: point into the buffer's only slice
         * (in place, so an inlined slice's bytes stay where they are). */
        grpc_slice *s = &bb->data.raw.slice_buffer.slices[0];
        flat->data = GRPC_SLICE_START_PTR(*s);
        flat->len = GRPC_SLICE_LENGTH(*s);
    } else {
        grpc_byte_buffer_reader reader;
        if (!grpc_byte_buffer_reader_init(&reader, bb)) {
            return false;
        }
        flat->slice = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
        flat->owned = true;
        flat->data = GRPC_SLICE_START_PTR(flat->slice);
        flat->len = GRPC_SLICE_LENGTH(flat->slice);
    }
    if (flat->data == NULL) {
        /* A message may be empty; callers tell "no message" by NULL. */
        flat->data = (const uint8_t *)"";
    }
    return true;
}

void rpc_flat_fini(rpc_flat_t *flat)
{
    if (flat->owned) {
        grpc_slice_unref(flat->slice);
        flat->owned = false;
    }
}

grpc_byte_buffer *rpc_bb_copy(const void *msg, size_t len)
{
    grpc_slice s = len ? grpc_slice_from_copied_buffer(msg, len) : grpc_empty_slice();
    /* The byte buffer takes its own reference on the slice. */
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

struct rpc_sendq_item {
    rpc_sendq_item_t *next;
    grpc_byte_buffer *bb;
};

void rpc_sendq_push(rpc_sendq_t *q, grpc_byte_buffer *bb)
{
    rpc_sendq_item_t *it = mq_malloc(sizeof(*it));
    it->next = NULL;
    it->bb = bb;
    if (q->tail) {
        q->tail->next = it;
    } else {
        q->head = it;
    }
    q->tail = it;
    q->n++;
}

grpc_byte_buffer *rpc_sendq_pop(rpc_sendq_t *q)
{
    rpc_sendq_item_t *it = q->head;
    if (!it) {
        return NULL;
    }
    q->head = it->next;
    if (!q->head) {
        q->tail = NULL;
    }
    q->n--;
    grpc_byte_buffer *bb = it->bb;
    free(it);
    return bb;
}

void rpc_sendq_clear(rpc_sendq_t *q)
{
    grpc_byte_buffer *bb;
    while ((bb = rpc_sendq_pop(q)) != NULL) {
        grpc_byte_buffer_destroy(bb);
    }
}

mq_err_t rpc_md_copy(const rpc_md_t *md, size_t nmd, grpc_metadata **out)
{
    *out = NULL;
    if (nmd == 0) {
        return MQ_OK;
    }
    for (size_t i = 0; i < nmd; i++) {
        if (!md[i].key || !md[i].value) {
            return MQ_EINVAL;
        }
        grpc_slice k = grpc_slice_from_static_string(md[i].key);
        grpc_slice v = grpc_slice_from_static_string(md[i].value);
        if (!grpc_header_key_is_legal(k) ||
            (!grpc_is_binary_header(k) && !grpc_header_nonbin_value_is_legal(v))) {
            MQ_LOG_DEBUG("rpc illegal metadata key=%s", md[i].key);
            return MQ_EINVAL;
        }
    }
    grpc_metadata *gmd = mq_calloc(nmd, sizeof(*gmd));
    for (size_t i = 0; i < nmd; i++) {
        gmd[i].key = grpc_slice_from_copied_string(md[i].key);
        gmd[i].value = grpc_slice_from_copied_string(md[i].value);
    }
    *out = gmd;
    return MQ_OK;
}

void rpc_md_free(grpc_metadata *gmd, size_t nmd)
{
    for (size_t i = 0; i < nmd; i++) {
        grpc_slice_unref(gmd[i].key);
        grpc_slice_unref(gmd[i].value);
    }
    free(gmd);
}

gpr_timespec rpc_deadline(uint32_t timeout_ms)
{
    if (timeout_ms == 0) {
        return gpr_inf_future(GPR_CLOCK_REALTIME);
    }
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis((int64_t)timeout_ms, GPR_TIMESPAN));
}

rpc_status_t rpc_status_from_grpc(grpc_status_code code)
{
    if (code < GRPC_STATUS_OK || code > GRPC_STATUS_UNAUTHENTICATED) {
        return RPC_UNKNOWN;
    }
    return (rpc_status_t)code;
}

char *rpc_slice_strdup(grpc_slice slice)
{
    if (GRPC_SLICE_LENGTH(slice) == 0) {
        return NULL;
    }
    /* gRPC's own copy: status details are built as C++ strings on whichever
     * gRPC thread read the socket, and handed over through synchronisation
     * ThreadSanitizer cannot see (libgrpc is not instrumented); copying
     * inside libgrpc keeps that hand-over out of our frames. */
    return grpc_slice_to_c_string(slice);
}
