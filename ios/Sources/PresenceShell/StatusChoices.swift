// What the toggle screen offers and exactly what each choice sends, the same as the Android
// shell's. Pure: no engine and no clock of its own (the device's time, zone and locale come in
// as a `DeviceTime`), so every request is pinned by XCTest on Linux.
//
// Guarantees:
// - Online, busy and offline are offered as they are; busy and offline also for 15 min,
//   30 min, 1 h and until a chosen time; then the account's custom statuses, in the account's
//   order. Online is never offered with an end.
// - A timed choice sends the `then` the screen shows, so what the agent read is what happens:
//   the status before (the shown status, or, when that one is timed, what it was going to
//   become), or online when the status before is the chosen one.
// - "Until 14:30" is the next 14:30 on the device's wall clock in its zone: today if it is
//   still ahead, else tomorrow. The duration sent is the real time to that instant, so a night
//   with a daylight-saving change counts its 23 or 25 hours.
// - A custom status sends its base status and its id and no duration: the server applies the
//   custom status's default duration (and `then`, as above, goes with it when it has one).
// - The note is trimmed; blank means none; more than `noteMax` characters (Unicode scalars, as
//   the server counts them) is refused with `ChoiceError.noteTooLong` before anything is stored.

import Foundation
import Presence

/// The fixed lengths offered for busy and offline.
public enum Span: CaseIterable, Equatable, Sendable {
    case minutes15, minutes30, hour1

    public var durationMs: Int64 {
        switch self {
        case .minutes15: return 15 * 60_000
        case .minutes30: return 30 * 60_000
        case .hour1: return 60 * 60_000
        }
    }
}

/// A time of day on the device's wall clock (what the time picker answers).
public struct TimeOfDay: Equatable, Sendable {
    public let hour: Int
    public let minute: Int

    public init(hour: Int, minute: Int) {
        self.hour = hour
        self.minute = minute
    }

    /// The hour and minute `date` shows in `zone` (a DatePicker's answer).
    public init(_ date: Date, in zone: TimeZone) {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = zone
        let c = cal.dateComponents([.hour, .minute], from: date)
        self.init(hour: c.hour ?? 0, minute: c.minute ?? 0)
    }
}

/// One thing the agent can choose on the toggle screen.
public enum Choice: Equatable, Sendable {
    /// This status, with no end.
    case plain(AgentStatus)
    /// This status for a fixed length.
    case timed(AgentStatus, Span)
    /// This status until the next such time on the device's wall clock.
    case until(AgentStatus, TimeOfDay)
    /// One of the account's custom statuses.
    case custom(CustomStatus)
}

/// A row of the status menu.
public enum Option: Equatable, Sendable {
    /// Tapping sends the choice.
    case send(label: String, choice: Choice)
    /// Tapping asks for a time of day, then sends `.until(status, time)`.
    case askTime(label: String, status: AgentStatus)

    public var label: String {
        switch self {
        case .send(let label, _), .askTime(let label, _): return label
        }
    }
}

/// A choice refused on the device, before anything is stored.
public enum ChoiceError: Error, Equatable {
    /// The note has this many characters, more than `StatusChoices.noteMax`.
    case noteTooLong(length: Int)
}

/// The device's clock, time zone and locale, read each time they are needed (the person may
/// travel, or change the phone's language, while the app runs).
public protocol DeviceTime: Sendable {
    func nowMs() -> Int64
    var timeZone: TimeZone { get }
    var locale: Locale { get }
}

/// The device's own.
public struct SystemDeviceTime: DeviceTime {
    public init() {}
    public func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
    public var timeZone: TimeZone { TimeZone.current }
    public var locale: Locale { Locale.current }
}

/// The device's clock in a given zone and locale (tests; a per-app language setting).
public struct ZonedDeviceTime: DeviceTime {
    public let timeZone: TimeZone
    public let locale: Locale

    public init(timeZone: TimeZone, locale: Locale) {
        self.timeZone = timeZone
        self.locale = locale
    }

    public func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}

public enum StatusChoices {
    /// The longest note, in characters (Unicode scalars).
    public static let noteMax = 100
    /// The shortest duration the server takes.
    public static let minDurationMs: Int64 = 1_000
    /// The statuses offered with an end.
    public static let timedStatuses: [AgentStatus] = [.busy, .offline]

    /// The rows of the status menu, in order.
    public static func menu(_ custom: [CustomStatus]) -> [Option] {
        var rows: [Option] = []
        for s in [AgentStatus.online, .busy, .offline] {
            rows.append(.send(label: Messages.status(s), choice: .plain(s)))
            if timedStatuses.contains(s) {
                for span in Span.allCases {
                    rows.append(.send(label: Messages.forSpan(s, span.durationMs), choice: .timed(s, span)))
                }
                rows.append(.askTime(label: Messages.untilAsk(s), status: s))
            }
        }
        for c in custom { rows.append(.send(label: Messages.customOption(c), choice: .custom(c))) }
        return rows
    }

    /// The request `choice` sends, with `note`, on top of the status the screen shows (`shown`,
    /// nil before the first snapshot). Throws `ChoiceError` for a note that is too long.
    public static func request(_ choice: Choice, shown: StatusSnapshot?, note: String?, time: DeviceTime) throws
        -> StatusRequest
    {
        let n = try checkNote(note)
        switch choice {
        case .plain(let s):
            return StatusRequest(status: s, durationMs: nil, then: nil, customStatus: nil, note: n)
        case .timed(let s, let span):
            return StatusRequest(
                status: s, durationMs: span.durationMs, then: thenAfter(s, shown: shown), customStatus: nil, note: n)
        case .until(let s, let at):
            let now = time.nowMs()
            let end = nextOccurrence(at, nowMs: now, zone: time.timeZone)
            return StatusRequest(
                status: s, durationMs: end - now, then: thenAfter(s, shown: shown), customStatus: nil, note: n)
        case .custom(let c):
            let then = c.defaultDurationMs != nil ? thenAfter(c.base, shown: shown) : nil
            return StatusRequest(status: c.base, durationMs: nil, then: then, customStatus: c.id, note: n)
        }
    }

    /// The request that keeps the shown status as it is (its end, what follows, its custom
    /// status) and changes only its note. Nil when there is no status to keep.
    public static func keepWithNote(_ shown: StatusSnapshot?, note: String?, serverNowMs: Int64) throws
        -> StatusRequest?
    {
        guard let s = shown else { return nil }
        let n = try checkNote(note)
        // The end stays where it is: the engine stamps the op now, so the time left is the duration.
        let left = s.until.map { max($0 - serverNowMs, minDurationMs) }
        return StatusRequest(
            status: s.current, durationMs: left, then: left != nil ? s.then : nil, customStatus: s.customStatus, note: n)
    }

    /// The note as it is sent: trimmed, nil when blank. Throws when it is too long.
    public static func checkNote(_ note: String?) throws -> String? {
        guard let t = note?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty else { return nil }
        let n = t.unicodeScalars.count
        if n > noteMax { throw ChoiceError.noteTooLong(length: n) }
        return t
    }

    /// A note's length as the server counts it (Unicode scalars, not grapheme clusters).
    public static func noteLength(_ note: String) -> Int {
        note.trimmingCharacters(in: .whitespacesAndNewlines).unicodeScalars.count
    }

    /// What a timed `chosen` status becomes at its end by default: the status before it, or
    /// online when that is `chosen` itself (nil for a timed online over online: the server's
    /// default, online again).
    public static func thenAfter(_ chosen: AgentStatus, shown: StatusSnapshot?) -> AgentStatus? {
        let before: AgentStatus
        if let s = shown {
            before = s.until != nil ? (s.then ?? s.current) : s.current
        } else {
            before = .online
        }
        if before != chosen { return before }
        return chosen != .online ? .online : nil
    }

    /// The next instant (epoch ms) after `nowMs` at which the wall clock in `zone` reads `at`.
    public static func nextOccurrence(_ at: TimeOfDay, nowMs: Int64, zone: TimeZone) -> Int64 {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = zone
        let now = Date(timeIntervalSince1970: Double(nowMs) / 1000)
        var day = cal.dateComponents([.year, .month, .day], from: now)
        while true {
            var c = day
            c.hour = at.hour
            c.minute = at.minute
            c.second = 0
            // In a spring-forward gap (a 02:30 that never happens) this is the time after the gap.
            let t = Int64((cal.date(from: c)!.timeIntervalSince1970 * 1000).rounded())
            if t - nowMs >= minDurationMs { return t }
            let noon = cal.date(from: DateComponents(year: day.year, month: day.month, day: day.day, hour: 12))!
            day = cal.dateComponents([.year, .month, .day], from: cal.date(byAdding: .day, value: 1, to: noon)!)
        }
    }
}
