/* The digit-string tasks: a string of 1 to DIGITS_MAX_LEN decimal digits, to be
 * reversed, sorted ascending or copied. */
#include <string.h>

#include "data/data_internal.h"

void attn_digits_draw(attn_rng *rng, char *src)
{
    int len = 1 + (int)attn_rng_below(rng, DIGITS_MAX_LEN);
    /* Nine uniform digits from each draw below 10^9, not one draw per digit. */
    uint32_t group = 0;
    for (int i = 0; i < len; i++) {
        if (i % 9 == 0) group = attn_rng_below(rng, 1000000000u);
        src[i] = (char)('0' + group % 10);
        group /= 10;
    }
    src[len] = '\0';
}

void attn_digits_target(attn_task_kind kind, const char *src, char *tgt)
{
    int len = (int)strlen(src);
    if (kind == ATTN_TASK_REVERSE) {
        for (int i = 0; i < len; i++) tgt[i] = src[len - 1 - i];
    } else if (kind == ATTN_TASK_SORT) {
        /* A counting sort: ten buckets. */
        int counts[10] = {0};
        for (int i = 0; i < len; i++) counts[src[i] - '0']++;
        int n = 0;
        for (int digit = 0; digit < 10; digit++)
            for (int k = 0; k < counts[digit]; k++) tgt[n++] = (char)('0' + digit);
    } else {
        memcpy(tgt, src, (size_t)len);
    }
    tgt[len] = '\0';
}
