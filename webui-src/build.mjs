// Copies the built files of the libraries the web UI uses into agent_runtime/webui/vendor,
// with their licenses, so the master serves them and a user needs no Node. Run after
// `npm ci` whenever package.json changes: `npm ci && npm run build`, then commit vendor/.
// Our own modules (agent_runtime/webui/*.js) are plain ES modules the browser loads as they
// are: nothing of ours is compiled, so what is reviewed is what runs.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const vendor = join(here, "..", "agent_runtime", "webui", "vendor");

// [package, file in the package, name under vendor/]
const files = [
  ["preact", "dist/preact.mjs", "preact.mjs"],
  ["preact", "hooks/dist/hooks.mjs", "hooks.mjs"],
  ["htm", "dist/htm.mjs", "htm.mjs"],
  ["uplot", "dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
  ["uplot", "dist/uPlot.min.css", "uPlot.min.css"],
];

mkdirSync(vendor, { recursive: true });
const versions = {};
for (const [pkg, file, name] of files) {
  copyFileSync(join(modules, pkg, file), join(vendor, name));
  const meta = JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8"));
  versions[pkg] = `${meta.version} (${meta.license})`;
  copyFileSync(join(modules, pkg, "LICENSE"), join(vendor, `LICENSE.${pkg}`));
}
const lines = Object.entries(versions).map(([pkg, v]) => `${pkg} ${v}`);
writeFileSync(join(vendor, "VERSIONS"), lines.join("\n") + "\n");
console.log(`vendored into ${vendor}:\n  ${lines.join("\n  ")}`);
