/*
 * mq_fs: file-system helpers with the durability steps spelled out once:
 * creating directories, replacing a small file atomically (write a temp file,
 * fsync it, rename, fsync the directory), reading a small file, removing a
 * tree, and disk usage. Blocking; call them off event loops. Any thread.
 */
#ifndef MQ_FS_H
#define MQ_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"

/* mkdir -p, mode 0755. */
mq_err_t mq_fs_mkdirs(const char *path);
/* fsync of a directory, so created/renamed/removed names are durable. */
mq_err_t mq_fs_fsync_dir(const char *path);
/* Replaces path with data, atomically and durably. */
mq_err_t mq_fs_write_atomic(const char *path, const void *data, size_t len);
/* Reads at most max bytes of a whole file into a new NUL-terminated buffer
 * (free it); MQ_ENOTFOUND when it does not exist, MQ_ETOOLARGE when longer. */
mq_err_t mq_fs_read_file(const char *path, size_t max, char **out, size_t *len);
/* rm -rf path (no error when it does not exist). */
mq_err_t mq_fs_remove_tree(const char *path);
/* True when path is a directory with no entries (or does not exist). */
int mq_fs_dir_is_empty(const char *path);

/* Parses a file name of exactly 16 lowercase hex digits followed by suffix
 * (e.g. "000000000000001a.log") into *id. */
bool mq_fs_parse_hex_name(const char *name, const char *suffix, uint64_t *id);

typedef struct mq_fs_usage {
    uint64_t total_bytes;
    uint64_t free_bytes; /* available to unprivileged users */
    double usage;        /* 1 - free/total, in [0, 1] */
} mq_fs_usage_t;

mq_err_t mq_fs_usage(const char *path, mq_fs_usage_t *out);

#endif
