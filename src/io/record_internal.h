/* Internal: what the attention record's life cycle (record.c) shares with its
 * files (record_file.c). */
#ifndef ATTN_SRC_IO_RECORD_INTERNAL_H
#define ATTN_SRC_IO_RECORD_INTERNAL_H

#include "attn/capture.h"

/* A map holds at most this many weights (1 GiB of floats): anything larger in a
 * file is a corrupt size, not a recording. */
#define ATTN_RECORD_MAX_WEIGHTS (1ull << 28)

/* Checks map i of r against the record: its rows and columns against the token
 * counts, and every weight (finite, in [0, 1]; rows of a hard map one-hot or
 * zero). Fails with `status` and a message naming the map and the value. */
attn_status attn_record_check_map(const attn_record *r, int i, attn_status status);

/* Frees the maps past the first n_maps, undoing a recording that failed. */
void attn_record_drop_maps(attn_record *r, int n_maps);

#endif
