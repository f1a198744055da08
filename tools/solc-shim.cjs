#!/usr/bin/env node
// A `solc` stand-in for py-solc-x: answers `--version` and `--standard-json` (JSON on stdin,
// JSON on stdout) by calling the official solc-js build in tools/node_modules/solc.
// `solcjs` itself prints an SMT notice before its JSON, which py-solc-x cannot parse, hence this.
// Other flags py-solc-x may add (--base-path, --allow-paths) are ignored: sources arrive inline.
"use strict";

const path = require("path");
const solc = require(path.join(__dirname, "node_modules", "solc"));

function main(argv) {
  if (argv.includes("--version")) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return 0;
  }
  if (!argv.includes("--standard-json")) {
    process.stderr.write("solc-shim: only --version and --standard-json are supported\n");
    return 2;
  }
  const chunks = [];
  process.stdin.on("data", (chunk) => chunks.push(chunk));
  process.stdin.on("end", () => {
    const input = Buffer.concat(chunks).toString("utf8");
    process.stdout.write(solc.compile(input));
  });
  return null;
}

const code = main(process.argv.slice(2));
if (code !== null) process.exitCode = code;
