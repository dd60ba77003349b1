"""Loads the platform's generated Python message modules, made by Debian's protoc at run time.

    from platform_protos import load
    agent_pb2, = load("platform/agent/v1/agent.proto")

Nothing generated is committed. A module of the proto package `platform.x.v1` would be imported
as `platform…`, which is the standard library's module, so each generated module is registered
in sys.modules under its import name by hand ("platform.common", "platform.common.v1", …), with
the stdlib `platform` itself untouched (an import looks a package up by its full name first).
platform/common/v1/common.proto is always loaded first: the others import it.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import types

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PROTOS = os.path.join(REPO, "Protos")
COMMON = "platform/common/v1/common.proto"


def load(*files):
    """The modules of `files` (paths under Protos/), in order."""
    wanted = [COMMON] + [f for f in files if f != COMMON]
    includes = ["-I" + PROTOS]
    if os.path.exists("/usr/include/google/protobuf/struct.proto"):
        includes.append("-I/usr/include")   # the well-known types (libprotobuf-dev)
    loaded = {}
    with tempfile.TemporaryDirectory(prefix="platform-protos-") as tmp:
        subprocess.run(["protoc", *includes, "--python_out=" + tmp] + [os.path.join(PROTOS, f) for f in wanted], check=True)
        for proto in wanted:
            name = proto[:-len(".proto")].replace("/", ".") + "_pb2"
            if name in sys.modules:
                loaded[proto] = sys.modules[name]
                continue
            package = name.rsplit(".", 1)[0]
            parts = package.split(".")
            for i in range(2, len(parts) + 1):
                sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
            spec = importlib.util.spec_from_file_location(name, os.path.join(tmp, proto[:-len(".proto")] + "_pb2.py"))
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            setattr(sys.modules[package], name.rsplit(".", 1)[1], module)
            loaded[proto] = module
    return tuple(loaded[f] for f in files)
