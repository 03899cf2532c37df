/*
 * mqbench disk: the physical limit the journal works against. Each writer
 * thread owns a preallocated, zero-filled file (as a journal file is) and
 * repeatedly writes one batch at the next offset and calls fdatasync, like
 * one group commit. Reports MB/s, syncs/s and sync latency per batch size, so
 * bookie results can be quoted as a fraction of what the disk allows.
 *
 *   mqbench disk --dir D [--batch 4k,64k,256k] [--seconds 5] [--writers 1]
 *                [--file-mb 256]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mq_util.h"
#include "mqb_common.h"

#define MQB_DISK_CMD "disk"

typedef struct mqb_disk_writer {
    pthread_t tid;
    char path[4096];
    int fd;
    uint64_t file_bytes;
    uint64_t batch;
    double seconds;
    uint64_t bytes;
    uint64_t syncs;
    mq_hist_t hist;
    int err;
} mqb_disk_writer_t;

static int mqb_disk_prealloc(mqb_disk_writer_t *w)
{
    w->fd = open(w->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        return errno;
    }
    size_t chunk = 1 << 20;
    uint8_t *zeros = mq_calloc(1, chunk);
    for (uint64_t off = 0; off < w->file_bytes; off += chunk) {
        if (pwrite(w->fd, zeros, chunk, (off_t)off) != (ssize_t)chunk) {
            free(zeros);
            return errno ? errno : EIO;
        }
    }
    free(zeros);
    return fdatasync(w->fd) == 0 ? 0 : errno;
}

static void *mqb_disk_run(void *arg)
{
    mqb_disk_writer_t *w = arg;
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, w->batch) != 0) {
        w->err = ENOMEM;
        return NULL;
    }
    for (uint64_t i = 0; i < w->batch; i++) {
        buf[i] = (uint8_t)(i * 7 + 1);
    }
    uint64_t off = 0;
    uint64_t end = mq_now_ns() + (uint64_t)(w->seconds * 1e9);
    while (mq_now_ns() < end) {
        if (off + w->batch > w->file_bytes) {
            off = 0;
        }
        uint64_t t0 = mq_now_ns();
        if (pwrite(w->fd, buf, w->batch, (off_t)off) != (ssize_t)w->batch ||
            fdatasync(w->fd) != 0) {
            w->err = errno ? errno : EIO;
            break;
        }
        mq_hist_add(&w->hist, mq_now_ns() - t0);
        off += w->batch;
        w->bytes += w->batch;
        w->syncs++;
    }
    free(buf);
    return NULL;
}

int mqb_disk_main(int argc, char **argv)
{
    static struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'b'},
        {"seconds", required_argument, NULL, 's'},
        {"writers", required_argument, NULL, 'w'},
        {"file-mb", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    const char *batches = "4k,64k,256k,1m";
    double seconds = 5;
    uint64_t writers = 1;
    uint64_t file_mb = 256;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'b':
            batches = optarg;
            break;
        case 's':
            seconds = atof(optarg);
            if (seconds <= 0) {
                mqb_usage_error(MQB_DISK_CMD, "bad --seconds '%s'", optarg);
            }
            break;
        case 'w':
            writers = mqb_opt_num(MQB_DISK_CMD, "--writers", optarg, 1, 64);
            break;
        case 'f':
            file_mb = mqb_opt_num(MQB_DISK_CMD, "--file-mb", optarg, 1, UINT64_MAX);
            break;
        case 'h':
            printf("usage: mqbench disk --dir D [--batch 4k,64k,256k,1m] [--seconds 5] "
                   "[--writers 1] [--file-mb 256]\n");
            return 0;
        default:
            return 2;
        }
    }
    if (!dir) {
        mqb_usage_error(MQB_DISK_CMD, "--dir is required");
    }
    mqb_disk_writer_t *ws = mq_calloc(writers, sizeof(*ws));
    for (uint64_t i = 0; i < writers; i++) {
        snprintf(ws[i].path, sizeof(ws[i].path), "%s/mqbench-disk-%" PRIu64 ".dat", dir, i);
        ws[i].file_bytes = file_mb << 20;
        int e = mqb_disk_prealloc(&ws[i]);
        if (e != 0) {
            fprintf(stderr, "mqbench disk: cannot prepare %s: %s\n", ws[i].path, strerror(e));
            return 1;
        }
    }
    printf("mqbench disk: dir=%s writers=%" PRIu64 " (preallocated, zero-filled files; "
           "write one batch then fdatasync, repeat)\n",
           dir, writers);
    char *list = mq_strdup(batches);
    int code = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        uint64_t batch;
        if (!mqb_parse_size(tok, &batch) || batch == 0 || batch > (64ull << 20)) {
            mqb_usage_error(MQB_DISK_CMD, "bad batch size '%s'", tok);
        }
        for (uint64_t i = 0; i < writers; i++) {
            ws[i].batch = batch;
            ws[i].seconds = seconds;
            ws[i].bytes = ws[i].syncs = 0;
            mq_hist_init(&ws[i].hist);
            pthread_create(&ws[i].tid, NULL, mqb_disk_run, &ws[i]);
        }
        mq_hist_t all;
        mq_hist_init(&all);
        uint64_t bytes = 0;
        uint64_t syncs = 0;
        for (uint64_t i = 0; i < writers; i++) {
            pthread_join(ws[i].tid, NULL);
            if (ws[i].err) {
                fprintf(stderr, "mqbench disk: %s: %s\n", ws[i].path, strerror(ws[i].err));
                code = 1;
            }
            mq_hist_merge(&all, &ws[i].hist);
            bytes += ws[i].bytes;
            syncs += ws[i].syncs;
        }
        printf("batch %7" PRIu64 " B: %8.1f MB/s  %7.0f syncs/s  sync p50 %.0f us  p99 %.0f us  "
               "p999 %.0f us\n",
               batch, (double)bytes / seconds / 1e6, (double)syncs / seconds,
               (double)mq_hist_quantile(&all, 0.5) / 1e3,
               (double)mq_hist_quantile(&all, 0.99) / 1e3,
               (double)mq_hist_quantile(&all, 0.999) / 1e3);
        fflush(stdout);
    }
    free(list);
    for (uint64_t i = 0; i < writers; i++) {
        close(ws[i].fd);
        unlink(ws[i].path);
    }
    free(ws);
    return code;
}
