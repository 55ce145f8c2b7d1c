// widget.js: the entry point a site loads with
//   <script async src="{server}/widget.js" data-widget-key="wk_…" [data-group] [data-lang]>
// or with no data attributes, for pages that place <presence-chatbox> elements themselves.
//
// Guarantees: adds exactly one global, `window.Presence`, and one custom element,
// `presence-chatbox`; loading the script twice changes nothing. The server is the origin the
// script was loaded from. Sets no cookies (every request is made without credentials).

import type { ChatboxView } from "../shared/wire";
import { Feed } from "./feed";
import { defineElement } from "./element";

type ChangeFn = (view: ChatboxView, widgetKey: string) => void;

interface PresenceApi {
  /** The latest ChatboxView seen for this widget key, or null. */
  view(widgetKey: string): ChatboxView | null;
  /** Calls `fn(view, widgetKey)` for every new view of any key; returns an unsubscribe. */
  on(event: "change", fn: ChangeFn): () => void;
  readonly version: string;
}

declare global {
  interface Window {
    Presence?: PresenceApi;
  }
}

(() => {
  if (window.Presence) return;
  const script = document.currentScript as HTMLScriptElement | null;
  let server = location.origin;
  try {
    if (script?.src) server = new URL(script.src).origin;
  } catch {
    // Keep the page's origin.
  }

  const feeds = new Map<string, Feed>();
  const latest = new Map<string, ChatboxView>();
  const changeFns = new Set<ChangeFn>();

  const feedFor = (srv: string, key: string): Feed => {
    const id = `${srv} ${key}`;
    let f = feeds.get(id);
    if (!f) {
      f = new Feed(srv, key, (v) => {
        latest.set(key, v);
        for (const fn of changeFns) {
          try {
            fn(v, key);
          } catch (e) {
            console.error(e);
          }
        }
      });
      feeds.set(id, f);
    }
    return f;
  };

  const api: PresenceApi = {
    view: (key) => latest.get(key) ?? null,
    on(event, fn) {
      if (event !== "change") throw new TypeError(`Presence.on: unknown event "${event}"`);
      if (typeof fn !== "function") throw new TypeError("Presence.on: fn must be a function");
      changeFns.add(fn);
      return () => changeFns.delete(fn);
    },
    version: "1",
  };
  Object.defineProperty(window, "Presence", { value: Object.freeze(api), enumerable: false });

  defineElement(feedFor, server);

  const key = script?.dataset.widgetKey;
  if (key) {
    const place = () => {
      const e = document.createElement("presence-chatbox");
      e.setAttribute("widget-key", key);
      e.setAttribute("corner", "");
      const { group, lang } = script.dataset;
      if (group) e.setAttribute("group", group);
      if (lang) e.setAttribute("lang", lang);
      document.body.appendChild(e);
    };
    if (document.body) place();
    else document.addEventListener("DOMContentLoaded", place, { once: true });
  }
})();
