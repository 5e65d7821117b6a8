/* error.c: the error table's lookups (the table itself is WEIR_ERRNO_MAP in weir/common.h). */
#include "weir/common.h"

const char *weir_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define WEIR_ERR_MSG(name, val, msg)                                                               \
  case (val):                                                                                      \
    return (msg);
    WEIR_ERRNO_MAP(WEIR_ERR_MSG)
#undef WEIR_ERR_MSG
  default:
    return "unknown error";
  }
}

const char *weir_err_name(int err) {
  switch (err) {
  case 0:
    return "WEIR_OK";
#define WEIR_ERR_NAME(name, val, msg)                                                              \
  case (val):                                                                                      \
    return "WEIR_" #name;
    WEIR_ERRNO_MAP(WEIR_ERR_NAME)
#undef WEIR_ERR_NAME
  default:
    return "WEIR_UNKNOWN";
  }
}
