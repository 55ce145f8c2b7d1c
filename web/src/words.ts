// What the chat box says, in the visitor's language: the status and its reason in words, the
// busy or offline message when the account set one, and "we open at 09:00" from
// `next_change_at` in the visitor's own time zone and clock convention (Intl).
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
 * "we open at 09:00" (today), "we open tomorrow at 09:00" / "Monday at 09:00" (within a week),
 * or a date. `now` and `at` are milliseconds since the epoch; the time zone is the visitor's.
 */
export function opensText(w: Words, langTag: string | null, at: number, now: number): string {
  const loc = locale(langTag);
  const t = new Intl.DateTimeFormat(loc, { hour: "numeric", minute: "2-digit" }).format(at);
  const day = (ms: number) => {
    const d = new Date(ms);
    return Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) / 86400000;
  };
  const diff = day(at) - day(now);
  if (diff <= 0) return w.opensAt.replace("{t}", t);
  let d: string;
  if (diff === 1) {
    d = new Intl.RelativeTimeFormat(loc, { numeric: "auto" }).format(1, "day");
  } else if (diff < 7) {
    d = new Intl.DateTimeFormat(loc, { weekday: "long" }).format(at);
  } else {
    d = new Intl.DateTimeFormat(loc, { month: "long", day: "numeric" }).format(at);
  }
  return w.opensOn.replace("{d}", d).replace("{t}", t);
}

/** The sentence for a status and reason; the account's message wins where it applies. */
export function sentence(
  w: Words,
  langTag: string | null,
  status: ChatboxStatus,
  reason: Reason,
  message: string | null | undefined,
  nextChangeAt: number | null,
  now: number,
): string {
  if (status === "online") return w.online;
  if (status === "busy") return message || w.busy;
  if (reason === "outside_opening_hours") {
    return nextChangeAt ? opensText(w, langTag, nextChangeAt, now) : w.closedNow;
  }
  return message || w.offline;
}
