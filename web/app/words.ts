// The dashboard's sentences: a chat box view's status and reason in words, with the opening or
// closing time in the reader's own time zone ("offline because it is outside opening hours;
// opens at 09:00"); how long a timed status has left ("24 min left"); why a status changed.

import type { AgentStatus, Cause, ChatboxStatus, Reason } from "../shared/wire";

const hhmm = (ms: number) =>
  new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(ms);

const dayNumber = (ms: number) => {
  const d = new Date(ms);
  return Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) / 86400000;
};

/** "at 09:00" today, "at 09:00 tomorrow", "at 09:00 on Monday", or "at 09:00 on 24 December". */
export function when(at: number, now = Date.now()): string {
  const diff = dayNumber(at) - dayNumber(now);
  if (diff <= 0) return `at ${hhmm(at)}`;
  if (diff === 1) return `at ${hhmm(at)} tomorrow`;
  if (diff < 7) return `at ${hhmm(at)} on ${new Intl.DateTimeFormat(undefined, { weekday: "long" }).format(at)}`;
  return `at ${hhmm(at)} on ${new Intl.DateTimeFormat(undefined, { day: "numeric", month: "long" }).format(at)}`;
}

export const STATUS_WORD: Record<AgentStatus | ChatboxStatus, string> = {
  online: "Online",
  busy: "Busy",
  offline: "Offline",
};

/** Why a view shows what it shows. */
export function reasonText(status: ChatboxStatus, reason: Reason, nextChangeAt: number | null, now = Date.now()): string {
  let s: string;
  switch (reason) {
    case "agents_online":
      s = `${status} because at least one agent is online`;
      break;
    case "agents_busy":
      s = `${status} because the available agents are busy`;
      break;
    case "no_agents_online":
      s = `${status} because no agent is online`;
      break;
    case "outside_opening_hours":
      s = `${status} because it is outside opening hours`;
      break;
    default:
      s = status;
  }
  if (nextChangeAt) {
    s += reason === "outside_opening_hours" ? `; opens ${when(nextChangeAt, now)}` : `; closes ${when(nextChangeAt, now)}`;
  }
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A duration in words: "45 s", "24 min", "1 h 5 min" (minutes rounded up: "1 min" until the
 * last minute; seconds to the nearest, so a few milliseconds of clock estimate do not add one). */
export function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.ceil(s / 60);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ""}`;
}

/** Why the last change happened, when it was not the agent's own click (null then). */
export const CAUSE_WORD: Record<Cause, string | null> = {
  manual: null,
  admin: "set by an admin",
  timer: "timer ended",
  idle: "away: idle",
  return: "back from idle",
};
