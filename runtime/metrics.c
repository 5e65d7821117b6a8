/*
 * metrics.c: the job's metric registry (weir/metrics.h).
 *
 * Series live in a singly linked list owned by the job, appended under job->metrics_mu and
 * never removed before weir_job_destroy, so a weir_metric pointer handed out stays valid and
 * updates need no lock: one relaxed atomic add or store. Readers take the mutex only to walk
 * the list.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_int.h"
#include "log_int.h"
#include "task_int.h"
#include "weir/metrics.h"

struct weir_metric {
  _Atomic int64_t value;
  weir_metric_kind kind;
  uint64_t seq; /* registration order */
  char *name;   /* owned */
  char *help;   /* owned, "" when none */
  char *labels; /* owned: rendered label list without braces */
  struct weir_metric *next;
};

/* Bound on a rendered label list: 8 labels of escaped values. */
#define LABELS_MAX 4096

static bool valid_name(const char *s) {
  size_t i;

  if (s == NULL || s[0] == '\0')
    return false;
  for (i = 0; s[i] != '\0'; i++) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';

    if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
      return false;
  }
  return i <= 200;
}

/* Appends `s` to buf at *len, escaping per the exposition format. false when it does not fit. */
static bool append_escaped(char *buf, size_t *len, const char *s) {
  for (; *s != '\0'; s++) {
    const char *rep = NULL;
    char one[2] = {*s, '\0'};

    if (*s == '\\')
      rep = "\\\\";
    else if (*s == '"')
      rep = "\\\"";
    else if (*s == '\n')
      rep = "\\n";
    else
      rep = one;
    if (*len + strlen(rep) >= LABELS_MAX)
      return false;
    memcpy(buf + *len, rep, strlen(rep));
    *len += strlen(rep);
  }
  buf[*len] = '\0';
  return true;
}

/* Renders `extra` pairs (node/subtask) then the user's pairs into buf. 0 or WEIR_EINVAL. */
static int render_labels(char *buf, const char *const *extra, const char *const *labels) {
  const char *const *lists[2] = {extra, labels};
  size_t len = 0;
  int n = 0;
  int l;

  buf[0] = '\0';
  for (l = 0; l < 2; l++) {
    const char *const *p;

    for (p = lists[l]; p != NULL && p[0] != NULL; p += 2) {
      if (p[1] == NULL || !valid_name(p[0]) || strchr(p[0], ':') != NULL)
        return WEIR_EINVAL;
      if (++n > WEIR_METRIC_MAX_LABELS)
        return WEIR_EINVAL;
      if (len + strlen(p[0]) + 4 >= LABELS_MAX)
        return WEIR_EINVAL;
      len += (size_t)snprintf(buf + len, LABELS_MAX - len, "%s%s=\"", len > 0 ? "," : "", p[0]);
      if (!append_escaped(buf, &len, p[1]) || len + 2 >= LABELS_MAX)
        return WEIR_EINVAL;
      buf[len++] = '"';
      buf[len] = '\0';
    }
  }
  return 0;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);

  if (d != NULL)
    memcpy(d, s, n);
  return d;
}

static int metric_register(weir_job *job, weir_metric_kind kind, const char *name, const char *help,
                           const char *const *extra, const char *const *labels, weir_metric **out) {
  char *rendered = NULL;
  struct weir_metric *m;
  struct weir_metric *found = NULL;
  int rc = 0;

  if (job == NULL || out == NULL || !valid_name(name) ||
      (kind != WEIR_METRIC_COUNTER && kind != WEIR_METRIC_GAUGE) ||
      (help != NULL && strchr(help, '\n') != NULL))
    return WEIR_EINVAL;
  rendered = malloc(LABELS_MAX);
  if (rendered == NULL)
    return WEIR_ENOMEM;
  if ((rc = render_labels(rendered, extra, labels)) != 0)
    goto done;

  WEIR_ASSERT(pthread_mutex_lock(&job->metrics_mu) == 0);
  for (m = job->metrics_head; m != NULL; m = m->next) {
    if (strcmp(m->name, name) != 0)
      continue;
    if (m->kind != kind) {
      rc = WEIR_EINVAL;
      break;
    }
    if (strcmp(m->labels, rendered) == 0) {
      found = m;
      break;
    }
  }
  if (rc == 0 && found == NULL) {
    found = calloc(1, sizeof(*found));
    if (found != NULL) {
      found->name = dup_str(name);
      found->help = dup_str(help != NULL ? help : "");
      found->labels = dup_str(rendered);
    }
    if (found == NULL || found->name == NULL || found->help == NULL || found->labels == NULL) {
      if (found != NULL) {
        free(found->name);
        free(found->help);
        free(found->labels);
        free(found);
      }
      found = NULL;
      rc = WEIR_ENOMEM;
    } else {
      atomic_init(&found->value, 0);
      found->kind = kind;
      found->seq = job->metrics_seq++;
      if (job->metrics_tail != NULL)
        job->metrics_tail->next = found;
      else
        job->metrics_head = found;
      job->metrics_tail = found;
    }
  }
  WEIR_ASSERT(pthread_mutex_unlock(&job->metrics_mu) == 0);
  if (rc == 0)
    *out = found;
done:
  free(rendered);
  return rc;
}

int weir_job_metric(weir_job *job, weir_metric_kind kind, const char *name, const char *help,
                    const char *const *labels, weir_metric **out) {
  return metric_register(job, kind, name, help, NULL, labels, out);
}

int weir_ctx_metric(weir_ctx *ctx, weir_metric_kind kind, const char *name, const char *help,
                    const char *const *labels, weir_metric **out) {
  char sub[16];
  const char *extra[5];

  if (ctx == NULL)
    return WEIR_EINVAL;
  snprintf(sub, sizeof(sub), "%d", weir_ctx_subtask(ctx));
  extra[0] = "node";
  extra[1] = ctx->node->name;
  extra[2] = "subtask";
  extra[3] = sub;
  extra[4] = NULL;
  return metric_register(ctx->task->job, kind, name, help, extra, labels, out);
}

void weir_metric_add(weir_metric *m, int64_t delta) {
  if (m != NULL)
    atomic_fetch_add_explicit(&m->value, delta, memory_order_relaxed);
}

void weir_metric_set(weir_metric *m, int64_t value) {
  if (m != NULL)
    atomic_store_explicit(&m->value, value, memory_order_relaxed);
}

int64_t weir_metric_value(const weir_metric *m) {
  return m != NULL ? atomic_load_explicit(&((weir_metric *)m)->value, memory_order_relaxed) : 0;
}

int weir_job_metrics_foreach(weir_job *job, int (*cb)(void *arg, const weir_metric_info *m),
                             void *arg) {
  struct weir_metric *m;
  int rc = 0;

  if (job == NULL || cb == NULL)
    return WEIR_EINVAL;
  WEIR_ASSERT(pthread_mutex_lock(&job->metrics_mu) == 0);
  for (m = job->metrics_head; m != NULL && rc == 0; m = m->next) {
    weir_metric_info info = {m->name, m->help, m->labels, m->kind, weir_metric_value(m)};

    rc = cb(arg, &info);
  }
  WEIR_ASSERT(pthread_mutex_unlock(&job->metrics_mu) == 0);
  return rc;
}

/* Order for rendering: by name, then registration order inside a name. */
static int cmp_series(const void *a, const void *b) {
  const struct weir_metric *x = *(const struct weir_metric *const *)a;
  const struct weir_metric *y = *(const struct weir_metric *const *)b;
  int c = strcmp(x->name, y->name);

  if (c != 0)
    return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct text_buf {
  char *p;
  size_t len;
  size_t cap;
  bool oom;
};

static void text_printf(struct text_buf *t, const char *fmt, ...) WEIR_PRINTF(2, 3);
static void text_printf(struct text_buf *t, const char *fmt, ...) {
  va_list ap;
  int n;

  if (t->oom)
    return;
  for (;;) {
    va_start(ap, fmt);
    n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->oom = true;
      return;
    }
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    {
      size_t ncap = t->cap * 2 + (size_t)n;
      char *np = realloc(t->p, ncap);

      if (np == NULL) {
        t->oom = true;
        return;
      }
      t->p = np;
      t->cap = ncap;
    }
  }
}

int weir_job_metrics_text(weir_job *job, char **out, size_t *len) {
  struct weir_metric **v = NULL;
  struct weir_metric *m;
  struct text_buf t = {NULL, 0, 4096, false};
  size_t n = 0;
  size_t i;

  if (job == NULL || out == NULL)
    return WEIR_EINVAL;
  t.p = malloc(t.cap);
  if (t.p == NULL)
    return WEIR_ENOMEM;
  t.p[0] = '\0';
  WEIR_ASSERT(pthread_mutex_lock(&job->metrics_mu) == 0);
  for (m = job->metrics_head; m != NULL; m = m->next)
    n++;
  if (n > 0 && (v = malloc(n * sizeof(*v))) == NULL)
    t.oom = true;
  for (i = 0, m = job->metrics_head; v != NULL && m != NULL; m = m->next)
    v[i++] = m;
  if (v != NULL)
    qsort(v, n, sizeof(*v), cmp_series);
  for (i = 0; v != NULL && i < n; i++) {
    m = v[i];
    if (i == 0 || strcmp(v[i - 1]->name, m->name) != 0) {
      if (m->help[0] != '\0')
        text_printf(&t, "# HELP %s %s\n", m->name, m->help);
      text_printf(&t, "# TYPE %s %s\n", m->name,
                  m->kind == WEIR_METRIC_COUNTER ? "counter" : "gauge");
    }
    if (m->labels[0] != '\0')
      text_printf(&t, "%s{%s} %lld\n", m->name, m->labels, (long long)weir_metric_value(m));
    else
      text_printf(&t, "%s %lld\n", m->name, (long long)weir_metric_value(m));
  }
  WEIR_ASSERT(pthread_mutex_unlock(&job->metrics_mu) == 0);
  free(v);
  if (t.oom) {
    free(t.p);
    return WEIR_ENOMEM;
  }
  *out = t.p;
  if (len != NULL)
    *len = t.len;
  return 0;
}

int64_t weir_job_metric_sum(weir_job *job, const char *name, const char *label_filter) {
  struct weir_metric *m;
  int64_t sum = 0;

  if (job == NULL || name == NULL)
    return 0;
  WEIR_ASSERT(pthread_mutex_lock(&job->metrics_mu) == 0);
  for (m = job->metrics_head; m != NULL; m = m->next)
    if (strcmp(m->name, name) == 0 &&
        (label_filter == NULL || strstr(m->labels, label_filter) != NULL))
      sum += weir_metric_value(m);
  WEIR_ASSERT(pthread_mutex_unlock(&job->metrics_mu) == 0);
  return sum;
}

void weir__metrics_free(weir_job *job) {
  struct weir_metric *m = job->metrics_head;

  while (m != NULL) {
    struct weir_metric *next = m->next;

    free(m->name);
    free(m->help);
    free(m->labels);
    free(m);
    m = next;
  }
  job->metrics_head = job->metrics_tail = NULL;
}
