/* The built-in tasks: their vocabularies, the split of every example by a hash of its
 * source string, the fixed valid and test sets, the training stream and padded
 * batches. */
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "attn/data.h"
#include "core/error.h"
#include "core/names.h"
#include "data/data_internal.h"

enum {
    TASK_COUNT = ATTN_TASK_COPY + 1,
    MAX_SRC = (int)DATES_MAX_SRC > (int)DIGITS_MAX_LEN ? (int)DATES_MAX_SRC : (int)DIGITS_MAX_LEN,
    MAX_TGT = (int)DATES_MAX_TGT > (int)DIGITS_MAX_LEN ? (int)DATES_MAX_TGT : (int)DIGITS_MAX_LEN,
    FIXED_MAX = 3000,  /* valid + test examples of the largest task */
    SEEN_SLOTS = 8192, /* open addressing over FIXED_MAX strings: a power of two */
    /* The training example at index i draws from words i << STREAM_BITS onwards of
     * its seed's stream; an example takes a few words per try and is rejected one
     * time in ten, so streams of 65536 words never run into each other. */
    STREAM_BITS = 16,
    /* Of 20 hash buckets, one is the valid split, one the test split. */
    SPLIT_BUCKETS = 20,
};

typedef struct task_spec {
    int max_src_len, max_tgt_len, valid_size, test_size;
    uint64_t fixed_seed; /* of the stream the valid and test sets are drawn from: the
                            task's name in ASCII */
} task_spec;

static const task_spec specs[TASK_COUNT] = {
    [ATTN_TASK_DATES] = {DATES_MAX_SRC, DATES_MAX_TGT, 1000, 2000, 0x6461746573ull},
    [ATTN_TASK_REVERSE] = {DIGITS_MAX_LEN, DIGITS_MAX_LEN, 1000, 1000, 0x72657665727365ull},
    [ATTN_TASK_SORT] = {DIGITS_MAX_LEN, DIGITS_MAX_LEN, 1000, 1000, 0x736f7274ull},
    [ATTN_TASK_COPY] = {DIGITS_MAX_LEN, DIGITS_MAX_LEN, 1000, 1000, 0x636f7079ull},
};

static const attn_name TASK_TABLE[] = {
    {ATTN_TASK_DATES, "dates"},
    {ATTN_TASK_REVERSE, "reverse"},
    {ATTN_TASK_SORT, "sort"},
    {ATTN_TASK_COPY, "copy"},
};
static const attn_names TASK_NAMES = ATTN_NAMES("task", "tasks", TASK_TABLE);
ATTN_NAMES_FUNCTIONS(attn_task_kind, TASK_NAMES, attn_task_name, attn_task_parse)

_Static_assert(1000 + 2000 <= FIXED_MAX, "FIXED_MAX holds the dates task's fixed sets");
_Static_assert(SEEN_SLOTS >= 2 * FIXED_MAX, "the table of seen strings stays half empty");

/* The valid set, then the test set, of each task: written once, by build_fixed under
 * call_once on the first use, and only read afterwards. */
typedef struct fixed_sets {
    char src[FIXED_MAX][MAX_SRC + 1];
    char tgt[FIXED_MAX][MAX_TGT + 1];
} fixed_sets;

static fixed_sets fixed[TASK_COUNT];
static once_flag fixed_once[TASK_COUNT] = {ONCE_FLAG_INIT, ONCE_FLAG_INIT, ONCE_FLAG_INIT,
                                           ONCE_FLAG_INIT};

/* FNV-1a, then the MurmurHash3 finaliser so that every bit depends on every byte. */
static uint64_t hash_string(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static attn_split split_of_hash(uint64_t h)
{
    uint64_t bucket = h % SPLIT_BUCKETS;
    return bucket == 0 ? ATTN_SPLIT_VALID : bucket == 1 ? ATTN_SPLIT_TEST : ATTN_SPLIT_TRAIN;
}

static void draw(attn_task_kind kind, attn_rng *rng, char *src, char *tgt)
{
    if (kind == ATTN_TASK_DATES) {
        attn_dates_draw(rng, src, tgt);
    } else {
        attn_digits_draw(rng, src);
        attn_digits_target(kind, src, tgt);
    }
}

/* Draws from the task's constant stream, keeping the first valid_size distinct
 * sources of the valid bucket and the first test_size of the test bucket. */
static void build_fixed(attn_task_kind kind)
{
    const task_spec *spec = &specs[kind];
    fixed_sets *f = &fixed[kind];
    int16_t seen[SEEN_SLOTS]; /* indices into f, -1 for an empty slot */
    memset(seen, 0xff, sizeof seen);
    const int size[2] = {spec->valid_size, spec->test_size};
    const int offset[2] = {0, spec->valid_size};
    int filled[2] = {0, 0};
    attn_rng rng;
    attn_rng_init(&rng, spec->fixed_seed);
    while (filled[0] < size[0] || filled[1] < size[1]) {
        char src[MAX_SRC + 1], tgt[MAX_TGT + 1];
        draw(kind, &rng, src, tgt);
        uint64_t h = hash_string(src);
        attn_split split = split_of_hash(h);
        if (split == ATTN_SPLIT_TRAIN) continue;
        int set = split == ATTN_SPLIT_VALID ? 0 : 1;
        if (filled[set] == size[set]) continue;
        /* The low bits of h chose the bucket; the high ones spread the slots. */
        size_t slot = (size_t)(h >> 32) & (SEEN_SLOTS - 1);
        bool duplicate = false;
        while (seen[slot] >= 0 && !duplicate) {
            duplicate = strcmp(f->src[seen[slot]], src) == 0;
            slot = (slot + 1) & (SEEN_SLOTS - 1);
        }
        if (duplicate) continue;
        int at = offset[set] + filled[set]++;
        seen[slot] = (int16_t)at;
        memcpy(f->src[at], src, sizeof src);
        memcpy(f->tgt[at], tgt, sizeof tgt);
    }
}

static void build_dates(void) { build_fixed(ATTN_TASK_DATES); }
static void build_reverse(void) { build_fixed(ATTN_TASK_REVERSE); }
static void build_sort(void) { build_fixed(ATTN_TASK_SORT); }
static void build_copy(void) { build_fixed(ATTN_TASK_COPY); }

static const fixed_sets *fixed_sets_of(attn_task_kind kind)
{
    static void (*const builders[TASK_COUNT])(void) = {
        [ATTN_TASK_DATES] = build_dates,
        [ATTN_TASK_REVERSE] = build_reverse,
        [ATTN_TASK_SORT] = build_sort,
        [ATTN_TASK_COPY] = build_copy,
    };
    call_once(&fixed_once[kind], builders[kind]);
    return &fixed[kind];
}

/* The example's strings; the arguments have been checked. */
static void example_strings(attn_task_kind kind, attn_split split, uint64_t seed,
                            uint64_t index, char *src, char *tgt)
{
    if (split == ATTN_SPLIT_TRAIN) {
        attn_rng rng = {seed, index << STREAM_BITS};
        do draw(kind, &rng, src, tgt);
        while (split_of_hash(hash_string(src)) != ATTN_SPLIT_TRAIN);
        return;
    }
    const fixed_sets *f = fixed_sets_of(kind);
    size_t at = (size_t)index + (split == ATTN_SPLIT_TEST ? (size_t)specs[kind].valid_size : 0);
    memcpy(src, f->src[at], sizeof f->src[at]);
    memcpy(tgt, f->tgt[at], sizeof f->tgt[at]);
}

static attn_status check_kind(attn_task_kind kind)
{
    if ((int)kind < 0 || (int)kind >= TASK_COUNT)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "task kind %d is not one of the %d tasks",
                          (int)kind, TASK_COUNT);
    return ATTN_OK;
}

attn_status attn_task_init(attn_task *t, attn_task_kind kind)
{
    attn_status s;
    if ((s = attn_check_not_null(t, "task")) || (s = check_kind(kind))) return s;
    const task_spec *spec = &specs[kind];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->max_src_len = spec->max_src_len;
    t->max_tgt_len = spec->max_tgt_len;
    t->valid_size = spec->valid_size;
    t->test_size = spec->test_size;
    if (kind == ATTN_TASK_DATES) {
        char charset[DATES_CHARSET_CAP];
        attn_dates_charset(charset);
        if ((s = attn_vocab_from_chars(&t->src_vocab, charset)) ||
            (s = attn_vocab_from_chars(&t->tgt_vocab, "0123456789-")))
            return s;
    } else if ((s = attn_vocab_from_chars(&t->src_vocab, "0123456789")) ||
               (s = attn_vocab_from_chars(&t->tgt_vocab, "0123456789"))) {
        return s;
    }
    return ATTN_OK;
}

static attn_status check_task(const attn_task *t)
{
    attn_status s = attn_check_not_null(t, "task");
    return s ? s : check_kind(t->kind);
}

static const char *split_name(attn_split split)
{
    return split == ATTN_SPLIT_TRAIN ? "train" : split == ATTN_SPLIT_VALID ? "valid" : "test";
}

/* The split is known and, for a fixed one, examples first .. first + count - 1 exist. */
static attn_status check_range(const attn_task *t, attn_split split, uint64_t first,
                               uint64_t count)
{
    if (split != ATTN_SPLIT_TRAIN && split != ATTN_SPLIT_VALID && split != ATTN_SPLIT_TEST)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "split %d is not train, valid or test",
                          (int)split);
    if (split == ATTN_SPLIT_TRAIN) return ATTN_OK;
    const task_spec *spec = &specs[t->kind];
    uint64_t size = (uint64_t)(split == ATTN_SPLIT_VALID ? spec->valid_size : spec->test_size);
    if (first >= size || count > size - first) {
        if (count == 1)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "example %llu is past the end of the %s %s set of %llu",
                              (unsigned long long)first, attn_task_name(t->kind), split_name(split),
                              (unsigned long long)size);
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "examples %llu to %llu are past the end of the %s %s set of %llu",
                          (unsigned long long)first, (unsigned long long)(first + count - 1),
                          attn_task_name(t->kind), split_name(split), (unsigned long long)size);
    }
    return ATTN_OK;
}

attn_status attn_task_example(const attn_task *t, attn_split split, uint64_t seed,
                              uint64_t index, char *src, size_t src_cap, char *tgt,
                              size_t tgt_cap)
{
    attn_status s;
    if ((s = check_task(t)) || (s = attn_check_not_null(src, "src")) ||
        (s = attn_check_not_null(tgt, "tgt")) || (s = check_range(t, split, index, 1)))
        return s;
    const task_spec *spec = &specs[t->kind];
    if (src_cap < (size_t)spec->max_src_len + 1 || tgt_cap < (size_t)spec->max_tgt_len + 1)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "src_cap %zu and tgt_cap %zu: a %s example needs %d and %d bytes",
                          src_cap, tgt_cap, attn_task_name(t->kind), spec->max_src_len + 1,
                          spec->max_tgt_len + 1);
    char s_buf[MAX_SRC + 1], t_buf[MAX_TGT + 1];
    example_strings(t->kind, split, seed, index, s_buf, t_buf);
    memcpy(src, s_buf, strlen(s_buf) + 1);
    memcpy(tgt, t_buf, strlen(t_buf) + 1);
    return ATTN_OK;
}

attn_status attn_batch_alloc(attn_batch *b, const attn_task *t, int batch)
{
    attn_status s;
    if ((s = attn_check_not_null(b, "batch")) || (s = check_task(t)) ||
        (s = attn_check_at_least(batch, 1, "batch size")))
        return s;
    memset(b, 0, sizeof *b);
    int S = specs[t->kind].max_src_len, T = specs[t->kind].max_tgt_len + 1;
    /* One block: src (B, S), tgt_in (B, T), tgt_out (B, T), src_len (B), tgt_len (B). */
    size_t B = (size_t)batch;
    int32_t *block = malloc(B * ((size_t)S + 2 * (size_t)T + 2) * sizeof *block);
    if (block == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a batch of %d %s examples",
                          batch, attn_task_name(t->kind));
    b->batch = b->capacity = batch;
    b->src_cap = S;
    b->tgt_cap = T;
    b->src = block;
    b->tgt_in = b->src + B * S;
    b->tgt_out = b->tgt_in + B * T;
    b->src_len = b->tgt_out + B * T;
    b->tgt_len = b->src_len + B;
    return ATTN_OK;
}

void attn_batch_free(attn_batch *b)
{
    if (b == NULL) return;
    free(b->src);
    memset(b, 0, sizeof *b);
}

attn_status attn_task_batch(const attn_task *t, attn_split split, uint64_t seed,
                            uint64_t first_index, attn_batch *b)
{
    attn_status s;
    if ((s = check_task(t)) || (s = attn_check_not_null(b, "batch")) ||
        (s = attn_check_not_null(b->src, "batch src")))
        return s;
    const task_spec *spec = &specs[t->kind];
    int S = spec->max_src_len, T = spec->max_tgt_len + 1;
    if (b->src_cap != S || b->tgt_cap != T)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "a batch of (S, T) = (%d, %d) does not fit the %s task's (%d, %d)",
                          b->src_cap, b->tgt_cap, attn_task_name(t->kind), S, T);
    if (b->batch < 1 || b->batch > b->capacity)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "batch size %d is outside [1, %d]",
                          b->batch, b->capacity);
    if ((s = check_range(t, split, first_index, (uint64_t)b->batch))) return s;
    for (int i = 0; i < b->batch; i++) {
        char src[MAX_SRC + 1], tgt[MAX_TGT + 1];
        example_strings(t->kind, split, seed, first_index + (uint64_t)i, src, tgt);
        int32_t *x = b->src + (size_t)i * S;
        int32_t *y_in = b->tgt_in + (size_t)i * T, *y_out = b->tgt_out + (size_t)i * T;
        int n_src, n_tgt;
        if ((s = attn_vocab_encode(&t->src_vocab, src, x, S, &n_src)) ||
            (s = attn_vocab_encode(&t->tgt_vocab, tgt, y_out, T - 1, &n_tgt)))
            return s;
        for (int j = n_src; j < S; j++) x[j] = ATTN_TOKEN_PAD;
        y_in[0] = ATTN_TOKEN_BOS;
        memcpy(y_in + 1, y_out, (size_t)n_tgt * sizeof *y_in);
        y_out[n_tgt] = ATTN_TOKEN_EOS;
        for (int j = n_tgt + 1; j < T; j++) y_in[j] = y_out[j] = ATTN_TOKEN_PAD;
        b->src_len[i] = n_src;
        b->tgt_len[i] = n_tgt + 1;
    }
    return ATTN_OK;
}
