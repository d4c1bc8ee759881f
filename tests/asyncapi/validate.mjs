// Validate an AsyncAPI document (read from stdin) with the official parser, @asyncapi/parser.
// Usage: node validate.mjs PARSER_DIR < document.json
// Prints every diagnostic as one JSON line {severity, code, message, path}; exits 1 when any
// has error severity (0) or the parser produced no document, 2 on a usage or install problem.
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node validate.mjs PARSER_DIR < document.json");
  process.exit(2);
}
let Parser;
try {
  const require = createRequire(path.join(path.resolve(dir), "package.json"));
  ({ Parser } = await import(pathToFileURL(require.resolve("@asyncapi/parser")).href));
} catch (error) {
  console.error(`@asyncapi/parser is not installed under ${dir}: run \`make asyncapi-tools\``);
  process.exit(2);
}
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const text = Buffer.concat(chunks).toString("utf8");

const { document, diagnostics } = await new Parser().parse(text);
let errors = 0;
for (const d of diagnostics) {
  if (d.severity === 0) errors += 1;
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
}
if (document) {
  console.log(JSON.stringify({ version: document.version(), channels: document.channels().length }));
}
process.exit(errors || !document ? 1 : 0);
