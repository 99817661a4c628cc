/* safetensors: round trips of every dtype, exact F16/BF16 conversion, metadata,
 * every kind of corrupt file, and atomic saving. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------ */

/* A safetensors file in memory: the length of `header`, `header`, then `data`. */
typedef struct blob {
    unsigned char *bytes;
    size_t size;
} blob;

static blob make_file_with_length(uint64_t declared_len, const char *header, size_t header_len,
                                  const void *data, size_t data_size)
{
    blob b;
    b.size = 8 + header_len + data_size;
    b.bytes = malloc(b.size);
    assert_non_null(b.bytes);
    for (int i = 0; i < 8; i++) b.bytes[i] = (unsigned char)(declared_len >> (8 * i));
    memcpy(b.bytes + 8, header, header_len);
    if (data_size > 0) {
        if (data != NULL) memcpy(b.bytes + 8 + header_len, data, data_size);
        else memset(b.bytes + 8 + header_len, 0, data_size);
    }
    return b;
}

/* data NULL means data_size zero bytes. */
static blob make_file(const char *header, const void *data, size_t data_size)
{
    return make_file_with_length(strlen(header), header, strlen(header), data, data_size);
}

static void write_bytes(const char *path, const void *bytes, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (size > 0) assert_int_equal(fwrite(bytes, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

/* The whole file; *size is set. NULL if it cannot be read. */
static unsigned char *read_bytes(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)n + 1);
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return bytes;
}

static bool file_exists(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0;
}

/* Number of entries of dir whose name contains ".tmp.". */
static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (strstr(e->d_name, ".tmp.") != NULL) n++;
    closedir(d);
    return n;
}

/* Parses one tensor of a hand-built file and converts it to float32. */
static void read_single_tensor(const char *header, const void *data, size_t data_size,
                               float *out, size_t count)
{
    blob b = make_file(header, data, data_size);
    attn_safetensors *st = NULL;
    attn_status s = attn_safetensors_parse(&st, b.bytes, b.size);
    if (s != ATTN_OK) fail_msg("parse failed: %s", attn_last_error());
    assert_int_equal(attn_safetensors_count(st), 1);
    assert_int_equal(attn_tensor_read_f32(attn_safetensors_at(st, 0), out, count), ATTN_OK);
    attn_safetensors_close(st);
    free(b.bytes);
}

static void assert_same_float(float got, float want)
{
    if (isnan(want)) {
        assert_true(isnan(got));
        return;
    }
    if (memcmp(&got, &want, sizeof got) != 0)
        fail_msg("got %.9g (bits differ), want %.9g", (double)got, (double)want);
}

/* ---- exact conversions ---------------------------------------------------------- */

/* The value of an IEEE half computed arithmetically, independently of the bit
 * manipulation under test. */
static float half_reference(uint16_t h)
{
    int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    double magnitude;
    if (exponent == 0x1f) magnitude = mantissa ? NAN : INFINITY;
    else if (exponent == 0) magnitude = ldexp(mantissa, -24);
    else magnitude = ldexp(1024 + mantissa, exponent - 25);
    return (float)(sign ? -magnitude : magnitude);
}

static void test_f16_every_value_exact(void **state)
{
    (void)state;
    enum { N = 65536 };
    uint16_t *bits = malloc(N * sizeof *bits);
    float *out = malloc(N * sizeof *out);
    assert_non_null(bits);
    assert_non_null(out);
    for (uint32_t i = 0; i < N; i++) bits[i] = (uint16_t)i;
    read_single_tensor("{\"h\":{\"dtype\":\"F16\",\"shape\":[256,256],"
                       "\"data_offsets\":[0,131072]}}",
                       bits, N * sizeof *bits, out, N);
    for (uint32_t i = 0; i < N; i++) assert_same_float(out[i], half_reference((uint16_t)i));
    /* Spot values, written out so that a wrong reference cannot hide a bug. */
    assert_true(out[0x0001] == 5.9604644775390625e-08f);        /* smallest subnormal, 2^-24 */
    assert_true(out[0x03ff] == 6.097555160522461e-05f);         /* largest subnormal */
    assert_true(out[0x0400] == 6.103515625e-05f);               /* smallest normal, 2^-14 */
    assert_true(out[0x3c00] == 1.0f);
    assert_true(out[0x3555] == 0.333251953125f);
    assert_true(out[0x7bff] == 65504.0f);
    assert_true(out[0xc000] == -2.0f);
    assert_true(isinf(out[0x7c00]) && out[0x7c00] > 0);
    assert_true(isinf(out[0xfc00]) && out[0xfc00] < 0);
    assert_true(isnan(out[0x7e00]) && isnan(out[0x7c01]));
    assert_true(out[0x8000] == 0.0f && signbit(out[0x8000]));
    free(bits);
    free(out);
}

static void test_bf16_exact(void **state)
{
    (void)state;
    const uint16_t bits[6] = {0x3f80, 0xc040, 0x7f80, 0x0001, 0x7fc0, 0x3eab};
    float out[6];
    read_single_tensor("{\"b\":{\"dtype\":\"BF16\",\"shape\":[6],\"data_offsets\":[0,12]}}",
                       bits, sizeof bits, out, 6);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -3.0f);
    assert_true(isinf(out[2]));
    assert_true(out[3] == ldexpf(1.0f, -133)); /* the smallest bf16 subnormal */
    assert_true(isnan(out[4]));
    assert_true(out[5] == 0.333984375f);
}

static void test_f64_rounds_to_nearest(void **state)
{
    (void)state;
    const double values[5] = {1.0, -2.5, 0.1, 1.0 + ldexp(1.0, -30), 1e300};
    float out[5];
    read_single_tensor("{\"d\":{\"dtype\":\"F64\",\"shape\":[5],\"data_offsets\":[0,40]}}",
                       values, sizeof values, out, 5);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -2.5f);
    assert_true(out[2] == 0.1f);
    assert_true(out[3] == 1.0f);
    assert_true(isinf(out[4]));
}

static void test_integer_and_bool_dtypes(void **state)
{
    (void)state;
    const int32_t i32[3] = {-5, 2147483647, 0};
    float out[4];
    read_single_tensor("{\"i\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[0,12]}}", i32,
                       sizeof i32, out, 3);
    assert_true(out[0] == -5.0f && out[1] == 2147483648.0f && out[2] == 0.0f);

    const int64_t i64[2] = {-(INT64_C(1) << 40), 7};
    read_single_tensor("{\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", i64,
                       sizeof i64, out, 2);
    assert_true(out[0] == -1099511627776.0f && out[1] == 7.0f);

    const int16_t i16[2] = {-32768, 123};
    read_single_tensor("{\"i\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]}}", i16,
                       sizeof i16, out, 2);
    assert_true(out[0] == -32768.0f && out[1] == 123.0f);

    const int8_t i8[4] = {-128, 127, -1, 0};
    read_single_tensor("{\"i\":{\"dtype\":\"I8\",\"shape\":[2,2],\"data_offsets\":[0,4]}}", i8,
                       sizeof i8, out, 4);
    assert_true(out[0] == -128.0f && out[1] == 127.0f && out[2] == -1.0f && out[3] == 0.0f);

    const uint8_t u8[3] = {255, 0, 17};
    read_single_tensor("{\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}", u8,
                       sizeof u8, out, 3);
    assert_true(out[0] == 255.0f && out[1] == 0.0f && out[2] == 17.0f);

    const uint8_t flags[3] = {1, 0, 1};
    read_single_tensor("{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}", flags,
                       sizeof flags, out, 3);
    assert_true(out[0] == 1.0f && out[1] == 0.0f && out[2] == 1.0f);
}

/* Unaligned F32 data (a header whose length is not a multiple of 4) reads fine. */
static void test_unaligned_f32(void **state)
{
    (void)state;
    const float values[2] = {1.5f, -0.25f};
    float out[2];
    read_single_tensor("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} ",
                       values, sizeof values, out, 2);
    assert_true(out[0] == 1.5f && out[1] == -0.25f);
}

static void test_dtype_names_and_sizes(void **state)
{
    (void)state;
    assert_string_equal(attn_dtype_name(ATTN_DTYPE_BF16), "BF16");
    assert_string_equal(attn_dtype_name(ATTN_DTYPE_BOOL), "BOOL");
    assert_int_equal(attn_dtype_size(ATTN_DTYPE_F64), 8);
    assert_int_equal(attn_dtype_size(ATTN_DTYPE_F16), 2);
    assert_int_equal(attn_dtype_size(ATTN_DTYPE_U8), 1);
    assert_int_equal(attn_dtype_size((attn_dtype)99), 0);
}

/* ---- writing and reading back --------------------------------------------------- */

static void test_save_round_trip_every_dtype(void **state)
{
    (void)state;
    char *dir = test_temp_dir("st");
    char path[512];
    snprintf(path, sizeof path, "%s/all.safetensors", dir);

    attn_rng rng = test_rng(1);
    float *f32 = test_random(&rng, 6, -1.0f, 1.0f);
    const double f64[2] = {3.25, -1e-3};
    const uint16_t f16[3] = {0x3c00, 0x0001, 0xfc00};
    const uint16_t bf16[2] = {0x3f80, 0xbf00};
    const int64_t i64[1] = {-42};
    const int32_t i32[2] = {1, -1};
    const int16_t i16[2] = {300, -300};
    const int8_t i8[1] = {-7};
    const uint8_t u8[2] = {200, 3};
    const uint8_t flags[2] = {0, 1};
    const float scalar = 2.5f;
    const int64_t s23[2] = {2, 3}, s2[1] = {2}, s3[1] = {3}, s1[1] = {1}, s0x4[2] = {0, 4};
    const attn_tensor_out tensors[] = {
        {"w.f32", ATTN_DTYPE_F32, 2, s23, f32},   {"f64", ATTN_DTYPE_F64, 1, s2, f64},
        {"f16", ATTN_DTYPE_F16, 1, s3, f16},      {"bf16", ATTN_DTYPE_BF16, 1, s2, bf16},
        {"i64", ATTN_DTYPE_I64, 1, s1, i64},      {"i32", ATTN_DTYPE_I32, 1, s2, i32},
        {"i16", ATTN_DTYPE_I16, 1, s2, i16},      {"i8", ATTN_DTYPE_I8, 1, s1, i8},
        {"u8", ATTN_DTYPE_U8, 1, s2, u8},         {"bool", ATTN_DTYPE_BOOL, 1, s2, flags},
        {"scalar", ATTN_DTYPE_F32, 0, NULL, &scalar}, {"empty", ATTN_DTYPE_F32, 2, s0x4, NULL},
    };
    const int count = (int)(sizeof tensors / sizeof tensors[0]);
    const attn_metadata_pair meta[] = {{"format", "pt"}, {"note", "caf\xc3\xa9 \"quoted\"\n"}};
    attn_status s = attn_safetensors_save(path, tensors, count, meta, 2);
    if (s != ATTN_OK) fail_msg("save failed: %s", attn_last_error());

    attn_safetensors *st = NULL;
    s = attn_safetensors_open(&st, path);
    if (s != ATTN_OK) fail_msg("open failed: %s", attn_last_error());
    assert_int_equal(attn_safetensors_count(st), count);
    for (int i = 0; i < count; i++) {
        const attn_tensor_view *t = attn_safetensors_at(st, i);
        assert_string_equal(t->name, tensors[i].name); /* header order is kept */
        assert_ptr_equal(attn_safetensors_find(st, tensors[i].name), t);
        assert_int_equal(t->dtype, tensors[i].dtype);
        assert_int_equal(t->ndim, tensors[i].ndim);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], tensors[i].shape[d]);
            numel *= (size_t)tensors[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        assert_int_equal(t->nbytes, numel * attn_dtype_size(t->dtype));
        if (t->nbytes > 0) assert_memory_equal(t->data, tensors[i].data, t->nbytes);
    }
    assert_null(attn_safetensors_at(st, count));
    assert_null(attn_safetensors_at(st, -1));
    assert_null(attn_safetensors_find(st, "nope"));

    float out[6];
    assert_int_equal(attn_tensor_read_f32(attn_safetensors_find(st, "w.f32"), out, 6), ATTN_OK);
    assert_memory_equal(out, f32, sizeof out);
    assert_int_equal(attn_tensor_read_f32(attn_safetensors_find(st, "scalar"), out, 1), ATTN_OK);
    assert_true(out[0] == 2.5f);
    assert_int_equal(attn_tensor_read_f32(attn_safetensors_find(st, "empty"), out, 0), ATTN_OK);
    assert_int_equal(attn_tensor_read_f32(attn_safetensors_find(st, "w.f32"), out, 5),
                     ATTN_ERR_INVALID_ARGUMENT);
    assert_non_null(
        strstr(attn_last_error(), "'w.f32' has 6 elements but the destination holds 5"));

    assert_int_equal(attn_safetensors_metadata_count(st), 4); /* and the checksum's two */
    assert_string_equal(attn_safetensors_metadata(st, "format"), "pt");
    assert_string_equal(attn_safetensors_metadata(st, "note"), "caf\xc3\xa9 \"quoted\"\n");
    assert_null(attn_safetensors_metadata(st, "absent"));
    const char *value = NULL;
    assert_string_equal(attn_safetensors_metadata_at(st, 1, &value), "note");
    assert_string_equal(value, meta[1].value);
    assert_string_equal(attn_safetensors_metadata_at(st, 2, &value), "attn.sealed");
    assert_string_equal(attn_safetensors_metadata_at(st, 3, &value), "attn.crc32c");
    assert_null(attn_safetensors_metadata_at(st, 4, &value));
    attn_safetensors_close(st);
    free(f32);
    test_temp_dir_remove(dir);
}

/* CRC-32C a bit at a time, written apart from the library's. */
static uint32_t crc32c_bitwise(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return ~c;
}

/* The layout the Python library writes: metadata first, offsets as plain
 * integers, the header padded with spaces to an 8-byte boundary; attn's
 * checksum last in the metadata, the CRC-32C of the file with its digits as
 * "00000000". */
static void test_saved_bytes_match_reference_layout(void **state)
{
    (void)state;
    char *dir = test_temp_dir("st");
    char path[512];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    const float a[2] = {1.0f, 2.0f};
    const int64_t shape[1] = {2};
    const attn_tensor_out t = {"a", ATTN_DTYPE_F32, 1, shape, a};
    const attn_metadata_pair meta = {"k", "v"};
    assert_int_equal(attn_safetensors_save(path, &t, 1, &meta, 1), ATTN_OK);
    size_t size = 0;
    unsigned char *bytes = read_bytes(path, &size);
    assert_non_null(bytes);
    char json[] = "{\"__metadata__\":{\"k\":\"v\",\"attn.sealed\":\"crc32c\","
                  "\"attn.crc32c\":\"00000000\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                  "\"data_offsets\":[0,8]}}";
    size_t json_len = strlen(json);
    size_t header_len = (json_len + 8 + 7) / 8 * 8 - 8;
    assert_int_equal(size, 8 + header_len + 8);
    assert_int_equal(bytes[0], header_len);
    for (int i = 1; i < 8; i++) assert_int_equal(bytes[i], 0);
    char *digits = strstr(json, "00000000");
    memcpy(bytes + 8 + (digits - json), "00000000", 8); /* the file as it was summed */
    char want[9];
    snprintf(want, sizeof want, "%08x", (unsigned)crc32c_bitwise(bytes, size));
    memcpy(digits, want, 8);
    unsigned char *written = read_bytes(path, &size);
    assert_memory_equal(written + 8, json, json_len);
    free(written);
    for (size_t i = json_len; i < header_len; i++) assert_int_equal(bytes[8 + i], ' ');
    assert_memory_equal(bytes + 8 + header_len, a, sizeof a);
    free(bytes);
    assert_int_equal(count_temp_files(dir), 0);
    test_temp_dir_remove(dir);
}

/* Offsets beyond 2^31 must be written as plain integers (not 3e+09). */
static void test_large_shape_written_as_integer(void **state)
{
    (void)state;
    char *dir = test_temp_dir("st");
    char path[512];
    snprintf(path, sizeof path, "%s/big.safetensors", dir);
    const int64_t shape[2] = {0, 3000000000LL};
    const attn_tensor_out t = {"big", ATTN_DTYPE_U8, 2, shape, NULL};
    assert_int_equal(attn_safetensors_save(path, &t, 1, NULL, 0), ATTN_OK);
    size_t size = 0;
    unsigned char *bytes = read_bytes(path, &size);
    assert_non_null(strstr((const char *)bytes + 8, "\"shape\":[0,3000000000]"));
    free(bytes);
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_OK);
    assert_int_equal(attn_safetensors_at(st, 0)->shape[1], 3000000000LL);
    attn_safetensors_close(st);
    test_temp_dir_remove(dir);
}

static void test_empty_file_set(void **state)
{
    (void)state;
    char *dir = test_temp_dir("st");
    char path[512];
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    assert_int_equal(attn_safetensors_save(path, NULL, 0, NULL, 0), ATTN_OK);
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_OK);
    assert_int_equal(attn_safetensors_count(st), 0);
    assert_int_equal(attn_safetensors_metadata_count(st), 2); /* the checksum's keys */
    attn_safetensors_close(st);
    test_temp_dir_remove(dir);
}

/* CRC-32C's check value, and a long random run against the bitwise one (every
 * instruction set runs this test). */
static void test_crc32c(void **state)
{
    (void)state;
    assert_int_equal(attn_crc32c(0, "123456789", 9), 0xe3069283u);
    attn_rng rng = test_rng(11);
    enum { N = 100003 };
    unsigned char *bytes = malloc(N);
    for (size_t i = 0; i < N; i++) bytes[i] = (unsigned char)attn_rng_u32(&rng);
    const size_t cut = attn_rng_below(&rng, N);
    assert_int_equal(attn_crc32c(attn_crc32c(0, bytes, cut), bytes + cut, N - cut),
                     crc32c_bitwise(bytes, N));
    free(bytes);
}

/* Any byte of a file attn wrote, changed, is caught on load; the checksum key is
 * the writer's alone. */
static void test_changed_byte_is_caught(void **state)
{
    (void)state;
    char *dir = test_temp_dir("st");
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    const float w[3] = {1.0f, -2.0f, 0.5f};
    const int64_t shape[1] = {3};
    const attn_tensor_out t = {"w", ATTN_DTYPE_F32, 1, shape, w};
    const attn_metadata_pair meta = {"step", "12"};
    assert_int_equal(attn_safetensors_save(path, &t, 1, &meta, 1), ATTN_OK);
    size_t size = 0;
    unsigned char *bytes = read_bytes(path, &size);
    int caught = 0;
    for (size_t i = 0; i < size; i++) {
        bytes[i] ^= 0x04;
        FILE *f = fopen(bad, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, size, f), size);
        fclose(f);
        attn_safetensors *st = NULL;
        if (attn_safetensors_open(&st, bad) != ATTN_OK) caught++;
        attn_safetensors_close(st);
        bytes[i] ^= 0x04;
    }
    if (caught != (int)size) print_error("%d of %zu changed bytes were caught\n", caught, size);
    assert_int_equal(caught, (int)size);
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_parse(&st, bytes, size), ATTN_OK);
    attn_safetensors_close(st);
    bytes[size - 1] ^= 0x01; /* a weight's byte: the JSON still parses */
    assert_int_equal(attn_safetensors_parse(&st, bytes, size), ATTN_ERR_FORMAT);
    assert_non_null(strstr(attn_last_error(), "do not match their checksum"));
    free(bytes);
    const attn_metadata_pair forged[2] = {{"attn.crc32c", "00000000"}, {"attn.sealed", "no"}};
    test_expect_invalid(attn_safetensors_save(path, &t, 1, &forged[0], 1), "the file's checksum");
    test_expect_invalid(attn_safetensors_save(path, &t, 1, &forged[1], 1), "the file's checksum");
    test_temp_dir_remove(dir);
}

/* ---- corrupt files ----------------------------------------------------------------- */

typedef struct corrupt_case {
    const char *header;
    size_t data_size;
    attn_status status;
    const char *message; /* a substring of the expected message */
} corrupt_case;

#define F32_2(offsets) "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" offsets "}"

static const corrupt_case CORRUPT_CASES[] = {
    {"{\"a\":", 0, ATTN_ERR_FORMAT, "not valid JSON"},
    {"", 0, ATTN_ERR_FORMAT, "header does not start with '{'"},
    {"{", 0, ATTN_ERR_FORMAT, "not valid JSON"},
    {" {}", 0, ATTN_ERR_FORMAT, "header does not start with '{'"},
    {"\xef\xbb\xbf{}", 0, ATTN_ERR_FORMAT, "header does not start with '{'"},
    {"[1, 2]", 0, ATTN_ERR_FORMAT, "header does not start with '{'"},
    {"{} x", 0, ATTN_ERR_FORMAT, "bytes after the JSON value"},
    {"{\"a\": 5}", 0, ATTN_ERR_FORMAT, "entry 'a' is not an object"},
    {"{\"a\": [1]}", 0, ATTN_ERR_FORMAT, "entry 'a' is not an object"},
    {"{\"a\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, ATTN_ERR_FORMAT,
     "tensor 'a' has unknown dtype \"F8\""},
    {"{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, ATTN_ERR_FORMAT,
     "tensor 'a' has dtype 4, not a string"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, ATTN_ERR_FORMAT,
     "tensor 'a' has no dtype"},
    {"{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, ATTN_ERR_FORMAT,
     "tensor 'a' has no shape"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, ATTN_ERR_FORMAT,
     "tensor 'a' has no data_offsets"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":3,\"data_offsets\":[0,3]}}", 3, ATTN_ERR_FORMAT,
     "tensor 'a' has a shape that is not an array"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2,-1],\"data_offsets\":[0,0]}}", 0, ATTN_ERR_FORMAT,
     "tensor 'a': shape dimension 1 is -1, not a non-negative integer"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1, ATTN_ERR_FORMAT,
     "shape dimension 0 is 1.5"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[\"2\"],\"data_offsets\":[0,2]}}", 2, ATTN_ERR_FORMAT,
     "shape dimension 0 is the string \"2\""},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1e17],\"data_offsets\":[0,1]}}", 1, ATTN_ERR_FORMAT,
     "shape dimension 0 is 1e+17"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
     ATTN_ERR_FORMAT, "tensor 'a' has 9 dimensions; at most 8"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],"
     "\"data_offsets\":[0,1]}}",
     1, ATTN_ERR_FORMAT, "element count of its shape overflows at dimension 1"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, ATTN_ERR_FORMAT,
     "tensor 'a': data_offsets is not a pair of non-negative integers"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 2, ATTN_ERR_FORMAT,
     "data_offsets is not a pair"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[\"0\",1]}}", 1, ATTN_ERR_FORMAT,
     "data_offsets is not a pair"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1, ATTN_ERR_FORMAT,
     "data_offsets is not a pair"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{\"0\":1}}}", 1, ATTN_ERR_FORMAT,
     "data_offsets is not a pair"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, ATTN_ERR_FORMAT,
     "tensor 'a': data_offsets [4, 0] ends before it begins"},
    {"{\"a\":" F32_2("[0,8]") "}", 4, ATTN_ERR_FORMAT,
     "tensor 'a': data_offsets [0, 8] end past the 4-byte data section"},
    {"{\"a\":" F32_2("[0,4]") "}", 4, ATTN_ERR_FORMAT,
     "tensor 'a': data_offsets [0, 4] span 4 bytes but F32 shape (2) needs 2 elements of 4 bytes"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,5]}}", 5, ATTN_ERR_FORMAT,
     "span 5 bytes but F16 shape (3)"},
    {"{\"a\":" F32_2("[0,8]") ",\"b\":" F32_2("[4,12]") "}", 12, ATTN_ERR_FORMAT,
     "tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
    {"{\"b\":" F32_2("[4,12]") ",\"a\":" F32_2("[0,8]") "}", 12, ATTN_ERR_FORMAT,
     "tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
    {"{\"a\":" F32_2("[0,8]") ",\"b\":" F32_2("[0,8]") "}", 8, ATTN_ERR_FORMAT, "overlap"},
    {"{\"a\":" F32_2("[0,8]") ",\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8,
     ATTN_ERR_FORMAT, "tensors 'a' [0, 8] and 'z' [4, 4] overlap"},
    {"{\"a\":" F32_2("[0,8]") ",\"b\":" F32_2("[12,20]") "}", 20, ATTN_ERR_FORMAT,
     "bytes [8, 12) of the data section belong to no tensor (a gap before 'b')"},
    {"{\"b\":" F32_2("[4,12]") "}", 12, ATTN_ERR_FORMAT, "bytes [0, 4) of the data section"},
    {"{\"a\":" F32_2("[0,8]") "}", 10, ATTN_ERR_FORMAT,
     "bytes [8, 10) at the end of the data section belong to no tensor"},
    {"{}", 3, ATTN_ERR_FORMAT, "bytes [0, 3) at the end of the data section"},
    {"{\"a\":" F32_2("[0,8]") ",\"a\":" F32_2("[8,16]") "}", 16, ATTN_ERR_FORMAT,
     "tensor name 'a' appears twice"},
    {"{\"__metadata__\":3}", 0, ATTN_ERR_FORMAT, "__metadata__ is not an object"},
    {"{\"__metadata__\":{\"k\":1}}", 0, ATTN_ERR_FORMAT,
     "__metadata__ value of 'k' is 1, not a string"},
    {"{\"__metadata__\":{\"k\":null}}", 0, ATTN_ERR_FORMAT, "value of 'k' is null"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, ATTN_ERR_FORMAT, "__metadata__ appears twice"},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, ATTN_ERR_FORMAT,
     "__metadata__ key 'k' appears twice"},
    {"{\"a\xff\":" F32_2("[0,8]") "}", 8, ATTN_ERR_FORMAT, "header is not valid UTF-8"},
    {"{\"a\xed\xa0\x80\":" F32_2("[0,8]") "}", 8, ATTN_ERR_FORMAT, "not valid UTF-8"},
};

static void expect_parse_failure(const unsigned char *bytes, size_t size, attn_status status,
                                 const char *message)
{
    attn_safetensors *st = (attn_safetensors *)&st; /* must be reset to NULL */
    attn_clear_error();
    attn_status s = attn_safetensors_parse(&st, bytes, size);
    if (s != status)
        fail_msg("status %d (%s), want %d; message: %s", s, attn_status_string(s), status,
                 attn_last_error());
    assert_null(st);
    if (strstr(attn_last_error(), message) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", attn_last_error(), message);
}

static void test_corrupt_headers_are_rejected(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CORRUPT_CASES / sizeof CORRUPT_CASES[0]; i++) {
        const corrupt_case *c = &CORRUPT_CASES[i];
        blob b = make_file(c->header, NULL, c->data_size);
        print_message("case %zu: %s\n", i, c->header);
        expect_parse_failure(b.bytes, b.size, c->status, c->message);
        free(b.bytes);
    }
}

static void test_corrupt_lengths_are_rejected(void **state)
{
    (void)state;
    const unsigned char tiny[3] = {1, 0, 0};
    expect_parse_failure(tiny, sizeof tiny, ATTN_ERR_FORMAT,
                         "file is 3 bytes, shorter than the 8-byte header length");
    expect_parse_failure(tiny, 0, ATTN_ERR_FORMAT, "file is 0 bytes");

    const char *header = "{}";
    blob b = make_file_with_length(100, header, 2, NULL, 0);
    expect_parse_failure(b.bytes, b.size, ATTN_ERR_FORMAT,
                         "header length 100 is larger than the 2 bytes that follow it");
    free(b.bytes);

    b = make_file_with_length(200000000, header, 2, NULL, 0);
    expect_parse_failure(b.bytes, b.size, ATTN_ERR_FORMAT,
                         "header length 200000000 is over the limit of 100000000 bytes");
    free(b.bytes);

    b = make_file_with_length(UINT64_MAX, header, 2, NULL, 0);
    expect_parse_failure(b.bytes, b.size, ATTN_ERR_FORMAT, "is over the limit");
    free(b.bytes);

    const char nul_header[] = "{\"a\"\0:1}";
    b = make_file_with_length(sizeof nul_header - 1, nul_header, sizeof nul_header - 1, NULL, 0);
    expect_parse_failure(b.bytes, b.size, ATTN_ERR_FORMAT, "header has a NUL byte at offset 4");
    free(b.bytes);
}

/* Every prefix of a valid file is rejected cleanly (and none crashes). */
static void test_truncated_files_are_rejected(void **state)
{
    (void)state;
    const float values[4] = {1, 2, 3, 4};
    blob b = make_file("{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],"
                       "\"data_offsets\":[0,16]}}   ",
                       values, sizeof values);
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_parse(&st, b.bytes, b.size), ATTN_OK);
    attn_safetensors_close(st);
    for (size_t n = 0; n < b.size; n++) {
        unsigned char *copy = malloc(n + 1); /* exact size, so ASan sees any overread */
        assert_non_null(copy);
        memcpy(copy, b.bytes, n);
        st = NULL;
        assert_int_equal(attn_safetensors_parse(&st, copy, n), ATTN_ERR_FORMAT);
        assert_null(st);
        assert_true(strlen(attn_last_error()) > 0);
        free(copy);
    }
    free(b.bytes);
}

static void test_padded_header_and_extra_fields_accepted(void **state)
{
    (void)state;
    const uint8_t data[2] = {5, 6};
    blob b = make_file("{  \"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],"
                       "\"extra\":true}, \"z\":{\"dtype\":\"U8\",\"shape\":[0],"
                       "\"data_offsets\":[2,2]}}\n      ",
                       data, sizeof data);
    attn_safetensors *st = NULL;
    attn_status s = attn_safetensors_parse(&st, b.bytes, b.size);
    if (s != ATTN_OK) fail_msg("%s", attn_last_error());
    assert_int_equal(attn_safetensors_count(st), 2);
    assert_int_equal(attn_safetensors_find(st, "z")->numel, 0);
    attn_safetensors_close(st);
    free(b.bytes);
}

static void test_open_errors(void **state)
{
    (void)state;
    char *dir = test_temp_dir("st");
    char path[512];
    attn_safetensors *st = NULL;

    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_ERR_IO);
    assert_null(st);
    assert_non_null(strstr(attn_last_error(), "cannot open"));
    assert_non_null(strstr(attn_last_error(), "absent.safetensors"));

    assert_int_equal(attn_safetensors_open(&st, dir), ATTN_ERR_IO);
    assert_non_null(strstr(attn_last_error(), "is not a regular file"));

    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    write_bytes(path, "", 0);
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_ERR_FORMAT);
    assert_non_null(strstr(attn_last_error(), "file is 0 bytes"));

    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    blob b = make_file("{\"a\":" F32_2("[0,8]") "}", NULL, 4);
    write_bytes(path, b.bytes, b.size);
    free(b.bytes);
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_ERR_FORMAT);
    assert_null(st);
    assert_non_null(strstr(attn_last_error(), "bad.safetensors: tensor 'a': data_offsets"));

    assert_int_equal(attn_safetensors_open(NULL, path), ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(attn_safetensors_open(&st, NULL), ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(attn_safetensors_parse(&st, NULL, 8), ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(attn_safetensors_count(NULL), 0);
    assert_null(attn_safetensors_find(NULL, "a"));
    attn_safetensors_close(NULL);
    test_temp_dir_remove(dir);
}

/* ---- saving: bad arguments and atomicity ---------------------------------------- */

typedef struct save_case {
    attn_tensor_out tensors[2];
    int count;
    attn_metadata_pair meta[2];
    int meta_count;
    const char *message;
} save_case;

static void test_save_rejects_bad_arguments(void **state)
{
    (void)state;
    char *dir = test_temp_dir("st");
    char path[512];
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    static const float data[4] = {0};
    static const int64_t s2[1] = {2}, neg[2] = {2, -3};
    static const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const save_case cases[] = {
        {{{"a", ATTN_DTYPE_F32, 1, s2, data}, {"a", ATTN_DTYPE_F32, 1, s2, data}}, 2, {{0}}, 0,
         "tensor name 'a' appears twice"},
        {{{"__metadata__", ATTN_DTYPE_F32, 1, s2, data}}, 1, {{0}}, 0,
         "may not be named '__metadata__'"},
        {{{NULL, ATTN_DTYPE_F32, 1, s2, data}}, 1, {{0}}, 0, "tensor 0 has a NULL name"},
        {{{"a", ATTN_DTYPE_F32, 1, s2, NULL}}, 1, {{0}}, 0, "tensor 'a' has NULL data"},
        {{{"a", ATTN_DTYPE_F32, 1, NULL, data}}, 1, {{0}}, 0, "tensor 'a' has a NULL shape"},
        {{{"a", ATTN_DTYPE_F32, 9, nine, data}}, 1, {{0}}, 0,
         "tensor 'a' has ndim 9, outside 0..8"},
        {{{"a", ATTN_DTYPE_F32, -1, s2, data}}, 1, {{0}}, 0, "tensor 'a' has ndim -1"},
        {{{"a", ATTN_DTYPE_F32, 2, neg, data}}, 1, {{0}}, 0, "tensor 'a' dimension 1 is -3"},
        {{{"a", (attn_dtype)42, 1, s2, data}}, 1, {{0}}, 0, "tensor 'a' has invalid dtype 42"},
        {{{"a\xc0\x80", ATTN_DTYPE_F32, 1, s2, data}}, 1, {{0}}, 0, "name is not valid UTF-8"},
        {{{"a", ATTN_DTYPE_F32, 1, s2, data}}, 1, {{"k", "1"}, {"k", "2"}}, 2,
         "metadata key 'k' appears twice"},
        {{{"a", ATTN_DTYPE_F32, 1, s2, data}}, 1, {{"k", NULL}}, 1,
         "metadata 'k' has a NULL value"},
        {{{"a", ATTN_DTYPE_F32, 1, s2, data}}, 1, {{NULL, "v"}}, 1,
         "metadata pair 0 has a NULL name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const save_case *c = &cases[i];
        attn_status s = attn_safetensors_save(path, c->tensors, c->count, c->meta, c->meta_count);
        assert_int_equal(s, ATTN_ERR_INVALID_ARGUMENT);
        if (strstr(attn_last_error(), c->message) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, attn_last_error(), c->message);
        assert_false(file_exists(path));
    }
    assert_int_equal(attn_safetensors_save(NULL, cases[0].tensors, 1, NULL, 0),
                     ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(attn_safetensors_save(path, NULL, 1, NULL, 0), ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(attn_safetensors_save(path, cases[0].tensors, -1, NULL, 0),
                     ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(attn_safetensors_save(path, cases[0].tensors, 1, NULL, 1),
                     ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(count_temp_files(dir), 0);
    test_temp_dir_remove(dir);
}

static void test_save_into_missing_directory_fails_cleanly(void **state)
{
    (void)state;
    char *dir = test_temp_dir("st");
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/missing/x.safetensors", dir);
    const float data[2] = {1, 2};
    const int64_t shape[1] = {2};
    const attn_tensor_out t = {"a", ATTN_DTYPE_F32, 1, shape, data};
    assert_int_equal(attn_safetensors_save(path, &t, 1, NULL, 0), ATTN_ERR_IO);
    assert_non_null(strstr(attn_last_error(), "cannot create"));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_false(file_exists(tmp));
    assert_false(file_exists(path));
    assert_int_equal(count_temp_files(dir), 0);
    test_temp_dir_remove(dir);
}

/* Writes a one-tensor file at path holding `value` in every element. */
static attn_status save_filled(const char *path, size_t n, float value)
{
    float *data = malloc(n * sizeof *data);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++) data[i] = value;
    const int64_t shape[1] = {(int64_t)n};
    const attn_tensor_out t = {"w", ATTN_DTYPE_F32, 1, shape, data};
    attn_status s = attn_safetensors_save(path, &t, 1, NULL, 0);
    free(data);
    return s;
}

static void assert_file_holds(const char *path, size_t n, float value)
{
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_OK);
    const attn_tensor_view *t = attn_safetensors_find(st, "w");
    assert_non_null(t);
    assert_int_equal(t->numel, n);
    float *out = malloc(n * sizeof *out);
    assert_non_null(out);
    assert_int_equal(attn_tensor_read_f32(t, out, n), ATTN_OK);
    for (size_t i = 0; i < n; i++) assert_true(out[i] == value);
    free(out);
    attn_safetensors_close(st);
}

/* A save that fails part-way (the write hits the file size limit) leaves the
 * previous file as it was and no temporary file behind. */
static void test_failed_save_keeps_old_file(void **state)
{
    (void)state;
    char *dir = test_temp_dir("st");
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(save_filled(path, 16, 1.0f), ATTN_OK);

    /* Invalid arguments: nothing is touched. */
    const int64_t bad_shape[1] = {-1};
    const attn_tensor_out bad = {"w", ATTN_DTYPE_F32, 1, bad_shape, NULL};
    assert_int_equal(attn_safetensors_save(path, &bad, 1, NULL, 0), ATTN_ERR_INVALID_ARGUMENT);
    assert_file_holds(path, 16, 1.0f);

    /* A write that fails in the middle of the data. */
    struct rlimit old_limit, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
    small = old_limit;
    small.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    attn_status s = save_filled(path, 100000, 2.0f);
    setrlimit(RLIMIT_FSIZE, &old_limit);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(s, ATTN_ERR_IO);
    assert_non_null(strstr(attn_last_error(), "cannot write"));
    assert_file_holds(path, 16, 1.0f);
    assert_int_equal(count_temp_files(dir), 0);

    /* The rename fails when path is a directory; the temporary goes away. */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/adir", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    char inner[700];
    snprintf(inner, sizeof inner, "%s/keep", sub);
    write_bytes(inner, "x", 1);
    assert_int_equal(save_filled(sub, 4, 3.0f), ATTN_ERR_IO);
    assert_non_null(strstr(attn_last_error(), "cannot rename"));
    assert_int_equal(count_temp_files(dir), 0);
    remove(inner);

    /* And a successful save replaces the file. */
    assert_int_equal(save_filled(path, 8, 4.0f), ATTN_OK);
    assert_file_holds(path, 8, 4.0f);
    assert_int_equal(count_temp_files(dir), 0);
    test_temp_dir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_every_value_exact),
        cmocka_unit_test(test_bf16_exact),
        cmocka_unit_test(test_f64_rounds_to_nearest),
        cmocka_unit_test(test_integer_and_bool_dtypes),
        cmocka_unit_test(test_unaligned_f32),
        cmocka_unit_test(test_dtype_names_and_sizes),
        cmocka_unit_test(test_save_round_trip_every_dtype),
        cmocka_unit_test(test_saved_bytes_match_reference_layout),
        cmocka_unit_test(test_large_shape_written_as_integer),
        cmocka_unit_test(test_empty_file_set),
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_changed_byte_is_caught),
        cmocka_unit_test(test_corrupt_headers_are_rejected),
        cmocka_unit_test(test_corrupt_lengths_are_rejected),
        cmocka_unit_test(test_truncated_files_are_rejected),
        cmocka_unit_test(test_padded_header_and_extra_fields_accepted),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_save_rejects_bad_arguments),
        cmocka_unit_test(test_save_into_missing_directory_fails_cleanly),
        cmocka_unit_test(test_failed_save_keeps_old_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
