// Bundles the widget (src/widget.ts -> dist/widget.js, plus dist/widget.js.gz), the demo
// page's script (demo/demo.ts -> dist/demo.js) and the dashboard (app/main.tsx -> dist/app.js,
// app/app.css -> dist/app.css, each with a .gz; app/beat.ts -> dist/beat.js, its heartbeat
// worker; app/admin.tsx -> dist/admin.js with a .gz, the administration pages, loaded only when
// an owner or admin opens one) with esbuild.
//
// admin.js runs on the page app.js made: it takes Preact's hooks and JSX runtime and the
// session module from app.js (`window.__presence`, see main.tsx) instead of bundling copies, so
// both scripts share one Preact and one ApiError class. It is not part of the first load, so
// not of the dashboard's budget.
//
// The outputs are committed: the server embeds them with include_bytes!, so building the
// server needs no Node (docs/adr/0005-committed-web-bundle.md). `node build.mjs --check`
// builds in memory and fails when a committed file differs from its sources, or when the
// widget or the dashboard exceeds its gzip budget; `cargo xtask test` runs it.

import { build } from "esbuild";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { gzipSync, gunzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
/** widget.js and everything it loads, gzip. */
export const BUDGET_GZIP_BYTES = 12000;
/** The dashboard's page, script and stylesheet, gzip (the `dashboard_gzip_bytes` budget). */
export const DASHBOARD_BUDGET_GZIP_BYTES = 25000;

const bundles = [
  { entry: "src/widget.ts", out: "widget.js", gzip: true, budget: "widget" },
  { entry: "demo/demo.ts", out: "demo.js", gzip: false },
  { entry: "app/main.tsx", out: "app.js", gzip: true, budget: "dashboard" },
  { entry: "app/app.css", out: "app.css", gzip: true, budget: "dashboard" },
  { entry: "app/beat.ts", out: "beat.js", gzip: false, budget: "dashboard" },
  { entry: "app/admin.tsx", out: "admin.js", gzip: true, budget: "lazy", fromApp: true },
];

/** Resolves what admin.js shares with app.js to the object app.js publishes. */
const fromApp = {
  name: "from-app",
  setup(b) {
    b.onResolve({ filter: /^(preact\/hooks|preact\/jsx-runtime|\.\/session)$/ }, (a) => ({ path: a.path, namespace: "app" }));
    b.onLoad({ filter: /.*/, namespace: "app" }, () => ({ contents: "module.exports = window.__presence", loader: "js" }));
  },
};

async function bundle(entry, shared) {
  const r = await build({
    entryPoints: [join(here, entry)],
    plugins: shared ? [fromApp] : [],
    bundle: true,
    minify: true,
    ...(entry.endsWith(".css") ? {} : { format: "iife" }),
    jsx: "automatic",
    jsxImportSource: "preact",
    target: ["chrome90", "firefox90", "safari15"],
    legalComments: "none",
    charset: "utf8",
    write: false,
    logLevel: "warning",
  });
  return Buffer.from(r.outputFiles[0].contents);
}

const check = process.argv.includes("--check");
let stale = [];
let dashboard = 0;
mkdirSync(dist, { recursive: true });
for (const b of bundles) {
  const js = await bundle(b.entry, b.fromApp);
  const path = join(dist, b.out);
  if (check) {
    let have = null;
    try {
      have = readFileSync(path);
    } catch {}
    if (!have || !have.equals(js)) stale.push(`dist/${b.out}`);
    if (b.gzip) {
      let gz = null;
      try {
        gz = gunzipSync(readFileSync(path + ".gz"));
      } catch {}
      if (!gz || !gz.equals(js)) stale.push(`dist/${b.out}.gz`);
    }
  } else {
    writeFileSync(path, js);
    if (b.gzip) writeFileSync(path + ".gz", gzipSync(js, { level: 9 }));
  }
  if (b.budget === "widget") {
    const size = gzipSync(js, { level: 9 }).length;
    console.log(`${b.out}: ${js.length} bytes, ${size} bytes gzip (budget ${BUDGET_GZIP_BYTES})`);
    if (size > BUDGET_GZIP_BYTES) {
      console.error(`${b.out} is over its budget: ${size} > ${BUDGET_GZIP_BYTES} bytes gzip`);
      process.exitCode = 1;
    }
  } else if (b.budget === "dashboard") {
    dashboard += gzipSync(js, { level: 9 }).length;
  } else if (b.budget === "lazy") {
    console.log(`${b.out}: ${js.length} bytes, ${gzipSync(js, { level: 9 }).length} bytes gzip (loaded when needed)`);
  }
}
// The dashboard's page is served as it is committed; count it gzip too.
dashboard += gzipSync(readFileSync(join(here, "app/index.html")), { level: 9 }).length;
console.log(
  `dashboard (index.html, app.js, app.css, beat.js): ${dashboard} bytes gzip (budget ${DASHBOARD_BUDGET_GZIP_BYTES})`,
);
if (dashboard > DASHBOARD_BUDGET_GZIP_BYTES) {
  console.error(`the dashboard is over its budget: ${dashboard} > ${DASHBOARD_BUDGET_GZIP_BYTES} bytes gzip`);
  process.exitCode = 1;
}
if (stale.length) {
  console.error(
    `out of date: ${stale.join(", ")}; run \`npm run build\` in web/ and commit the result`,
  );
  process.exitCode = 1;
}
