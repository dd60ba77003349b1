"""Generates (once) and loads the Python message modules for the interop contracts.

The code comes from Debian's `protoc --python_out` at run time into a build directory
($INTEROP_PY_GEN, default Tests/Interop/python/.build/gen, git-ignored); nothing generated is
committed. Debian's python3-grpcio has no grpc_tools, so there are no generated stubs: the client
and server use grpcio's generic multi-callables and method handlers instead.

The modules are loaded by file path because the proto package `grpc.testing` would otherwise be
imported as `grpc.testing` — a sub-package of grpcio itself, which shadows it.
"""
import importlib.util
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PROTOS = os.path.join(REPO, "Protos")
GEN = os.environ.get("INTEROP_PY_GEN") or os.path.join(HERE, ".build", "gen")

_FILES = {
    "test_pb2": "grpc/testing/test.proto",
    "echo_pb2": "platform/echo/v1/echo.proto",
}


def _generate_if_stale():
    outputs = {name: os.path.join(GEN, proto[:-len(".proto")] + "_pb2.py")
               for name, proto in _FILES.items()}
    fresh = all(os.path.exists(out) and
                os.path.getmtime(out) >= os.path.getmtime(os.path.join(PROTOS, proto))
                for (name, proto), out in zip(_FILES.items(), outputs.values()))
    if not fresh:
        os.makedirs(GEN, exist_ok=True)
        # Generate into a scratch directory and move into place, so concurrent first runs
        # (several clients started at once) never see a half-written module.
        with tempfile.TemporaryDirectory(dir=GEN) as tmp:
            subprocess.run(["protoc", "-I" + PROTOS, "--python_out=" + tmp]
                           + [os.path.join(PROTOS, p) for p in _FILES.values()], check=True)
            for name, proto in _FILES.items():
                dest = outputs[name]
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(os.path.join(tmp, proto[:-len(".proto")] + "_pb2.py"), dest)
    return outputs


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_paths = _generate_if_stale()
test_pb2 = _load("interop_test_pb2", _paths["test_pb2"])
echo_pb2 = _load("interop_echo_pb2", _paths["echo_pb2"])
