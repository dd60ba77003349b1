import Foundation
import Testing

@testable import Workflow

struct CronScheduleTests {
  // MARK: - Helpers

  /// A UTC instant written in ISO 8601, e.g. `2024-05-01T00:00:00Z`.
  static func time(_ text: String) throws -> Date {
    try Date(text, strategy: .iso8601)
  }

  /// The values whose bits are set, in order.
  static func values(_ bits: UInt64) -> [Int] {
    (0..<64).filter { bits & (1 << UInt64($0)) != 0 }
  }

  /// The next `count` fire times after `start`, chained through `nextFire`, in ISO 8601.
  static func fires(
    _ expression: String,
    after start: String,
    count: Int,
    in timeZone: TimeZone = .gmt
  ) throws -> [String] {
    let schedule = try CronSchedule(parsing: expression)
    var cursor = try Self.time(start)
    var result: [String] = []
    for _ in 0..<count {
      guard let next = schedule.nextFire(after: cursor, in: timeZone) else { break }
      result.append(next.formatted(.iso8601))
      cursor = next
    }
    return result
  }

  /// The first fire time after `start`, in ISO 8601; nil when there is none.
  static func nextFire(_ expression: String, after start: Date, in timeZone: TimeZone = .gmt) throws -> String? {
    try CronSchedule(parsing: expression).nextFire(after: start, in: timeZone)?.formatted(.iso8601)
  }

  /// The error parsing `expression` throws, or nil when it parses.
  static func parseError(_ expression: String) -> CronSchedule.ParseError? {
    do throws(CronSchedule.ParseError) {
      _ = try CronSchedule(parsing: expression)
      return nil
    } catch {
      return error
    }
  }

  /// Whether two schedules have the same fields (whatever their text).
  static func sameFields(_ a: CronSchedule, _ b: CronSchedule) -> Bool {
    a.minutes == b.minutes && a.hours == b.hours && a.daysOfMonth == b.daysOfMonth && a.months == b.months
      && a.daysOfWeek == b.daysOfWeek && a.dayOfMonthIsRestricted == b.dayOfMonthIsRestricted
      && a.dayOfWeekIsRestricted == b.dayOfWeekIsRestricted
  }

  // MARK: - Field syntax

  @Test func singleValues() throws {
    let schedule = try CronSchedule(parsing: "5 4 3 2 1")
    #expect(Self.values(schedule.minutes) == [5])
    #expect(Self.values(schedule.hours) == [4])
    #expect(Self.values(schedule.daysOfMonth) == [3])
    #expect(Self.values(schedule.months) == [2])
    #expect(Self.values(schedule.daysOfWeek) == [1])
    #expect(schedule.dayOfMonthIsRestricted && schedule.dayOfWeekIsRestricted)
    #expect(schedule.expression == "5 4 3 2 1")
  }

  @Test func wildcardsCoverEachFieldsRange() throws {
    let schedule = try CronSchedule(parsing: "* * * * *")
    #expect(Self.values(schedule.minutes) == Array(0...59))
    #expect(Self.values(schedule.hours) == Array(0...23))
    #expect(Self.values(schedule.daysOfMonth) == Array(1...31))
    #expect(Self.values(schedule.months) == Array(1...12))
    #expect(Self.values(schedule.daysOfWeek) == Array(0...6))
    #expect(!schedule.dayOfMonthIsRestricted && !schedule.dayOfWeekIsRestricted)
  }

  @Test func ranges() throws {
    let schedule = try CronSchedule(parsing: "10-12 0-3 28-31 11-12 1-5")
    #expect(Self.values(schedule.minutes) == [10, 11, 12])
    #expect(Self.values(schedule.hours) == [0, 1, 2, 3])
    #expect(Self.values(schedule.daysOfMonth) == [28, 29, 30, 31])
    #expect(Self.values(schedule.months) == [11, 12])
    #expect(Self.values(schedule.daysOfWeek) == [1, 2, 3, 4, 5])
    // A one-value range and leading zeros.
    #expect(Self.values(try CronSchedule(parsing: "7-7 05 * * *").minutes) == [7])
  }

  @Test func steps() throws {
    let schedule = try CronSchedule(parsing: "*/15 */7 1-31/10 */3 */2")
    #expect(Self.values(schedule.minutes) == [0, 15, 30, 45])
    #expect(Self.values(schedule.hours) == [0, 7, 14, 21])
    #expect(Self.values(schedule.daysOfMonth) == [1, 11, 21, 31])
    #expect(Self.values(schedule.months) == [1, 4, 7, 10])
    #expect(Self.values(schedule.daysOfWeek) == [0, 2, 4, 6])
    // a-b/n and a/n (a to the field's maximum).
    #expect(Self.values(try CronSchedule(parsing: "10-30/10 * * * *").minutes) == [10, 20, 30])
    #expect(Self.values(try CronSchedule(parsing: "5/20 * * * *").minutes) == [5, 25, 45])
    #expect(Self.values(try CronSchedule(parsing: "* 20/2 * * *").hours) == [20, 22])
    // The largest step keeps only the first value.
    #expect(Self.values(try CronSchedule(parsing: "*/60 * * * *").minutes) == [0])
  }

  @Test func lists() throws {
    let schedule = try CronSchedule(parsing: "1,3-5,*/20 0,12 1,15 1,7 0,6")
    #expect(Self.values(schedule.minutes) == [0, 1, 3, 4, 5, 20, 40])
    #expect(Self.values(schedule.hours) == [0, 12])
    #expect(Self.values(schedule.daysOfMonth) == [1, 15])
    #expect(Self.values(schedule.months) == [1, 7])
    #expect(Self.values(schedule.daysOfWeek) == [0, 6])
    // Overlapping elements are fine.
    #expect(Self.values(try CronSchedule(parsing: "1,1,0-2 * * * *").minutes) == [0, 1, 2])
  }

  @Test func monthAndWeekdayNamesAreCaseInsensitive() throws {
    let schedule = try CronSchedule(parsing: "0 0 * jan,Mar-MAY,dec mon-FRI")
    #expect(Self.values(schedule.months) == [1, 3, 4, 5, 12])
    #expect(Self.values(schedule.daysOfWeek) == [1, 2, 3, 4, 5])
    #expect(Self.values(try CronSchedule(parsing: "0 0 * * Sun,sat").daysOfWeek) == [0, 6])
    #expect(Self.values(try CronSchedule(parsing: "0 0 * JAN/4 *").months) == [1, 5, 9])
    #expect(Self.values(try CronSchedule(parsing: "0 0 * * MON-FRI/2").daysOfWeek) == [1, 3, 5])
    // Names and numbers mix.
    #expect(Self.values(try CronSchedule(parsing: "0 0 * 2-APR 1-WED").months) == [2, 3, 4])
  }

  @Test func sevenIsSunday() throws {
    let seven = try CronSchedule(parsing: "0 0 * * 7")
    let zero = try CronSchedule(parsing: "0 0 * * 0")
    #expect(Self.values(seven.daysOfWeek) == [0])
    #expect(Self.sameFields(seven, zero))
    #expect(Self.values(try CronSchedule(parsing: "0 0 * * 5-7").daysOfWeek) == [0, 5, 6])
    #expect(Self.values(try CronSchedule(parsing: "0 0 * * 0-7").daysOfWeek) == Array(0...6))
    #expect(Self.values(try CronSchedule(parsing: "0 0 * * 1-7/2").daysOfWeek) == [0, 1, 3, 5])
    // 2024-05-01 is a Wednesday; the 5th is a Sunday.
    #expect(try Self.fires("0 0 * * 7", after: "2024-05-01T00:00:00Z", count: 2)
      == ["2024-05-05T00:00:00Z", "2024-05-12T00:00:00Z"])
  }

  @Test func whitespaceBetweenAndAroundFields() throws {
    let schedule = try CronSchedule(parsing: "  0\t0  *\t \t* \tMON \n")
    #expect(schedule.expression == "0\t0  *\t \t* \tMON")
    #expect(Self.sameFields(schedule, try CronSchedule(parsing: "0 0 * * 1")))
  }

  @Test(arguments: [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
    ("@DAILY", "0 0 * * *"),
    ("  @Hourly\t", "0 * * * *"),
  ])
  func macros(macro: String, equivalent: String) throws {
    let schedule = try CronSchedule(parsing: macro)
    #expect(Self.sameFields(schedule, try CronSchedule(parsing: equivalent)))
    #expect(schedule.expression == macro.trimmingCharacters(in: .whitespaces))
  }

  @Test func macrosFire() throws {
    // 2024-05-01 is a Wednesday.
    let start = "2024-05-01T10:30:00Z"
    #expect(try Self.fires("@hourly", after: start, count: 1) == ["2024-05-01T11:00:00Z"])
    #expect(try Self.fires("@daily", after: start, count: 1) == ["2024-05-02T00:00:00Z"])
    #expect(try Self.fires("@weekly", after: start, count: 1) == ["2024-05-05T00:00:00Z"])
    #expect(try Self.fires("@monthly", after: start, count: 1) == ["2024-06-01T00:00:00Z"])
    #expect(try Self.fires("@yearly", after: start, count: 1) == ["2025-01-01T00:00:00Z"])
  }

  // MARK: - Matching days

  @Test func eitherDayWhenBothDayFieldsAreRestricted() throws {
    // May 2024: the 1st is a Wednesday; Mondays are the 6th, 13th, 20th, 27th; June 1st is a
    // Saturday and June 3rd a Monday.
    #expect(try Self.fires("0 0 1 * MON", after: "2024-04-30T00:00:00Z", count: 7) == [
      "2024-05-01T00:00:00Z", "2024-05-06T00:00:00Z", "2024-05-13T00:00:00Z", "2024-05-20T00:00:00Z",
      "2024-05-27T00:00:00Z", "2024-06-01T00:00:00Z", "2024-06-03T00:00:00Z",
    ])
  }

  @Test func onlyTheRestrictedDayFieldCountsWhenTheOtherIsAWildcard() throws {
    #expect(try Self.fires("0 0 1 * *", after: "2024-04-30T00:00:00Z", count: 3)
      == ["2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z", "2024-07-01T00:00:00Z"])
    #expect(try Self.fires("0 0 * * MON", after: "2024-04-30T00:00:00Z", count: 3)
      == ["2024-05-06T00:00:00Z", "2024-05-13T00:00:00Z", "2024-05-20T00:00:00Z"])
    // Only a field that is exactly `*` is unrestricted: `*/10` restricts, so the either-day rule applies.
    let stepped = try CronSchedule(parsing: "0 0 */10 * MON")
    #expect(stepped.dayOfMonthIsRestricted && stepped.dayOfWeekIsRestricted)
    #expect(try Self.fires("0 0 */10 * MON", after: "2024-04-30T00:00:00Z", count: 4)
      == ["2024-05-01T00:00:00Z", "2024-05-06T00:00:00Z", "2024-05-11T00:00:00Z", "2024-05-13T00:00:00Z"])
  }

  @Test func shortMonthsAreSkipped() throws {
    #expect(try Self.fires("0 12 31 * *", after: "2024-01-31T12:00:00Z", count: 3)
      == ["2024-03-31T12:00:00Z", "2024-05-31T12:00:00Z", "2024-07-31T12:00:00Z"])
  }

  // MARK: - Fire times

  @Test func everyFifteenMinutes() throws {
    #expect(try Self.fires("*/15 * * * *", after: "2024-05-01T10:07:00Z", count: 4)
      == ["2024-05-01T10:15:00Z", "2024-05-01T10:30:00Z", "2024-05-01T10:45:00Z", "2024-05-01T11:00:00Z"])
  }

  @Test func rangesWithStepsFire() throws {
    // 2024-05-03 is a Friday: 13:00 and 17:00 that day, then Monday 09:00.
    #expect(try Self.fires("0 9-17/4 * * MON-FRI", after: "2024-05-03T12:00:00Z", count: 4)
      == ["2024-05-03T13:00:00Z", "2024-05-03T17:00:00Z", "2024-05-06T09:00:00Z", "2024-05-06T13:00:00Z"])
  }

  @Test func nextFireIsStrictlyAfterTheDate() throws {
    #expect(try Self.nextFire("*/15 * * * *", after: Self.time("2024-05-01T10:15:00Z")) == "2024-05-01T10:30:00Z")
    #expect(try Self.nextFire("0 0 * * *", after: Self.time("2024-05-01T00:00:00Z")) == "2024-05-02T00:00:00Z")
    #expect(try Self.nextFire("* * * * *", after: Self.time("2024-05-01T10:00:00Z")) == "2024-05-01T10:01:00Z")
  }

  @Test func secondsInTheDateAreHandled() throws {
    let tenOClock = try Self.time("2024-05-01T10:00:00Z")
    for offset in [0.5, 30, 59.999] {
      #expect(
        try Self.nextFire("* * * * *", after: tenOClock.addingTimeInterval(offset)) == "2024-05-01T10:01:00Z",
        "10:00 + \(offset)s"
      )
    }
    #expect(try Self.nextFire("* * * * *", after: tenOClock.addingTimeInterval(-0.1)) == "2024-05-01T10:00:00Z")
    let fire = try #require(try CronSchedule(parsing: "* * * * *").nextFire(after: tenOClock.addingTimeInterval(30)))
    #expect(fire.timeIntervalSince1970.truncatingRemainder(dividingBy: 60) == 0)
  }

  @Test func yearBoundaries() throws {
    #expect(try Self.fires("59 23 31 12 *", after: "2024-12-31T23:59:00Z", count: 1) == ["2025-12-31T23:59:00Z"])
    #expect(try Self.nextFire("0 0 1 1 *", after: Self.time("2024-12-31T23:59:30Z")) == "2025-01-01T00:00:00Z")
  }

  @Test(arguments: ["0 0 30 2 *", "0 0 31 2 *", "0 0 30,31 2 *", "0 0 31 4,6,9,11 *", "59 23 31 2 *"])
  func impossibleDatesNeverFireAndReturnQuickly(expression: String) throws {
    let schedule = try CronSchedule(parsing: expression)
    let start = try Self.time("2024-01-01T00:00:00Z")
    var result: Date? = start
    let elapsed = ContinuousClock().measure {
      result = schedule.nextFire(after: start)
    }
    #expect(result == nil)
    #expect(schedule.fireTimes(after: start, through: start.addingTimeInterval(20 * 365 * 86_400)).isEmpty)
    // The search skips whole months: microseconds, not a scan of millions of minutes.
    #expect(elapsed < .seconds(1))
  }

  @Test func februaryTwentyNinthFindsTheNextLeapYear() throws {
    #expect(try Self.fires("0 0 29 2 *", after: "2025-01-01T00:00:00Z", count: 3)
      == ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"])
    #expect(try Self.fires("0 0 29 2 *", after: "2024-02-29T00:00:00Z", count: 1) == ["2028-02-29T00:00:00Z"])
    // 2100 is not a leap year: eight years between leap days, still found.
    #expect(try Self.fires("0 0 29 2 *", after: "2096-03-01T00:00:00Z", count: 1) == ["2104-02-29T00:00:00Z"])
  }

  @Test func sparseSchedulesAreFast() throws {
    let schedule = try CronSchedule(parsing: "59 23 29 2 *")
    var cursor = try Self.time("2000-01-01T00:00:00Z")
    let elapsed = ContinuousClock().measure {
      for _ in 0..<100 {
        guard let next = schedule.nextFire(after: cursor) else { return }
        cursor = next
      }
    }
    #expect(cursor.formatted(.iso8601) == "2408-02-29T23:59:00Z")
    #expect(elapsed < .seconds(2))
  }

  @Test func fireTimesBoundsAndLimit() throws {
    let schedule = try CronSchedule(parsing: "0 * * * *")
    let after = try Self.time("2024-05-01T10:00:00Z")
    let through = try Self.time("2024-05-01T13:00:00Z")
    // `after` is excluded, `through` included.
    #expect(schedule.fireTimes(after: after, through: through).map { $0.formatted(.iso8601) }
      == ["2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z", "2024-05-01T13:00:00Z"])
    #expect(schedule.fireTimes(after: after, through: through.addingTimeInterval(-1)).count == 2)
    #expect(schedule.fireTimes(after: after, through: through, limit: 2).map { $0.formatted(.iso8601) }
      == ["2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z"])
    #expect(schedule.fireTimes(after: after, through: through, limit: 0).isEmpty)
    #expect(schedule.fireTimes(after: after, through: through, limit: -1).isEmpty)
    #expect(schedule.fireTimes(after: after, through: after).isEmpty)
    #expect(schedule.fireTimes(after: through, through: after).isEmpty)
  }

  @Test func fireTimesDefaultLimitIsAThousand() throws {
    let schedule = try CronSchedule(parsing: "* * * * *")
    let after = try Self.time("2024-05-01T00:00:00Z")
    let times = schedule.fireTimes(after: after, through: after.addingTimeInterval(2 * 86_400))
    #expect(times.count == 1000)
    #expect(times.first == after.addingTimeInterval(60))
    #expect(times.last == after.addingTimeInterval(1000 * 60))
    #expect(zip(times, times.dropFirst()).allSatisfy { $0 < $1 })
  }

  @Test func unsupportedDatesReturnNil() throws {
    let schedule = try CronSchedule(parsing: "* * * * *")
    // Years 1700 to 9000 are supported (Date.distantFuture is 4001-01-01).
    #expect(schedule.nextFire(after: .distantFuture) == Date.distantFuture.addingTimeInterval(60))
    #expect(schedule.nextFire(after: Date(timeIntervalSince1970: 1e12)) == nil)  // year 33658
    #expect(schedule.nextFire(after: Date(timeIntervalSince1970: -1e10)) == nil)  // year 1653
    #expect(schedule.nextFire(after: .distantPast) == nil)
    #expect(schedule.nextFire(after: Date(timeIntervalSince1970: .nan)) == nil)
    #expect(schedule.nextFire(after: Date(timeIntervalSince1970: .infinity)) == nil)
    #expect(schedule.nextFire(after: Date(timeIntervalSince1970: -.infinity)) == nil)
  }

  // MARK: - Time zones

  @Test func wallClockOfTheGivenTimeZone() throws {
    let newYork = try #require(TimeZone(identifier: "America/New_York"))
    let kolkata = try #require(TimeZone(identifier: "Asia/Kolkata"))
    // 09:00 in New York is 14:00 UTC in winter (EST) and 13:00 UTC in summer (EDT).
    #expect(try Self.nextFire("0 9 * * *", after: Self.time("2024-01-15T00:00:00Z"), in: newYork)
      == "2024-01-15T14:00:00Z")
    #expect(try Self.nextFire("0 9 * * *", after: Self.time("2024-07-15T00:00:00Z"), in: newYork)
      == "2024-07-15T13:00:00Z")
    // Midnight in Kolkata (+05:30) is 18:30 UTC the day before.
    #expect(try Self.nextFire("0 0 * * *", after: Self.time("2024-05-01T12:00:00Z"), in: kolkata)
      == "2024-05-01T18:30:00Z")
    // The day fields are read in the zone too: Monday 00:00 in Kolkata is Sunday 18:30 UTC.
    #expect(try Self.nextFire("0 0 * * MON", after: Self.time("2024-05-01T12:00:00Z"), in: kolkata)
      == "2024-05-05T18:30:00Z")
  }

  @Test func aLocalTimeSkippedBySpringForwardDoesNotFire() throws {
    let newYork = try #require(TimeZone(identifier: "America/New_York"))
    // 2024-03-10 02:00 EST became 03:00 EDT: 02:30 did not exist that day.
    #expect(try Self.fires("30 2 * * *", after: "2024-03-09T08:00:00Z", count: 2, in: newYork)
      == ["2024-03-11T06:30:00Z", "2024-03-12T06:30:00Z"])
    #expect(try Self.fires("*/30 * * * *", after: "2024-03-10T06:00:00Z", count: 3, in: newYork)
      == ["2024-03-10T06:30:00Z", "2024-03-10T07:00:00Z", "2024-03-10T07:30:00Z"])
  }

  @Test func aLocalTimeRepeatedByFallBackFiresOnceAtItsFirstOccurrence() throws {
    let newYork = try #require(TimeZone(identifier: "America/New_York"))
    // 2024-11-03 02:00 EDT became 01:00 EST: 01:00-01:59 happened twice (05:00Z-05:59Z, then 06:00Z-06:59Z).
    #expect(try Self.fires("*/30 * * * *", after: "2024-11-03T04:00:00Z", count: 5, in: newYork) == [
      "2024-11-03T04:30:00Z", "2024-11-03T05:00:00Z", "2024-11-03T05:30:00Z", "2024-11-03T07:00:00Z",
      "2024-11-03T07:30:00Z",
    ])
    #expect(try Self.fires("30 1 * * *", after: "2024-11-02T12:00:00Z", count: 3, in: newYork)
      == ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z", "2024-11-05T06:30:00Z"])
    // From inside the repeated hour, its times already fired in the first one.
    #expect(try Self.nextFire("*/30 * * * *", after: Self.time("2024-11-03T06:10:00Z"), in: newYork)
      == "2024-11-03T07:00:00Z")
  }

  // MARK: - Parse errors

  @Test(arguments: [
    // Out of range, in each field.
    ("60 * * * *", "minute", "60 is out of range 0-59"),
    ("* 24 * * *", "hour", "24 is out of range 0-23"),
    ("* * 0 * *", "day_of_month", "0 is out of range 1-31"),
    ("* * 32 * *", "day_of_month", "32 is out of range 1-31"),
    ("* * * 0 *", "month", "0 is out of range 1-12"),
    ("* * * 13 *", "month", "13 is out of range 1-12"),
    ("* * * * 8", "day_of_week", "8 is out of range 0-7"),
    ("1-99999999999999999999 * * * *", "minute", "99999999999999999999 is out of range 0-59"),
    ("61/5 * * * *", "minute", "61 is out of range 0-59"),
    // Reversed ranges.
    ("59-1 * * * *", "minute", "59-1 is a reversed range"),
    ("* 23-5 * * *", "hour", "23-5 is a reversed range"),
    ("* * 31-1 * *", "day_of_month", "31-1 is a reversed range"),
    ("* * * DEC-JAN *", "month", "DEC-JAN is a reversed range"),
    ("* * * * FRI-MON", "day_of_week", "FRI-MON is a reversed range"),
    // Steps.
    ("*/0 * * * *", "minute", "step 0 is not allowed"),
    ("* 1-5/0 * * *", "hour", "step 0 is not allowed"),
    ("* * */0 * *", "day_of_month", "step 0 is not allowed"),
    ("* * * 1/0 *", "month", "step 0 is not allowed"),
    ("* * * * */0", "day_of_week", "step 0 is not allowed"),
    ("*/61 * * * *", "minute", "step 61 is out of range 1-60"),
    ("* */25 * * *", "hour", "step 25 is out of range 1-24"),
    ("*/ * * * *", "minute", "step '' in '*/' is not a number"),
    ("*/x * * * *", "minute", "step 'x' in '*/x' is not a number"),
    ("1/2/3 * * * *", "minute", "step '2/3' in '1/2/3' is not a number"),
    ("/5 * * * *", "minute", "'/5' has no value before the step"),
    // Values that are not numbers or names.
    ("JAN * * * *", "minute", "'JAN' is not a number"),
    ("+1 * * * *", "minute", "'+1' is not a number"),
    ("? * * * *", "minute", "'?' is not a number"),
    ("\u{663} * * * *", "minute", "'\\u{663}' is not a number"),
    ("* * L * *", "day_of_month", "'L' is not a number"),
    ("* * * FOO *", "month", "'FOO' is not a number or a name (JAN-DEC)"),
    ("* * * JANUARY *", "month", "'JANUARY' is not a number or a name (JAN-DEC)"),
    ("* * * * MONDAY", "day_of_week", "'MONDAY' is not a number or a name (SUN-SAT)"),
    ("* * * * 1\u{7}", "day_of_week", "'1\\u{7}' is not a number or a name (SUN-SAT)"),
    // Malformed lists and ranges.
    ("1,,2 * * * *", "minute", "'1,,2' has an empty list element"),
    ("1, * * * *", "minute", "'1,' has an empty list element"),
    (",1 * * * *", "minute", "',1' has an empty list element"),
    ("1-2-3 * * * *", "minute", "'1-2-3' is not a valid range (expected a-b)"),
    ("-1 * * * *", "minute", "'-1' is not a valid range (expected a-b)"),
    ("1- * * * *", "minute", "'1-' is not a valid range (expected a-b)"),
    ("*-5 * * * *", "minute", "'*' is not a number"),
  ])
  func parseErrorsNameTheirField(expression: String, field: String, reason: String) {
    #expect(Self.parseError(expression) == CronSchedule.ParseError(field: field, reason: reason))
  }

  @Test(arguments: [("* * * * * *", 6), ("0 0 0 * * * 2024", 7), ("* * * *", 4), ("*", 1), ("* * *\n* *", 4)])
  func wrongFieldCountsAreRefused(expression: String, found: Int) {
    // (A newline inside the expression is not a field separator.)
    #expect(
      Self.parseError(expression)
        == CronSchedule.ParseError(field: "expression", reason: "expected 5 fields, found \(found)")
    )
  }

  @Test(arguments: ["", " ", "\t \t", "\n"])
  func emptyExpressionsAreRefused(expression: String) {
    #expect(Self.parseError(expression) == CronSchedule.ParseError(field: "expression", reason: "empty"))
  }

  @Test func expressionsLongerThan256BytesAreRefused() throws {
    // 256 bytes exactly: "00" + 123 × ",0" + " * * * *".
    let longest = "00" + String(repeating: ",0", count: 123) + " * * * *"
    #expect(longest.utf8.count == 256)
    #expect(Self.values(try CronSchedule(parsing: longest).minutes) == [0])
    // Whitespace counts: the limit applies before trimming.
    #expect(Self.parseError(" " + longest)
      == CronSchedule.ParseError(field: "expression", reason: "257 bytes is longer than the limit of 256"))
    #expect(Self.parseError(String(repeating: "é", count: 200))
      == CronSchedule.ParseError(field: "expression", reason: "400 bytes is longer than the limit of 256"))
  }

  @Test(arguments: ["@reboot", "@daily 5", "@", "@every 5m", "@dai\u{7}ly"])
  func unknownMacrosAreRefused(expression: String) throws {
    let error = try #require(Self.parseError(expression))
    #expect(error.field == "expression")
    #expect(error.reason.hasPrefix("unknown macro '"))
    // Control characters from the input are escaped.
    #expect(!error.reason.unicodeScalars.contains { $0.value < 0x20 })
  }

  @Test func errorDescriptions() {
    #expect(CronSchedule.ParseError(field: "minute", reason: "61 is out of range 0-59").description
      == "invalid cron field minute: 61 is out of range 0-59")
    #expect(CronSchedule.ParseError(field: "expression", reason: "expected 5 fields, found 6").description
      == "invalid cron expression: expected 5 fields, found 6")
  }

  @Test func equality() throws {
    #expect(try CronSchedule(parsing: "0 0 * * *") == CronSchedule(parsing: " 0 0 * * * "))
    #expect(try CronSchedule(parsing: "0 0 * * *") != CronSchedule(parsing: "0 1 * * *"))
  }
}
