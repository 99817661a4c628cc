# Makes the C source that holds attn show --html's page (cli/html_page.c) from
# the page's real files, so that they can be edited, linted and opened as what
# they are. Run at build time by the rule in CMakeLists.txt:
#   cmake -DPAGE_DIR=<cli/page> -DOUT=<file.c> -P embed_page.cmake
#
# attention.html is the document; the build inlines attention.css where it links
# it and each script (neuron.js, attention.js) where it loads it, since the page
# must load nothing (its content security policy forbids it). The record's JSON
# goes right after the line that opens its <script type="application/json"
# id="record"> element, so
# the page is two byte arrays: cli_page_head, up to that line, and
# cli_page_tail, the rest. Bytes, not a string literal: C limits the length of
# a literal, and no character needs escaping.
cmake_minimum_required(VERSION 3.18) # string(HEX)

foreach(name PAGE_DIR OUT)
  if(NOT DEFINED ${name})
    message(FATAL_ERROR "embed_page.cmake: -D${name}=... is missing")
  endif()
endforeach()

file(READ "${PAGE_DIR}/attention.html" page)
file(READ "${PAGE_DIR}/attention.css" css)
file(READ "${PAGE_DIR}/attention.js" js)
file(READ "${PAGE_DIR}/neuron.js" neuron_js)

# Replaces the line `line` of the page by `replacement`; the line must be there once.
function(replace_line line replacement)
  string(FIND "${page}" "${line}\n" at)
  string(FIND "${page}" "${line}\n" last REVERSE)
  if(at EQUAL -1 OR NOT at EQUAL last)
    message(FATAL_ERROR "attention.html must hold the line '${line}' once")
  endif()
  string(REPLACE "${line}\n" "${replacement}" page "${page}")
  set(page "${page}" PARENT_SCOPE)
endfunction()

replace_line([[<link rel="stylesheet" href="attention.css">]] "<style>\n${css}</style>\n")
replace_line([[<script src="neuron.js"></script>]] "<script>\n${neuron_js}</script>\n")
replace_line([[<script src="attention.js"></script>]] "<script>\n${js}</script>\n")

set(record_line [[<script type="application/json" id="record">]])
string(FIND "${page}" "${record_line}\n" at)
if(at EQUAL -1)
  message(FATAL_ERROR "attention.html has no line '${record_line}'")
endif()
string(LENGTH "${record_line}\n" length)
math(EXPR split "${at} + ${length}")
string(SUBSTRING "${page}" 0 ${split} head)
string(SUBSTRING "${page}" ${split} -1 tail)

# The C initialiser of text's bytes, 16 a line.
function(c_bytes text out)
  string(HEX "${text}" hex)
  string(REGEX REPLACE "(..)" "0x\\1," hex "${hex}")
  string(REPEAT "0x..," 16 sixteen)
  string(REGEX REPLACE "(${sixteen})" "\\1\n    " hex "${hex}")
  string(STRIP "${hex}" hex)
  set(${out} "${hex}" PARENT_SCOPE)
endfunction()

c_bytes("${head}" head_bytes)
c_bytes("${tail}" tail_bytes)
file(WRITE "${OUT}" "/* Made by cmake/embed_page.cmake from cli/page; do not edit. */
#include \"page_data.h\"

const unsigned char cli_page_head[] = {
    ${head_bytes}
};
const size_t cli_page_head_size = sizeof cli_page_head;

const unsigned char cli_page_tail[] = {
    ${tail_bytes}
};
const size_t cli_page_tail_size = sizeof cli_page_tail;
")
