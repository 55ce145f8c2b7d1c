//! presence-core on a phone: wakeups, requests, fsyncs and CPU per hour of each lifecycle
//! state at the server's default settings, and the fsyncs an incoming event costs.
//!
//! The scenario is `presence_test_support::phone` (also pinned by `core/tests/phone.rs`): one
//! engine on tokio's paused clock against the in-memory fake server, its database on a VFS
//! that counts real `xSync` calls. Nothing here waits on the wall clock, so the figures are
//! counts, the same on every machine, except the CPU time.

use crate::Ctx;
use crate::proc::Res;

pub async fn phone(ctx: &mut Ctx) -> Res<()> {
    let (hours, events) = if ctx.quick { (2, 200) } else { (10, 1000) };
    let c =
        tokio::task::spawn_blocking(move || presence_test_support::phone::measure(hours, events))
            .await
            .map_err(|e| format!("phone scenario: {e}"))??;
    let r = &mut ctx.report;
    r.set(
        "core_fsyncs_per_incoming_event",
        Some(c.fsyncs_per_incoming_event()),
    );
    r.set(
        "core_background_wakeups_per_h",
        Some(c.background_push.wakeups_per_h()),
    );
    r.set(
        "core_active_requests_per_h",
        Some(c.active.requests_per_h()),
    );
    r.set(
        "core_idle_cpu_ms_per_h_active",
        Some(c.active.cpu_ms_per_h()),
    );
    r.detail("phone", c.to_json());
    r.note(
        "core_background_wakeups_per_h",
        &format!(
            "renew pushes {:.2}/h (one per background_ttl = 30 min: a lease renewed in its renew window runs on from its old end), engine timers {:.2}/h; \
             without network {:.2}/h",
            c.background_push.pushes_per_h(),
            c.background_push.timer_wakeups_per_h(),
            c.no_network.wakeups_per_h()
        ),
    );
    if ctx.quick {
        r.note(
            "core_idle_cpu_ms_per_h_active",
            &format!("{hours} h per state (quick mode)"),
        );
    }
    Ok(())
}
