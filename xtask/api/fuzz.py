"""The API step of `cargo xtask test`: the OpenAPI document against a live server.

Usage: fuzz.py URL ADMIN_TOKEN SECONDS_PER_RUN WORK_DIR

1. Fetches URL/v1/openapi.json and validates it with openapi-spec-validator (OpenAPI 3.1).
2. Creates an account (the operator's token), logs its owner in, adds an agent and logs it
   in, and creates an API key.
3. Runs schemathesis from the document once per kind of credential: none (the public routes,
   the widget key as the path parameter), the operator token, the owner's session, the
   agent's session, the API key. Each run is bounded by SECONDS_PER_RUN and checks that no
   answer is a 5xx and none contradicts the document (status, content type, headers, body
   schema). `DELETE /v1/session` is left out: it would end the session the run uses.

Ends with `api: N passed, N failed` (one count per check of the document and per run).
"""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)

# Streams never end: the Rust tests cover them.
STREAMS = ["/v1/me/events", "/v1/widget/{widget_key}/events", "/v1/admin/events"]


def call(url, method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def device(name):
    return {"id": name, "platform": "cli", "name": name, "app_version": "1"}


def main():
    url, admin, seconds, work = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
    work.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    passed = failed = 0

    doc = work / "openapi.json"
    doc.write_bytes(urllib.request.urlopen(url + "/v1/openapi.json", timeout=30).read())
    ok = subprocess.run([str(bin_dir / "openapi-spec-validator"), str(doc)]).returncode == 0
    print(f"document valid (openapi-spec-validator): {'ok' if ok else 'FAILED'}", flush=True)
    passed, failed = passed + ok, failed + (not ok)

    acc = call(url, "POST", "/v1/accounts", admin,
               {"name": "Fuzz", "slug": "fuzz",
                "owner": {"name": "Owner", "email": "owner@fuzz.test",
                          "password": "owner-password"}})
    owner = call(url, "POST", "/v1/login", None,
                 {"account": "fuzz", "email": "owner@fuzz.test",
                  "password": "owner-password", "device": device("owner")})["token"]
    call(url, "POST", "/v1/admin/agents", owner,
         {"name": "Ann", "email": "ann@fuzz.test", "password": "ann-password",
          "groups": [], "role": "agent"})
    agent = call(url, "POST", "/v1/login", None,
                 {"account": "fuzz", "email": "ann@fuzz.test", "password": "ann-password",
                  "device": device("ann")})["token"]
    key = call(url, "POST", "/v1/admin/api-keys", owner, {"name": "fuzz"})["key"]

    config = work / "schemathesis.toml"
    config.write_text(
        '[parameters]\n"path.widget_key" = "%s"\n' % acc["account"]["widget_key"]
    )
    # The agent's run comes before the owner's and the key's: theirs may shorten the
    # account's leases or turn password sign-in off.
    runs = [
        ("no credential (widget key)", None),
        ("operator token", admin),
        ("agent session", agent),
        ("owner session", owner),
        ("API key", key),
    ]
    for name, token in runs:
        cmd = [str(bin_dir / "schemathesis"), "--config-file", str(config), "run",
               str(doc), "--url", url, "--checks", CHECKS,
               "--max-time", seconds, "--request-timeout", "10",
               "--exclude-operation-id", "logout", "--generation-database", "none",
               "--no-color", "--workers", "1", "--seed", "1"]
        for path in STREAMS:
            cmd += ["--exclude-path", path]
        if token:
            cmd += ["--header", "Authorization: Bearer " + token]
        print(f"schemathesis, {name}", flush=True)
        ok = subprocess.run(cmd).returncode == 0
        print(f"schemathesis, {name}: {'ok' if ok else 'FAILED'}", flush=True)
        passed, failed = passed + ok, failed + (not ok)

    print(f"api: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
