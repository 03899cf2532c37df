/*
 * meta_int: what the files of common/meta/ share. Not for use outside
 * common/meta/ and tests/unit/meta/.
 */
#ifndef META_INT_H
#define META_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ledger ids are 1 .. 10^19 - 1: the 19 digits of the znode path layout
 * (meta_store.h). The decoder rejects others and idgen never passes it. */
#define META_LEDGER_MAX_ID 9999999999999999999ull
/* Room for any znode path this module builds (root included). */
#define META_PATH_MAX 1024

/* Canonical unsigned decimal: 1..20 digits, no sign, no leading zero (except
 * "0"), no overflow. Pure. */
bool meta_ledger_parse_u64(const char *s, size_t n, uint64_t *out);
/* Writes root (trailing '/' dropped) followed by suffix into out; false when
 * it does not fit. Pure. */
bool meta_path_join(const char *root, const char *suffix, char *out, size_t cap);

/* For tests: the watches a registry has armed now (all directories and
 * kinds) and how many loads it ran. Any thread. */
typedef struct meta_bookies meta_bookies_t;
void meta_bookies_test_counts(meta_bookies_t *b, int *armed, uint64_t *loads);

#endif
