// <presence-chatbox widget-key="wk_…" [group="sales"] [lang="es"] [headless] [corner]
//                   [server="https://presence.example.com"]>
//
// Guarantees:
// - Renders only inside its own shadow root, styled by a constructable stylesheet that starts
//   with `:host{all:initial!important}`: no host page rule reaches it, and it needs no inline
//   style or script (works under `style-src {server}` without 'unsafe-inline').
// - Reflects `status`, `reason` (and `stale` while the status may be out of date) as
//   attributes on itself; dispatches one `presence-change` event (bubbles, composed) each time
//   what it shows changes, with the ChatboxView (or, for a group, the group entry plus the
//   view's `version`, `next_change_at` and `message`) as `detail`.
// - Says when a busy or offline chat box is expected back (`back_at`), in the visitor's
//   time zone and language.
// - Announces each change to screen readers through a polite live region.
// - A missing widget key, an unknown key or an unknown group is reported once with
//   console.error and shown as "Chat status unavailable" (unknown group: the account view).

import type { ChatboxView, GroupView } from "../shared/wire";
import type { Feed, FeedState } from "./feed";
import { pickLang, sentence, words } from "./words";

/** A `presence-change` event's detail: the ChatboxView, or for a group its entry (with its own
 * `message`) plus the view's `version` and `next_change_at`. */
export type Detail = ChatboxView | (GroupView & Pick<ChatboxView, "version" | "next_change_at">);

const CSS = `
:host{all:initial!important;display:inline-block!important;contain:content!important;
font:14px/1.3 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif!important;color:#1f2328!important;
direction:ltr}
:host([corner]){position:fixed!important;right:20px!important;bottom:20px!important;
z-index:2147483000!important}
:host([headless]){display:none!important}
.box{display:flex;align-items:center;gap:10px;box-sizing:border-box;max-width:320px;
padding:10px 16px 10px 12px;border-radius:24px;background:#fff;color:#1f2328;
box-shadow:0 2px 10px rgba(0,0,0,.18);border:1px solid #d0d7de;font:inherit;text-align:left}
.dot{flex:none;width:12px;height:12px;border-radius:50%;background:#8c959f}
:host([status=online]) .dot{background:#1a7f37}
:host([status=busy]) .dot{background:#d4a72c}
:host([status=offline]) .dot{background:#8c959f}
.t{display:flex;flex-direction:column;min-width:0}
.m{font-weight:600}
.s{font-size:12px;color:#57606a}
.s:empty{display:none}
:host([stale]) .box{border-style:dashed}
.sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;
clip:rect(0 0 0 0);white-space:nowrap;border:0}
`;

let sheet: CSSStyleSheet | null = null;
function styles(): CSSStyleSheet {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
  }
  return sheet;
}

function el(tag: string, cls: string, parent: Node): HTMLElement {
  const e = document.createElement(tag);
  e.className = cls;
  parent.appendChild(e);
  return e;
}

export type FeedFor = (server: string, key: string) => Feed;

export function defineElement(feedFor: FeedFor, defaultServer: string): void {
  class PresenceChatbox extends HTMLElement {
    static get observedAttributes(): string[] {
      return ["widget-key", "group", "lang", "server"];
    }

    private main: HTMLElement;
    private sub: HTMLElement;
    private live: HTMLElement;
    private box: HTMLElement;
    private unsub: (() => void) | null = null;
    private subId = "";
    private pending = false;
    private last: FeedState | null = null;
    private shown = "";
    private warned = "";
    private detailNow: Detail | null = null;

    constructor() {
      super();
      const root = this.attachShadow({ mode: "open" });
      root.adoptedStyleSheets = [styles()];
      this.box = el("div", "box", root);
      this.box.setAttribute("part", "box");
      el("span", "dot", this.box).setAttribute("aria-hidden", "true");
      const t = el("span", "t", this.box);
      this.main = el("span", "m", t);
      this.sub = el("span", "s", t);
      this.live = el("div", "sr", root);
      this.live.setAttribute("aria-live", "polite");
      this.live.setAttribute("role", "status");
    }

    /** The latest detail this element shows (null before the first view). */
    get view(): Detail | null {
      return this.detailNow;
    }

    connectedCallback(): void {
      this.schedule();
    }

    disconnectedCallback(): void {
      this.schedule();
    }

    attributeChangedCallback(): void {
      this.schedule();
    }

    /** Coalesces the callbacks of one task (an upgrade fires one per attribute, a move fires
     * disconnected + connected) into one (re)subscription. */
    private schedule(): void {
      if (this.pending) return;
      this.pending = true;
      queueMicrotask(() => {
        this.pending = false;
        if (!this.isConnected) {
          this.unsub?.();
          this.unsub = null;
          return;
        }
        this.resubscribe();
      });
    }

    private langTag(): string | null {
      return this.getAttribute("lang") || null;
    }

    private resubscribe(): void {
      const key = (this.getAttribute("widget-key") || "").trim();
      const server = (this.getAttribute("server") || defaultServer).replace(/\/+$/, "");
      const id = [server, key, this.getAttribute("group")].join(" ");
      if (id === this.subId && this.unsub) {
        // Same feed (a move, or only `lang` changed): redraw, no new event.
        if (this.last) this.render(this.last);
        return;
      }
      // What it shows is another thing now: the next view is news again.
      if (id !== this.subId) this.shown = "";
      this.subId = id;
      this.unsub?.();
      this.unsub = null;
      if (!key) {
        this.warnOnce("no widget-key attribute (expected widget-key=\"wk_…\")");
        this.render({ view: null, stale: false, error: "no key" });
        return;
      }
      this.unsub = feedFor(server, key).subscribe((s) => this.render(s));
    }

    private warnOnce(why: string): void {
      if (this.warned === why) return;
      this.warned = why;
      console.error(`presence-chatbox: ${why}`);
    }

    private detail(v: ChatboxView): Detail {
      const g = this.getAttribute("group");
      if (g) {
        const entry = v.groups.find((x) => x.key === g);
        if (entry) {
          return {
            key: entry.key,
            name: entry.name,
            status: entry.status,
            reason: entry.reason,
            version: v.version,
            next_change_at: v.next_change_at,
            // The entry's own message (for its own status); a server without per-group
            // messages only has the view's.
            message: ("message" in entry ? entry.message : v.message) ?? null,
            back_at: entry.back_at ?? null,
          };
        }
        this.warnOnce(`unknown group "${g}"; showing the whole account`);
      }
      return { ...v, message: v.message ?? null };
    }

    private render(s: FeedState): void {
      this.last = s;
      const w = words(pickLang(this.langTag()));
      this.box.setAttribute("aria-label", w.label);
      let main: string;
      let sub = "";
      let d: Detail | null = null;
      if (s.error) {
        main = w.unavailable;
      } else if (!s.view) {
        main = w.loading;
      } else {
        d = this.detail(s.view);
        main = sentence(
          w,
          this.langTag(),
          d.status,
          d.reason,
          d.message,
          d.next_change_at,
          d.back_at,
          Date.now(),
        );
        // The account's message, when the sentence says something else.
        if (d.message && (d.reason === "outside_opening_hours" || d.back_at)) sub = d.message;
        if (s.stale) sub = w.stale;
      }
      this.main.textContent = main;
      this.sub.textContent = sub;
      this.toggleAttribute("stale", s.stale);
      if (!d) {
        this.removeAttribute("status");
        this.removeAttribute("reason");
        return;
      }
      this.detailNow = d;
      // One event per change of what this element shows (not per view version).
      const sig = [d.status, d.reason, d.message, d.next_change_at, d.back_at].join("|");
      if (sig === this.shown) return;
      const first = this.shown === "";
      this.shown = sig;
      this.setAttribute("status", d.status);
      this.setAttribute("reason", d.reason);
      // Changes are announced; the state found on page load is not.
      if (!first) this.announce(main);
      this.dispatchEvent(
        new CustomEvent("presence-change", { detail: d, bubbles: true, composed: true }),
      );
    }

    private announce(text: string): void {
      this.live.textContent = text;
    }
  }

  if (!customElements.get("presence-chatbox")) {
    customElements.define("presence-chatbox", PresenceChatbox);
  }
}
