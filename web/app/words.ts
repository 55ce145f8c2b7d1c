// The dashboard's sentences for a chat box view: its status and the reason, in words, with the
// opening or closing time in the reader's own time zone ("offline because it is outside
// opening hours; opens at 09:00").

import type { AgentStatus, ChatboxStatus, Reason } from "../shared/wire";

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
