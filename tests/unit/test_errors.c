/* test_errors.c: the error table (WEIR_ERRNO_MAP) and its lookups. */
#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

#include "weir/weir.h"

struct err_row {
  const char *name; /* "WEIR_EINVAL" */
  int value;
  const char *msg;
  int enum_value; /* the weir_errno constant of the same name */
};

static const struct err_row rows[] = {
#define ROW(name, val, msg) {"WEIR_" #name, (val), (msg), WEIR_##name},
    WEIR_ERRNO_MAP(ROW)
#undef ROW
};

#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

Test(errors, every_code_has_its_message_and_name) {
  size_t i;

  cr_assert_gt(N_ROWS, 0);
  for (i = 0; i < N_ROWS; i++) {
    const char *msg = weir_strerror(rows[i].value);
    const char *name = weir_err_name(rows[i].value);

    cr_assert_not_null(msg);
    cr_assert_not_null(name);
    cr_assert_str_eq(msg, rows[i].msg, "weir_strerror(%d) = \"%s\", want \"%s\"", rows[i].value,
                     msg, rows[i].msg);
    cr_assert_str_eq(name, rows[i].name, "weir_err_name(%d) = \"%s\", want \"%s\"", rows[i].value,
                     name, rows[i].name);
  }
}

Test(errors, codes_are_negative_distinct_and_match_the_enum) {
  size_t i, j;

  for (i = 0; i < N_ROWS; i++) {
    cr_assert_lt(rows[i].value, 0, "%s is not negative", rows[i].name);
    cr_assert_gt(rows[i].value, WEIR_ERRNO_MIN, "%s is not above WEIR_ERRNO_MIN", rows[i].name);
    cr_assert_eq(rows[i].value, rows[i].enum_value, "%s: table %d, enum %d", rows[i].name,
                 rows[i].value, rows[i].enum_value);
    cr_assert_gt(strlen(rows[i].msg), 0, "%s has an empty message", rows[i].name);
    for (j = 0; j < i; j++) {
      cr_assert_neq(rows[i].value, rows[j].value, "%s and %s share a value", rows[i].name,
                    rows[j].name);
      cr_assert_str_neq(rows[i].name, rows[j].name);
      cr_assert_str_neq(rows[i].msg, rows[j].msg, "%s and %s share a message", rows[i].name,
                        rows[j].name);
    }
  }
}

Test(errors, spot_checks) {
  /* A few literal values, so a change to the table itself is noticed too. */
  cr_assert_eq(WEIR_EINVAL, -1);
  cr_assert_str_eq(weir_err_name(WEIR_EINVAL), "WEIR_EINVAL");
  cr_assert_str_eq(weir_strerror(WEIR_EINVAL), "invalid argument");
  cr_assert_str_eq(weir_err_name(WEIR_EOF), "WEIR_EOF");
  cr_assert_str_eq(weir_err_name(WEIR_EGRAPH), "WEIR_EGRAPH");
  cr_assert_str_eq(weir_strerror(WEIR_ETIMEDOUT), "timed out");
}

Test(errors, zero_is_success) {
  cr_assert_str_eq(weir_strerror(0), "success");
  cr_assert_str_eq(weir_err_name(0), "WEIR_OK");
}

Test(errors, unknown_codes) {
  static const int unknown[] = {1, 2, 100, INT_MAX, WEIR_ERRNO_MIN, -100, INT_MIN};
  size_t i;

  for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
    const char *msg = weir_strerror(unknown[i]);

    cr_assert_not_null(msg, "weir_strerror(%d) is NULL", unknown[i]);
    cr_assert_str_eq(msg, "unknown error", "weir_strerror(%d) = \"%s\"", unknown[i], msg);
    cr_assert_str_eq(weir_err_name(unknown[i]), "WEIR_UNKNOWN", "weir_err_name(%d)", unknown[i]);
  }
}

Test(errors, every_value_down_to_errno_min_is_known_or_unknown) {
  int v;
  size_t known = 0;

  /* Walks the whole range, so a code handled by the lookups but missing from the table (or the
   * other way round) shows up. */
  for (v = WEIR_ERRNO_MIN; v < 0; v++) {
    bool in_table = false;
    size_t i;

    for (i = 0; i < N_ROWS; i++)
      in_table |= rows[i].value == v;
    known += in_table;
    if (in_table) {
      cr_assert_str_neq(weir_err_name(v), "WEIR_UNKNOWN", "%d", v);
      cr_assert_str_neq(weir_strerror(v), "unknown error", "%d", v);
    } else {
      cr_assert_str_eq(weir_err_name(v), "WEIR_UNKNOWN", "%d", v);
      cr_assert_str_eq(weir_strerror(v), "unknown error", "%d", v);
    }
  }
  cr_assert_eq(known, N_ROWS);
}
