/* The library's version at run time. */
#include "attn/core.h"

const char *attn_version(void) { return ATTN_VERSION_STRING; }
