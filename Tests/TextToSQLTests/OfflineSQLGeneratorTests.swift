import Testing

@testable import TextToSQL

/// The offline generator over a catalog that mirrors the tables of Tests/Data/sql-guard/schema.sql
/// (their real columns, keys and a few sample values), checked for the exact SQL of each kind of
/// question it handles, in both dialects, and for what it refuses.
@Suite struct OfflineSQLGeneratorTests {
  struct Case: Sendable, CustomTestStringConvertible {
    var question: String
    var postgresql: String
    var sqlite: String

    init(_ question: String, _ postgresql: String, sqlite: String? = nil) {
      self.question = question
      self.postgresql = postgresql
      self.sqlite = sqlite ?? postgresql
    }

    var testDescription: String { self.question }
  }

  /// The select lists of listings over every column of a table, bare or with an alias.
  enum Columns {
    static func list(_ names: String, _ alias: String?) -> String {
      guard let alias else { return names }
      return names.split(separator: ", ").map { "\(alias).\($0)" }.joined(separator: ", ")
    }
    static func departments(_ alias: String? = nil) -> String { list("id, name, parent_id, budget, location", alias) }
    static func employees(_ alias: String? = nil) -> String {
      list(
        "id, department_id, manager_id, first_name, last_name, email, title, salary, hired_on, terminated_on, is_active",
        alias)
    }
    static func products(_ alias: String? = nil) -> String {
      list("id, category_id, sku, name, price, cost, stock, discontinued, tags, attributes", alias)
    }
    static func customers(_ alias: String? = nil) -> String {
      list(
        "id, first_name, last_name, email, country, city, signup_date, birth_date, tier, referred_by, marketing_opt_in, notes",
        alias)
    }
    static func orders(_ alias: String? = nil) -> String {
      list("id, customer_id, employee_id, status, ordered_at, shipped_at, shipping_country, discount_code", alias)
    }
  }

  static let cases: [Case] = [
    Case(
      "how many orders are there",
      "SELECT count(*) AS order_count FROM orders"
    ),
    Case(
      "count customers in Germany",
      "SELECT count(*) AS customer_count FROM customers WHERE country = 'DE'"
    ),
    Case(
      "list the departments",
      "SELECT \(Columns.departments()) FROM departments LIMIT 100"
    ),
    Case(
      "show products in category Books",
      "SELECT \(Columns.products("p")) FROM products p JOIN categories c ON c.id = p.category_id"
        + " WHERE c.name = 'Books' LIMIT 100"
    ),
    Case(
      "which employees are in Engineering",
      "SELECT \(Columns.employees("e")) FROM employees e JOIN departments d ON d.id = e.department_id"
        + " WHERE d.name = 'Engineering' LIMIT 100"
    ),
    Case(
      "active employees",
      "SELECT \(Columns.employees()) FROM employees WHERE is_active = TRUE LIMIT 100",
      sqlite: "SELECT \(Columns.employees()) FROM employees WHERE is_active = 1 LIMIT 100"
    ),
    Case(
      "products that are not discontinued",
      "SELECT \(Columns.products()) FROM products WHERE discontinued = FALSE LIMIT 100",
      sqlite: "SELECT \(Columns.products()) FROM products WHERE discontinued = 0 LIMIT 100"
    ),
    Case(
      "employees with salary over 100000",
      "SELECT \(Columns.employees()) FROM employees WHERE salary > 100000 LIMIT 100"
    ),
    Case(
      "products with price below 20",
      "SELECT \(Columns.products()) FROM products WHERE price < 20 LIMIT 100"
    ),
    Case(
      "products with stock more than 5",
      "SELECT \(Columns.products()) FROM products WHERE stock > 5 LIMIT 100"
    ),
    Case(
      "customers from India and France",
      "SELECT \(Columns.customers()) FROM customers WHERE country IN ('IN', 'FR') LIMIT 100"
    ),
    Case(
      "products containing 'lamp'",
      "SELECT \(Columns.products()) FROM products WHERE name ILIKE '%lamp%' LIMIT 100",
      sqlite: "SELECT \(Columns.products()) FROM products WHERE name LIKE '%lamp%' LIMIT 100"
    ),
    Case(
      "top 5 products by price",
      "SELECT \(Columns.products()) FROM products ORDER BY price DESC LIMIT 5"
    ),
    Case(
      "the 10 highest paid employees",
      "SELECT \(Columns.employees()) FROM employees ORDER BY salary DESC LIMIT 10"
    ),
    Case(
      "average salary per department",
      "SELECT d.name, round(avg(e.salary), 2) AS avg_salary"
        + " FROM employees e JOIN departments d ON d.id = e.department_id GROUP BY d.name"
        + " ORDER BY d.name ASC LIMIT 100"
    ),
    Case(
      "total revenue by category",
      "SELECT c.name, sum(oi.quantity * oi.unit_price) AS total_revenue"
        + " FROM order_items oi JOIN products p ON p.id = oi.product_id JOIN categories c ON c.id = p.category_id"
        + " GROUP BY c.name ORDER BY c.name ASC LIMIT 100"
    ),
    Case(
      "number of orders per status",
      "SELECT status, count(*) AS order_count FROM orders GROUP BY status"
        + " ORDER BY status ASC LIMIT 100"
    ),
    Case(
      "which department has the most employees",
      "SELECT d.name, count(*) AS employee_count"
        + " FROM employees e JOIN departments d ON d.id = e.department_id GROUP BY d.name"
        + " ORDER BY employee_count DESC LIMIT 1"
    ),
    Case(
      "orders in 2024",
      "SELECT \(Columns.orders()) FROM orders"
        + " WHERE ordered_at >= '2024-01-01' AND ordered_at < '2025-01-01' LIMIT 100"
    ),
    Case(
      "employees hired since 2023-01-01",
      "SELECT \(Columns.employees()) FROM employees WHERE hired_on >= '2023-01-01' LIMIT 100"
    ),
    Case(
      "customers who signed up before 2022",
      "SELECT \(Columns.customers()) FROM customers WHERE signup_date < '2022-01-01' LIMIT 100"
    ),
    Case(
      "orders between 2023-01-01 and 2023-06-30",
      "SELECT \(Columns.orders()) FROM orders"
        + " WHERE ordered_at >= '2023-01-01' AND ordered_at < '2023-07-01' LIMIT 100"
    ),
    Case(
      "orders in the last 30 days",
      "SELECT \(Columns.orders()) FROM orders WHERE ordered_at >= now() - INTERVAL '30 days' LIMIT 100",
      sqlite: "SELECT \(Columns.orders()) FROM orders WHERE ordered_at >= date('now', '-30 days') LIMIT 100"
    ),
    Case(
      "number of orders per month in 2023",
      "SELECT date_trunc('month', ordered_at) AS month, count(*) AS order_count FROM orders"
        + " WHERE ordered_at >= '2023-01-01' AND ordered_at < '2024-01-01'"
        + " GROUP BY date_trunc('month', ordered_at) ORDER BY month ASC LIMIT 100",
      sqlite: "SELECT strftime('%Y-%m', ordered_at) AS month, count(*) AS order_count FROM orders"
        + " WHERE ordered_at >= '2023-01-01' AND ordered_at < '2024-01-01'"
        + " GROUP BY strftime('%Y-%m', ordered_at) ORDER BY month ASC LIMIT 100"
    ),
    Case(
      "number of employees hired per year",
      "SELECT extract(YEAR FROM hired_on) AS year, count(*) AS employee_count FROM employees"
        + " GROUP BY extract(YEAR FROM hired_on) ORDER BY year ASC LIMIT 100",
      sqlite: "SELECT strftime('%Y', hired_on) AS year, count(*) AS employee_count FROM employees"
        + " GROUP BY strftime('%Y', hired_on) ORDER BY year ASC LIMIT 100"
    ),
    Case(
      "employees per department name",
      "SELECT d.name, count(*) AS employee_count"
        + " FROM employees e JOIN departments d ON d.id = e.department_id GROUP BY d.name"
        + " ORDER BY d.name ASC LIMIT 100"
    ),
    Case(
      "how many customers placed orders",
      "SELECT count(DISTINCT c.id) AS customer_count"
        + " FROM customers c JOIN orders o ON o.customer_id = c.id"
    ),
  ]

  static let unsupported: [(question: String, reason: String)] = [
    ("why did sales drop", "'why' asks for more than a read-only lookup"),
    ("delete all orders", "'delete' asks for more than a read-only lookup"),
    ("customers in Narnia", "cannot link 'narnia'"),
    ("how many widgets are there", "cannot tell what to count"),
    ("what is the weather like", "no table of the catalog is named"),
    ("top 5 products", "cannot tell what to order by"),
    ("list employee names", "'name' could mean departments.name or categories.name or products.name"),
    ("products under 20", "cannot tell which numeric column 'under 20' is about"),
    ("list orders with 7 items", "cannot tell what '7' refers to"),
    ("average salary of employees with orders", "would count rows twice"),
  ]

  func generate(_ question: String, _ dialect: SQLDialect, catalog: SchemaCatalog = Self.corpusCatalog) async throws
    -> GeneratedSQL
  {
    try await OfflineSQLGenerator().generate(GenerationRequest(question: question, catalog: catalog, dialect: dialect))
  }

  @Test("Each kind of question gives the exact SQL in PostgreSQL", arguments: Self.cases)
  func postgresql(_ item: Case) async throws {
    #expect(try await self.generate(item.question, .postgresql).sql == item.postgresql)
  }

  @Test("Each kind of question gives the exact SQL in SQLite", arguments: Self.cases)
  func sqlite(_ item: Case) async throws {
    #expect(try await self.generate(item.question, .sqlite).sql == item.sqlite)
  }

  @Test("What it cannot link is refused with what it handles, in both dialects")
  func unsupportedQuestions() async {
    for (question, reason) in Self.unsupported {
      for dialect in [SQLDialect.postgresql, .sqlite] {
        do {
          let sql = try await self.generate(question, dialect).sql
          Issue.record("\(question) gave \(sql)")
        } catch let error as GenerationError {
          guard case .unsupported(let message) = error else {
            Issue.record("\(question): \(error)")
            continue
          }
          #expect(message.contains(reason), "\(question): \(message)")
          #expect(message.contains("handles counts, listings"), "\(question): \(message)")
        } catch {
          Issue.record("\(question): \(error)")
        }
      }
    }
  }

  @Test("The same question gives the same SQL; no statement ends with a semicolon")
  func deterministic() async throws {
    for item in Self.cases {
      let first = try await self.generate(item.question, .postgresql)
      let second = try await self.generate(item.question, .postgresql)
      #expect(first == second)
      #expect(!first.sql.hasSuffix(";"))
      #expect(first.sql.hasPrefix("SELECT "))
    }
  }

  @Test("The explanation names the kind, the tables and the columns chosen")
  func explanation() async throws {
    let result = try await self.generate("average salary per department", .postgresql)
    #expect(result.explanation.contains("aggregate per group"))
    #expect(result.explanation.contains("employees, departments"))
    #expect(result.explanation.contains("employees.salary"))
    #expect(result.explanation.contains("departments.name"))
    #expect(try await self.generate("how many orders are there", .sqlite).explanation.contains("count question"))
  }

  @Test("Identifiers are quoted only when needed, string literals escaped, other schemas qualified")
  func quoting() async throws {
    let catalog = SchemaCatalog(tables: [
      CatalogTable(
        schema: "audit", name: "events",
        columns: [
          CatalogColumn(name: "id", dataType: "bigint", isNullable: false, isPrimaryKey: true, ordinal: 1),
          CatalogColumn(
            name: "user", dataType: "text", isNullable: false, ordinal: 2, sampleValues: ["alice", "O'Brien"]),
          CatalogColumn(name: "Drop Table", dataType: "boolean", isNullable: false, ordinal: 3),
          CatalogColumn(name: "order", dataType: "integer", ordinal: 4),
        ])
    ])
    let columns = "id, \"user\", \"Drop Table\", \"order\""
    #expect(
      try await self.generate("events of O'Brien", .postgresql, catalog: catalog).sql
        == "SELECT \(columns) FROM audit.events WHERE \"user\" = 'O''Brien' LIMIT 100")
    #expect(
      try await self.generate("total order per user", .sqlite, catalog: catalog).sql
        == "SELECT \"user\", sum(\"order\") AS total_order FROM audit.events GROUP BY \"user\""
        + " ORDER BY \"user\" ASC LIMIT 100")
  }

  @Test("Only the first 2000 characters of a question are read")
  func longQuestion() async throws {
    let question = "how many orders are there" + String(repeating: " please", count: 400) + " in Narnia"
    #expect(try await self.generate(question, .postgresql).sql == "SELECT count(*) AS order_count FROM orders")
  }
}

// MARK: - The corpus schema as a catalog

extension OfflineSQLGeneratorTests {
  static func col(
    _ name: String, _ type: String, _ ordinal: Int, pk: Bool = false, null: Bool = false, samples: [String] = []
  ) -> CatalogColumn {
    CatalogColumn(
      name: name, dataType: type, isNullable: null, isPrimaryKey: pk, ordinal: ordinal, sampleValues: samples)
  }

  static func fk(_ table: String, _ column: String, _ target: String) -> CatalogForeignKey {
    CatalogForeignKey(
      name: "\(table)_\(column)_fkey", columns: [column], referencedSchema: "public", referencedTable: target,
      referencedColumns: ["id"])
  }

  /// The tables of schema.sql with their columns, keys, foreign keys and (from its data) sample
  /// values of the text columns with few distinct values.
  static let corpusCatalog = SchemaCatalog(tables: [
    CatalogTable(
      schema: "public", name: "departments", description: "Organisational units of the company",
      columns: [
        col("id", "integer", 1, pk: true),
        col(
          "name", "text", 2,
          samples: [
            "Company", "Engineering", "Sales", "Marketing", "Finance", "Support", "Platform", "Data", "EMEA Sales",
            "APAC Sales", "Americas Sales", "Payroll",
          ]),
        col("parent_id", "integer", 3, null: true),
        col("budget", "numeric(12,2)", 4),
        col(
          "location", "text", 5, null: true, samples: ["Berlin", "London", "Lisbon", "Remote", "Singapore", "New York"]),
      ], foreignKeys: [fk("departments", "parent_id", "departments")]),
    CatalogTable(
      schema: "public", name: "employees", description: "Staff members",
      columns: [
        col("id", "integer", 1, pk: true),
        col("department_id", "integer", 2),
        col("manager_id", "integer", 3, null: true),
        col("first_name", "text", 4),
        col("last_name", "text", 5),
        col("email", "text", 6),
        col(
          "title", "text", 7,
          samples: [
            "Chief Executive Officer", "Head of Department", "Engineer", "Senior Engineer", "Analyst",
            "Account Executive", "Support Specialist", "Manager", "Designer",
          ]),
        col("salary", "numeric(10,2)", 8),
        col("hired_on", "date", 9),
        col("terminated_on", "date", 10, null: true),
        col("is_active", "boolean", 11),
      ], foreignKeys: [fk("employees", "department_id", "departments"), fk("employees", "manager_id", "employees")]),
    CatalogTable(
      schema: "public", name: "categories",
      columns: [
        col("id", "integer", 1, pk: true),
        col(
          "name", "text", 2,
          samples: [
            "Electronics", "Home", "Books", "Sports", "Toys", "Phones", "Laptops", "Audio", "Kitchen", "Furniture",
            "Garden", "Fiction", "Non-fiction", "Comics", "Cycling", "Running", "Camping", "Board Games", "Puzzles",
            "Smartphone Cases",
          ]),
        col("parent_id", "integer", 3, null: true),
      ], foreignKeys: [fk("categories", "parent_id", "categories")]),
    CatalogTable(
      schema: "public", name: "products",
      columns: [
        col("id", "integer", 1, pk: true),
        col("category_id", "integer", 2),
        col("sku", "text", 3),
        col("name", "text", 4),
        col("price", "numeric(10,2)", 5),
        col("cost", "numeric(10,2)", 6),
        col("stock", "integer", 7),
        col("discontinued", "boolean", 8),
        col("tags", "text[]", 9),
        col("attributes", "jsonb", 10),
      ], foreignKeys: [fk("products", "category_id", "categories")]),
    CatalogTable(
      schema: "public", name: "customers",
      columns: [
        col("id", "integer", 1, pk: true),
        col("first_name", "text", 2),
        col("last_name", "text", 3),
        col("email", "text", 4),
        col("country", "character(2)", 5, samples: ["US", "DE", "FR", "GB", "IN", "JP", "BR", "CA", "AU", "NL"]),
        col(
          "city", "text", 6, null: true,
          samples: [
            "New York", "Berlin", "Paris", "London", "Mumbai", "Tokyo", "São Paulo", "Toronto", "Sydney", "Amsterdam",
          ]),
        col("signup_date", "date", 7),
        col("birth_date", "date", 8, null: true),
        col("tier", "text", 9, samples: ["bronze", "silver", "gold", "platinum"]),
        col("referred_by", "integer", 10, null: true),
        col("marketing_opt_in", "boolean", 11),
        col("notes", "text", 12, null: true),
      ], foreignKeys: [fk("customers", "referred_by", "customers")]),
    CatalogTable(
      schema: "public", name: "orders",
      columns: [
        col("id", "integer", 1, pk: true),
        col("customer_id", "integer", 2),
        col("employee_id", "integer", 3, null: true),
        col("status", "text", 4, samples: ["pending", "shipped", "delivered", "cancelled", "returned"]),
        col("ordered_at", "timestamp with time zone", 5),
        col("shipped_at", "timestamp with time zone", 6, null: true),
        col(
          "shipping_country", "character(2)", 7, samples: ["US", "DE", "FR", "GB", "IN", "JP", "BR", "CA", "AU", "NL"]),
        col("discount_code", "text", 8, null: true),
      ], foreignKeys: [fk("orders", "customer_id", "customers"), fk("orders", "employee_id", "employees")]),
    CatalogTable(
      schema: "public", name: "order_items",
      columns: [
        col("order_id", "integer", 1, pk: true),
        col("line_no", "integer", 2, pk: true),
        col("product_id", "integer", 3),
        col("quantity", "integer", 4),
        col("unit_price", "numeric(10,2)", 5),
        col("discount", "numeric(4,2)", 6),
      ], foreignKeys: [fk("order_items", "order_id", "orders"), fk("order_items", "product_id", "products")]),
  ])
}
