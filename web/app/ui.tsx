// Small shared pieces: the router (one address per page under /app/, the back button works),
// links, form fields that show the server's field errors, and the admin-account loader.

import type { ComponentChildren, JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { AdminAccountResponse } from "../shared/wire";
import { ApiError, type Session } from "./session";

// ----- routing -----------------------------------------------------------------------------

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((f) => f()));

export function navigate(path: string): void {
  if (location.pathname + location.search !== path) history.pushState(null, "", path);
  listeners.forEach((f) => f());
}

export function usePath(): string {
  const [p, set] = useState(location.pathname);
  useEffect(() => {
    const f = () => set(location.pathname);
    listeners.add(f);
    return () => void listeners.delete(f);
  }, []);
  return p;
}

export function Link(props: { href: string; children: ComponentChildren; current?: boolean; class?: string }) {
  const click = (e: MouseEvent) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.href);
  };
  return (
    <a href={props.href} onClick={click} class={props.class} aria-current={props.current ? "page" : undefined}>
      {props.children}
    </a>
  );
}

// ----- forms -------------------------------------------------------------------------------

/** Field errors by the field name the server used, plus one for the whole form. */
export interface Errors {
  fields: Record<string, string>;
  form: string | null;
}
export const NO_ERRORS: Errors = { fields: {}, form: null };

export const idFor = (prefix: string, field: string) => `${prefix}-${field.replace(/[^\w-]/g, "_")}`;

/**
 * Turns a failed call into errors: a 422 lands on its field when the form has it, anything
 * else on the form. `conflicts` names the field a 409 belongs to, if any.
 */
export function errorsOf(e: unknown, known: (field: string) => boolean, conflicts?: string): Errors {
  if (e instanceof ApiError) {
    if (e.field && known(e.field)) {
      return { fields: { [e.field]: e.detail }, form: null };
    }
    if (e.status === 409 && conflicts) return { fields: { [conflicts]: e.detail }, form: null };
    if (e.status === 403) return { fields: {}, form: "Not allowed: your role cannot do this." };
    return { fields: {}, form: e.detail };
  }
  return { fields: {}, form: `Could not reach the server (${String(e)}). Nothing was lost; try again.` };
}

/** Moves focus to the first field with an error (or the form's error) after a failed save. */
export function focusError(prefix: string, errs: Errors): void {
  const f = Object.keys(errs.fields)[0];
  const id = f ? idFor(prefix, f) : `${prefix}-form-error`;
  setTimeout(() => document.getElementById(id)?.focus(), 0);
}

/** The attributes an input needs to point at its error. */
export function invalid(prefix: string, errs: Errors, field: string, hint?: string) {
  const id = idFor(prefix, field);
  const bad = field in errs.fields;
  const described = [bad ? `${id}-error` : "", hint ? `${id}-hint` : ""].filter(Boolean).join(" ");
  return {
    id,
    "aria-invalid": bad ? ("true" as const) : undefined,
    "aria-describedby": described || undefined,
  };
}

export function FieldError(props: { prefix: string; errs: Errors; field: string }) {
  const msg = props.errs.fields[props.field];
  if (!msg) return null;
  return (
    <p class="field-error" id={`${idFor(props.prefix, props.field)}-error`}>
      {msg}
    </p>
  );
}

export function FormError(props: { prefix: string; errs: Errors }) {
  return props.errs.form ? (
    <p class="form-error" role="alert" id={`${props.prefix}-form-error`} tabIndex={-1}>
      {props.errs.form}
    </p>
  ) : null;
}

/** A labelled text-like input with its error below it. */
export function Field(props: {
  prefix: string;
  errs: Errors;
  field: string;
  label: ComponentChildren;
  value: string;
  onInput: (v: string) => void;
  type?: string;
  hint?: string;
  autocomplete?: string;
  required?: boolean;
  inputMode?: JSX.HTMLAttributes["inputMode"];
}) {
  const a = invalid(props.prefix, props.errs, props.field, props.hint);
  return (
    <div>
      <label for={a.id}>{props.label}</label>
      <input
        {...a}
        type={props.type || "text"}
        value={props.value}
        autocomplete={props.autocomplete}
        required={props.required}
        inputMode={props.inputMode}
        onInput={(e) => props.onInput((e.target as HTMLInputElement).value)}
      />
      {props.hint && (
        <p class="hint" id={`${a.id}-hint`}>
          {props.hint}
        </p>
      )}
      <FieldError prefix={props.prefix} errs={props.errs} field={props.field} />
    </div>
  );
}

// ----- administration data -------------------------------------------------------------------

/** `GET /v1/admin/account`: the data, a refusal (403), or another error. */
export function useAdmin(session: Session) {
  const [data, setData] = useState<AdminAccountResponse | null>(null);
  const [refused, setRefused] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const load = async () => {
    try {
      setData(await session.call<AdminAccountResponse>("GET", "/v1/admin/account"));
      setError(null);
    } catch (e) {
      if (e instanceof ApiError && e.status === 403) setRefused(true);
      else setError(String((e as Error).message || e));
    }
  };
  useEffect(() => {
    void load();
  }, []);
  return { data, refused, error, reload: load, set: setData };
}
