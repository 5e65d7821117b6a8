/*
 * window_agg.c: the window operator's accumulators (built-in and user) and its JSON results.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics_int.h"
#include "window_int.h"

/* ---- accumulators ------------------------------------------------------------------------- */

void weir__win_acc_create(const struct win_op *o, void *acc) {
  if (o->has_user) {
    memset(acc, 0, o->acc_size);
    o->user.create(o->user.data, acc);
  } else {
    struct builtin_acc a = {0, 0.0, 0.0, 0.0};

    memcpy(acc, &a, sizeof(a));
  }
}

/* Folds `src` into `dst` (session windows merging). */
void weir__win_acc_merge(const struct win_op *o, void *dst, const void *src) {
  struct builtin_acc a, b;

  if (o->has_user) {
    o->user.merge(o->user.data, dst, src);
    return;
  }
  memcpy(&a, dst, sizeof(a));
  memcpy(&b, src, sizeof(b));
  if (b.count > 0) {
    if (a.count == 0 || b.min < a.min)
      a.min = b.min;
    if (a.count == 0 || b.max > a.max)
      a.max = b.max;
    a.count += b.count;
    a.sum += b.sum;
  }
  memcpy(dst, &a, sizeof(a));
}

int weir__win_acc_add(const struct win_op *o, void *acc, const weir_record *r, double num) {
  if (o->has_user)
    return o->user.add(o->user.data, acc, r);
  weir__win_builtin_add(acc, num, !o->needs_number);
  return 0;
}

/* The number sum/min/max/avg use: a JSON field, or the whole value as a decimal. */
int weir__win_read_number(const struct win_op *o, const weir_record *r, double *out) {
  struct weir__json_span s;
  char tmp[64], *end;

  if (o->value_field != NULL) {
    if (weir__json_find(r->value.ptr, r->value.len, &o->vpath, &s) != 0)
      return WEIR_EPARSE;
    return weir__json_number(s, out);
  }
  if (r->value.len == 0 || r->value.len >= sizeof(tmp))
    return WEIR_EPARSE;
  memcpy(tmp, r->value.ptr, r->value.len);
  tmp[r->value.len] = '\0';
  errno = 0;
  *out = strtod(tmp, &end);
  while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
    end++;
  return end == tmp || *end != '\0' || errno == ERANGE ? WEIR_EPARSE : 0;
}

/* ---- results ------------------------------------------------------------------------------ */

static int out_reserve(weir_ctx *ctx, struct win_inst *w, size_t need) {
  char *p;

  if (need <= w->out_cap)
    return 0;
  if ((p = realloc(w->out, need)) == NULL)
    return WEIR_ENOMEM;
  (void)ctx;
  w->out = p;
  w->out_cap = need;
  return 0;
}

/* Writes v in decimal at p (room for 20 bytes); returns the length. Two digits per step,
 * written in place from the last one: building the digits in a buffer and copying them made
 * the copy's loads wait for the byte stores before them (a store-forwarding stall per result). */
static size_t put_i64(char *p, int64_t v) {
  static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                              "34353637383940414243444546474849505152535455565758596061626364656667"
                              "6869707172737475767778798081828384858687888990919293949596979899";
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v, t;
  size_t len = 0, digits = 1;
  char *q;

  if (v < 0)
    p[len++] = '-';
  for (t = u; t >= 10; t /= 10)
    digits++;
  q = p + len + digits;
  while (u >= 100) {
    q -= 2;
    memcpy(q, pairs + (u % 100) * 2, 2);
    u /= 100;
  }
  if (u >= 10) {
    q -= 2;
    memcpy(q, pairs + u * 2, 2);
  } else {
    *--q = (char)('0' + u);
  }
  return len + digits;
}

int weir__win_emit_result(weir_ctx *ctx, struct win_inst *w, weir_buf key, struct slot_hdr *h,
                          int64_t ts) {
  const struct win_op *o = w->op;
  const void *acc = slot_acc(h);
  size_t cap = 6 * key.len + WEIR__WIN_OUT_FIXED +
               (o->has_user ? WEIR__WIN_USER_RESULT_MAX + 6 * strlen(o->user_name) : 0);
  weir_record r = weir_record_init();
  size_t len = 0;
  long n;
  int rc;

  if ((rc = out_reserve(ctx, w, cap)) != 0)
    return rc;
#define PUT(...) len += (size_t)snprintf(w->out + len, cap - len, __VA_ARGS__)
  memcpy(w->out, "{\"key\":", 7);
  len = 7;
  n = weir__json_quote(key.ptr, key.len, w->out + len, cap - len);
  WEIR_ASSERT(n > 0);
  len += (size_t)n;
  if (o->cfg.kind != WEIR_WINDOW_GLOBAL) {
    if (w->se_len == 0 || h->start != w->se_start || h->end != w->se_end) {
      memcpy(w->se, ",\"window_start\":", 16);
      w->se_len = 16 + put_i64(w->se + 16, h->start);
      memcpy(w->se + w->se_len, ",\"window_end\":", 14);
      w->se_len += 14;
      w->se_len += put_i64(w->se + w->se_len, h->end);
      w->se_start = h->start;
      w->se_end = h->end;
    }
    memcpy(w->out + len, w->se, w->se_len);
    len += w->se_len;
  }
  if (o->has_user) {
    PUT(",");
    n = weir__json_quote((const uint8_t *)o->user_name, strlen(o->user_name), w->out + len,
                         cap - len);
    WEIR_ASSERT(n > 0);
    len += (size_t)n;
    PUT(":");
    n = o->user.result(o->user.data, acc, w->user_res, WEIR__WIN_USER_RESULT_MAX);
    if (n < 0)
      return (int)n;
    if ((size_t)n > WEIR__WIN_USER_RESULT_MAX - 1) {
      weir_ctx_set_error(ctx, "user aggregate result longer than %d bytes",
                         WEIR__WIN_USER_RESULT_MAX - 1);
      return WEIR_ETOOBIG;
    }
    memcpy(w->out + len, w->user_res, (size_t)n);
    len += (size_t)n;
  } else {
    struct builtin_acc a;
    unsigned aggs = o->cfg.aggs;
    char num[40];

    memcpy(&a, acc, sizeof(a));
    if (aggs & WEIR_AGG_COUNT) {
      memcpy(w->out + len, ",\"count\":", 9);
      len += 9;
      len += put_i64(w->out + len, a.count);
    }
    if (aggs & WEIR_AGG_SUM) {
      weir__json_fmt_number(a.sum, num, sizeof(num));
      PUT(",\"sum\":%s", num);
    }
    if (aggs & WEIR_AGG_MIN) {
      weir__json_fmt_number(a.min, num, sizeof(num));
      PUT(",\"min\":%s", num);
    }
    if (aggs & WEIR_AGG_MAX) {
      weir__json_fmt_number(a.max, num, sizeof(num));
      PUT(",\"max\":%s", num);
    }
    if (aggs & WEIR_AGG_AVG) {
      weir__json_fmt_number(a.count ? a.sum / (double)a.count : 0.0, num, sizeof(num));
      PUT(",\"avg\":%s", num);
    }
  }
  w->out[len++] = '}';
#undef PUT
  r.key = key;
  r.value.ptr = (const uint8_t *)w->out;
  r.value.len = len;
  r.timestamp = ts;
  return weir_emit(ctx, &r);
}
