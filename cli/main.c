#include <stdio.h>
#include "attn/attn.h"
int main(void) { printf("attn %s\n", ATTN_VERSION_STRING); return 0; }
