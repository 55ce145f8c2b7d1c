// What the chat box says, in the visitor's language: the status and its reason in words, the
// busy or offline message when the account set one, "we open at 09:00" from
// `next_change_at` and "back at 14:30" from `back_at`, in the visitor's own time zone and
// clock convention (Intl).
//
// Guarantees: every (status, reason) pair has a sentence in every language below; an unknown
// language falls back to its base language, then to English.

import type { ChatboxStatus, Reason } from "../shared/wire";

interface Words {
  online: string;
  busy: string;
  offline: string;
  /** `{t}` is the opening time, already formatted. */
  opensAt: string;
  /** `{d}` is the day, `{t}` the time. */
  opensOn: string;
  /** Busy, back at `{t}` (today) or `{d}` at `{t}`. */
  busyAt: string;
  busyOn: string;
  /** Offline inside opening hours, back at `{t}` or `{d}` at `{t}`. */
  offlineAt: string;
  offlineOn: string;
  closedNow: string;
  stale: string;
  loading: string;
  unavailable: string;
  label: string;
}

const WORDS: Record<string, Words> = {
  en: {
    online: "We're online",
    busy: "We're busy — back shortly",
    offline: "We're offline",
    opensAt: "Offline — we open at {t}",
    opensOn: "Offline — we open {d} at {t}",
    busyAt: "We're busy — back at {t}",
    busyOn: "We're busy — back {d} at {t}",
    offlineAt: "We're offline — back at {t}",
    offlineOn: "We're offline — back {d} at {t}",
    closedNow: "Offline — outside opening hours",
    stale: "Status may be out of date",
    loading: "Checking…",
    unavailable: "Chat status unavailable",
    label: "Chat status",
  },
  es: {
    online: "Estamos en línea",
    busy: "Estamos ocupados — volvemos enseguida",
    offline: "No estamos conectados",
    opensAt: "Fuera de línea — abrimos a las {t}",
    opensOn: "Fuera de línea — abrimos el {d} a las {t}",
    busyAt: "Estamos ocupados — volvemos a las {t}",
    busyOn: "Estamos ocupados — volvemos {d} a las {t}",
    offlineAt: "No estamos conectados — volvemos a las {t}",
    offlineOn: "No estamos conectados — volvemos {d} a las {t}",
    closedNow: "Fuera de línea — fuera del horario de atención",
    stale: "El estado puede no estar actualizado",
    loading: "Comprobando…",
    unavailable: "Estado del chat no disponible",
    label: "Estado del chat",
  },
  de: {
    online: "Wir sind online",
    busy: "Wir sind beschäftigt — gleich zurück",
    offline: "Wir sind offline",
    opensAt: "Offline — wir öffnen um {t}",
    opensOn: "Offline — wir öffnen {d} um {t}",
    busyAt: "Wir sind beschäftigt — zurück um {t}",
    busyOn: "Wir sind beschäftigt — zurück {d} um {t}",
    offlineAt: "Wir sind offline — zurück um {t}",
    offlineOn: "Wir sind offline — zurück {d} um {t}",
    closedNow: "Offline — außerhalb der Öffnungszeiten",
    stale: "Status ist eventuell nicht aktuell",
    loading: "Wird geprüft…",
    unavailable: "Chat-Status nicht verfügbar",
    label: "Chat-Status",
  },
  fr: {
    online: "Nous sommes en ligne",
    busy: "Nous sommes occupés — de retour bientôt",
    offline: "Nous sommes hors ligne",
    opensAt: "Hors ligne — ouverture à {t}",
    opensOn: "Hors ligne — ouverture {d} à {t}",
    busyAt: "Nous sommes occupés — de retour à {t}",
    busyOn: "Nous sommes occupés — de retour {d} à {t}",
    offlineAt: "Nous sommes hors ligne — de retour à {t}",
    offlineOn: "Nous sommes hors ligne — de retour {d} à {t}",
    closedNow: "Hors ligne — en dehors des heures d'ouverture",
    stale: "Le statut n'est peut-être pas à jour",
    loading: "Vérification…",
    unavailable: "Statut du chat indisponible",
    label: "Statut du chat",
  },
  cs: {
    online: "Jsme online",
    busy: "Máme plno — hned jsme zpět",
    offline: "Jsme offline",
    opensAt: "Offline — otevíráme v {t}",
    opensOn: "Offline — otevíráme {d} v {t}",
    busyAt: "Máme plno — zpět v {t}",
    busyOn: "Máme plno — zpět {d} v {t}",
    offlineAt: "Jsme offline — zpět v {t}",
    offlineOn: "Jsme offline — zpět {d} v {t}",
    closedNow: "Offline — mimo otevírací dobu",
    stale: "Stav nemusí být aktuální",
    loading: "Zjišťujeme…",
    unavailable: "Stav chatu není dostupný",
    label: "Stav chatu",
  },
};

/** The visitor's language: `lang` if given, else the browser's, as a supported key. */
export function pickLang(lang: string | null | undefined): string {
  const tags = lang ? [lang] : navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const t of tags) {
    const base = (t || "").toLowerCase().split("-")[0];
    if (WORDS[base]) return base;
  }
  return "en";
}

export function words(lang: string): Words {
  return WORDS[lang] || WORDS.en;
}

/** A locale Intl accepts for `lang`, or the browser's default. */
function locale(lang: string | null): string | undefined {
  if (!lang) return undefined;
  try {
    return Intl.DateTimeFormat.supportedLocalesOf([lang])[0];
  } catch {
    return undefined;
  }
}

/**
 * `today` with `{t}` the time of `at` if it is today, else `later` with `{d}` "tomorrow", a
 * weekday (within a week) or a date. `now` and `at` are milliseconds since the epoch; the
 * time zone is the visitor's.
 */
function when(today: string, later: string, langTag: string | null, at: number, now: number): string {
  const loc = locale(langTag);
  const t = new Intl.DateTimeFormat(loc, { hour: "numeric", minute: "2-digit" }).format(at);
  const day = (ms: number) => {
    const d = new Date(ms);
    return Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) / 86400000;
  };
  const diff = day(at) - day(now);
  if (diff <= 0) return today.replace("{t}", t);
  let d: string;
  if (diff === 1) {
    d = new Intl.RelativeTimeFormat(loc, { numeric: "auto" }).format(1, "day");
  } else if (diff < 7) {
    d = new Intl.DateTimeFormat(loc, { weekday: "long" }).format(at);
  } else {
    d = new Intl.DateTimeFormat(loc, { month: "long", day: "numeric" }).format(at);
  }
  return later.replace("{d}", d).replace("{t}", t);
}

/**
 * The sentence for a status and reason. With `backAt` (a busy or offline chat box expected
 * back) it says when; otherwise the account's message wins where it applies.
 */
export function sentence(
  w: Words,
  langTag: string | null,
  status: ChatboxStatus,
  reason: Reason,
  message: string | null | undefined,
  nextChangeAt: number | null,
  backAt: number | null | undefined,
  now: number,
): string {
  if (status === "online") return w.online;
  if (status === "busy") return backAt ? when(w.busyAt, w.busyOn, langTag, backAt, now) : message || w.busy;
  if (reason === "outside_opening_hours") {
    return nextChangeAt ? when(w.opensAt, w.opensOn, langTag, nextChangeAt, now) : w.closedNow;
  }
  return backAt ? when(w.offlineAt, w.offlineOn, langTag, backAt, now) : message || w.offline;
}
