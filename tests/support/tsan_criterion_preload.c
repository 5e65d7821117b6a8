/*
 * tsan_criterion_preload.c: lets Criterion test programs start under ThreadSanitizer.
 *
 * Criterion's BoxFort probes random fixed addresses in [0x2000'0000'0000, 0x7f00'0000'0000)
 * with mincore(2) and maps its inheritable shared arena there with MAP_FIXED. Under TSan nearly
 * all of that range is shadow, metadata or protected gaps, so the arena never finds a home and
 * every test program aborts with "Could not initialize inheritable arena" (Criterion issue
 * #274, open). Preloaded into TSan test runs only (tests/CMakeLists.txt), this reports pages
 * outside TSan's application range as unavailable and moves such fixed shared mappings into
 * the application range [0x5500'0000'0000, 0x5680'0000'0000). The placement is deterministic,
 * so a re-executed test child maps its arena where its parent did. It is built without
 * sanitizers and is never linked into weir.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

#define BOXFORT_LO 0x200000000000ull
#define BOXFORT_HI 0x7f0000000000ull
#define TSAN_APP_LO 0x550000000000ull
#define TSAN_APP_HI 0x568000000000ull
#define PLACEMENT_START 0x560000000000ull
#define PLACEMENT_STEP (1ull << 30)

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*mincore_fn)(void *, size_t, unsigned char *);

int mincore(void *addr, size_t len, unsigned char *vec);
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);

static int outside_app_range(uintptr_t a) {
  return a >= BOXFORT_LO && a < BOXFORT_HI && !(a >= TSAN_APP_LO && a < TSAN_APP_HI);
}

int mincore(void *addr, size_t len, unsigned char *vec) {
  static mincore_fn real;

  if (outside_app_range((uintptr_t)addr)) {
    errno = ENOMEM; /* "not mapped": BoxFort moves on, then calls mmap below */
    return -1;
  }
  if (real == NULL)
    *(void **)&real = dlsym(RTLD_NEXT, "mincore");
  return real(addr, len, vec);
}

static void *placed_mmap(const char *sym, void *addr, size_t len, int prot, int flags, int fd,
                         off_t off) {
  static uintptr_t next = PLACEMENT_START;
  mmap_fn real;
  int fixed = MAP_FIXED | MAP_FIXED_NOREPLACE;

  *(void **)&real = dlsym(RTLD_NEXT, sym);
  if ((flags & fixed) && (flags & MAP_SHARED) && outside_app_range((uintptr_t)addr)) {
    for (; next < TSAN_APP_HI; next += PLACEMENT_STEP) {
      void *p = real((void *)next, len, prot, (flags & ~fixed) | MAP_FIXED_NOREPLACE, fd, off);

      if (p != MAP_FAILED) {
        next += PLACEMENT_STEP;
        return p;
      }
    }
  }
  return real(addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return placed_mmap("mmap", addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return placed_mmap("mmap64", addr, len, prot, flags, fd, off);
}
