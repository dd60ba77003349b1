# The code sandbox's Python analyser: runs inside a sandbox of its own (no network, read-only
# root, seccomp), reading one JSON request per line on stdin ({"code": "..."}) and answering one
# JSON line on stdout: {"findings": [[rule, severity, message, line, column], ...]} or
# {"error": "..."} for code that does not parse. Severity: 1 low, 2 medium, 3 high, 4 critical.
# The tree is walked iteratively (ast.walk), names are resolved through the imports' aliases.
import ast
import json
import sys

MODULES = {
    "subprocess": ("subprocess-spawn", 3, "starts processes"),
    "pty": ("subprocess-spawn", 3, "starts processes on a terminal"),
    "ctypes": ("native-code", 4, "calls native code and the kernel directly"),
    "cffi": ("native-code", 4, "calls native code and the kernel directly"),
    "socket": ("network-access", 2, "opens network connections"),
    "urllib": ("network-access", 2, "opens network connections"),
    "urllib3": ("network-access", 2, "opens network connections"),
    "requests": ("network-access", 2, "opens network connections"),
    "http": ("network-access", 2, "opens network connections"),
    "aiohttp": ("network-access", 2, "opens network connections"),
    "ftplib": ("network-access", 2, "opens network connections"),
    "smtplib": ("network-access", 2, "opens network connections"),
    "telnetlib": ("network-access", 2, "opens network connections"),
    "importlib": ("dynamic-code", 3, "imports modules by computed name"),
    "multiprocessing": ("subprocess-spawn", 2, "starts processes"),
    "resource": ("limits-change", 1, "changes its own resource limits"),
    "signal": ("signal-handling", 1, "handles or sends signals"),
}
CALLS = {
    "os.system": ("subprocess-spawn", 3, "runs a shell command"),
    "os.popen": ("subprocess-spawn", 3, "runs a shell command"),
    "os.execv": ("subprocess-spawn", 3, "replaces the process"),
    "os.execve": ("subprocess-spawn", 3, "replaces the process"),
    "os.execl": ("subprocess-spawn", 3, "replaces the process"),
    "os.execvp": ("subprocess-spawn", 3, "replaces the process"),
    "os.spawnv": ("subprocess-spawn", 3, "starts a process"),
    "os.spawnl": ("subprocess-spawn", 3, "starts a process"),
    "os.posix_spawn": ("subprocess-spawn", 3, "starts a process"),
    "os.fork": ("subprocess-spawn", 2, "forks the process"),
    "os.forkpty": ("subprocess-spawn", 2, "forks the process"),
    "os.kill": ("signal-handling", 2, "signals other processes"),
    "os.killpg": ("signal-handling", 2, "signals other processes"),
    "os.setuid": ("privilege-change", 3, "changes its user id"),
    "os.setgid": ("privilege-change", 3, "changes its group id"),
    "os.chroot": ("fs-escape", 3, "changes its root directory"),
    "os.environ": ("env-access", 1, "reads the environment"),
    "os.getenv": ("env-access", 1, "reads the environment"),
    "eval": ("dynamic-code", 3, "evaluates a string as code"),
    "exec": ("dynamic-code", 3, "executes a string as code"),
    "compile": ("dynamic-code", 2, "compiles a string as code"),
    "__import__": ("dynamic-code", 3, "imports modules by computed name"),
    "getattr": ("dynamic-code", 1, "reaches attributes by computed name"),
}
ATTRIBUTES = {
    "__subclasses__": ("sandbox-introspection", 3, "walks the class hierarchy (a classic escape from restricted Python)"),
    "__globals__": ("sandbox-introspection", 3, "reaches a function's globals"),
    "__builtins__": ("dynamic-code", 2, "reaches the builtins directly"),
    "__code__": ("sandbox-introspection", 2, "rewrites or reads code objects"),
    "f_globals": ("sandbox-introspection", 2, "reaches a frame's globals"),
}
SENSITIVE = ("/proc", "/etc", "/sys", "/dev", "/root", "/home", "/var/run", "/run", "/boot")
MAX_FINDINGS = 50


def dotted(node, aliases):
    """a.b.c for Name/Attribute chains, the first part resolved through the imports."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def analyze(code):
    tree = ast.parse(code)
    aliases, findings = {}, []

    def add(rule, severity, message, node):
        findings.append([rule, severity, message, getattr(node, "lineno", 0), getattr(node, "col_offset", -1) + 1])

    def module(name, node):
        root = name.split(".")[0]
        if root in MODULES:
            rule, severity, what = MODULES[root]
            add(rule, severity, f"imports {name}, which {what}", node)

    def call(name, node):
        candidate = name
        while candidate:
            if candidate in CALLS:
                rule, severity, what = CALLS[candidate]
                add(rule, severity, f"{name} {what}", node)
                return True
            candidate = candidate.rpartition(".")[0]
        return False

    # Imports first (wherever they are), so uses anywhere resolve.
    nodes = list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                module(alias.name, node)
                if alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            module(node.module, node)
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                call(f"{node.module}.{alias.name}", node)
    for node in nodes:
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(getattr(node, "ctx", None), ast.Load):
            if isinstance(node, ast.Attribute) and node.attr in ATTRIBUTES:
                rule, severity, what = ATTRIBUTES[node.attr]
                add(rule, severity, f".{node.attr} {what}", node)
            name = dotted(node, aliases)
            if name and not call(name, node):
                root = name.split(".")[0]
                first = node
                while isinstance(first, ast.Attribute):
                    first = first.value
                if "." in name and isinstance(first, ast.Name) and first.id in aliases and root in MODULES:
                    rule, severity, what = MODULES[root]
                    add(rule, severity, f"{name} {what}", node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            prefix = next((p for p in SENSITIVE if text == p or text.startswith(p + "/")), None)
            if prefix:
                severity = 3 if text.startswith(("/proc/self/root", "/etc/shadow")) else 2
                add("fs-escape", severity, f"names {prefix} on the host", node)
            elif text.startswith("../") or "/../" in text:
                add("fs-escape", 1, "climbs out of its directory with ..", node)
    # One finding per (rule, line, message): an attribute chain is walked once per link.
    unique = {tuple(f[:4]): f for f in findings}
    return sorted(unique.values(), key=lambda f: (f[3], f[4]))[:MAX_FINDINGS]


def main():
    sys.setrecursionlimit(2000)
    for line in sys.stdin:
        try:
            request = json.loads(line)
            answer = {"findings": analyze(request["code"])}
        except SyntaxError as e:
            answer = {"error": f"SyntaxError: {e.msg} (line {e.lineno})", "line": e.lineno or 0}
        except (RecursionError, MemoryError, ValueError) as e:
            answer = {"error": f"{type(e).__name__}: the code is nested too deeply or too large to analyse"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


main()
