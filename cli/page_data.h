/* The fixed parts of attn show --html's page, made at build time from the files
 * in cli/page (cmake/embed_page.cmake): the document up to and including the
 * line that opens the record's element, and the document from the end of the
 * record on. */
#ifndef ATTN_CLI_PAGE_DATA_H
#define ATTN_CLI_PAGE_DATA_H

#include <stddef.h>

extern const unsigned char cli_page_head[];
extern const size_t cli_page_head_size;
extern const unsigned char cli_page_tail[];
extern const size_t cli_page_tail_size;

#endif
