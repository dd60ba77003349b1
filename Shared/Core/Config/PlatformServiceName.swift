/// The platform's six services: their names, default ports and databases.
public enum PlatformServiceName: String, Sendable, CaseIterable, CustomStringConvertible {
  case agent
  case persona
  case codeSandbox = "code-sandbox"
  case textToSQL = "text-to-sql"
  case knowledge
  case workflow

  /// The executable's and the log label's name, such as `code-sandbox`.
  public var description: String { self.rawValue }

  /// The port the service listens on by default (DESIGN.md).
  public var defaultPort: Int {
    switch self {
    case .agent: 50051
    case .persona: 50052
    case .codeSandbox: 50053
    case .textToSQL: 50054
    case .knowledge: 50055
    case .workflow: 50056
    }
  }

  /// The PostgreSQL database the service owns.
  public var databaseName: String {
    switch self {
    case .agent: "agent_db"
    case .persona: "persona_db"
    case .codeSandbox: "code_db"
    case .textToSQL: "sql_db"
    case .knowledge: "knowledge_db"
    case .workflow: "workflow_db"
    }
  }

  /// The environment variable other services read this service's address from, such as
  /// `CODE_SANDBOX_ADDR`.
  public var addressVariable: String {
    String(self.rawValue.uppercased().map { $0 == "-" ? "_" : $0 }) + "_ADDR"
  }
}
