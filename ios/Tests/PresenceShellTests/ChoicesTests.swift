import Foundation
import Presence
import PresenceShell
import XCTest

/// The toggle screen's menu, the request each choice sends and the words it shows, on their
/// own: pure functions over the bindings' records, with the device's clock, zone and locale
/// given. The same cases as the Android shell's ChoicesTests.
final class ChoicesTests: XCTestCase {
    let berlin = TimeZone(identifier: "Europe/Berlin")!
    let newYork = TimeZone(identifier: "America/New_York")!
    let gb = Locale(identifier: "en_GB")

    let lunch = CustomStatus(id: "lunch", label: "Lunch", emoji: "🍔", base: .busy, defaultDurationMs: 3_600_000)
    let training = CustomStatus(id: "training", label: "In training", emoji: nil, base: .offline, defaultDurationMs: nil)

    func at(_ iso: String) -> Int64 {
        let f = ISO8601DateFormatter()
        return Int64(f.date(from: iso)!.timeIntervalSince1970 * 1000)
    }

    func shown(
        _ current: AgentStatus, until: Int64? = nil, then: AgentStatus? = nil, custom: String? = nil, note: String? = nil
    ) -> StatusSnapshot {
        StatusSnapshot(
            current: current, confirmed: current, version: 3, pending: false, until: until, then: then,
            customStatus: custom, note: note, cause: .manual, changedByAgent: nil)
    }

    /// 13:00 in Berlin on a winter Monday.
    var noonUtc: FixedDeviceTime { FixedDeviceTime(at("2026-12-07T12:00:00Z"), berlin, gb) }

    /// ICU puts a narrow no-break space before AM/PM; a person reads a space.
    func spaces(_ s: String) -> String {
        s.replacingOccurrences(of: "\u{202f}", with: " ").replacingOccurrences(of: "\u{a0}", with: " ")
    }

    func req(_ s: AgentStatus, _ d: Int64?, _ then: AgentStatus?, _ custom: String?, _ note: String?) -> StatusRequest {
        StatusRequest(status: s, durationMs: d, then: then, customStatus: custom, note: note)
    }

    func testTheMenuOffersBusyAndOfflineForFifteenAndThirtyMinutesAnHourAndUntilATimeThenTheCustomStatuses() {
        let menu = StatusChoices.menu([lunch, training])
        XCTAssertEqual(
            menu.map(\.label),
            [
                "Online",
                "Busy", "Busy for 15 min", "Busy for 30 min", "Busy for 1 h", "Busy until…",
                "Offline", "Offline for 15 min", "Offline for 30 min", "Offline for 1 h", "Offline until…",
                "🍔 Lunch · Busy for 1 h", "In training · Offline",
            ])
        let asks = menu.compactMap { o -> AgentStatus? in
            if case .askTime(_, let s) = o { return s }
            return nil
        }
        XCTAssertEqual(asks, [.busy, .offline])
        XCTAssertEqual(menu[2], .send(label: "Busy for 15 min", choice: .timed(.busy, .minutes15)))
        XCTAssertEqual(menu[11], .send(label: "🍔 Lunch · Busy for 1 h", choice: .custom(lunch)))
        XCTAssertFalse(menu.contains { if case .send(_, .timed(.online, _)) = $0 { return true }; return false })
        XCTAssertEqual(StatusChoices.menu([]).count, 11)
    }

    func testATimedChoiceSendsItsDurationAndThenTheStatusBefore() throws {
        XCTAssertEqual(
            try StatusChoices.request(.timed(.busy, .minutes15), shown: shown(.online), note: nil, time: noonUtc),
            req(.busy, 15 * 60_000, .online, nil, nil))
        XCTAssertEqual(
            try StatusChoices.request(.timed(.busy, .minutes30), shown: shown(.offline), note: nil, time: noonUtc),
            req(.busy, 30 * 60_000, .offline, nil, nil))
        XCTAssertEqual(
            try StatusChoices.request(.timed(.offline, .hour1), shown: shown(.busy), note: nil, time: noonUtc),
            req(.offline, 60 * 60_000, .busy, nil, nil))
        // Before the first snapshot there is no status before: online follows.
        XCTAssertEqual(try StatusChoices.request(.timed(.busy, .hour1), shown: nil, note: nil, time: noonUtc).then, .online)
    }

    func testATimedChoiceOverATimedStatusThenBecomesWhatThatOneWasGoingToBecome() throws {
        let timed = shown(.busy, until: at("2026-12-07T13:30:00Z"), then: .offline)
        XCTAssertEqual(try StatusChoices.request(.timed(.busy, .minutes15), shown: timed, note: nil, time: noonUtc).then, .offline)
        XCTAssertEqual(try StatusChoices.request(.timed(.offline, .minutes15), shown: timed, note: nil, time: noonUtc).then, .online)
    }

    func testBusyForAWhileWhenAlreadyBusyThenGoesOnline() throws {
        XCTAssertEqual(try StatusChoices.request(.timed(.busy, .minutes30), shown: shown(.busy), note: nil, time: noonUtc).then, .online)
        XCTAssertNil(try StatusChoices.request(.plain(.busy), shown: shown(.offline), note: nil, time: noonUtc).then)
    }

    func testUntilAChosenTimeSendsTheRealTimeLeftToItsNextOccurrenceOnTheDevicesWallClock() throws {
        XCTAssertEqual(
            try StatusChoices.request(.until(.busy, TimeOfDay(hour: 14, minute: 30)), shown: shown(.online), note: nil, time: noonUtc),
            req(.busy, 90 * 60_000, .online, nil, nil))
        XCTAssertEqual(
            try StatusChoices.request(.until(.offline, TimeOfDay(hour: 12, minute: 59)), shown: shown(.online), note: nil, time: noonUtc)
                .durationMs, (23 * 60 + 59) * 60_000)
        let ny = FixedDeviceTime(noonUtc.now, newYork, Locale(identifier: "en_US"))
        XCTAssertEqual(try StatusChoices.request(.until(.busy, TimeOfDay(hour: 14, minute: 30)), shown: nil, note: nil, time: ny).durationMs, 450 * 60_000)
        XCTAssertEqual(try StatusChoices.request(.until(.busy, TimeOfDay(hour: 13, minute: 0)), shown: nil, note: nil, time: noonUtc).durationMs, 86_400_000)
    }

    func testUntilATimeAcrossTheNightTheClocksGoBackCountsTheHourTheyRepeat() throws {
        // Berlin, Saturday 24 October 2026, 22:00 (CEST); at 03:00 the clocks go back to 02:00 (CET).
        let evening = FixedDeviceTime(at("2026-10-24T20:00:00Z"), berlin, gb)
        let r = try StatusChoices.request(.until(.offline, TimeOfDay(hour: 9, minute: 0)), shown: shown(.online), note: nil, time: evening)
        XCTAssertEqual(r.durationMs, 12 * 3_600_000, "22:00 to 09:00 on the wall clock is 12 real hours that night")
        XCTAssertEqual(evening.now + r.durationMs!, at("2026-10-25T08:00:00Z"))
        let spring = FixedDeviceTime(at("2026-03-28T21:00:00Z"), berlin, gb)
        XCTAssertEqual(try StatusChoices.request(.until(.busy, TimeOfDay(hour: 9, minute: 0)), shown: nil, note: nil, time: spring).durationMs, 10 * 3_600_000)
    }

    func testACustomStatusSendsItsBaseAndIdAndLeavesTheDurationToItsDefault() throws {
        XCTAssertEqual(try StatusChoices.request(.custom(lunch), shown: shown(.online), note: nil, time: noonUtc), req(.busy, nil, .online, "lunch", nil))
        XCTAssertEqual(
            try StatusChoices.request(.custom(training), shown: shown(.online), note: "Back Tuesday", time: noonUtc),
            req(.offline, nil, nil, "training", "Back Tuesday"))
    }

    func testTheNoteGoesWithTheChoiceTrimmedAndABlankOneIsNone() throws {
        XCTAssertEqual(try StatusChoices.request(.timed(.busy, .minutes15), shown: shown(.online), note: "  At the dentist \n", time: noonUtc).note, "At the dentist")
        XCTAssertNil(try StatusChoices.request(.plain(.online), shown: nil, note: "   ", time: noonUtc).note)
        XCTAssertNil(try StatusChoices.request(.plain(.online), shown: nil, note: nil, time: noonUtc).note)
    }

    func testANoteOfMoreThanAHundredCharactersIsRefusedCountingCharactersAsTheServerDoes() throws {
        // 100 scalars fit, however many bytes or UTF-16 units they take.
        let faces = String(repeating: "😀", count: 100)
        XCTAssertEqual(faces.utf16.count, 200)
        XCTAssertEqual(StatusChoices.noteLength(faces), 100)
        XCTAssertEqual(try StatusChoices.request(.plain(.busy), shown: nil, note: faces, time: noonUtc).note, faces)
        // The server counts scalars, not what a person sees: a flag is two.
        XCTAssertEqual(StatusChoices.noteLength("🇩🇪"), 2)
        XCTAssertEqual(Messages.noteLeft(100), "0 characters left")
        XCTAssertEqual(Messages.noteLeft(StatusChoices.noteLength("Back at three")), "87 characters left")
        XCTAssertThrowsError(
            try StatusChoices.request(.timed(.busy, .hour1), shown: nil, note: String(repeating: "é", count: 101), time: noonUtc)
        ) { e in
            XCTAssertEqual(e as? ChoiceError, .noteTooLong(length: 101))
            XCTAssertEqual(Messages.error(e), "The note has 101 characters; at most 100 fit.")
        }
        XCTAssertEqual(Messages.noteLeft(101), "The note has 101 characters; at most 100 fit.")
        XCTAssertEqual(StatusChoices.noteLength("  " + String(repeating: "a", count: 100) + "  "), 100)
    }

    func testKeepingTheStatusWithANewNoteKeepsItsEndWhatFollowsAndItsCustomStatus() throws {
        let until = at("2026-12-07T13:30:00Z")
        let s = shown(.busy, until: until, then: .offline, custom: "lunch", note: "old")
        let serverNow = at("2026-12-07T12:10:00Z")
        XCTAssertEqual(try StatusChoices.keepWithNote(s, note: "new", serverNowMs: serverNow), req(.busy, until - serverNow, .offline, "lunch", "new"))
        XCTAssertEqual(try StatusChoices.keepWithNote(shown(.online, note: "x"), note: "", serverNowMs: serverNow), req(.online, nil, nil, nil, nil))
        XCTAssertNil(try StatusChoices.keepWithNote(nil, note: "a note", serverNowMs: serverNow))
    }

    func testTheHeadlineSaysTheEndInTheDevicesZoneAndLocaleAndWhatFollows() {
        let until = at("2026-12-07T13:30:00Z")
        let now = noonUtc.now
        XCTAssertEqual(Messages.headline(.busy, untilMs: until, then: .online, time: noonUtc), "Busy until 14:30, then online")
        XCTAssertEqual(
            Messages.headline(.busy, untilMs: until, then: .online, time: FixedDeviceTime(now, berlin, Locale(identifier: "de_DE"))),
            "Busy until 14:30, then online")
        XCTAssertEqual(
            spaces(Messages.headline(.busy, untilMs: until, then: .online, time: FixedDeviceTime(now, newYork, Locale(identifier: "en_US")))),
            "Busy until 8:30 AM, then online")
        XCTAssertEqual(
            Messages.headline(.offline, untilMs: until, then: .busy, time: FixedDeviceTime(now, TimeZone(identifier: "Asia/Kolkata")!, gb)),
            "Offline until 19:00, then busy")
        XCTAssertEqual(
            Messages.headline(.busy, untilMs: until, then: .online, time: FixedDeviceTime(now, TimeZone(identifier: "Asia/Tokyo")!, gb)),
            "Busy until 22:30, then online")
        XCTAssertEqual(Messages.headline(.busy, untilMs: until - 4, then: .online, time: noonUtc), "Busy until 14:30, then online")
        XCTAssertEqual(Messages.headline(.busy, untilMs: until + 4, then: .online, time: noonUtc), "Busy until 14:30, then online")
    }

    func testAnEndAfterTodaySaysTomorrowOrTheDate() {
        XCTAssertEqual(Messages.headline(.offline, untilMs: at("2026-12-08T08:00:00Z"), then: .busy, time: noonUtc), "Offline until tomorrow 09:00, then busy")
        XCTAssertEqual(Messages.headline(.busy, untilMs: at("2026-12-10T08:00:00Z"), then: .online, time: noonUtc), "Busy until 10 Dec 2026, 09:00, then online")
        let late = at("2026-12-07T23:30:00Z")
        XCTAssertEqual(Messages.headline(.busy, untilMs: late, then: .online, time: noonUtc), "Busy until tomorrow 00:30, then online")
        XCTAssertEqual(
            spaces(Messages.headline(.busy, untilMs: late, then: .online, time: FixedDeviceTime(noonUtc.now, newYork, Locale(identifier: "en_US")))),
            "Busy until 6:30 PM, then online")
    }

    func testAStatusWithNoEndIsJustItsNameAndAThenThatChangesNothingIsNotSaid() {
        XCTAssertEqual(Messages.headline(.busy, untilMs: nil, then: nil, time: noonUtc), "Busy")
        XCTAssertEqual(Messages.headline(.online, untilMs: nil, then: .busy, time: noonUtc), "Online")
        XCTAssertEqual(Messages.headline(.online, untilMs: at("2026-12-07T13:30:00Z"), then: .online, time: noonUtc), "Online until 14:30")
        XCTAssertEqual(Messages.headline(.busy, untilMs: at("2026-12-07T13:30:00Z"), then: nil, time: noonUtc), "Busy until 14:30")
    }

    func testTheCauseIsSaidOnlyWhenTheAgentDidNotChangeItByHand() {
        XCTAssertNil(Messages.cause(.manual))
        XCTAssertEqual(Messages.cause(.timer), "Ended by timer")
        XCTAssertEqual(Messages.cause(.idle), "Away (idle)")
        XCTAssertEqual(Messages.cause(.`return`), "Back from idle")
        XCTAssertEqual(Messages.cause(.admin), "Set by an admin")
    }

    func testACustomStatusIsNamedByItsEmojiAndLabel() {
        XCTAssertEqual(Messages.custom(lunch), "🍔 Lunch")
        XCTAssertEqual(Messages.custom(training), "In training")
        XCTAssertEqual(
            Messages.custom(CustomStatus(id: "t", label: "In training", emoji: " ", base: .offline, defaultDurationMs: nil)), "In training")
    }

    func testLengthsAreSaidInMinutesHoursAndDays() {
        XCTAssertEqual(Messages.duration(15 * 60_000), "15 min")
        XCTAssertEqual(Messages.duration(3_600_000), "1 h")
        XCTAssertEqual(Messages.duration(90 * 60_000), "1 h 30 min")
        XCTAssertEqual(Messages.duration(86_400_000), "1 day")
        XCTAssertEqual(Messages.duration(7 * 86_400_000), "7 days")
        XCTAssertEqual(Messages.duration(30_000), "30 s")
    }

    func testATimePickersAnswerIsReadOnTheDevicesWallClock() {
        // 13:30 UTC is 14:30 in Berlin and 08:30 in New York.
        let date = Date(timeIntervalSince1970: Double(at("2026-12-07T13:30:00Z")) / 1000)
        XCTAssertEqual(TimeOfDay(date, in: berlin), TimeOfDay(hour: 14, minute: 30))
        XCTAssertEqual(TimeOfDay(date, in: newYork), TimeOfDay(hour: 8, minute: 30))
    }
}

/// A device clock that reads `now`, in a given zone and locale.
struct FixedDeviceTime: DeviceTime {
    let now: Int64
    let timeZone: TimeZone
    let locale: Locale

    init(_ now: Int64, _ timeZone: TimeZone, _ locale: Locale) {
        self.now = now
        self.timeZone = timeZone
        self.locale = locale
    }

    func nowMs() -> Int64 { now }
}
