// sandbox-exec: the two small pieces of the code sandbox that must not be Swift.
//
//   sandbox-exec launch [--uid U --gid G] [--cgroup-procs FILE]... [--cpu-seconds N] [--nproc N]
//                       [--fsize BYTES] [--nofile N] --bwrap PATH -- BWRAP-ARGUMENTS...
//
// Runs as the service's child, before the sandbox exists: joins the run's cgroups (writes its
// pid to each FILE), sets the rlimits (and no core dumps), compiles the seccomp filter
// (libseccomp) into a memfd, drops to the slot's unprivileged uid and gid (when started as root;
// RLIMIT_NPROC means nothing to uid 0), asks for SIGKILL when the service dies, and execs
// bubblewrap with `--seccomp FD` first, so the filter applies to the sandboxed program only
// (bubblewrap itself needs mount and unshare).
//
//   sandbox-exec init [--max-files N] [--max-bytes BYTES] -- STAGE... [--then STAGE...]
//
// Runs inside the sandbox, in /work: reads the input files from fd 4 ("F <name length> <size>\n"
// then the name and the bytes, repeated; "E\n" ends), runs each stage in turn (a stage that
// fails ends the run: a compile step), then reports on fd 3, which the program never sees:
// "X <exit code> <signal> <stage index>\n", then each regular file under outputs/ (no symlinks,
// at most N files and BYTES in all) as "F <name length> <size>\n<name><bytes>", "T\n" when some
// were left out, and "E\n".
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void die(const char *what) {
  // stderr is the program's stderr: the service shows this line as a sandbox error.
  dprintf(2, "sandbox-exec: %s: %s\n", what, strerror(errno));
  _exit(125);
}

static long number(const char *text, const char *option) {
  char *end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 0) {
    dprintf(2, "sandbox-exec: %s needs a number, not %s\n", option, text);
    _exit(125);
  }
  return value;
}

static void limit(int resource, rlim_t value, const char *what) {
  struct rlimit rl = {value, value};
  if (setrlimit(resource, &rl) != 0) die(what);
}

// --- launch: the seccomp filter ------------------------------------------------------------------

// System calls untrusted code never needs. The process dies (SIGSYS) at the first one: the
// service reports it as a denied system call.
static const char *const killed_syscalls[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
    "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "swapon",
    "swapoff", "reboot", "acct", "quotactl", "lookup_dcookie", "open_by_handle_at",
    "name_to_handle_at", "fanotify_init", "syslog", "settimeofday", "clock_settime", "adjtimex",
    "clock_adjtime", "iopl", "ioperm", "vhangup", "fsopen", "fsmount", "fsconfig", "move_mount",
    "open_tree", "fspick", "mount_setattr", "pidfd_getfd", "kcmp", "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old",
    "create_module", "get_kernel_syms", "query_module", "nfsservctl", "lsm_set_self_attr",
};

// Refused with an error the runtimes handle: io_uring (libuv falls back to threads), clone3
// (glibc falls back to clone, whose flags can be checked), NUMA placement (OpenBLAS asks; it
// needs CAP_SYS_NICE in Docker's profile too).
static const char *const enosys_syscalls[] = {"io_uring_setup", "io_uring_enter", "io_uring_register", "clone3",
                                              "mbind", "migrate_pages", "move_pages", "set_mempolicy"};

static int seccomp_memfd(void) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == NULL) die("seccomp_init");
  // A binary tree over the system call numbers instead of a linear chain of comparisons.
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  // Other architectures' system call numbers (i386 through int 0x80, x32) are killed by the
  // default bad-arch action: only the native table applies.
  for (size_t i = 0; i < sizeof(killed_syscalls) / sizeof(*killed_syscalls); i++) {
    int nr = seccomp_syscall_resolve_name(killed_syscalls[i]);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, nr, 0) != 0) die("seccomp_rule_add");
  }
  for (size_t i = 0; i < sizeof(enosys_syscalls) / sizeof(*enosys_syscalls); i++) {
    int nr = seccomp_syscall_resolve_name(enosys_syscalls[i]);
    if (nr == __NR_SCMP_ERROR) continue;
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0) != 0) die("seccomp_rule_add");
  }
  // New namespaces through clone: killed like unshare (one rule per flag: a rule matches when
  // that bit is set).
  const uint64_t namespaces[] = {CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC,
                                 CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWTIME};
  for (size_t k = 0; k < sizeof(namespaces) / sizeof(*namespaces); k++) {
    if (seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, namespaces[k], namespaces[k])) != 0)
      die("seccomp_rule_add clone");
  }
  // Typing into a terminal's input queue (TIOCSTI) or the console (TIOCLINUX).
  if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI)) != 0 ||
      seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX)) != 0)
    die("seccomp_rule_add ioctl");
  // Sockets: the run has its own network namespace with nothing but its own loopback; raw and
  // packet sockets and netlink are refused on top.
  if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_PACKET)) != 0 ||
      seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_NETLINK)) != 0 ||
      seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW)) != 0)
    die("seccomp_rule_add socket");
  // personality(0xffffffff) only reads the persona; changing it (ADDR_NO_RANDOMIZE…) is refused.
  if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1, SCMP_A0(SCMP_CMP_NE, 0xffffffffu)) != 0)
    die("seccomp_rule_add personality");

  int fd = memfd_create("sandbox-seccomp", 0);  // no MFD_CLOEXEC: bubblewrap reads it
  if (fd < 0) die("memfd_create");
  if (seccomp_export_bpf(ctx, fd) != 0) die("seccomp_export_bpf");
  if (lseek(fd, 0, SEEK_SET) != 0) die("lseek");
  seccomp_release(ctx);
  return fd;
}

static int launch(int argc, char **argv) {
  long uid = -1, gid = -1;
  const char *bwrap = NULL;
  int i = 0;
  for (; i < argc; i++) {
    const char *option = argv[i];
    if (strcmp(option, "--") == 0) { i++; break; }
    if (i + 1 >= argc) { dprintf(2, "sandbox-exec: %s needs a value\n", option); return 125; }
    const char *value = argv[++i];
    if (strcmp(option, "--uid") == 0) uid = number(value, option);
    else if (strcmp(option, "--gid") == 0) gid = number(value, option);
    else if (strcmp(option, "--bwrap") == 0) bwrap = value;
    else if (strcmp(option, "--cgroup-procs") == 0) {
      int fd = open(value, O_WRONLY | O_CLOEXEC);
      if (fd < 0 || dprintf(fd, "%d\n", getpid()) < 0) die(value);
      close(fd);
    }
    else if (strcmp(option, "--cpu-seconds") == 0) limit(RLIMIT_CPU, (rlim_t)number(value, option), "RLIMIT_CPU");
    else if (strcmp(option, "--nproc") == 0) limit(RLIMIT_NPROC, (rlim_t)number(value, option), "RLIMIT_NPROC");
    else if (strcmp(option, "--fsize") == 0) limit(RLIMIT_FSIZE, (rlim_t)number(value, option), "RLIMIT_FSIZE");
    else if (strcmp(option, "--nofile") == 0) limit(RLIMIT_NOFILE, (rlim_t)number(value, option), "RLIMIT_NOFILE");
    else { dprintf(2, "sandbox-exec: unknown option %s\n", option); return 125; }
  }
  if (bwrap == NULL) { dprintf(2, "sandbox-exec: launch needs --bwrap PATH -- ARGS\n"); return 125; }
  limit(RLIMIT_CORE, 0, "RLIMIT_CORE");
  int filter = seccomp_memfd();

  if (uid >= 0) {
    if (setgroups(0, NULL) != 0) die("setgroups");
    if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0) die("setresgid");
    if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) die("setresuid");
    if (getuid() == 0 || geteuid() == 0) { errno = EPERM; die("still root"); }
  }
  // After the uid change, which clears it: the service's death kills bubblewrap, whose
  // --die-with-parent kills the sandbox.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die("PR_SET_PDEATHSIG");
  if (getppid() == 1) _exit(125);  // the service is already gone

  int rest = argc - i;
  char **args = calloc((size_t)rest + 4, sizeof(char *));
  if (args == NULL) die("calloc");
  char fd_text[16];
  snprintf(fd_text, sizeof fd_text, "%d", filter);
  args[0] = (char *)bwrap;
  args[1] = "--seccomp";
  args[2] = fd_text;
  for (int k = 0; k < rest; k++) args[3 + k] = argv[i + k];
  args[3 + rest] = NULL;
  execv(bwrap, args);
  die(bwrap);
  return 125;
}

// --- init: inside the sandbox --------------------------------------------------------------------

static int read_full(int fd, void *buffer, size_t count) {
  char *p = buffer;
  while (count > 0) {
    ssize_t n = read(fd, p, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    count -= (size_t)n;
  }
  return 0;
}

static int write_full(int fd, const void *buffer, size_t count) {
  const char *p = buffer;
  while (count > 0) {
    ssize_t n = write(fd, p, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    count -= (size_t)n;
  }
  return 0;
}

// One header line ("F 7 1234\n", "E\n"), at most 63 bytes.
static int read_line(int fd, char *line, size_t size) {
  size_t used = 0;
  while (used + 1 < size) {
    char c;
    if (read_full(fd, &c, 1) != 0) return -1;
    if (c == '\n') { line[used] = '\0'; return 0; }
    line[used++] = c;
  }
  return -1;
}

static int valid_name(const char *name) {
  size_t length = strlen(name);
  if (length == 0 || length > 128 || name[0] == '.') return 0;
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c == '/' || c < 0x20 || c == 0x7f) return 0;
  }
  return 1;
}

static void receive_inputs(void) {
  char line[64], name[129];
  static char buffer[65536];
  for (;;) {
    if (read_line(4, line, sizeof line) != 0) { dprintf(2, "sandbox-exec: the input files ended early\n"); _exit(125); }
    if (strcmp(line, "E") == 0) break;
    unsigned long name_length = 0;
    unsigned long long size = 0;
    if (sscanf(line, "F %lu %llu", &name_length, &size) != 2 || name_length == 0 || name_length > 128) {
      dprintf(2, "sandbox-exec: a malformed input file header\n");
      _exit(125);
    }
    if (read_full(4, name, name_length) != 0) _exit(125);
    name[name_length] = '\0';
    if (!valid_name(name)) { dprintf(2, "sandbox-exec: an invalid input file name\n"); _exit(125); }
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) die(name);
    while (size > 0) {
      size_t chunk = size < sizeof buffer ? (size_t)size : sizeof buffer;
      if (read_full(4, buffer, chunk) != 0 || write_full(fd, buffer, chunk) != 0) die(name);
      size -= chunk;
    }
    close(fd);
  }
  close(4);
}

struct outputs {
  long max_files, files;
  long long max_bytes, bytes;
  int truncated;
};

static void send_file(int dir, const char *path, const char *entry, struct outputs *out) {
  int fd = openat(dir, entry, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); return; }
  if (out->files >= out->max_files || st.st_size > out->max_bytes - out->bytes) { out->truncated = 1; close(fd); return; }
  // The size is what the header says; a file that changes meanwhile is cut or padded to it.
  static char buffer[65536];
  long long remaining = st.st_size;
  dprintf(3, "F %zu %lld\n", strlen(path), (long long)st.st_size);
  write_full(3, path, strlen(path));
  while (remaining > 0) {
    ssize_t n = read(fd, buffer, remaining < (long long)sizeof buffer ? (size_t)remaining : sizeof buffer);
    if (n <= 0) { memset(buffer, 0, sizeof buffer); n = remaining < (long long)sizeof buffer ? remaining : (long long)sizeof buffer; }
    write_full(3, buffer, (size_t)n);
    remaining -= n;
  }
  out->files++;
  out->bytes += st.st_size;
  close(fd);
}

static void send_directory(int dir, const char *prefix, int depth, struct outputs *out) {
  DIR *d = fdopendir(dir);
  if (d == NULL) { close(dir); return; }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char path[512];
    int n = snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "/" : "", e->d_name);
    if (n < 0 || (size_t)n >= 256) { out->truncated = 1; continue; }
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (depth >= 4) { out->truncated = 1; continue; }
      int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) send_directory(sub, path, depth + 1, out);
    } else if (S_ISREG(st.st_mode)) {
      send_file(dirfd(d), path, e->d_name, out);
    }
  }
  closedir(d);
}

static int init(int argc, char **argv) {
  struct outputs out = {.max_files = 20, .max_bytes = 10 << 20};
  int i = 0;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) { i++; break; }
    if (i + 1 >= argc) return 125;
    if (strcmp(argv[i], "--max-files") == 0) out.max_files = number(argv[++i], "--max-files");
    else if (strcmp(argv[i], "--max-bytes") == 0) out.max_bytes = number(argv[++i], "--max-bytes");
    else return 125;
  }
  if (i >= argc) return 125;
  if (mkdir("outputs", 0755) != 0 && errno != EEXIST) die("outputs");
  receive_inputs();

  int code = 0, signal_number = 0, stage = 0;
  while (i < argc) {
    char **start = &argv[i];
    int end = i;
    while (end < argc && strcmp(argv[end], "--then") != 0) end++;
    int last = end >= argc;
    argv[end < argc ? end : argc] = NULL;
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
      close(3);
      execv(start[0], start);
      dprintf(2, "sandbox-exec: %s: %s\n", start[0], strerror(errno));
      _exit(127);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
      if (errno != EINTR) die("waitpid");
    }
    code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    signal_number = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (last || code != 0) break;
    i = end + 1;
    stage++;
  }
  dprintf(3, "X %d %d %d\n", code, signal_number, stage);
  int dir = open("outputs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir >= 0) send_directory(dir, "", 1, &out);
  if (out.truncated) write_full(3, "T\n", 2);
  write_full(3, "E\n", 2);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "launch") == 0) return launch(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "init") == 0) return init(argc - 2, argv + 2);
  dprintf(2, "usage: sandbox-exec launch ... -- BWRAP-ARGS | sandbox-exec init ... -- STAGE [--then STAGE]\n");
  return 125;
}
