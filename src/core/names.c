/* Enum names from one table each (names.h). */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/names.h"

/* The entry of value in t, or -1. */
static int find_value(const attn_names *t, int value)
{
    for (int i = 0; i < t->count; i++)
        if (t->names[i].value == value) return i;
    return -1;
}

bool attn_names_has(const attn_names *t, int value)
{
    return find_value(t, value) >= 0;
}

const char *attn_names_name(const attn_names *t, int value)
{
    int i = find_value(t, value);
    return i < 0 ? "unknown" : t->names[i].name;
}

/* "a, b and c" into buf (always terminated; cut short if it does not fit). */
static void list_names(const attn_names *t, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->count && used < size; i++) {
        const char *sep = i == 0 ? "" : i == t->count - 1 ? " and " : ", ";
        int n = snprintf(buf + used, size - used, "%s%s", sep, t->names[i].name);
        if (n < 0) return;
        used += (size_t)n;
    }
}

attn_status attn_names_parse(const attn_names *t, const void *out, const char *name, int *value)
{
    attn_status s = attn_check_not_null(out, t->what);
    if (s != ATTN_OK) return s;
    if (name == NULL) return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s name is NULL", t->what);
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->names[i].name, name) == 0) {
            *value = t->names[i].value;
            return ATTN_OK;
        }
    char list[256];
    list_names(t, list, sizeof list);
    return attn_error(ATTN_ERR_INVALID_ARGUMENT, "unknown %s '%s'; the %s are %s", t->what, name,
                      t->plural, list);
}
