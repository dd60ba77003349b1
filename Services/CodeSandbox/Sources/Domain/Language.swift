/// A language the sandbox runs, and how.
public enum Language: String, Sendable, CaseIterable {
  case python, javascript, typescript

  /// The program's file in the working directory.
  var fileName: String {
    switch self {
    case .python: "main.py"
    case .javascript: "main.js"
    case .typescript: "main.ts"
    }
  }

  /// The commands, in turn: TypeScript is type-stripped by esbuild (and type-checked by tsc first
  /// when asked), then run by node.
  func stages(typeCheck: Bool) -> [[String]] {
    switch self {
    case .python:
      // -I: no user site, no PYTHON* variables, no script directory on the path.
      [["/usr/bin/python3", "-I", "main.py"]]
    case .javascript:
      [["/usr/bin/node", "main.js"]]
    case .typescript:
      (typeCheck
        ? [["/usr/bin/tsc", "--noEmit", "--strict", "--pretty", "false", "--target", "es2022", "--module", "commonjs",
            "main.ts"]] : [])
        + [
          ["/usr/bin/esbuild", "main.ts", "--outfile=main.js", "--format=cjs", "--platform=node", "--log-level=error"],
          ["/usr/bin/node", "main.js"],
        ]
    }
  }

  /// What the runtimes need in their environment.
  var environment: [String: String] {
    switch self {
    case .python: ["MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/matplotlib", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"]
    case .javascript, .typescript: ["NODE_OPTIONS": "", "NO_COLOR": "1"]
    }
  }
}
