#!/bin/sh
# Writes clickstream-sample.jsonl, the demo's input (scripts/run.sh): 4000 JSON lines
#   {"page":"/cart","user":"u17","ts":1764115200400}
# one click every 50 ms of event time from 2025-11-26T00:00:00Z (200 s, 21 ten-second windows),
# each ts moved by up to +-1.5 s (out of order, within the pipeline's 5 s bound), pages and
# users drawn from a fixed pseudo-random sequence (the ZX81 LCG: products stay exact in awk),
# so every run of this script writes the same bytes.
# Usage: sh examples/pipelines/gen-clickstream-sample.sh > examples/pipelines/clickstream-sample.jsonl
exec awk 'BEGIN {
  split("/home /products /cart /checkout /search", pages, " ");
  x = 1; base = 1764115200000;
  for (i = 0; i < 4000; i++) {
    x = (x * 75 + 74) % 65537; p = pages[1 + x % 5];
    x = (x * 75 + 74) % 65537; u = x % 50;
    x = (x * 75 + 74) % 65537; j = (x % 3001) - 1500;
    printf "{\"page\":\"%s\",\"user\":\"u%d\",\"ts\":%.0f}\n", p, u, base + 1500 + i * 50 + j;
  }
}'
