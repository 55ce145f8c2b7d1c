// What an administration page shows before its account data is there: a refusal (403), an
// error, or "Loading…".

import type { useAdmin } from "./ui";

export function Loading(props: { a: ReturnType<typeof useAdmin> }) {
  if (props.a.refused) {
    return (
      <div class="card refusal" role="alert">
        <p>
          <strong>Not allowed: you do not have permission to open this page.</strong> The server refused: only owners and admins may manage the account.
        </p>
      </div>
    );
  }
  if (props.a.error) {
    return (
      <p class="form-error" role="alert">
        Could not load the account: {props.a.error}
      </p>
    );
  }
  return <p>Loading…</p>;
}
