/*
 * mq_fs: implementations. Errors are converted from errno here, where the
 * syscall failed, and logged once.
 */
#include "mq_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "mq_log.h"
#include "mq_util.h"

mq_err_t mq_fs_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        return MQ_EINVAL;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                MQ_LOG_ERROR("mkdir failed path=%s err=%s", buf, strerror(e));
                return mq_err_from_errno(e);
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        MQ_LOG_ERROR("mkdir failed path=%s err=%s", buf, strerror(e));
        return mq_err_from_errno(e);
    }
    return MQ_OK;
}

mq_err_t mq_fs_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        MQ_LOG_ERROR("open dir failed path=%s err=%s", path, strerror(e));
        return mq_err_from_errno(e);
    }
    mq_err_t err = MQ_OK;
    if (fsync(fd) != 0) {
        int e = errno;
        MQ_LOG_ERROR("fsync dir failed path=%s err=%s", path, strerror(e));
        err = mq_err_from_errno(e);
    }
    close(fd);
    return err;
}

mq_err_t mq_fs_write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    char dir[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
        snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
        return MQ_EINVAL;
    }
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
    } else {
        strcpy(dir, ".");
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        MQ_LOG_ERROR("open failed path=%s err=%s", tmp, strerror(e));
        return mq_err_from_errno(e);
    }
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            int e = errno;
            MQ_LOG_ERROR("write failed path=%s err=%s", tmp, strerror(e));
            close(fd);
            unlink(tmp);
            return mq_err_from_errno(e);
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        MQ_LOG_ERROR("fsync failed path=%s err=%s", tmp, strerror(e));
        close(fd);
        unlink(tmp);
        return mq_err_from_errno(e);
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        MQ_LOG_ERROR("rename failed from=%s to=%s err=%s", tmp, path, strerror(e));
        unlink(tmp);
        return mq_err_from_errno(e);
    }
    return mq_fs_fsync_dir(dir);
}

mq_err_t mq_fs_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? MQ_ENOTFOUND : mq_err_from_errno(errno);
    }
    char *buf = mq_malloc(max + 1);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            MQ_LOG_ERROR("read failed path=%s err=%s", path, strerror(e));
            return mq_err_from_errno(e);
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
        if (n > max) {
            close(fd);
            free(buf);
            return MQ_ETOOLARGE;
        }
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    if (len) {
        *len = n;
    }
    return MQ_OK;
}

static int mq_fs_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    MQ_UNUSED(st);
    MQ_UNUSED(flag);
    MQ_UNUSED(ftw);
    if (remove(path) != 0 && errno != ENOENT) {
        MQ_LOG_ERROR("remove failed path=%s err=%s", path, strerror(errno));
        return -1;
    }
    return 0;
}

mq_err_t mq_fs_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? MQ_OK : mq_err_from_errno(errno);
    }
    if (nftw(path, mq_fs_rm_one, 32, FTW_DEPTH | FTW_PHYS) != 0) {
        return MQ_EIO;
    }
    return MQ_OK;
}

int mq_fs_dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        return errno == ENOENT ? 1 : 0;
    }
    struct dirent *de;
    int empty = 1;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            empty = 0;
            break;
        }
    }
    closedir(d);
    return empty;
}

bool mq_fs_parse_hex_name(const char *name, const char *suffix, uint64_t *id)
{
    if (strlen(name) != 16 + strlen(suffix) || strcmp(name + 16, suffix) != 0) {
        return false;
    }
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else {
            return false;
        }
        v = (v << 4) | d;
    }
    *id = v;
    return true;
}

mq_err_t mq_fs_usage(const char *path, mq_fs_usage_t *out)
{
    struct statvfs sv;
    if (statvfs(path, &sv) != 0) {
        int e = errno;
        MQ_LOG_WARN("statvfs failed path=%s err=%s", path, strerror(e));
        return mq_err_from_errno(e);
    }
    out->total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    out->free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    out->usage = out->total_bytes ? 1.0 - (double)out->free_bytes / (double)out->total_bytes : 1.0;
    return MQ_OK;
}
