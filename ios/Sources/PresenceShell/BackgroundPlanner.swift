// Scene phase and network path mapped onto the engine, and the decision the glue cannot make:
// when the next BGAppRefreshTask may begin (`earliestBeginDate`) and how long it may run.
//
// iOS allows 2-3 background pushes an hour. With push, the server renews the background lease
// by one renew push per background ttl (2 an hour at the defaults), so the refresh is only a
// fallback placed after the expected renew and before the lease ends; each push moves the
// lease and so the plan. Without push there is no lease to keep: the refresh only carries
// queued changes, at most twice an hour. iOS decides when a task actually runs: this plan is
// the earliest it may.

import Foundation
import Presence

public struct RefreshPlan: Equatable, Sendable {
    /// Seconds from now before the refresh may begin.
    public let delay: TimeInterval
    /// Seconds the refresh may run (inside the ~30 s iOS gives a BGAppRefreshTask).
    public let deadline: TimeInterval
    public let why: String
}

public struct RefreshResult: Equatable, Sendable {
    public let finished: Bool
    public let elapsed: TimeInterval
    public let detail: String?
}

public struct RefreshTimings: Sendable {
    public var deadline: TimeInterval = 25
    public var fallbackLead: TimeInterval = 120
    public var queuedRetry: TimeInterval = 30 * 60
    /// How long going to the background waits for the background lease before planning.
    public var settle: TimeInterval = 5
    public init() {}
}

public final class BackgroundPlanner: @unchecked Sendable {
    private let engine: ShellEngine
    private let registration: PushRegistration
    public let timings: RefreshTimings
    private let lock = NSLock()
    private var active = false

    public init(engine: ShellEngine, registration: PushRegistration, timings: RefreshTimings = RefreshTimings()) {
        self.engine = engine
        self.registration = registration
        self.timings = timings
    }

    /// `scenePhase == .active`.
    public func onActive() async {
        setActive(true)
        await engine.setLifecycle(.active)
    }

    /// `scenePhase == .background`: the background lease (with push) and the next refresh. The
    /// engine renews the lease in background mode at once; the plan is made from that lease
    /// (waiting for it at most `timings.settle` seconds).
    @discardableResult
    public func onBackground() async -> RefreshPlan? {
        setActive(false)
        let before = engine.snapshot.leaseUntil
        let stream = engine.snapshots()
        await engine.setLifecycle(.background)
        let settle = timings.settle
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await s in stream where s.leaseUntil != before || s.session.state != .active { return }
            }
            group.addTask { try? await Task.sleep(nanoseconds: UInt64(settle * 1_000_000_000)) }
            await group.next()
            group.cancelAll()
        }
        return plan()
    }

    /// `NWPathMonitor`'s path: `.satisfied` or not. While unsatisfied the engine attempts nothing.
    public func onPath(satisfied: Bool) async {
        await engine.setNetworkAvailable(satisfied)
    }

    /// The refresh to submit now, or nil for none.
    public func plan() -> RefreshPlan? {
        let s = engine.snapshot
        lock.lock()
        let active = self.active
        lock.unlock()
        if s.session.state != .active || active { return nil }
        if registration.current != nil {
            guard let lease = s.leaseUntil else {
                return RefreshPlan(delay: 0, deadline: timings.deadline, why: "no lease yet")
            }
            let left = max(0, TimeInterval(lease - engine.serverTimeNow()) / 1000)
            let lead = min(timings.fallbackLead, left / 10)
            return RefreshPlan(delay: left - lead, deadline: timings.deadline, why: "fallback if the renew push does not come")
        }
        if s.outbox.pending > 0 {
            return RefreshPlan(delay: timings.queuedRetry, deadline: timings.deadline, why: "deliver queued changes")
        }
        return nil
    }

    /// What a BGAppRefreshTask does: `refresh`, then the plan for the next one.
    public func refreshThenPlan(deadline: TimeInterval? = nil) async -> (result: RefreshResult, next: RefreshPlan?) {
        let result = await refresh(deadline: deadline)
        return (result, plan())
    }

    /// One refresh (a heartbeat and queued changes) that returns inside `deadline` whatever the
    /// network does, so the task's completion is set in time.
    public func refresh(deadline: TimeInterval? = nil) async -> RefreshResult {
        let deadline = deadline ?? timings.deadline
        let started = Date()
        let engine = self.engine
        let detail: String? = await withTaskGroup(of: String?.self) { group in
            group.addTask {
                do {
                    try await engine.backgroundRefresh(deadline: deadline)
                    return nil
                } catch {
                    return Messages.error(error)
                }
            }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(deadline * 1_000_000_000))
                return "Did not finish in time."
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        return RefreshResult(finished: detail == nil, elapsed: Date().timeIntervalSince(started), detail: detail)
    }

    private func setActive(_ value: Bool) {
        lock.lock()
        active = value
        lock.unlock()
    }
}
