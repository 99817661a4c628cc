# Finds oneDNN's library (libdnnl) and its C header, and defines the imported
# target DNNL::dnnl, unless a DNNL::dnnl target exists already.
#
# oneDNN's own package file is not used: Debian builds oneDNN with its OpenCL GPU
# runtime, so dnnl-config.cmake requires OpenCL's development files, which attn
# never needs. attn calls only the C API's dnnl_sgemm, on the CPU, so the library
# and the header are all there is to find. The build and the installed attn
# package (attnConfig.cmake, for the static library's consumers) both use this.
find_path(DNNL_INCLUDE_DIR oneapi/dnnl/dnnl.h)
find_library(DNNL_LIBRARY NAMES dnnl)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(DNNL REQUIRED_VARS DNNL_LIBRARY DNNL_INCLUDE_DIR)
mark_as_advanced(DNNL_INCLUDE_DIR DNNL_LIBRARY)
if(DNNL_FOUND AND NOT TARGET DNNL::dnnl)
  add_library(DNNL::dnnl UNKNOWN IMPORTED)
  set_target_properties(DNNL::dnnl PROPERTIES IMPORTED_LOCATION "${DNNL_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${DNNL_INCLUDE_DIR}")
endif()
