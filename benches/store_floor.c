/* The least a Maildir store can cost: a C loop that stores N files of 1,263 bytes (the size of a
 * stamped smtp-source message) into new/, either as O_TMPFILE + linkat or as tmp/ + rename.
 * Compare with `cargo bench --bench sim_store` (maildir/deliver). Build and run with
 * benches/store_floor.sh; see benches/README.md. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s MAILDIR COUNT tmpfile|rename\n", argv[0]);
    return 2;
  }
  const char *root = argv[1];
  long n = atol(argv[2]);
  int tmpfile = strcmp(argv[3], "tmpfile") == 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/tmp", root);
  int tmp = open(path, O_RDONLY | O_DIRECTORY);
  snprintf(path, sizeof path, "%s/new", root);
  int new = open(path, O_RDONLY | O_DIRECTORY);
  if (tmp < 0 || new < 0) {
    perror(root);
    return 1;
  }
  char buf[1263];
  memset(buf, 'x', sizeof buf);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) {
    char name[128];
    snprintf(name, sizeof name, "1795764823.M%06ldP1Q%ld.floor,S=1263,W=1263", i % 1000000, i);
    int fd = tmpfile ? openat(tmp, ".", O_WRONLY | O_TMPFILE | O_CLOEXEC, 0600)
                     : openat(tmp, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
      perror("store");
      return 1;
    }
    int linked = tmpfile ? linkat(fd, "", new, name, AT_EMPTY_PATH) : 0;
    close(fd);
    if (!tmpfile)
      linked = renameat(tmp, name, new, name);
    if (linked) {
      perror("link");
      return 1;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n;
  printf("%-8s %ld files: %.2f us per file\n", argv[3], n, us);
  return 0;
}
