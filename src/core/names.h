/* Internal: the names of an enum's values, written once in a table that both
 * names a value and parses a name, so that the message for an unknown name
 * lists exactly the names that parse. */
#ifndef ATTN_SRC_CORE_NAMES_H
#define ATTN_SRC_CORE_NAMES_H

#include <stdbool.h>

#include "attn/core.h"

typedef struct attn_name {
    int value;
    const char *name;
} attn_name;

typedef struct attn_names {
    const char *what;   /* one value: "task" in "unknown task 'x'", "task name is NULL" */
    const char *plural; /* all of them: "tasks" in "; the tasks are dates, ... and copy" */
    const attn_name *names;
    int count;
} attn_names;

/* The attn_names of the array `table` of attn_name. */
#define ATTN_NAMES(what, plural, table) {what, plural, table, (int)(sizeof table / sizeof table[0])}

/* Whether the table names value (a caller may pass any int as an enum). */
bool attn_names_has(const attn_names *t, int value);

/* The name of value, or "unknown" if the table has none. */
const char *attn_names_name(const attn_names *t, int value);

/* Sets *value to the value named `name`, after checking that out (where the
 * caller stores it) and name are not NULL; an unknown name fails with
 * "unknown <what> '<name>'; the <plural> are a, b and c". */
attn_status attn_names_parse(const attn_names *t, const void *out, const char *name, int *value);

/* Defines the public pair `const char *name_fn(type)` and
 * `attn_status parse_fn(type *, const char *)` of an enum type from its
 * attn_names, so that each enum states only its table. */
#define ATTN_NAMES_FUNCTIONS(type, names, name_fn, parse_fn)                                \
    const char *name_fn(type value) { return attn_names_name(&(names), (int)value); }      \
    attn_status parse_fn(type *out, const char *name)                                       \
    {                                                                                       \
        int value = 0;                                                                      \
        attn_status s = attn_names_parse(&(names), out, name, &value);                     \
        if (s == ATTN_OK) *out = (type)value;                                               \
        return s;                                                                           \
    }

#endif
