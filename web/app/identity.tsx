// The customer's identity, for owners and admins: how agents sign in (the account's JWT
// issuer and key, password sign-in, provisioning), a box that tests a token and says exactly
// why it is refused, and the API keys the customer's backend uses. Part of admin.js.

import { useEffect, useState } from "preact/hooks";
import type { ApiKeyInfo, NewApiKeyResponse, SignInRequest, TokenTestResponse } from "../shared/wire";
import { Loading } from "./loading";
import type { Session } from "./session";
import { type Errors, Field, FieldError, FormError, NO_ERRORS, errorsOf, focusError, invalid, useAdmin } from "./ui";

type Props = { session: Session };
type KeySource = "hs256" | "jwks_url" | "jwks";

const SIGN_IN_FIELDS = ["jwt.issuer", "jwt.audience", "jwt.hs256_secret", "jwt.jwks_url", "jwt.jwks"];

const ACTION_WORDS: Record<NonNullable<TokenTestResponse["action"]>, string> = {
  signs_in: "signs in as its agent",
  links: "links the agent with this email to the token's user (sub) and signs in",
  updates: "signs in and updates the agent's name, groups or role from the claims",
  provisions: "creates a new agent from the claims and signs in",
};

export function SignInPage({ session }: Props) {
  const a = useAdmin(session);
  const prefix = "sign-in";
  const [ready, setReady] = useState(false);
  const [tokens, setTokens] = useState(false);
  const [issuer, setIssuer] = useState("");
  const [audience, setAudience] = useState("");
  const [source, setSource] = useState<KeySource>("hs256");
  const [secret, setSecret] = useState("");
  const [jwksUrl, setJwksUrl] = useState("");
  const [jwks, setJwks] = useState("");
  const [passwords, setPasswords] = useState(true);
  const [provision, setProvision] = useState(false);
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [note, setNote] = useState("");
  const [secretSet, setSecretSet] = useState(false);
  useEffect(() => {
    const s = a.data?.sign_in;
    if (!a.data || ready) return;
    setReady(true);
    if (!s) return;
    setPasswords(s.password_login);
    setProvision(s.provision);
    if (s.jwt) {
      setTokens(true);
      setIssuer(s.jwt.issuer);
      setAudience(s.jwt.audience);
      setSecretSet(s.jwt.hs256_secret_set);
      setSource(s.jwt.jwks_url ? "jwks_url" : s.jwt.jwks ? "jwks" : "hs256");
      setJwksUrl(s.jwt.jwks_url || "");
      setJwks(s.jwt.jwks ? JSON.stringify(s.jwt.jwks, null, 2) : "");
    }
  }, [a.data]);
  if (!a.data) return <Loading a={a} />;
  const owner = session.me?.agent.role === "owner";
  const save = async (e: Event) => {
    e.preventDefault();
    let parsedJwks: unknown = null;
    if (tokens && source === "jwks") {
      try {
        parsedJwks = JSON.parse(jwks);
      } catch {
        const x = { fields: { "jwt.jwks": "jwt.jwks: not JSON (paste the whole {\"keys\": [...]} document)" }, form: null };
        setErrs(x);
        focusError(prefix, x);
        return;
      }
    }
    const body: SignInRequest = {
      jwt: tokens
        ? {
            issuer: issuer.trim(),
            audience: audience.trim(),
            hs256_secret: source === "hs256" ? secret : null,
            jwks: source === "jwks" ? parsedJwks : null,
            jwks_url: source === "jwks_url" ? jwksUrl.trim() : null,
          }
        : null,
      password_login: passwords,
      provision,
    };
    try {
      await session.call("PUT", "/v1/admin/sign-in", body);
      setErrs(NO_ERRORS);
      setSecret("");
      setSecretSet(tokens && source === "hs256");
      setNote("Sign-in settings saved.");
    } catch (err) {
      const x = errorsOf(err, (f) => SIGN_IN_FIELDS.includes(f));
      setErrs(x);
      setNote("");
      focusError(prefix, x);
    }
  };
  const jwksArea = invalid(prefix, errs, "jwt.jwks", "Paste the whole JWKS document.");
  return (
    <>
      <p>
        Let your agents sign in with your own product's accounts: your backend issues a short-lived token (a JWT) for the signed-in user, and the app exchanges it for a Presence session. See{" "}
        <code>docs/INTEGRATION.md</code> for code that makes one.
      </p>
      {!owner && <p class="hint">Only the account's owner can change these settings; you can test tokens.</p>}
      <form onSubmit={save} noValidate aria-label="Sign-in settings">
        <fieldset disabled={!owner}>
          <legend>How agents sign in</legend>
          <div>
            <label class="inline">
              <input type="checkbox" checked={passwords} onChange={(e) => setPasswords((e.target as HTMLInputElement).checked)} /> Email and Presence password
            </label>
            <p class="hint">Off: only your tokens sign agents in; password sign-ins are refused.</p>
          </div>
          <div>
            <label class="inline">
              <input type="checkbox" checked={tokens} onChange={(e) => setTokens((e.target as HTMLInputElement).checked)} /> Tokens from your sign-in (JWT)
            </label>
          </div>
          {tokens && (
            <div class="card">
              <Field prefix={prefix} errs={errs} field="jwt.issuer" label="Issuer (iss)" value={issuer} onInput={setIssuer} hint="Exactly as your tokens' iss claim." />
              <Field prefix={prefix} errs={errs} field="jwt.audience" label="Audience (aud)" value={audience} onInput={setAudience} />
              <fieldset>
                <legend>Key that signs the tokens</legend>
                {(
                  [
                    ["hs256", "Shared secret (HS256)"],
                    ["jwks_url", "Public keys from a URL (RS256, ES256)"],
                    ["jwks", "Public keys pasted here (RS256, ES256)"],
                  ] as [KeySource, string][]
                ).map(([v, label]) => (
                  <label key={v} class="inline">
                    <input type="radio" name="key-source" value={v} checked={source === v} onChange={() => setSource(v)} /> {label}
                  </label>
                ))}
              </fieldset>
              {source === "hs256" && (
                <Field
                  prefix={prefix}
                  errs={errs}
                  field="jwt.hs256_secret"
                  label="Shared secret"
                  type="password"
                  autocomplete="off"
                  value={secret}
                  onInput={setSecret}
                  hint={secretSet ? "A secret is set; it is never shown. Enter it (or a new one) again to save." : "At least 32 characters, the same your backend signs with."}
                />
              )}
              {source === "jwks_url" && <Field prefix={prefix} errs={errs} field="jwt.jwks_url" label="JWKS URL" value={jwksUrl} onInput={setJwksUrl} hint="https on a public address; cached as its Cache-Control says." />}
              {source === "jwks" && (
                <div>
                  <label for={jwksArea.id}>JWKS</label>
                  <textarea {...jwksArea} rows={6} value={jwks} onInput={(e) => setJwks((e.target as HTMLTextAreaElement).value)} />
                  <p class="hint" id={`${jwksArea.id}-hint`}>
                    Paste the whole JWKS document.
                  </p>
                  <FieldError prefix={prefix} errs={errs} field="jwt.jwks" />
                </div>
              )}
              <label class="inline">
                <input type="checkbox" checked={provision} onChange={(e) => setProvision((e.target as HTMLInputElement).checked)} /> Create an agent the first time a user of yours signs in (needs an email claim)
              </label>
            </div>
          )}
          <FormError prefix={prefix} errs={errs} />
          <p>
            <button class="primary" type="submit">
              Save sign-in settings
            </button>
          </p>
          <p role="status" class="ok">
            {note}
          </p>
        </fieldset>
      </form>
      <TestToken session={session} />
    </>
  );
}

/** Checks a token as a sign-in would, and says why it is refused or what it would do. */
function TestToken({ session }: Props) {
  const prefix = "test-token";
  const [token, setToken] = useState("");
  const [result, setResult] = useState<TokenTestResponse | null>(null);
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const area = invalid(prefix, errs, "token", "Nothing is signed in or changed.");
  const test = async (e: Event) => {
    e.preventDefault();
    setResult(null);
    try {
      setResult(await session.call<TokenTestResponse>("POST", "/v1/admin/sign-in/test", { token: token.trim() }));
      setErrs(NO_ERRORS);
    } catch (err) {
      const x = errorsOf(err, (f) => f === "token");
      setErrs(x);
      focusError(prefix, x);
    }
  };
  return (
    <form onSubmit={test} noValidate aria-label="Test a token" class="card">
      <h2>Test a token</h2>
      <label for={area.id}>Token</label>
      <textarea {...area} rows={4} value={token} onInput={(e) => setToken((e.target as HTMLTextAreaElement).value)} placeholder="eyJhbGciOi..." />
      <p class="hint" id={`${area.id}-hint`}>
        Nothing is signed in or changed.
      </p>
      <FieldError prefix={prefix} errs={errs} field="token" />
      <FormError prefix={prefix} errs={errs} />
      <p>
        <button type="submit">Test the token</button>
      </p>
      <div role="status">
        {result &&
          (result.ok ? (
            <p class="ok">
              Accepted (sub <code>{result.sub}</code>): a sign-in {ACTION_WORDS[result.action!]}.
            </p>
          ) : (
            <p class="form-error">
              Refused: {result.reason}
              {result.sub && (
                <>
                  {" "}
                  (sub <code>{result.sub}</code>)
                </>
              )}
            </p>
          ))}
      </div>
    </form>
  );
}

const when = (ms: number) => new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

export function ApiKeysPage({ session }: Props) {
  const prefix = "api-keys";
  const [keys, setKeys] = useState<ApiKeyInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [refused, setRefused] = useState(false);
  const [name, setName] = useState("");
  const [made, setMade] = useState<NewApiKeyResponse | null>(null);
  const [copied, setCopied] = useState("");
  const [revoking, setRevoking] = useState<string | null>(null);
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [note, setNote] = useState("");
  const load = async () => {
    try {
      setKeys(await session.call<ApiKeyInfo[]>("GET", "/v1/admin/api-keys"));
      setError(null);
    } catch (e) {
      if ((e as { status?: number }).status === 403) setRefused(true);
      else setError((e as Error).message);
    }
  };
  useEffect(() => void load(), []);
  if (!keys) return <Loading a={{ data: null, refused, error, reload: load, set: () => {} }} />;
  const create = async (e: Event) => {
    e.preventDefault();
    setCopied("");
    try {
      const k = await session.call<NewApiKeyResponse>("POST", "/v1/admin/api-keys", { name: name.trim() });
      setMade(k);
      setName("");
      setErrs(NO_ERRORS);
      setNote("");
      await load();
    } catch (err) {
      const x = errorsOf(err, (f) => f === "name");
      setErrs(x);
      focusError(prefix, x);
    }
  };
  const revoke = async (k: ApiKeyInfo) => {
    try {
      await session.call("DELETE", `/v1/admin/api-keys/${encodeURIComponent(k.id)}`);
      setRevoking(null);
      if (made?.id === k.id) setMade(null);
      setNote(`Revoked ${k.name}: it no longer works anywhere.`);
      await load();
    } catch (err) {
      setErrs(errorsOf(err, () => false));
    }
  };
  const copy = async () => {
    if (!made) return;
    try {
      await navigator.clipboard.writeText(made.key);
      setCopied("Copied the key.");
    } catch {
      setCopied("Select the key and copy it (Ctrl+C, ⌘C).");
    }
  };
  return (
    <>
      <p>
        Keys for your own backend: a key works as <code>Authorization: Bearer pk_…</code> on every administration route, with an admin's rights (not on sign-in settings or API keys).
      </p>
      <form onSubmit={create} noValidate aria-label="New API key">
        <Field prefix={prefix} errs={errs} field="name" label="Name" value={name} onInput={setName} hint="What uses the key, for example your routing service." />
        <p>
          <button class="primary" type="submit">
            Create key
          </button>
        </p>
      </form>
      {made && (
        <div class="card" role="region" aria-label="The new key">
          <p>
            <strong>Copy the key for {made.name} now:</strong> it is shown only this once (Presence keeps only a hash).
          </p>
          <pre class="wrap">
            <code>{made.key}</code>
          </pre>
          <button type="button" onClick={() => void copy()}>
            Copy the key
          </button>{" "}
          <span role="status">{copied}</span>
        </div>
      )}
      <FormError prefix={prefix} errs={errs} />
      <p role="status" class="ok">
        {note}
      </p>
      {keys.length === 0 ? (
        <p class="hint">No keys yet.</p>
      ) : (
        <table>
          <caption class="sr-only">API keys</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Created</th>
              <th scope="col">Action</th>
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id} data-key={k.id}>
                <th scope="row">{k.name}</th>
                <td>{when(k.created_at)}</td>
                <td>
                  {revoking !== k.id ? (
                    <button type="button" class="danger" onClick={() => setRevoking(k.id)} aria-label={`Revoke ${k.name}`}>
                      Revoke
                    </button>
                  ) : (
                    <span role="group" aria-label={`Confirm revoking ${k.name}`}>
                      Revoke {k.name}? What uses it stops working at once.{" "}
                      <button type="button" class="danger" onClick={() => void revoke(k)}>
                        Yes, revoke {k.name}
                      </button>{" "}
                      <button type="button" onClick={() => setRevoking(null)}>
                        Cancel
                      </button>
                    </span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
