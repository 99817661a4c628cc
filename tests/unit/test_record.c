/* Attention records (attn/capture.h): the life cycle and its checks, both files
 * read back bit for bit, corrupt files refused with a message, entropy and
 * rollout against float64 loops, and recording in every model: decoding and the
 * language model's logits are the same bits with and without a record, and the
 * recorded weights are what the model computes (checked in float64 for the first
 * layer of the transformer and the language model). */
#define _POSIX_C_SOURCE 200809L /* unlink, access */

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/record_internal.h"
#include "testutil.h"

static char *temp_dir;

static int make_temp_dir(void **state)
{
    (void)state;
    temp_dir = test_temp_dir("record");
    return 0;
}

static int remove_temp_dir(void **state)
{
    (void)state;
    test_temp_dir_remove(temp_dir);
    return 0;
}

static void temp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", temp_dir, name);
}

static int below(attn_rng *rng, int n) { return (int)attn_rng_below(rng, (uint32_t)n); }

/* rows of n weights: a random distribution over the first `allowed` of each row
 * (allowed(i) = n, or i + 1 for causal rows), zero after. */
static void fill_rows(float *w, int rows, int n, attn_rng *rng, bool causal)
{
    for (int i = 0; i < rows; i++) {
        float *row = w + (size_t)i * n;
        const int allowed = causal && i + 1 < n ? i + 1 : n;
        float sum = 0.0f;
        for (int j = 0; j < n; j++) {
            row[j] = j < allowed ? attn_rng_uniform(rng) + 1e-3f : 0.0f;
            sum += row[j];
        }
        for (int j = 0; j < n; j++) row[j] /= sum;
    }
}

static void expect_empty(const attn_record *r)
{
    assert_int_equal(r->n_maps, 0);
    assert_int_equal(r->n_queries, 0);
    assert_int_equal(r->n_keys, 0);
    assert_null(r->queries);
    assert_null(r->keys);
}

static void expect_status(attn_status got, attn_status want, const char *fragment)
{
    const char *message = attn_last_error();
    if (got != want || strstr(message, fragment) == NULL)
        print_error("expected status %d with \"%s\", got %d: %s\n", (int)want, fragment, (int)got,
                    message);
    assert_int_equal(got, want);
    assert_non_null(strstr(message, fragment));
}

/* ---- a record, its files, and the checks ----------------------------------------------- */

static const char *const TRICKY[] = {"\"", "\\", "</script>", "\xc3\xa9", "\xe6\x97\xa5",
                                     "\n",  "",   "a b",       "</s>",     "{"};
enum { TRICKY_COUNT = sizeof TRICKY / sizeof TRICKY[0] };

/* A record with a cross map, self maps over keys and over queries, and a hard
 * map, its tokens drawn from TRICKY. */
static void make_record(attn_record *r, attn_rng *rng)
{
    attn_record_init(r, "gru-bahdanau", "dates");
    const int nq = 1 + below(rng, 6), nk = 1 + below(rng, 7);
    const char *q[8], *k[8];
    for (int i = 0; i < nq; i++) q[i] = TRICKY[below(rng, TRICKY_COUNT)];
    for (int i = 0; i < nk; i++) k[i] = TRICKY[below(rng, TRICKY_COUNT)];
    assert_int_equal(attn_record_set_queries(r, q, nq), ATTN_OK);
    assert_int_equal(attn_record_set_keys(r, k, nk), ATTN_OK);
    float *w;
    const int heads = 1 + below(rng, 3);
    assert_int_equal(attn_record_add_map(r, "cross", 0, ATTN_MAP_CROSS, false, heads, nq, nk, &w),
                     ATTN_OK);
    fill_rows(w, heads * nq, nk, rng, false);
    w[0] = 1e-30f; /* tiny weights read back too */
    assert_int_equal(attn_record_add_map(r, "enc.self", 1, ATTN_MAP_SELF, false, 2, nk, nk, &w),
                     ATTN_OK);
    fill_rows(w, 2 * nk, nk, rng, false);
    assert_int_equal(attn_record_add_map(r, "dec.self", 2, ATTN_MAP_SELF, false, 1, nq, nq, &w),
                     ATTN_OK);
    r->maps[r->n_maps - 1].over_queries = true;
    fill_rows(w, nq, nq, rng, true);
    assert_int_equal(attn_record_add_map(r, "hard", 0, ATTN_MAP_CROSS, true, 1, nq, nk, &w),
                     ATTN_OK);
    for (int i = 0; i < nq; i++) w[(size_t)i * nk + below(rng, nk)] = 1.0f;
}

static void expect_same_records(const attn_record *a, const attn_record *b)
{
    assert_string_equal(a->model, b->model);
    assert_string_equal(a->task, b->task);
    assert_int_equal(a->n_queries, b->n_queries);
    assert_int_equal(a->n_keys, b->n_keys);
    for (int i = 0; i < a->n_queries; i++) assert_string_equal(a->queries[i], b->queries[i]);
    for (int i = 0; i < a->n_keys; i++) assert_string_equal(a->keys[i], b->keys[i]);
    assert_int_equal(a->n_maps, b->n_maps);
    for (int i = 0; i < a->n_maps; i++) {
        const attn_attention_map *x = &a->maps[i], *y = &b->maps[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->layer, y->layer);
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->hard, y->hard);
        assert_int_equal(x->over_queries, y->over_queries);
        assert_int_equal(x->heads, y->heads);
        assert_int_equal(x->rows, y->rows);
        assert_int_equal(x->cols, y->cols);
        assert_memory_equal(x->weights, y->weights,
                            (size_t)x->heads * x->rows * x->cols * sizeof(float));
    }
}

static void test_files_round_trip(void **state)
{
    (void)state;
    const char *const names[] = {"rec.json", "rec.JSON", "rec.safetensors", "rec.bin"};
    for (int c = 0; c < 8; c++) {
        attn_rng rng = test_rng((uint64_t)c);
        attn_record r;
        make_record(&r, &rng);
        /* the labels of each map */
        assert_ptr_equal(attn_map_row_tokens(&r, &r.maps[0]), r.queries);
        assert_ptr_equal(attn_map_col_tokens(&r, &r.maps[0]), r.keys);
        assert_ptr_equal(attn_map_row_tokens(&r, &r.maps[1]), r.keys);
        assert_ptr_equal(attn_map_col_tokens(&r, &r.maps[1]), r.keys);
        assert_ptr_equal(attn_map_row_tokens(&r, &r.maps[2]), r.queries);
        assert_ptr_equal(attn_map_col_tokens(&r, &r.maps[2]), r.queries);
        assert_ptr_equal(attn_record_find(&r, "enc.self"), &r.maps[1]);
        assert_null(attn_record_find(&r, "nothing"));
        for (int f = 0; f < 4; f++) {
            char path[128];
            temp_path(path, sizeof path, names[f]);
            assert_int_equal(attn_record_save(&r, path), ATTN_OK);
            attn_record back;
            attn_status s = attn_record_load(&back, path);
            if (s) print_error("%s: %s\n", path, attn_last_error());
            assert_int_equal(s, ATTN_OK);
            expect_same_records(&r, &back);
            attn_record_free(&back);
            expect_empty(&back);
            /* JSON by the extension, safetensors otherwise */
            FILE *file = fopen(path, "rb");
            assert_non_null(file);
            assert_int_equal(fgetc(file) == '{', f < 2);
            fclose(file);
            unlink(path);
        }
        attn_record_free(&r);
    }
}

static void test_record_checks(void **state)
{
    (void)state;
    attn_rng rng = test_rng(20);
    attn_record r;
    make_record(&r, &rng);
    float *w;
    const int nq = r.n_queries, nk = r.n_keys;
    test_expect_invalid(attn_record_add_map(&r, "cross", 0, ATTN_MAP_CROSS, false, 1, 1, 1, &w),
                        "already has a map 'cross'");
    test_expect_invalid(attn_record_add_map(&r, "", 0, ATTN_MAP_CROSS, false, 1, 1, 1, &w),
                        "empty");
    char long_name[ATTN_RECORD_NAME_MAX + 8];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    test_expect_invalid(attn_record_add_map(&r, long_name, 0, ATTN_MAP_CROSS, false, 1, 1, 1, &w),
                        "at most 95 fit");
    test_expect_invalid(attn_record_add_map(&r, "z", 0, ATTN_MAP_CROSS, false, 0, 1, 1, &w),
                        "heads");
    test_expect_invalid(attn_record_add_map(&r, "z", -1, ATTN_MAP_CROSS, false, 1, 1, 1, &w),
                        "layer");
    test_expect_invalid(
        attn_record_add_map(&r, "z", 0, (attn_map_kind)7, false, 1, 1, 1, &w), "kind 7");
    test_expect_invalid(
        attn_record_add_map(&r, "z", 0, ATTN_MAP_CROSS, false, 1 << 12, 1 << 12, 1 << 12, &w),
        "more than");
    const char *bad[] = {"ok", NULL};
    test_expect_invalid(attn_record_set_queries(&r, bad, 2), "query token 1 is NULL");
    const char *invalid[] = {"\xff"};
    test_expect_invalid(attn_record_set_keys(&r, invalid, 1), "key token 0 is not valid UTF-8");
    assert_int_equal(r.n_queries, nq); /* unchanged by a failure */
    assert_int_equal(r.n_keys, nk);
    assert_int_equal(r.n_maps, 4);

    /* saving refuses what loading would */
    char path[128];
    temp_path(path, sizeof path, "bad.json");
    const char *one[] = {"x"};
    attn_record wrong = {0};
    attn_record_init(&wrong, "m", "t");
    assert_int_equal(attn_record_set_queries(&wrong, one, 1), ATTN_OK);
    assert_int_equal(attn_record_set_keys(&wrong, one, 1), ATTN_OK);
    assert_int_equal(attn_record_add_map(&wrong, "m", 0, ATTN_MAP_CROSS, false, 1, 2, 1, &w),
                     ATTN_OK);
    test_expect_invalid(attn_record_save(&wrong, path), "has 2 rows but the record has 1 query");
    attn_record_drop_maps(&wrong, 0);
    assert_int_equal(attn_record_add_map(&wrong, "m", 0, ATTN_MAP_CROSS, false, 1, 1, 1, &w),
                     ATTN_OK);
    w[0] = NAN;
    test_expect_invalid(attn_record_save(&wrong, path), "not a probability");
    w[0] = 1.5f;
    test_expect_invalid(attn_record_save(&wrong, path), "weight 1.5");
    w[0] = 0.5f;
    wrong.maps[0].hard = true;
    test_expect_invalid(attn_record_save(&wrong, path), "hard map");
    assert_int_equal(access(path, F_OK), -1); /* nothing written */
    attn_record_free(&wrong);

    /* a full record */
    attn_record full;
    attn_record_init(&full, NULL, NULL);
    for (int i = 0; i < ATTN_RECORD_MAPS_MAX; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        assert_int_equal(attn_record_add_map(&full, name, 0, ATTN_MAP_SELF, false, 1, 1, 1, &w),
                         ATTN_OK);
    }
    test_expect_invalid(attn_record_add_map(&full, "one more", 0, ATTN_MAP_SELF, false, 1, 1, 1,
                                            &w),
                        "holds 256 maps");
    assert_string_equal(full.model, "");
    attn_record_free(&full);
    attn_record_free(&r);
    assert_string_equal(attn_map_kind_name(ATTN_MAP_SELF), "self");
    assert_string_equal(attn_map_kind_name(ATTN_MAP_CROSS), "cross");
    assert_string_equal(attn_map_kind_name((attn_map_kind)9), "unknown");
}

/* ---- corrupt files ---------------------------------------------------------------------------- */

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static void expect_load_fails(const char *path, attn_status want, const char *fragment)
{
    attn_record r;
    expect_status(attn_record_load(&r, path), want, fragment);
    expect_empty(&r);
}

#define HEAD "{\"format\": \"attn-attention\", \"version\": 1, \"model\": \"m\", \"task\": \"t\", "
#define TOKENS "\"queries\": [\"a\", \"b\"], \"keys\": [\"x\"], "
#define MAP(fields) "\"maps\": [{\"name\": \"n\", \"layer\": 0, \"kind\": \"cross\", " fields "}]}"
#define SIZES_ONLY "\"hard\": false, \"heads\": 1, \"rows\": 2, \"cols\": 1"
#define SIZES SIZES_ONLY ", "

/* A record attn wrote, in either format, refuses any changed byte (its CRC-32C,
 * attn/io.h); a record without the checksum's keys loads. */
static void test_changed_byte_is_caught(void **state)
{
    (void)state;
    const char *const names[] = {"sealed.json", "sealed.safetensors"};
    attn_rng rng = test_rng(77);
    attn_record r;
    make_record(&r, &rng);
    for (int f = 0; f < 2; f++) {
        char path[128], bad[128];
        temp_path(path, sizeof path, names[f]);
        temp_path(bad, sizeof bad, f ? "bad.safetensors" : "bad.json");
        assert_int_equal(attn_record_save(&r, path), ATTN_OK);
        FILE *file = fopen(path, "rb");
        assert_non_null(file);
        unsigned char bytes[1 << 16];
        const size_t size = fread(bytes, 1, sizeof bytes, file);
        fclose(file);
        assert_true(size > 0 && size < sizeof bytes);
        int caught = 0;
        for (size_t i = 0; i < size; i++) {
            bytes[i] ^= 0x02;
            file = fopen(bad, "wb");
            assert_int_equal(fwrite(bytes, 1, size, file), size);
            fclose(file);
            attn_record back;
            if (attn_record_load(&back, bad) != ATTN_OK) caught++;
            else attn_record_free(&back);
            bytes[i] ^= 0x02;
        }
        if (caught != (int)size)
            print_error("%s: %d of %zu changed bytes were caught\n", names[f], caught, size);
        assert_int_equal(caught, (int)size);
        unlink(path);
        unlink(bad);
    }
    attn_record_free(&r);
}

static void test_corrupt_json(void **state)
{
    (void)state;
    static const struct {
        const char *text, *fragment;
    } cases[] = {
        {"", "not valid JSON"},
        {"{ nope", "not valid JSON"},
        {"[1, 2]", "not a JSON object"},
        {"{\"format\": \"other\"}", "not an attention record"},
        {"{\"format\": \"attn-attention\", \"version\": 2}", "\"version\" is not 1"},
        {HEAD "\"queries\": 3}", "\"queries\" is missing or not an array"},
        {HEAD "\"queries\": [\"a\", 7], \"keys\": []}", "\"queries\"[1] is not a string"},
        {HEAD "\"queries\": [\"\xff\"], \"keys\": []}", "query token 0 is not valid UTF-8"},
        /* saving as safetensors would refuse it, so loading does too */
        {"{\"format\": \"attn-attention\", \"version\": 1, \"model\": \"m\xe8\", "
         "\"task\": \"t\", \"queries\": [], \"keys\": [], \"maps\": []}",
         "\"model\" is not UTF-8"},
        {HEAD TOKENS "\"maps\": {}}", "\"maps\" is missing or not an array"},
        {HEAD TOKENS "\"maps\": [3]}", "map 0 is not an object"},
        {HEAD TOKENS "\"maps\": [{\"name\": \"n\", \"layer\": -1, \"kind\": \"cross\"}]}",
         "\"layer\" is not an integer"},
        {HEAD TOKENS "\"maps\": [{\"name\": \"n\", \"layer\": 0, \"kind\": \"diagonal\"}]}",
         "\"kind\" is not"},
        {HEAD TOKENS MAP("\"hard\": 1, \"heads\": 1, \"rows\": 2, \"cols\": 1"), "\"hard\""},
        {HEAD TOKENS MAP("\"hard\": false, \"heads\": 0, \"rows\": 2, \"cols\": 1"),
         "\"heads\", \"rows\" and \"cols\""},
        {HEAD TOKENS MAP("\"hard\": false, \"heads\": 1, \"rows\": 2.5, \"cols\": 1"),
         "\"heads\", \"rows\" and \"cols\""},
        {HEAD TOKENS MAP(SIZES "\"weights\": [[[0.5]]]"), "head 0 of \"weights\" is not an array "
                                                          "of 2 rows"},
        {HEAD TOKENS MAP(SIZES "\"weights\": [[[0.5], [0.5, 0.5]]]"),
         "head 0 row 1 is not an array of 1 weights"},
        {HEAD TOKENS MAP(SIZES "\"weights\": [[[0.5], [\"1\"]]]"), "is not a number"},
        {HEAD TOKENS MAP(SIZES_ONLY), "\"weights\" is not an array of 1 heads"},
        {HEAD TOKENS MAP(SIZES "\"weights\": [[[0.5], [1e300]]]"), "not a probability"},
        {HEAD TOKENS MAP(SIZES "\"weights\": [[[0.5], [-0.25]]]"), "not a probability"},
        {HEAD TOKENS MAP("\"hard\": true, \"heads\": 1, \"rows\": 2, \"cols\": 1, \"weights\": "
                         "[[[0.5], [1]]]"),
         "hard map"},
        {HEAD TOKENS MAP("\"hard\": false, \"heads\": 1, \"rows\": 3, \"cols\": 1, \"weights\": "
                         "[[[0.5], [1], [1]]]"),
         "has 3 rows but the record has 2 query tokens"},
        {HEAD TOKENS
         "\"maps\": [{\"name\": \"n\", \"layer\": 0, \"kind\": \"self\", \"hard\": false, "
                     "\"tokens\": \"both\"}]}",
         "\"tokens\" is not"},
        {HEAD TOKENS "\"maps\": [{\"name\": \"n\", \"layer\": 0, \"kind\": \"self\", \"hard\": "
                     "false, \"heads\": 1, \"rows\": 2, \"cols\": 2, \"weights\": [[[1, 0], [0, "
                     "1]]]}]}",
         "has 2 rows but the record has 1 key tokens"},
        /* a claimed size far beyond the data is refused before anything is allocated */
        {HEAD TOKENS MAP("\"hard\": false, \"heads\": 1000000, \"rows\": 1000000, \"cols\": "
                         "1000000, \"weights\": []"),
         "is not an array of 1000000 heads"},
        {HEAD TOKENS "\"maps\": [{\"name\": \"n\", \"layer\": 0, \"kind\": \"cross\", " SIZES
                     "\"weights\": [[[0.5], [1]]]}, {\"name\": \"n\", \"layer\": 0, \"kind\": "
                     "\"cross\", " SIZES "\"weights\": [[[0.5], [1]]]}]}",
         "already has a map 'n'"},
    };
    char path[128];
    temp_path(path, sizeof path, "corrupt.json");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_bytes(path, cases[i].text, strlen(cases[i].text));
        expect_load_fails(path, ATTN_ERR_FORMAT, cases[i].fragment);
        assert_non_null(strstr(attn_last_error(), path)); /* the file is named */
    }
    /* the valid version of the cases above loads */
    const char *good = HEAD TOKENS MAP(SIZES "\"weights\": [[[0.5], [1]]]");
    write_bytes(path, good, strlen(good));
    attn_record r;
    assert_int_equal(attn_record_load(&r, path), ATTN_OK);
    assert_int_equal(r.n_maps, 1);
    assert_true(r.maps[0].weights[0] == 0.5f && r.maps[0].weights[1] == 1.0f);
    attn_record_free(&r);
    unlink(path);
    expect_load_fails(path, ATTN_ERR_IO, "cannot open");
}

/* A safetensors file with the given tensors and metadata. */
static void write_safetensors(const char *path, const char *kind, const char *record,
                              const char *tensor, const int64_t *shape, const float *data)
{
    attn_metadata_pair meta[2];
    int n_meta = 0;
    if (kind) meta[n_meta++] = (attn_metadata_pair){"attn.kind", kind};
    if (record) meta[n_meta++] = (attn_metadata_pair){"record", record};
    attn_tensor_out t = {.name = tensor, .dtype = ATTN_DTYPE_F32, .ndim = 3, .shape = shape,
                         .data = data};
    assert_int_equal(attn_safetensors_save(path, &t, tensor ? 1 : 0, meta, n_meta), ATTN_OK);
}

static void test_corrupt_safetensors(void **state)
{
    (void)state;
    char path[128];
    temp_path(path, sizeof path, "corrupt.safetensors");
    const char *record = HEAD TOKENS MAP(SIZES_ONLY);
    const float data[4] = {0.5f, 1.0f, 0.25f, 0.75f};
    const int64_t good[3] = {1, 2, 1}, wrong[3] = {1, 1, 2};
    write_safetensors(path, "attention", record, "attention.n", good, data);
    attn_record r;
    assert_int_equal(attn_record_load(&r, path), ATTN_OK);
    assert_int_equal(r.n_maps, 1);
    assert_true(r.maps[0].weights[1] == 1.0f);
    attn_record_free(&r);

    write_safetensors(path, NULL, record, "attention.n", good, data);
    expect_load_fails(path, ATTN_ERR_FORMAT, "not an attention record");
    write_safetensors(path, "attention", NULL, "attention.n", good, data);
    expect_load_fails(path, ATTN_ERR_FORMAT, "the metadata has no \"record\"");
    write_safetensors(path, "attention", "{\"format\": ", "attention.n", good, data);
    expect_load_fails(path, ATTN_ERR_FORMAT, "not valid JSON");
    write_safetensors(path, "attention", record, "attention.other", good, data);
    expect_load_fails(path, ATTN_ERR_FORMAT, "has no tensor 'attention.n'");
    write_safetensors(path, "attention", record, "attention.n", wrong, data);
    expect_load_fails(path, ATTN_ERR_FORMAT, "is shaped (1, 1, 2), but its map is (1, 2, 1)");
    write_safetensors(path, "attention", HEAD TOKENS "\"maps\": []}", "attention.n", good, data);
    expect_load_fails(path, ATTN_ERR_FORMAT, "belongs to no map");
    const float bad[2] = {0.5f, NAN};
    write_safetensors(path, "attention", record, "attention.n", good, bad);
    expect_load_fails(path, ATTN_ERR_FORMAT, "not a probability");

    /* cut short, or its header length damaged */
    write_safetensors(path, "attention", record, "attention.n", good, data);
    FILE *f = fopen(path, "rb");
    unsigned char bytes[4096];
    const size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    write_bytes(path, bytes, n - 3);
    expect_load_fails(path, ATTN_ERR_FORMAT, path);
    bytes[0] ^= 0x10;
    write_bytes(path, bytes, n);
    expect_load_fails(path, ATTN_ERR_FORMAT, path);
    unlink(path);
}

/* ---- entropy and rollout ------------------------------------------------------------------- */

static void test_entropy(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int c = 0; c < 10; c++) {
        attn_rng rng = test_rng(100 + (uint64_t)c);
        const int H = 1 + below(&rng, 4), R = 1 + below(&rng, 9), C = 1 + below(&rng, 9);
        attn_attention_map m = {.heads = H, .rows = R, .cols = C, .kind = ATTN_MAP_CROSS};
        m.weights = test_zeros((size_t)H * R * C);
        fill_rows(m.weights, H * R, C, &rng, c % 2 == 1);
        float *got = test_zeros((size_t)H * R);
        double *want = calloc((size_t)H * R, sizeof *want);
        assert_int_equal(attn_map_entropy(&m, got), ATTN_OK);
        for (int i = 0; i < H * R; i++)
            for (int j = 0; j < C; j++) {
                const double w = m.weights[(size_t)i * C + j];
                if (w > 0) want[i] -= w * log(w);
            }
        const double err = test_rel_error_f64(got, want, (size_t)H * R);
        if (err > 1e-6) print_error("entropy of %d x %d x %d: error %g\n", H, R, C, err);
        assert_true(err <= 1e-6);
        worst = fmax(worst, err);
        free(m.weights), free(got), free(want);
    }
    printf("entropy: largest error against float64 %.2g\n", worst);
    attn_attention_map empty = {.heads = 1, .rows = 1, .cols = 1};
    float e;
    test_expect_invalid(attn_map_entropy(&empty, &e), "map weights");
}

/* L square self-attention maps of n tokens (1 to 3 heads, rows by fill_rows) in
 * maps, and layers pointing at them. */
static void random_self_layers(attn_attention_map *maps, const attn_attention_map **layers, int L,
                               int n, attn_rng *rng, bool causal)
{
    for (int l = 0; l < L; l++) {
        const int H = 1 + below(rng, 3);
        maps[l] = (attn_attention_map){.kind = ATTN_MAP_SELF, .heads = H, .rows = n, .cols = n,
                                       .layer = l};
        maps[l].weights = test_zeros((size_t)H * n * n);
        fill_rows(maps[l].weights, H * n, n, rng, causal);
        layers[l] = &maps[l];
    }
}

/* The A'_l of attn_rollout by the definition, in float64: (L, n, n), per layer the
 * heads' mean plus the identity, rows renormalised. */
static double *residual_layers_f64(const attn_attention_map *const *layers, int L, int n)
{
    const size_t plane = (size_t)n * n;
    double *a = calloc((size_t)L * plane, sizeof *a);
    for (int l = 0; l < L; l++) {
        const attn_attention_map *m = layers[l];
        for (int i = 0; i < n; i++) {
            double *row = a + l * plane + (size_t)i * n, sum = 0.0;
            for (int j = 0; j < n; j++) {
                double mean = 0.0;
                for (int h = 0; h < m->heads; h++) mean += m->weights[h * plane + i * n + j];
                row[j] = 0.5 * (mean / m->heads + (i == j));
                sum += row[j];
            }
            for (int j = 0; j < n; j++) row[j] /= sum;
        }
    }
    return a;
}

/* out: (n, n) in float64: the A'_l multiplied from the first layer on. */
static void rollout_f64(double *out, const attn_attention_map *const *layers, int L, int n)
{
    const size_t plane = (size_t)n * n;
    double *a = residual_layers_f64(layers, L, n), *next = calloc(plane, sizeof *next);
    memcpy(out, a, plane * sizeof *out);
    for (int l = 1; l < L; l++) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0.0;
                for (int k = 0; k < n; k++) s += a[l * plane + i * n + k] * out[k * n + j];
                next[i * n + j] = s;
            }
        memcpy(out, next, plane * sizeof *out);
    }
    free(a), free(next);
}

static void test_rollout(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int c = 0; c < 10; c++) {
        attn_rng rng = test_rng(200 + (uint64_t)c);
        const int L = 1 + below(&rng, 4), n = 1 + below(&rng, 12);
        attn_attention_map maps[4];
        const attn_attention_map *layers[4];
        random_self_layers(maps, layers, L, n, &rng, c % 2 == 0);
        float *got = test_zeros((size_t)n * n);
        double *want = calloc((size_t)n * n, sizeof *want);
        assert_int_equal(attn_rollout(layers, L, got), ATTN_OK);
        rollout_f64(want, layers, L, n);
        const double err = test_rel_error_f64(got, want, (size_t)n * n);
        if (err > 1e-5) print_error("rollout of %d layers of %d tokens: error %g\n", L, n, err);
        assert_true(err <= 1e-5);
        worst = fmax(worst, err);
        for (int i = 0; i < n; i++) { /* rows stay distributions */
            double sum = 0.0;
            for (int j = 0; j < n; j++) sum += got[i * n + j];
            assert_true(fabs(sum - 1.0) < 1e-5);
        }
        if (L > 1 && n > 1) {
            maps[1].rows = n - 1;
            test_expect_invalid(attn_rollout(layers, L, got), "rollout needs square");
            maps[1].cols = n - 1;
            test_expect_invalid(attn_rollout(layers, L, got), "but layer 0 is");
        }
        maps[0].kind = ATTN_MAP_CROSS;
        test_expect_invalid(attn_rollout(layers, L, got), "cross attention");
        for (int l = 0; l < L; l++) free(maps[l].weights);
        free(got), free(want);
    }
    printf("rollout: largest error against float64 %.2g\n", worst);
    float out;
    test_expect_invalid(attn_rollout(NULL, 1, &out), "layers");
}

/* The minimum cut between token i of the top level and input token j, by trying
 * every set of the other nodes on the top's side: by the max-flow min-cut
 * theorem, the maximum flow. Node v = level * n + token; a: (L, n, n). */
static double min_cut(const double *a, int L, int n, int i, int j)
{
    const int nodes = (L + 1) * n, s = L * n + i, t = j;
    double best = INFINITY;
    for (unsigned set = 0; set < 1u << nodes; set++) {
        if (!(set >> s & 1) || (set >> t & 1)) continue;
        double cut = 0.0;
        for (int l = 1; l <= L; l++)
            for (int x = 0; x < n; x++)
                for (int y = 0; y < n; y++)
                    if ((set >> (l * n + x) & 1) && !(set >> ((l - 1) * n + y) & 1))
                        cut += a[((size_t)(l - 1) * n + x) * n + y];
        best = fmin(best, cut);
    }
    return best;
}

/* Attention flow against the minimum cuts of networks of up to 16 nodes (1 to 3
 * layers); every flow in [0, 1]. */
static void test_attention_flow(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int c = 0; c < 12; c++) {
        attn_rng rng = test_rng(300 + (uint64_t)c);
        const int L = 1 + below(&rng, 3), n = 1 + below(&rng, L == 1 ? 8 : 16 / (L + 1));
        attn_attention_map maps[3];
        const attn_attention_map *layers[3];
        random_self_layers(maps, layers, L, n, &rng, c % 2 == 0);
        float *got = test_zeros((size_t)n * n);
        assert_int_equal(attn_attention_flow(layers, L, got), ATTN_OK);
        double *a = residual_layers_f64(layers, L, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                const double want = min_cut(a, L, n, i, j), flow = got[(size_t)i * n + j];
                assert_true(flow >= 0.0 && flow <= 1.0 + 1e-6);
                const double err = fabs(flow - want);
                if (err > 1e-6)
                    print_error("flow of %d layers of %d tokens, %d -> %d: %.9g, min cut %.9g\n",
                                L, n, i, j, flow, want);
                assert_true(err <= 1e-6);
                worst = fmax(worst, err);
            }
        test_expect_invalid(attn_attention_flow(layers, L, NULL), "out");
        for (int l = 0; l < L; l++) free(maps[l].weights);
        free(got), free(a);
    }
    printf("attention flow: largest difference from the minimum cut %.2g\n", worst);
    /* Past ATTN_FLOW_TOKENS_MAX tokens the cost is refused, not paid. */
    const int n = ATTN_FLOW_TOKENS_MAX + 1;
    attn_attention_map big = {.kind = ATTN_MAP_SELF, .heads = 1, .rows = n, .cols = n};
    big.weights = test_zeros((size_t)n * n);
    const attn_attention_map *one[1] = {&big};
    float *out = test_zeros((size_t)n * n);
    assert_int_equal(attn_attention_flow(one, 1, out), ATTN_ERR_UNSUPPORTED);
    assert_non_null(strstr(attn_last_error(), "at most 64"));
    free(big.weights), free(out);
}

/* ---- recording in the encoder-decoders -------------------------------------------------- */

static const attn_seq2seq_arch ARCHS[] = {
    ATTN_S2S_RNN_BAHDANAU,       ATTN_S2S_GRU_BAHDANAU, ATTN_S2S_LSTM_BAHDANAU,
    ATTN_S2S_LSTM_LUONG_DOT,     ATTN_S2S_LSTM_LUONG_GENERAL,
    ATTN_S2S_TRANSFORMER,
};
enum { ARCH_COUNT = sizeof ARCHS / sizeof ARCHS[0] };

/* Rows of a map: distributions over the columns each may see, or one-hot. */
static void expect_rows(const attn_attention_map *m, bool causal)
{
    for (int h = 0; h < m->heads; h++)
        for (int i = 0; i < m->rows; i++) {
            const float *w = m->weights + ((size_t)h * m->rows + i) * m->cols;
            double sum = 0.0;
            for (int j = 0; j < m->cols; j++) {
                if (causal && j > i) assert_true(w[j] == 0.0f);
                if (m->hard) assert_true(w[j] == 0.0f || w[j] == 1.0f);
                sum += w[j];
            }
            assert_true(fabs(sum - 1.0) < 1e-5);
        }
}

/* The transformer encoder's first self-attention in float64 from the parameters:
 * x = embed(src) sqrt(E) + PE, u = norm1(x), q and k from in_proj, softmax of
 * q k^T / sqrt(hd) per head -> want: (H, S, S). */
static void encoder_attention_f64(double *want, attn_seq2seq *m, const int32_t *src, int S)
{
    const attn_seq2seq_config *cfg = attn_seq2seq_get_config(m);
    const attn_params *p = attn_seq2seq_params(m);
    const int E = cfg->hidden_dim, H = cfg->heads, hd = E / H;
    const float *embed = attn_params_data(p, "src_embed.weight");
    const float *gamma = attn_params_data(p, "transformer.encoder.layers.0.norm1.weight");
    const float *beta = attn_params_data(p, "transformer.encoder.layers.0.norm1.bias");
    const float *w = attn_params_data(p, "transformer.encoder.layers.0.self_attn.in_proj_weight");
    const float *b = attn_params_data(p, "transformer.encoder.layers.0.self_attn.in_proj_bias");
    double *u = calloc((size_t)S * E, sizeof *u), *qk = calloc((size_t)S * 2 * E, sizeof *qk);
    for (int i = 0; i < S; i++) {
        double *x = u + (size_t)i * E, mean = 0.0, var = 0.0;
        for (int e = 0; e < E; e++) {
            const double freq = pow(10000.0, -(double)(e - e % 2) / E);
            x[e] = embed[(size_t)src[i] * E + e] * sqrt((double)E) +
                   (e % 2 ? cos(i * freq) : sin(i * freq));
            mean += x[e] / E;
        }
        for (int e = 0; e < E; e++) var += (x[e] - mean) * (x[e] - mean) / E;
        for (int e = 0; e < E; e++) x[e] = (x[e] - mean) / sqrt(var + 1e-5) * gamma[e] + beta[e];
        for (int o = 0; o < 2 * E; o++) {
            double s = b[o];
            for (int e = 0; e < E; e++) s += (double)w[(size_t)o * E + e] * x[e];
            qk[(size_t)i * 2 * E + o] = s;
        }
    }
    for (int h = 0; h < H; h++)
        for (int i = 0; i < S; i++) {
            double *row = want + ((size_t)h * S + i) * S, max = -INFINITY, sum = 0.0;
            for (int j = 0; j < S; j++) {
                double s = 0.0;
                for (int d = 0; d < hd; d++)
                    s += qk[(size_t)i * 2 * E + h * hd + d] * qk[(size_t)j * 2 * E + E + h * hd + d];
                row[j] = s / sqrt((double)hd);
                max = fmax(max, row[j]);
            }
            for (int j = 0; j < S; j++) sum += row[j] = exp(row[j] - max);
            for (int j = 0; j < S; j++) row[j] /= sum;
        }
    free(u), free(qk);
}

/* Returns the first encoder layer's error against float64. */
static double check_transformer_maps(const attn_record *r, attn_seq2seq *m, const int32_t *src,
                                     int steps, int src_len, const float *attention, int S)
{
    const attn_seq2seq_config *cfg = attn_seq2seq_get_config(m);
    const int H = cfg->heads;
    assert_int_equal(r->n_maps, cfg->enc_layers + 2 * cfg->dec_layers);
    char name[ATTN_RECORD_NAME_MAX];
    for (int l = 0; l < cfg->enc_layers; l++) {
        snprintf(name, sizeof name, "transformer.encoder.layers.%d.self_attn", l);
        const attn_attention_map *e = attn_record_find(r, name);
        assert_non_null(e);
        assert_true(e->kind == ATTN_MAP_SELF && !e->over_queries && e->layer == l);
        assert_true(e->heads == H && e->rows == src_len && e->cols == src_len);
        expect_rows(e, false);
    }
    const attn_attention_map *cross = NULL;
    for (int l = 0; l < cfg->dec_layers; l++) {
        snprintf(name, sizeof name, "transformer.decoder.layers.%d.self_attn", l);
        const attn_attention_map *d = attn_record_find(r, name);
        assert_non_null(d);
        assert_true(d->kind == ATTN_MAP_SELF && d->over_queries && d->layer == l);
        assert_true(d->heads == H && d->rows == steps && d->cols == steps);
        expect_rows(d, true);
        snprintf(name, sizeof name, "transformer.decoder.layers.%d.multihead_attn", l);
        cross = attn_record_find(r, name);
        assert_non_null(cross);
        assert_true(cross->kind == ATTN_MAP_CROSS && cross->layer == l);
        assert_true(cross->heads == H && cross->rows == steps && cross->cols == src_len);
        expect_rows(cross, false);
    }
    /* decoding's own report: the last layer's cross-attention averaged over heads */
    float *mean = test_zeros((size_t)steps * src_len), *reported = test_zeros((size_t)steps * src_len);
    for (int t = 0; t < steps; t++)
        for (int j = 0; j < src_len; j++) {
            float sum = 0.0f;
            for (int h = 0; h < H; h++) sum += cross->weights[((size_t)h * steps + t) * src_len + j];
            mean[t * src_len + j] = sum / (float)H;
            reported[t * src_len + j] = attention[(size_t)t * S + j];
        }
    assert_true(test_rel_error(mean, reported, (size_t)steps * src_len) <= 1e-5);
    free(mean), free(reported);
    /* the first encoder layer from the parameters */
    double *want = calloc((size_t)H * src_len * src_len, sizeof *want);
    encoder_attention_f64(want, m, src, src_len);
    const double err = test_rel_error_f64(
        attn_record_find(r, "transformer.encoder.layers.0.self_attn")->weights, want,
        (size_t)H * src_len * src_len);
    if (err > 1e-5) print_error("encoder self-attention differs from float64 by %g\n", err);
    assert_true(err <= 1e-5);
    free(want);
    return err;
}

static void test_seq2seq_record(void **state)
{
    (void)state;
    int case_number = 0;
    double worst = 0.0;
    for (int a = 0; a < ARCH_COUNT; a++)
        for (int k = 0; k < 3; k++)
            for (int sample = 0; sample < 2; sample++) {
                const attn_seq2seq_arch arch = ARCHS[a];
                const attn_attention_kind kind = (attn_attention_kind)k;
                if ((arch == ATTN_S2S_TRANSFORMER && kind != ATTN_ATTEND_SOFT) ||
                    (kind == ATTN_ATTEND_SOFT && sample))
                    continue;
                attn_rng rng = test_rng(300 + (uint64_t)case_number++);
                attn_seq2seq *m = test_seq2seq_random(&rng, arch, kind, 0.0f);
                const attn_seq2seq_config *cfg = attn_seq2seq_get_config(m);
                const int S = cfg->max_src_len, T = cfg->max_tgt_len;
                const int src_len = 1 + below(&rng, S);
                int32_t src[16] = {0}, out[3][16], len[3];
                for (int j = 0; j < src_len; j++)
                    src[j] = ATTN_TOKEN_FIRST_CHAR + below(&rng, cfg->src_vocab - 3);
                const int32_t length = src_len;
                float *attention = test_zeros((size_t)T * S);
                const attn_decode_options opt = {.beam = 1, .sample_hard = sample,
                                                 .seed = attn_rng_u32(&rng), .max_len = T};
                assert_int_equal(
                    attn_seq2seq_decode(m, out[0], &len[0], NULL, src, &length, 1, S, &opt),
                    ATTN_OK);
                assert_int_equal(
                    attn_seq2seq_decode(m, out[1], &len[1], attention, src, &length, 1, S, &opt),
                    ATTN_OK);
                attn_record r;
                attn_record_init(&r, attn_seq2seq_arch_name(arch), "test");
                attn_status s =
                    attn_seq2seq_decode_record(m, out[2], &len[2], src, S, src_len, &opt, &r, NULL);
                if (s) print_error("%s: %s\n", attn_seq2seq_arch_name(arch), attn_last_error());
                assert_int_equal(s, ATTN_OK);
                /* the same bits with and without anyone looking */
                for (int i = 1; i < 3; i++) {
                    assert_int_equal(len[i], len[0]);
                    assert_memory_equal(out[i], out[0], (size_t)T * sizeof(int32_t));
                }
                const int steps = len[0] < T ? len[0] + 1 : T;
                if (arch == ATTN_S2S_TRANSFORMER) {
                    worst = fmax(worst, check_transformer_maps(&r, m, src, steps, src_len,
                                                               attention, S));
                } else {
                    assert_int_equal(r.n_maps, 1);
                    const attn_attention_map *d = attn_record_find(&r, "decoder.attention");
                    assert_non_null(d);
                    assert_true(d->kind == ATTN_MAP_CROSS && d->heads == 1);
                    assert_true(d->rows == steps && d->cols == src_len);
                    assert_int_equal(d->hard, kind != ATTN_ATTEND_SOFT);
                    expect_rows(d, false);
                    for (int t = 0; t < steps; t++)
                        assert_memory_equal(d->weights + (size_t)t * src_len,
                                            attention + (size_t)t * S, src_len * sizeof(float));
                }
                /* with tokens of the right counts the record saves and reads back */
                const char *q[16], *kk[16];
                for (int i = 0; i < 16; i++) q[i] = kk[i] = "t";
                assert_int_equal(attn_record_set_queries(&r, q, steps), ATTN_OK);
                assert_int_equal(attn_record_set_keys(&r, kk, src_len), ATTN_OK);
                char path[128];
                temp_path(path, sizeof path, "seq2seq.safetensors");
                assert_int_equal(attn_record_save(&r, path), ATTN_OK);
                attn_record back;
                assert_int_equal(attn_record_load(&back, path), ATTN_OK);
                expect_same_records(&r, &back);
                attn_record_free(&back);
                unlink(path);
                /* a failed recording leaves the record as it was */
                const int maps = r.n_maps;
                const attn_decode_options beam = {.beam = 2, .max_len = T};
                test_expect_invalid(
                    attn_seq2seq_decode_record(m, out[2], &len[2], src, S, src_len, &beam, &r, NULL),
                    "beam 2 must be 1");
                test_expect_invalid(
                    attn_seq2seq_decode_record(m, out[2], &len[2], src, S, src_len, &opt, &r, NULL),
                    "already has a map");
                assert_int_equal(r.n_maps, maps);
                test_expect_invalid(
                    attn_seq2seq_decode_record(m, out[2], &len[2], src, S, S + 1, &opt, &r, NULL),
                    "src_len");
                attn_record_free(&r);
                free(attention);
                attn_seq2seq_free(m);
            }
    printf("transformer encoder weights: error against float64 %.2g\n", worst);
}

/* ---- recording in the language model ------------------------------------------------------- */

/* Block 0's weights in float64 for learned positions: x = wte[ids] + wpe,
 * u = ln_1(x), q and k from c_attn, the causal softmax of q k^T / sqrt(hd). */
static void gpt_first_block_f64(double *want, attn_gpt *m, const int32_t *ids, int n)
{
    const attn_gpt_config *cfg = attn_gpt_get_config(m);
    const attn_params *p = attn_gpt_params(m);
    const int C = cfg->n_embd, H = cfg->n_head, hd = C / H;
    const float *wte = attn_params_data(p, "transformer.wte.weight");
    const float *wpe = attn_params_data(p, "transformer.wpe.weight");
    const float *g = attn_params_data(p, "transformer.h.0.ln_1.weight");
    const float *b = attn_params_data(p, "transformer.h.0.ln_1.bias");
    const float *w = attn_params_data(p, "transformer.h.0.attn.c_attn.weight");
    const float *wb = attn_params_data(p, "transformer.h.0.attn.c_attn.bias");
    double *qk = calloc((size_t)n * 2 * C, sizeof *qk), x[64];
    for (int t = 0; t < n; t++) {
        double mean = 0.0, var = 0.0;
        for (int e = 0; e < C; e++) {
            x[e] = (double)wte[(size_t)ids[t] * C + e] + wpe[(size_t)t * C + e];
            mean += x[e] / C;
        }
        for (int e = 0; e < C; e++) var += (x[e] - mean) * (x[e] - mean) / C;
        for (int e = 0; e < C; e++) x[e] = (x[e] - mean) / sqrt(var + 1e-5) * g[e] + b[e];
        for (int o = 0; o < 2 * C; o++) {
            double s = wb[o];
            for (int e = 0; e < C; e++) s += (double)w[(size_t)o * C + e] * x[e];
            qk[(size_t)t * 2 * C + o] = s;
        }
    }
    for (int h = 0; h < H; h++)
        for (int i = 0; i < n; i++) {
            double *row = want + ((size_t)h * n + i) * n, max = -INFINITY, sum = 0.0;
            for (int j = 0; j <= i; j++) {
                double s = 0.0;
                for (int d = 0; d < hd; d++)
                    s += qk[(size_t)i * 2 * C + h * hd + d] * qk[(size_t)j * 2 * C + C + h * hd + d];
                row[j] = s / sqrt((double)hd);
                max = fmax(max, row[j]);
            }
            for (int j = 0; j < n; j++) sum += row[j] = j <= i ? exp(row[j] - max) : 0.0;
            for (int j = 0; j < n; j++) row[j] /= sum;
        }
    free(qk);
}

static void test_gpt_record(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int variant = 0; variant < TEST_GPT_VARIANTS; variant++) {
        attn_rng rng = test_rng(400 + (uint64_t)variant);
        const attn_gpt_config cfg = test_gpt_variant(variant);
        attn_gpt *m = test_gpt_random(&rng, variant);
        const int n = 1 + below(&rng, cfg.block_size), V = cfg.vocab_size, H = cfg.n_head;
        int32_t ids[16];
        for (int i = 0; i < n; i++) ids[i] = below(&rng, V);
        float *plain = test_zeros((size_t)n * V), *recorded = test_zeros((size_t)n * V);
        attn_gpt_cache *cache;
        assert_int_equal(attn_gpt_cache_create(&cache, m, cfg.block_size), ATTN_OK);
        assert_int_equal(attn_gpt_cache_forward(m, cache, plain, ids, n), ATTN_OK);
        attn_gpt_cache_free(cache);
        attn_record r;
        attn_record_init(&r, "gpt", "text");
        assert_int_equal(attn_gpt_record(m, ids, n, recorded, &r, NULL), ATTN_OK);
        assert_memory_equal(recorded, plain, (size_t)n * V * sizeof(float));
        assert_int_equal(r.n_maps, cfg.n_layer);
        for (int l = 0; l < cfg.n_layer; l++) {
            const attn_attention_map *a = &r.maps[l];
            char name[32];
            snprintf(name, sizeof name, "transformer.h.%d.attn", l);
            assert_string_equal(a->name, name);
            assert_true(a->kind == ATTN_MAP_SELF && a->layer == l && !a->hard);
            assert_true(a->heads == H && a->rows == n && a->cols == n);
            expect_rows(a, true);
            for (int i = 0; cfg.window > 0 && i < n; i++)
                for (int j = 0; j + cfg.window <= i; j++)
                    for (int h = 0; h < H; h++)
                        assert_true(a->weights[((size_t)h * n + i) * n + j] == 0.0f);
        }
        if (cfg.position == ATTN_POS_LEARNED) {
            double *want = calloc((size_t)H * n * n, sizeof *want);
            gpt_first_block_f64(want, m, ids, n);
            const double err = test_rel_error_f64(r.maps[0].weights, want, (size_t)H * n * n);
            if (err > 1e-5) print_error("block 0 weights differ from float64 by %g\n", err);
            assert_true(err <= 1e-5);
            worst = fmax(worst, err);
            free(want);
        }
        /* NULL logits, a failure that leaves the record as it was, bad sizes */
        attn_record other;
        attn_record_init(&other, "gpt", "text");
        assert_int_equal(attn_gpt_record(m, ids, n, NULL, &other, NULL), ATTN_OK);
        assert_memory_equal(other.maps[0].weights, r.maps[0].weights,
                            (size_t)H * n * n * sizeof(float));
        attn_record_free(&other);
        test_expect_invalid(attn_gpt_record(m, ids, n, NULL, &r, NULL), "already has a map");
        assert_int_equal(r.n_maps, cfg.n_layer);
        test_expect_invalid(attn_gpt_record(m, ids, cfg.block_size + 1, NULL, &r, NULL),
                            "exceeds the block size");
        test_expect_invalid(attn_gpt_record(m, ids, 0, NULL, &r, NULL), "context tokens");
        attn_record_free(&r);
        free(plain), free(recorded);
        attn_gpt_free(m);
    }
    printf("language model block 0 weights: error against float64 %.2g\n", worst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_round_trip),   cmocka_unit_test(test_record_checks),
        cmocka_unit_test(test_changed_byte_is_caught),
        cmocka_unit_test(test_corrupt_json),       cmocka_unit_test(test_corrupt_safetensors),
        cmocka_unit_test(test_entropy),            cmocka_unit_test(test_rollout),
        cmocka_unit_test(test_attention_flow),
        cmocka_unit_test(test_seq2seq_record),     cmocka_unit_test(test_gpt_record),
    };
    return cmocka_run_group_tests(tests, make_temp_dir, remove_temp_dir);
}
