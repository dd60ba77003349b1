public import Foundation

/// A workflow's cron trigger: a standard five-field cron expression, parsed strictly (users type
/// these, possibly with hostile intent), and the fire times it denotes.
///
/// Syntax: `minute hour day-of-month month day-of-week`, separated by one or more spaces or tabs.
/// - minute 0-59, hour 0-23, day of month 1-31, month 1-12 or `JAN`-`DEC`, day of week 0-7 (0 and
///   7 are Sunday) or `SUN`-`SAT`; names are case-insensitive.
/// - Each field is a comma-separated list of `*`, a value `a`, a range `a-b`, or a step over any of
///   them: `*/n`, `a-b/n`, `a/n` (from `a` to the field's maximum). Ranges never wrap around
///   (`FRI-MON` is refused; write `FRI-SAT,SUN,MON` or `5-7,1`).
/// - Macros: `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`.
///
/// Days follow Vixie cron: when both day-of-month and day-of-week are restricted, a day matches
/// when either one does (`0 0 1 * MON` fires on the 1st and on every Monday); when one of them is
/// `*`, only the other one counts. A field is unrestricted only when it is exactly `*`; unlike
/// Vixie cron, whose check looks at the first character, `*/2` counts as restricted.
///
/// Fire times are whole minutes of the wall clock of the time zone given to `nextFire` (UTC by
/// default). Around daylight-saving transitions:
/// - a local time that does not exist (the hour skipped when clocks spring forward) does not fire;
///   it is not moved to the next valid time;
/// - a local time that occurs twice (the hour repeated when clocks fall back) fires once, at its
///   first occurrence. So `*/30 * * * *` fires at 01:00 and 01:30 in daylight time, then at 02:00
///   in standard time, not during the repeated hour.
public struct CronSchedule: Sendable, Equatable {
  /// The expression as parsed, leading and trailing whitespace removed.
  public let expression: String

  /// The minutes that fire: bit `m` for minute `m` (0-59).
  let minutes: UInt64
  /// The hours that fire: bit `h` for hour `h` (0-23).
  let hours: UInt64
  /// The days of the month that fire: bit `d` for day `d` (1-31).
  let daysOfMonth: UInt64
  /// The months that fire: bit `m` for month `m` (1-12).
  let months: UInt64
  /// The days of the week that fire: bit `w` for weekday `w` (0-6, Sunday = 0; 7 is folded into 0).
  let daysOfWeek: UInt64
  /// Whether the day-of-month field is anything but `*` (for the Vixie either-day rule).
  let dayOfMonthIsRestricted: Bool
  /// Whether the day-of-week field is anything but `*` (for the Vixie either-day rule).
  let dayOfWeekIsRestricted: Bool

  /// The longest expression accepted, in UTF-8 bytes.
  static let maximumExpressionLength = 256

  /// How many calendar years `nextFire` searches past the year of its start. Eight covers the
  /// longest gap between two February 29ths (2096 to 2104: 2100 is not a leap year), so every
  /// schedule that can fire at all is found; one that cannot (`0 0 30 2 *`) returns nil.
  static let searchHorizonYears = 8

  /// How many matching local times `nextFire` may skip because they do not exist or already
  /// occurred (DST transitions) before giving up. A real transition skips at most a day's worth
  /// (1,440 minutes, Samoa in 2011); this only bounds the work on pathological time-zone data.
  static let maximumSkippedCandidates = 10_000

  /// An expression that cannot be parsed: which field is wrong, and why.
  public struct ParseError: Error, Equatable, CustomStringConvertible {
    /// `minute`, `hour`, `day_of_month`, `month`, `day_of_week`, or `expression` for problems
    /// with the whole expression (length, field count, unknown macro).
    public var field: String
    /// What is wrong, e.g. `61 is out of range 0-59`.
    public var reason: String

    public init(field: String, reason: String) {
      self.field = field
      self.reason = reason
    }

    public var description: String {
      self.field == "expression"
        ? "invalid cron expression: \(self.reason)"
        : "invalid cron field \(self.field): \(self.reason)"
    }
  }

  /// Parses a five-field cron expression or a macro.
  /// - Throws: `ParseError` naming the field (`minute`, `hour`, `day_of_month`, `month`,
  ///   `day_of_week`, or `expression`) and why: `59-1 is a reversed range`, `step 0 is not
  ///   allowed`, `61 is out of range 0-59`, `expected 5 fields, found 6`, ...
  public init(parsing expression: String) throws(CronSchedule.ParseError) {
    let length = expression.utf8.count
    guard length <= Self.maximumExpressionLength else {
      throw ParseError(
        field: "expression",
        reason: "\(length) bytes is longer than the limit of \(Self.maximumExpressionLength)"
      )
    }
    let trimmed = expression.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !trimmed.isEmpty else {
      throw ParseError(field: "expression", reason: "empty")
    }

    let fieldTexts: [Substring]
    if trimmed.hasPrefix("@") {
      guard let expansion = Self.macros[trimmed.lowercased()] else {
        throw ParseError(
          field: "expression",
          reason: "unknown macro \(Self.quoted(trimmed[...])) (expected @yearly, @annually, @monthly, "
            + "@weekly, @daily, @midnight or @hourly)"
        )
      }
      fieldTexts = expansion.split(separator: " ")
    } else {
      fieldTexts = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
    }
    guard fieldTexts.count == 5 else {
      throw ParseError(field: "expression", reason: "expected 5 fields, found \(fieldTexts.count)")
    }

    self.expression = trimmed
    self.minutes = try Self.parse(fieldTexts[0], as: .minute)
    self.hours = try Self.parse(fieldTexts[1], as: .hour)
    self.daysOfMonth = try Self.parse(fieldTexts[2], as: .dayOfMonth)
    self.months = try Self.parse(fieldTexts[3], as: .month)
    let weekdays = try Self.parse(fieldTexts[4], as: .dayOfWeek)
    // 7 is another name for Sunday.
    self.daysOfWeek = (weekdays & 0x7F) | ((weekdays >> 7) & 1)
    self.dayOfMonthIsRestricted = fieldTexts[2] != "*"
    self.dayOfWeekIsRestricted = fieldTexts[4] != "*"
  }

  /// The first fire time strictly after `date`, at a whole minute of `timeZone`'s wall clock.
  ///
  /// The search skips whole months, days and hours that cannot match, so its cost is bounded by
  /// the number of months in the horizon, never by the number of minutes.
  /// - Returns: nil when the schedule cannot fire within `searchHorizonYears` (8) calendar years
  ///   after `date`'s year, which for a valid expression means never (`0 0 30 2 *`), or when
  ///   `date` is not finite or outside the years 1700-9000.
  public func nextFire(after date: Date, in timeZone: TimeZone = TimeZone(identifier: "UTC")!) -> Date? {
    let instant = date.timeIntervalSince1970
    guard instant.isFinite, Self.supportedInstants.contains(instant) else { return nil }

    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = timeZone
    let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
    guard let year = parts.year, let month = parts.month, let day = parts.day, let hour = parts.hour,
      let minute = parts.minute
    else { return nil }

    // The wall-clock minute containing `date` is not after it: start at the next one.
    var cursor = LocalMinute(year: year, month: month, day: day, hour: hour, minute: minute).next
    let lastYear = year + Self.searchHorizonYears
    var skipped = 0
    while let candidate = self.firstMatch(from: cursor, throughYear: lastYear) {
      // A time that does not exist (DST gap), or whose first occurrence is not after `date`
      // (`date` is in a repeated hour), is skipped.
      if let fire = candidate.firstInstant(in: timeZone), Double(fire) > instant {
        return Date(timeIntervalSince1970: Double(fire))
      }
      skipped += 1
      guard skipped < Self.maximumSkippedCandidates else { return nil }
      cursor = candidate.next
    }
    return nil
  }

  /// The fire times in `(after, through]`, in order, at most `limit` of them (none when `limit`
  /// is not positive). Each one costs a `nextFire`.
  public func fireTimes(
    after start: Date,
    through end: Date,
    in timeZone: TimeZone = TimeZone(identifier: "UTC")!,
    limit: Int = 1000
  ) -> [Date] {
    guard limit > 0, start < end else { return [] }
    var times: [Date] = []
    var cursor = start
    while times.count < limit, let fire = self.nextFire(after: cursor, in: timeZone), fire <= end {
      times.append(fire)
      cursor = fire
    }
    return times
  }
}

// MARK: - Parsing

extension CronSchedule {
  /// One of the five fields: its name in errors, its values, and the names it accepts.
  struct Field: Sendable {
    let name: String
    let range: ClosedRange<Int>
    /// Three-letter names, upper case; `names[i]` stands for `firstNamedValue + i`.
    let names: [String]
    let firstNamedValue: Int

    static let minute = Field(name: "minute", range: 0...59, names: [], firstNamedValue: 0)
    static let hour = Field(name: "hour", range: 0...23, names: [], firstNamedValue: 0)
    static let dayOfMonth = Field(name: "day_of_month", range: 1...31, names: [], firstNamedValue: 1)
    static let month = Field(
      name: "month",
      range: 1...12,
      names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
      firstNamedValue: 1
    )
    static let dayOfWeek = Field(
      name: "day_of_week",
      range: 0...7,
      names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
      firstNamedValue: 0
    )

    func error(_ reason: String) -> ParseError {
      ParseError(field: self.name, reason: reason)
    }
  }

  /// The macros, lower case, and the expressions they stand for.
  static let macros: [String: String] = [
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
  ]

  /// Parses one field (a comma-separated list) into a bit set of its values.
  static func parse(_ text: Substring, as field: Field) throws(ParseError) -> UInt64 {
    var bits: UInt64 = 0
    for element in text.split(separator: ",", omittingEmptySubsequences: false) {
      guard !element.isEmpty else {
        throw field.error("\(Self.quoted(text)) has an empty list element")
      }
      bits |= try Self.parseElement(element, as: field)
    }
    return bits
  }

  /// Parses one list element: `*`, `a`, `a-b`, or one of them followed by `/step`.
  static func parseElement(_ element: Substring, as field: Field) throws(ParseError) -> UInt64 {
    let parts = element.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
    let base = parts[0]
    var step = 1
    if parts.count == 2 {
      step = try Self.parseStep(parts[1], in: element, as: field)
    }

    let low: Int
    let high: Int
    if base == "*" {
      low = field.range.lowerBound
      high = field.range.upperBound
    } else if let dash = base.firstIndex(of: "-") {
      let lowText = base[..<dash]
      let highText = base[base.index(after: dash)...]
      guard !lowText.isEmpty, !highText.isEmpty, !highText.contains("-") else {
        throw field.error("\(Self.quoted(base)) is not a valid range (expected a-b)")
      }
      low = try Self.parseValue(lowText, as: field)
      high = try Self.parseValue(highText, as: field)
      guard low <= high else {
        throw field.error("\(base) is a reversed range")
      }
    } else {
      guard !base.isEmpty else {
        throw field.error("\(Self.quoted(element)) has no value before the step")
      }
      low = try Self.parseValue(base, as: field)
      // `a/n` runs from a to the field's maximum; a lone `a` is just a.
      high = parts.count == 2 ? field.range.upperBound : low
    }

    var bits: UInt64 = 0
    for value in stride(from: low, through: high, by: step) {
      bits |= 1 << UInt64(value)
    }
    return bits
  }

  /// Parses the `n` of `/n`: a number from 1 to the number of values in the field.
  static func parseStep(_ text: Substring, in element: Substring, as field: Field) throws(ParseError) -> Int {
    guard let step = Self.decimal(text) else {
      throw field.error("step \(Self.quoted(text)) in \(Self.quoted(element)) is not a number")
    }
    guard step != 0 else {
      throw field.error("step 0 is not allowed")
    }
    let valueCount = field.range.count
    guard step <= valueCount else {
      throw field.error("step \(text) is out of range 1-\(valueCount)")
    }
    return step
  }

  /// Parses a value: decimal digits within the field's range, or (month, day of week) a name.
  static func parseValue(_ text: Substring, as field: Field) throws(ParseError) -> Int {
    if let value = Self.decimal(text) {
      guard field.range.contains(value) else {
        throw field.error("\(text) is out of range \(field.range.lowerBound)-\(field.range.upperBound)")
      }
      return value
    }
    if text.utf8.count == 3, let index = field.names.firstIndex(of: text.uppercased()) {
      return field.firstNamedValue + index
    }
    if let first = field.names.first, let last = field.names.last {
      throw field.error("\(Self.quoted(text)) is not a number or a name (\(first)-\(last))")
    }
    throw field.error("\(Self.quoted(text)) is not a number")
  }

  /// The value of a non-empty run of ASCII digits (saturating at one million, far beyond any
  /// field's range); nil for anything else, signs included.
  static func decimal(_ text: Substring) -> Int? {
    guard !text.isEmpty else { return nil }
    var value = 0
    for byte in text.utf8 {
      guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
      value = min(value * 10 + Int(byte - UInt8(ascii: "0")), 1_000_000)
    }
    return value
  }

  /// `text` in single quotes, with everything but printable ASCII escaped as `\u{…}`, so that an
  /// error message never carries control characters or look-alike letters from hostile input.
  static func quoted(_ text: Substring) -> String {
    var result = "'"
    for scalar in text.unicodeScalars {
      if scalar.value >= 0x20, scalar.value < 0x7F {
        result.unicodeScalars.append(scalar)
      } else {
        result += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
      }
    }
    return result + "'"
  }
}

// MARK: - Searching

extension CronSchedule {
  /// Instants (seconds since 1970) `nextFire` accepts: the years 1700 to 9000. The Gregorian
  /// calendar's switch from the Julian one (1582) and the far future are out of scope.
  static let supportedInstants: ClosedRange<Double> =
    Double(LocalMinute.days(year: 1700, month: 1, day: 1) * 86_400)...Double(
      LocalMinute.days(year: 9000, month: 1, day: 1) * 86_400)

  /// The first wall-clock minute at or after `start` that matches every field, with a year no
  /// later than `lastYear`. Each step moves to the next matching month, day, hour or minute.
  func firstMatch(from start: LocalMinute, throughYear lastYear: Int) -> LocalMinute? {
    var (year, month, day, hour, minute) = (start.year, start.month, start.day, start.hour, start.minute)
    while year <= lastYear {
      guard let matchingMonth = Self.firstBit(of: self.months, from: month, through: 12) else {
        (year, month, day, hour, minute) = (year + 1, 1, 1, 0, 0)
        continue
      }
      if matchingMonth != month {
        (month, day, hour, minute) = (matchingMonth, 1, 0, 0)
      }
      guard let matchingDay = self.firstMatchingDay(year: year, month: month, from: day) else {
        (month, day, hour, minute) = (month + 1, 1, 0, 0)
        continue
      }
      if matchingDay != day {
        (day, hour, minute) = (matchingDay, 0, 0)
      }
      guard let matchingHour = Self.firstBit(of: self.hours, from: hour, through: 23) else {
        (day, hour, minute) = (day + 1, 0, 0)
        continue
      }
      if matchingHour != hour {
        (hour, minute) = (matchingHour, 0)
      }
      guard let matchingMinute = Self.firstBit(of: self.minutes, from: minute, through: 59) else {
        (hour, minute) = (hour + 1, 0)
        continue
      }
      return LocalMinute(year: year, month: month, day: day, hour: hour, minute: matchingMinute)
    }
    return nil
  }

  /// The first day at or after `day` in the month that matches the day-of-month and day-of-week
  /// fields (both, or either when both are restricted); nil past the month's end.
  func firstMatchingDay(year: Int, month: Int, from day: Int) -> Int? {
    let lastDay = LocalMinute.daysInMonth(year: year, month: month)
    guard day <= lastDay else { return nil }
    let eitherDay = self.dayOfMonthIsRestricted && self.dayOfWeekIsRestricted
    var weekday = LocalMinute.weekday(year: year, month: month, day: day)
    for candidate in day...lastDay {
      let dayOfMonthMatches = self.daysOfMonth & (1 << UInt64(candidate)) != 0
      let dayOfWeekMatches = self.daysOfWeek & (1 << UInt64(weekday)) != 0
      if eitherDay ? (dayOfMonthMatches || dayOfWeekMatches) : (dayOfMonthMatches && dayOfWeekMatches) {
        return candidate
      }
      weekday = (weekday + 1) % 7
    }
    return nil
  }

  /// The lowest set bit of `bits` in `start...end`, or nil.
  static func firstBit(of bits: UInt64, from start: Int, through end: Int) -> Int? {
    guard start <= end, start < 64 else { return nil }
    let remaining = bits & (~UInt64(0) << UInt64(start))
    guard remaining != 0 else { return nil }
    let bit = remaining.trailingZeroBitCount
    return bit <= end ? bit : nil
  }
}

extension CronSchedule {
  /// A wall-clock minute in some time zone, in the proleptic Gregorian calendar.
  struct LocalMinute: Sendable, Equatable {
    var year: Int
    var month: Int
    var day: Int
    var hour: Int
    var minute: Int

    /// The following wall-clock minute.
    var next: LocalMinute {
      var result = self
      result.minute += 1
      if result.minute == 60 {
        result.minute = 0
        result.hour += 1
      }
      if result.hour == 24 {
        result.hour = 0
        result.day += 1
      }
      if result.day > Self.daysInMonth(year: result.year, month: result.month) {
        result.day = 1
        result.month += 1
      }
      if result.month == 13 {
        result.month = 1
        result.year += 1
      }
      return result
    }

    /// The first instant (seconds since 1970, UTC) at which `timeZone`'s clock shows this minute,
    /// or nil when it never does (skipped by a daylight-saving transition).
    ///
    /// The candidates are this minute read with the offsets in force a day before, at, and a day
    /// after it; a candidate is real when the zone's offset at that instant is the one used.
    func firstInstant(in timeZone: TimeZone) -> Int? {
      let local = Self.days(year: self.year, month: self.month, day: self.day) * 86_400
        + self.hour * 3_600 + self.minute * 60
      var first: Int?
      for probe in [local - 86_400, local, local + 86_400] {
        let offset = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(probe)))
        let instant = local - offset
        guard timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant))) == offset else { continue }
        first = min(first ?? instant, instant)
      }
      return first
    }

    /// Days from 1970-01-01 to the given date (negative before), proleptic Gregorian.
    /// (Howard Hinnant's `days_from_civil`.)
    static func days(year: Int, month: Int, day: Int) -> Int {
      let shiftedYear = month <= 2 ? year - 1 : year
      let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
      let yearOfEra = shiftedYear - era * 400
      let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1  // counted from March 1st
      let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
      return era * 146_097 + dayOfEra - 719_468
    }

    /// The day of the week, 0 = Sunday.
    static func weekday(year: Int, month: Int, day: Int) -> Int {
      // 1970-01-01 was a Thursday (4).
      let remainder = (Self.days(year: year, month: month, day: day) + 4) % 7
      return remainder < 0 ? remainder + 7 : remainder
    }

    static func isLeapYear(_ year: Int) -> Bool {
      year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
      switch month {
      case 2: Self.isLeapYear(year) ? 29 : 28
      case 4, 6, 9, 11: 30
      default: 31
      }
    }
  }
}
