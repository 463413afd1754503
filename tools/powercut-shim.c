/* powercut-shim.c: an LD_PRELOAD shim that records what of a directory tree would survive a
 * power cut, for tools/powercut (which compiles it with `cc -shared -fPIC`; see its docstring
 * for the durability model and how the durable image is rebuilt).
 *
 * The process works on the real files; the shim only watches. Under POWERCUT_DIR (an absolute,
 * canonical path: the state directory, as the daemon is given it) it:
 *   - gives every file a "fid" when it is created (and every file present at start), so that a
 *     recycled inode number is never mistaken for the file that had it before;
 *   - at each fsync/fdatasync of a file, copies the file's whole content to
 *     $POWERCUT_SHADOW/data/<fid>: its durable content;
 *   - at each fsync of a directory, writes the directory's entries (name -> fid, subdirectories)
 *     to $POWERCUT_SHADOW/map<rel> ('/' written '%'), with the log position they correspond to;
 *   - appends every creation, rename, unlink, mkdir and sync to $POWERCUT_SHADOW/log, in the
 *     order they happened (all under one lock, so that a directory's listing never sees another
 *     thread's rename half done), and "I" once the tree present at start is recorded.
 * POWERCUT_KILL_AT=N: the process SIGKILLs itself just before its N-th such event (a crash point
 * chosen by operation, not by time); POWERCUT_KILL_ON=C|R|U|M|S|D|J counts only creations,
 * renames, unlinks, mkdirs, file syncs, directory syncs, or the directory syncs that make a new
 * journal durable (a journal switch); POWERCUT_KILL_AFTER=1 dies just after the event.
 * POWERCUT_IGNORE=file|resync|dir: fsyncs of files, every fsync of a file but its first (a
 * journal's records never reach the disk, its header does), or fsyncs of directories are not
 * recorded as durable: a broken syncing discipline, for --self-test.
 * Without POWERCUT_DIR and POWERCUT_SHADOW the shim does nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_creat)(const char *, mode_t);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_remove)(const char *);
static int (*real_rmdir)(const char *);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_link)(const char *, const char *);
static int (*real_linkat)(int, const char *, int, const char *, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static int active;
static char root[PATH_MAX], shadow[PATH_MAX];
static size_t rootlen;
static int logfd = -1, ignore_file_sync, ignore_resync, ignore_dir_sync;
static long kill_at, events;
static char kill_on = '*';   /* the kind of event counted: C R U M S D J, or '*' for any */
static int journal_created;  /* a journal-* file was created in root since root's last sync */
static int kill_after;       /* die just after the event instead of just before */
static unsigned long next_fid = 1;
static off_t logpos;
static pthread_mutex_t lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static struct { dev_t dev; ino_t ino; unsigned long fid; } table[16384];
static int ntable;

static void resolve(void) {
    if (real_fdatasync) return;
#define R(name) real_##name = dlsym(RTLD_NEXT, #name)
    R(open); R(open64); R(openat); R(openat64); R(creat); R(rename); R(renameat); R(renameat2);
    R(unlink); R(unlinkat); R(remove); R(rmdir); R(mkdir); R(mkdirat); R(link); R(linkat);
    R(fsync); R(fdatasync);
#undef R
}

static void logf_(const char *format, ...) {
    char line[PATH_MAX * 2 + 64];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n > 0 && write(logfd, line, (size_t)n) == n) logpos += n;
}

/* Called just before (after = 0) and just after (after = 1) each event of kind C (create),
 * R (rename), U (unlink), M (mkdir), S (file sync) or D (directory sync) under root, J being
 * a sync of root that makes a new journal durable (a D too): the process dies here if this is
 * the chosen crash point. Call with the lock held. */
static void event(char kind, int after) {
    int counted = kill_on == '*' || kill_on == kind || (kill_on == 'D' && kind == 'J');
    if (kill_at > 0 && after == kill_after && counted && ++events >= kill_at) raise(SIGKILL);
}

static unsigned long fid_of(dev_t dev, ino_t ino, int fresh) {
    for (int i = 0; i < ntable; i++)
        if (table[i].dev == dev && table[i].ino == ino) {
            if (fresh) table[i].fid = next_fid++;
            return table[i].fid;
        }
    if (ntable == (int)(sizeof table / sizeof table[0])) abort();
    table[ntable].dev = dev;
    table[ntable].ino = ino;
    table[ntable].fid = next_fid++;
    return table[ntable++].fid;
}

/* Splits `path` (relative to `dirfd`) into the directory's path relative to root ("." for
 * root itself) and the last name. Returns 0 when the entry is not under root. */
static int inside(int dirfd, const char *path, char *rel, char *name) {
    char full[PATH_MAX * 2 + 2];
    if (!active || !path) return 0;
    if (path[0] == '/') {
        snprintf(full, sizeof full, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base)) return 0;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n < 0) return 0;
            base[n] = 0;
        }
        snprintf(full, sizeof full, "%s/%s", base, path);
    }
    size_t len = strlen(full);
    while (len > 1 && full[len - 1] == '/') full[--len] = 0;
    char *slash = strrchr(full, '/');
    if (!slash) return 0;
    *slash = 0;
    if (strncmp(full, root, rootlen) != 0 || (full[rootlen] != 0 && full[rootlen] != '/')) return 0;
    snprintf(rel, PATH_MAX, "%s", full[rootlen] ? full + rootlen + 1 : ".");
    snprintf(name, NAME_MAX + 1, "%s", slash + 1);
    return 1;
}

/* Copies everything `fd` holds to data/<fid>, through a temporary name. The file is read
 * through /proc/self/fd, since `fd` itself may be open for writing only. */
static void copy_content(int fd, unsigned long fid) {
    char tmp[PATH_MAX + 64], dst[PATH_MAX + 64], buf[65536], link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int in = real_open(link, O_RDONLY | O_CLOEXEC);
    if (in < 0) abort();
    snprintf(tmp, sizeof tmp, "%s/data/%lu.tmp", shadow, fid);
    snprintf(dst, sizeof dst, "%s/data/%lu", shadow, fid);
    int out = real_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) abort();
    off_t offset = 0;
    ssize_t n;
    while ((n = pread(in, buf, sizeof buf, offset)) > 0) {
        if (write(out, buf, (size_t)n) != n) abort();
        offset += n;
    }
    close(in);
    close(out);
    if (real_rename(tmp, dst) != 0) abort();
    logf_("S %lu %lld\n", fid, (long long)offset);
}

/* Writes the entries of root/<rel> to map<rel>: "pos <log offset>", then "f <fid> <name>" and
 * "d - <name>" lines. */
static void write_map(const char *rel) {
    char dir[PATH_MAX * 2], tmp[PATH_MAX * 3], dst[PATH_MAX * 3], enc[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", root, rel);
    snprintf(enc, sizeof enc, "%s", strcmp(rel, ".") ? rel : "");
    for (char *c = enc; *c; c++) if (*c == '/') *c = '%';
    snprintf(tmp, sizeof tmp, "%s/map%s%s.tmp", shadow, *enc ? "%" : "", enc);
    snprintf(dst, sizeof dst, "%s/map%s%s", shadow, *enc ? "%" : "", enc);
    DIR *d = opendir(dir);
    if (!d) return;
    FILE *out = fopen(tmp, "we");
    if (!out) abort();
    fprintf(out, "pos %lld\n", (long long)logpos);
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISDIR(st.st_mode)) fprintf(out, "d - %s\n", e->d_name);
        else if (S_ISREG(st.st_mode)) fprintf(out, "f %lu %s\n", fid_of(st.st_dev, st.st_ino, 0), e->d_name);
    }
    closedir(d);
    fclose(out);
    if (real_rename(tmp, dst) != 0) abort();
    logf_("D %s\n", rel);
}

static void on_sync(int fd) {
    struct stat st;
    char link[64], path[PATH_MAX], rel[PATH_MAX], name[NAME_MAX + 1];
    if (!active || fstat(fd, &st) != 0) return;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return;
    path[n] = 0;
    if (S_ISDIR(st.st_mode)) {
        /* inside() looks at the parent: give it a name under the directory. */
        strncat(path, "/x", sizeof path - strlen(path) - 1);
        if (!inside(AT_FDCWD, path, rel, name)) return;
        pthread_mutex_lock(&lock);
        char kind = !strcmp(rel, ".") && journal_created ? 'J' : 'D';
        if (kind == 'J') journal_created = 0;
        event(kind, 0);
        if (!ignore_dir_sync) write_map(rel);
        event(kind, 1);
        pthread_mutex_unlock(&lock);
    } else if (S_ISREG(st.st_mode)) {
        /* A file counts if it is under root or was ever seen there (unlinked since). */
        pthread_mutex_lock(&lock);
        int known = 0;
        for (int i = 0; i < ntable && !known; i++) known = table[i].dev == st.st_dev && table[i].ino == st.st_ino;
        if (known || inside(AT_FDCWD, path, rel, name)) {
            unsigned long fid = fid_of(st.st_dev, st.st_ino, 0);
            char synced[PATH_MAX + 64];
            snprintf(synced, sizeof synced, "%s/data/%lu", shadow, fid);
            event('S', 0);
            if (!ignore_file_sync && !(ignore_resync && access(synced, F_OK) == 0)) copy_content(fd, fid);
            event('S', 1);
        }
        pthread_mutex_unlock(&lock);
    }
}

/* Records the tree present at start as durable: every file's content and every listing. */
static void scan(const char *rel) {
    char dir[PATH_MAX * 2], sub[PATH_MAX * 2];
    snprintf(dir, sizeof dir, "%s/%s", root, rel);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            logf_("M %s %s\n", rel, e->d_name);
            snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name);
            scan(strcmp(rel, ".") ? sub : e->d_name);
        } else if (S_ISREG(st.st_mode)) {
            unsigned long fid = fid_of(st.st_dev, st.st_ino, 1);
            int fd = real_openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
            if (fd < 0) abort();
            logf_("C %s %s %lu\n", rel, e->d_name, fid);
            copy_content(fd, fid);
            close(fd);
        }
    }
    closedir(d);
    write_map(rel);
}

__attribute__((constructor)) static void init(void) {
    resolve();
    const char *r = getenv("POWERCUT_DIR"), *s = getenv("POWERCUT_SHADOW");
    if (!r || !s || !*r || !*s) return;
    snprintf(root, sizeof root, "%s", r);
    rootlen = strlen(root);
    snprintf(shadow, sizeof shadow, "%s", s);
    const char *k = getenv("POWERCUT_KILL_AT"), *ignore = getenv("POWERCUT_IGNORE");
    const char *on = getenv("POWERCUT_KILL_ON"), *after = getenv("POWERCUT_KILL_AFTER");
    kill_at = k ? atol(k) : 0;
    kill_on = on && *on ? *on : '*';
    kill_after = after && *after == '1';
    ignore_file_sync = ignore && !strcmp(ignore, "file");
    ignore_resync = ignore && !strcmp(ignore, "resync");
    ignore_dir_sync = ignore && !strcmp(ignore, "dir");
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data", shadow);
    real_mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/log", shadow);
    logfd = real_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) abort();
    active = 1;
    scan(".");
    logf_("I\n");
}

/* --- the interposed calls ------------------------------------------------------------------ */

static int opened(int dirfd, const char *path, int flags, int (*call)(void *), void *args) {
    char rel[PATH_MAX], name[NAME_MAX + 1];
    resolve();
    if (!(flags & O_CREAT) || !inside(dirfd, path, rel, name)) return call(args);
    pthread_mutex_lock(&lock);
    event('C', 0);
    struct stat st;
    int existed = fstatat(dirfd, path, &st, 0) == 0;
    int fd = call(args);
    if (fd >= 0 && !existed && fstat(fd, &st) == 0) {
        logf_("C %s %s %lu\n", rel, name, fid_of(st.st_dev, st.st_ino, 1));
        if (!strcmp(rel, ".") && !strncmp(name, "journal-", 8)) journal_created = 1;
    }
    event('C', 1);
    pthread_mutex_unlock(&lock);
    return fd;
}

struct open_args { int which, dirfd; const char *path; int flags; mode_t mode; };
static int call_open(void *p) {
    struct open_args *a = p;
    switch (a->which) {
    case 0: return real_open(a->path, a->flags, a->mode);
    case 1: return real_open64(a->path, a->flags, a->mode);
    case 2: return real_openat(a->dirfd, a->path, a->flags, a->mode);
    case 3: return real_openat64(a->dirfd, a->path, a->flags, a->mode);
    default: return real_creat(a->path, a->mode);
    }
}
#define MODE_ARG(flags) mode_t mode = 0; if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
int open(const char *path, int flags, ...) { MODE_ARG(flags); struct open_args a = {0, AT_FDCWD, path, flags, mode}; return opened(AT_FDCWD, path, flags, call_open, &a); }
int open64(const char *path, int flags, ...) { MODE_ARG(flags); struct open_args a = {1, AT_FDCWD, path, flags, mode}; return opened(AT_FDCWD, path, flags, call_open, &a); }
int openat(int dirfd, const char *path, int flags, ...) { MODE_ARG(flags); struct open_args a = {2, dirfd, path, flags, mode}; return opened(dirfd, path, flags, call_open, &a); }
int openat64(int dirfd, const char *path, int flags, ...) { MODE_ARG(flags); struct open_args a = {3, dirfd, path, flags, mode}; return opened(dirfd, path, flags, call_open, &a); }
int creat(const char *path, mode_t mode) { struct open_args a = {4, AT_FDCWD, path, O_CREAT, mode}; return opened(AT_FDCWD, path, O_CREAT, call_open, &a); }

static int renamed(int fd1, const char *p1, int fd2, const char *p2, unsigned int flags) {
    char rel1[PATH_MAX], name1[NAME_MAX + 1], rel2[PATH_MAX], name2[NAME_MAX + 1];
    resolve();
    int in1 = inside(fd1, p1, rel1, name1), in2 = inside(fd2, p2, rel2, name2);
    if (!in1 && !in2) return real_renameat2 ? real_renameat2(fd1, p1, fd2, p2, flags) : real_renameat(fd1, p1, fd2, p2);
    pthread_mutex_lock(&lock);
    event('R', 0);
    int result = flags ? real_renameat2(fd1, p1, fd2, p2, flags) : real_renameat(fd1, p1, fd2, p2);
    struct stat st;
    if (result == 0) {
        if (in1 && in2) logf_("R %s %s %s %s\n", rel1, name1, rel2, name2);
        else if (in1) logf_("U %s %s\n", rel1, name1);
        else if (fstatat(fd2, p2, &st, AT_SYMLINK_NOFOLLOW) == 0) logf_("C %s %s %lu\n", rel2, name2, fid_of(st.st_dev, st.st_ino, 0));
    }
    event('R', 1);
    pthread_mutex_unlock(&lock);
    return result;
}
int rename(const char *a, const char *b) { return renamed(AT_FDCWD, a, AT_FDCWD, b, 0); }
int renameat(int fa, const char *a, int fb, const char *b) { return renamed(fa, a, fb, b, 0); }
int renameat2(int fa, const char *a, int fb, const char *b, unsigned int flags) { return renamed(fa, a, fb, b, flags); }

/* unlink, rmdir, mkdir, link: `kind` 0 unlink, 1 rmdir, 2 remove, 3 unlinkat, 4 mkdir(at), 5 link(at). */
static int changed(int kind, int dirfd, const char *path, int flags, mode_t mode, int fd0, const char *old) {
    char rel[PATH_MAX], name[NAME_MAX + 1];
    resolve();
    int in = inside(dirfd, path, rel, name);
    char what = kind == 4 ? 'M' : kind == 5 ? 'C' : 'U';
    if (in) { pthread_mutex_lock(&lock); event(what, 0); }
    int result;
    switch (kind) {
    case 0: result = real_unlink(path); break;
    case 1: result = real_rmdir(path); break;
    case 2: result = real_remove(path); break;
    case 3: result = real_unlinkat(dirfd, path, flags); break;
    case 4: result = real_mkdirat(dirfd, path, mode); break;
    default: result = real_linkat(fd0, old, dirfd, path, flags); break;
    }
    if (in) {
        struct stat st;
        if (result == 0 && kind <= 3) logf_("U %s %s\n", rel, name);
        if (result == 0 && kind == 4) logf_("M %s %s\n", rel, name);
        if (result == 0 && kind == 5 && fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0)
            logf_("C %s %s %lu\n", rel, name, fid_of(st.st_dev, st.st_ino, 0));
        event(what, 1);
        pthread_mutex_unlock(&lock);
    }
    return result;
}
int unlink(const char *p) { return changed(0, AT_FDCWD, p, 0, 0, 0, NULL); }
int rmdir(const char *p) { return changed(1, AT_FDCWD, p, 0, 0, 0, NULL); }
int remove(const char *p) { return changed(2, AT_FDCWD, p, 0, 0, 0, NULL); }
int unlinkat(int fd, const char *p, int flags) { return changed(3, fd, p, flags, 0, 0, NULL); }
int mkdir(const char *p, mode_t mode) { return changed(4, AT_FDCWD, p, 0, mode, 0, NULL); }
int mkdirat(int fd, const char *p, mode_t mode) { return changed(4, fd, p, 0, mode, 0, NULL); }
int link(const char *a, const char *b) { return changed(5, AT_FDCWD, b, 0, 0, AT_FDCWD, a); }
int linkat(int fa, const char *a, int fb, const char *b, int flags) { return changed(5, fb, b, flags, 0, fa, a); }

int fsync(int fd) { resolve(); on_sync(fd); return real_fsync(fd); }
int fdatasync(int fd) { resolve(); on_sync(fd); return real_fdatasync(fd); }
