/*
 * Injects I/O errors into a process through LD_PRELOAD: fsync, fdatasync, the rename and link
 * calls fail with EIO on the paths a control file names, and behave normally otherwise.
 *
 * The control file is $AUDITLAKE_IO_ERRORS; each of its lines is `OP TEXT`, OP `fsync`, `rename`
 * or `link` (a hard link: how a Delta commit is put in place without overwriting another), and
 * the call fails when the path (a file descriptor's, or either path of the two) contains TEXT. It is read at every call, so a test changes the faults while the process runs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int injected(const char *op, const char *path) {
    const char *control = getenv("AUDITLAKE_IO_ERRORS");
    if (control == NULL || path == NULL) {
        return 0;
    }
    int saved = errno;
    FILE *f = fopen(control, "r");
    int hit = 0;
    if (f != NULL) {
        char line[1024];
        size_t n = strlen(op);
        while (!hit && fgets(line, sizeof line, f) != NULL) {
            line[strcspn(line, "\n")] = '\0';
            if (strncmp(line, op, n) == 0 && line[n] == ' ' && line[n + 1] != '\0' &&
                strstr(path, line + n + 1) != NULL) {
                hit = 1;
            }
        }
        fclose(f);
    }
    errno = saved;
    return hit;
}

static int fd_injected(int fd) {
    char link[64];
    char path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) {
        return 0;
    }
    path[n] = '\0';
    return injected("fsync", path);
}

static int fail(void) {
    errno = EIO;
    return -1;
}

int fsync(int fd) {
    static int (*real)(int);
    if (fd_injected(fd)) {
        return fail();
    }
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (fd_injected(fd)) {
        return fail();
    }
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    return real(fd);
}

int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    if (injected("rename", from) || injected("rename", to)) {
        return fail();
    }
    if (real == NULL) {
        real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    }
    return real(from, to);
}

int renameat(int from_dir, const char *from, int to_dir, const char *to) {
    static int (*real)(int, const char *, int, const char *);
    if (injected("rename", from) || injected("rename", to)) {
        return fail();
    }
    if (real == NULL) {
        real = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
    }
    return real(from_dir, from, to_dir, to);
}

int renameat2(int from_dir, const char *from, int to_dir, const char *to, unsigned int flags) {
    static int (*real)(int, const char *, int, const char *, unsigned int);
    if (injected("rename", from) || injected("rename", to)) {
        return fail();
    }
    if (real == NULL) {
        real = (int (*)(int, const char *, int, const char *, unsigned int))dlsym(
            RTLD_NEXT, "renameat2");
    }
    return real(from_dir, from, to_dir, to, flags);
}

int link(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    if (injected("link", from) || injected("link", to)) {
        return fail();
    }
    if (real == NULL) {
        real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "link");
    }
    return real(from, to);
}

int linkat(int from_dir, const char *from, int to_dir, const char *to, int flags) {
    static int (*real)(int, const char *, int, const char *, int);
    if (injected("link", from) || injected("link", to)) {
        return fail();
    }
    if (real == NULL) {
        real = (int (*)(int, const char *, int, const char *, int))dlsym(RTLD_NEXT, "linkat");
    }
    return real(from_dir, from, to_dir, to, flags);
}
