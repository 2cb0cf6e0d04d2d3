// Validates an AsyncAPI document with the official parser: prints every
// diagnostic as a JSON line and exits 1 on any error.
// Usage: node validate.cjs <parser dir> <document.json>
const [parserDir, file] = process.argv.slice(2);
const { Parser } = require(`${parserDir}/node_modules/@asyncapi/parser`);
const fs = require('fs');

(async () => {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(file, 'utf8'));
  for (const d of diagnostics) {
    console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path.join('/') }));
  }
  const errors = diagnostics.filter((d) => d.severity === 0);
  if (!document || errors.length > 0) {
    process.exit(1);
  }
  console.log(JSON.stringify({ valid: true, channels: document.channels().length, operations: document.operations().length, messages: document.components().messages().length }));
})().catch((e) => { console.error(e); process.exit(2); });
