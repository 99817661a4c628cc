/* attn show --html: one self-contained HTML page that draws a record's
 * attention (attn/capture.h). A person picks a map and a head (or the mean over
 * the heads) and switches between two views: "lines", the key tokens in a
 * column beside the query tokens, where hovering (or focusing) a token draws a
 * line to each key it attends to, or from each query that attends to it, wider
 * and darker by weight, with the weights beside the tokens; and "matrix", a
 * heatmap with a row per query and a column per key whose cells show their
 * weight when hovered. The page loads nothing: its style, script and the
 * record itself are inside it. */
#ifndef ATTN_CLI_HTML_PAGE_H
#define ATTN_CLI_HTML_PAGE_H

#include "attn/capture.h"

/* Writes the page of r to path atomically (attn_write_file_atomically, so a
 * failure leaves no partial page). Prints nothing on success; on failure (a
 * map whose sizes disagree with the tokens, a weight outside [0, 1], a file
 * that cannot be written) prints why to stderr. Returns EXIT_OK or
 * EXIT_RUNTIME. */
int cli_show_html(const attn_record *r, const char *path);

#endif
