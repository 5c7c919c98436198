// Chat template parity: renders every conversation in tests/support/chat/*.json with the official
// Gemma 4 Jinja template (tests/data/chat_template/gemma-4-31B-it.jinja) and with
// `shardlm chat-template`, and requires byte-identical prompts.
//
// References: @huggingface/jinja (tests/support/node/node_modules, required) and, when `python3` can
// import jinja2, Python Jinja2 set up as Hugging Face transformers does (trim_blocks, lstrip_blocks,
// sandboxed). The two engines differ on some values (None prints "None" in Python and nothing in JS;
// 1.0 prints "1.0" in Python and "1" in JS; schemas without a "type" fail in JS); shardlm follows
// Python, and fixtures exercising those cases list only "jinja2" in `references`.
//
// Fixture: {description, messages, tools?, options?: {enable_thinking, add_generation_prompt,
// empty_thought_block, fold_tool_messages}, references?: ["hf", "jinja2"], expect_error?: "text"}.
// Before rendering with the template, the messages get the same OpenAI normalisation shardlm documents
// (model/chat_template.h: string arguments parsed, tool messages folded into tool_responses, a leading
// system message's text parts joined). empty_thought_block = false (E2B/E4B) expects the 31B output
// without its final "<|channel>thought\n<channel|>".
//
// Usage: node chat_parity.mjs --shardlm BIN [--fixtures DIR] [--template FILE] [--node-modules DIR]
// Exit status: 0 all match, 1 a mismatch or error, 77 (skip) when node_modules is missing.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = { fixtures: path.join(here, "chat"), template: path.join(here, "..", "data", "chat_template", "gemma-4-31B-it.jinja"),
  "node-modules": path.join(here, "node", "node_modules"), python: "python3" };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, "");
  if (!(key in args) && key !== "shardlm") { console.error(`unknown option ${process.argv[i]}`); process.exit(1); }
  args[key] = process.argv[i + 1];
}
if (!args.shardlm) { console.error("--shardlm BIN is required"); process.exit(1); }

const EMPTY_THOUGHT = "<|channel>thought\n<channel|>";

// ---- references -------------------------------------------------------------------------------

const jinjaDir = path.join(args["node-modules"], "@huggingface", "jinja");
if (!fs.existsSync(path.join(jinjaDir, "package.json"))) {
  console.log(`SKIP: ${jinjaDir} is missing (run npm ci in tests/support/node)`);
  process.exit(77);
}
const jinjaVersion = JSON.parse(fs.readFileSync(path.join(jinjaDir, "package.json"), "utf8")).version;
const { Template } = await import(pathToFileURL(path.join(jinjaDir, "dist", "index.js")).href);
const templateText = fs.readFileSync(args.template, "utf8");
let hfTemplate = null;
let hfProblem = null;
try {
  hfTemplate = new Template(templateText);
  hfTemplate.render({ messages: [{ role: "user", content: "x" }], bos_token: "<bos>", add_generation_prompt: true,
    tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { a: { type: "string" } } } } }] });
} catch (e) {
  hfTemplate = null;
  hfProblem = `@huggingface/jinja ${jinjaVersion} cannot render the official template (${e.message}); ` +
    "it needs a version with dictsort and a fixed whitespace-control lexer (0.5.11 works)";
}

// Python Jinja2 as in transformers' apply_chat_template; normalises the fixture itself (json.load
// keeps 1.0 a float, which JavaScript cannot).
const PY_REFERENCE = String.raw`
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
template = env.from_string(open(sys.argv[1], encoding="utf-8").read())

def normalize(messages, fold):
    out = []
    for m in messages:
        if m.get("role") == "tool" and fold:
            a = out[-1]
            name = ""
            if isinstance(m.get("tool_call_id"), str):
                for tc in a["tool_calls"]:
                    if tc.get("id") == m["tool_call_id"]:
                        name = tc["function"]["name"]; break
            if not name and isinstance(m.get("name"), str): name = m["name"]
            c = m.get("content")
            response = c if isinstance(c, (str, dict)) else "".join(p["text"] for p in c) if isinstance(c, list) else ""
            a.setdefault("tool_responses", []).append({"name": name, "response": response})
            continue
        m = json.loads(json.dumps(m))
        for tc in m.get("tool_calls") or []:
            a = tc["function"].get("arguments")
            if isinstance(a, str): tc["function"]["arguments"] = json.loads(a) if a.strip() else {}
        if not out and m["role"] in ("system", "developer") and isinstance(m.get("content"), list):
            m["content"] = "".join(p["text"].strip() for p in m["content"])
        out.append(m)
    return out

results = []
for fixture_path in json.load(sys.stdin):
    f = json.load(open(fixture_path, encoding="utf-8"))
    o = f.get("options", {})
    kw = dict(messages=normalize(f["messages"], o.get("fold_tool_messages", True)), bos_token="<bos>",
              add_generation_prompt=o.get("add_generation_prompt", True), enable_thinking=o.get("enable_thinking", False))
    if f.get("tools") is not None: kw["tools"] = f["tools"]
    try: results.append({"ok": template.render(**kw)})
    except Exception as e: results.append({"error": repr(e)})
json.dump(results, sys.stdout)
`;

function pythonAvailable() {
  const probe = spawnSync(args.python, ["-c", "import jinja2"], { encoding: "utf8" });
  return probe.status === 0;
}

function pyStrip(s) { return s.replace(/^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/gu, ""); }

function normalizeMessages(messages, fold) {
  const out = [];
  for (const m of messages) {
    if (m.role === "tool" && fold) {
      const a = out[out.length - 1];
      let name = "";
      if (typeof m.tool_call_id === "string") {
        const call = a.tool_calls.find((tc) => tc.id === m.tool_call_id);
        if (call) name = call.function.name;
      }
      if (!name && typeof m.name === "string") name = m.name;
      const c = m.content;
      const response = typeof c === "string" || (c && typeof c === "object" && !Array.isArray(c)) ? c
        : Array.isArray(c) ? c.map((p) => p.text).join("") : "";
      (a.tool_responses ??= []).push({ name, response });
      continue;
    }
    const c = structuredClone(m);
    for (const tc of c.tool_calls ?? []) {
      const a = tc.function.arguments;
      if (typeof a === "string") tc.function.arguments = a.trim() === "" ? {} : JSON.parse(a);
    }
    if (out.length === 0 && (c.role === "system" || c.role === "developer") && Array.isArray(c.content)) {
      c.content = c.content.map((p) => pyStrip(p.text)).join("");
    }
    out.push(c);
  }
  return out;
}

function renderHf(fixture) {
  const o = fixture.options ?? {};
  const context = { messages: normalizeMessages(fixture.messages, o.fold_tool_messages ?? true), bos_token: "<bos>",
    add_generation_prompt: o.add_generation_prompt ?? true, enable_thinking: o.enable_thinking ?? false };
  if (fixture.tools != null) context.tools = fixture.tools;
  return hfTemplate.render(context);
}

// The 31B template's output turned into what the E2B/E4B template gives (no empty thought block).
function expectedFor(fixture, rendered) {
  const o = fixture.options ?? {};
  if (o.empty_thought_block === false && (o.add_generation_prompt ?? true) && !(o.enable_thinking ?? false)) {
    if (!rendered.endsWith(EMPTY_THOUGHT)) throw new Error("reference output lacks the empty thought block");
    return rendered.slice(0, -EMPTY_THOUGHT.length);
  }
  return rendered;
}

// ---- shardlm ------------------------------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "chat-parity-"));
// The fixture file itself is the --messages file (chat-template reads {messages, tools} bodies), so
// numbers keep their spelling (1.0 stays a float); tools go through --tools.
function runShardlm(fixture, name, file) {
  const o = fixture.options ?? {};
  const argv = ["chat-template", "--messages", file];
  if (fixture.tools != null) {
    const toolsFile = path.join(tmp, `${name}.tools.json`);
    fs.writeFileSync(toolsFile, JSON.stringify(fixture.tools));
    argv.push("--tools", toolsFile);
  }
  if (o.enable_thinking) argv.push("--enable-thinking");
  if (o.add_generation_prompt === false) argv.push("--no-generation-prompt");
  if (o.empty_thought_block === false) argv.push("--no-empty-thought");
  if (o.fold_tool_messages === false) argv.push("--no-fold-tool-messages");
  return spawnSync(args.shardlm, argv, { maxBuffer: 64 << 20 });
}

function showDiff(label, expected, actual) {
  let i = 0;
  while (i < expected.length && i < actual.length && expected[i] === actual[i]) i++;
  const from = Math.max(0, i - 80);
  console.log(`    ${label}: first difference at character ${i} (expected length ${expected.length}, got ${actual.length})`);
  console.log(`      expected: ${JSON.stringify(expected.slice(from, i + 80))}`);
  console.log(`      shardlm:  ${JSON.stringify(actual.slice(from, i + 80))}`);
}

// ---- run ------------------------------------------------------------------------------------------

const files = fs.readdirSync(args.fixtures).filter((f) => f.endsWith(".json")).sort().map((f) => path.join(args.fixtures, f));
if (files.length === 0) { console.error(`no fixtures in ${args.fixtures}`); process.exit(1); }
const fixtures = files.map((f) => JSON.parse(fs.readFileSync(f, "utf8")));

const havePython = pythonAvailable();
let pyResults = null;
if (havePython) {
  const renderable = files.filter((_, i) => !fixtures[i].expect_error);
  const py = spawnSync(args.python, ["-c", PY_REFERENCE, args.template], { input: JSON.stringify(renderable), encoding: "utf8", maxBuffer: 64 << 20 });
  if (py.status !== 0) { console.error(`python jinja2 reference failed:\n${py.stderr}`); process.exit(1); }
  const list = JSON.parse(py.stdout);
  pyResults = new Map(renderable.map((f, i) => [f, list[i]]));
} else {
  console.log(`note: ${args.python} cannot import jinja2; the Python Jinja2 reference is not checked`);
}
if (hfProblem) console.log(`FAIL: ${hfProblem}`);

let failures = hfProblem ? 1 : 0;
const counts = { fixtures: files.length, hf: 0, jinja2: 0, errors: 0, unchecked: 0 };
for (let k = 0; k < files.length; k++) {
  const file = files[k];
  const fixture = fixtures[k];
  const name = path.basename(file, ".json");
  const run = runShardlm(fixture, name, file);
  if (fixture.expect_error) {
    const stderr = run.stderr.toString("utf8");
    if (run.status === 1 && stderr.includes(fixture.expect_error)) {
      counts.errors++;
      console.log(`ok    ${name}: rejected as expected`);
    } else {
      failures++;
      console.log(`FAIL  ${name}: expected exit 1 with "${fixture.expect_error}", got exit ${run.status}: ${stderr.trim()}`);
    }
    continue;
  }
  if (run.status !== 0) {
    failures++;
    console.log(`FAIL  ${name}: shardlm exit ${run.status}: ${run.stderr.toString("utf8").trim()}`);
    continue;
  }
  const actual = run.stdout.toString("utf8");
  const refs = fixture.references ?? ["hf", "jinja2"];
  const verdicts = [];
  let checked = 0;
  if (refs.includes("hf") && hfTemplate) {
    let expected;
    try { expected = expectedFor(fixture, renderHf(fixture)); } catch (e) { expected = null; verdicts.push(`hf error: ${e.message}`); failures++; }
    if (expected !== null) {
      checked++;
      if (Buffer.from(expected, "utf8").equals(run.stdout)) { counts.hf++; verdicts.push("hf"); }
      else { failures++; verdicts.push("HF MISMATCH"); showDiff(`${name} vs @huggingface/jinja`, expected, actual); }
    }
  }
  if (refs.includes("jinja2") && pyResults) {
    const r = pyResults.get(file);
    if (r.error) { failures++; verdicts.push(`jinja2 error: ${r.error}`); }
    else {
      checked++;
      const expected = expectedFor(fixture, r.ok);
      if (Buffer.from(expected, "utf8").equals(run.stdout)) { counts.jinja2++; verdicts.push("jinja2"); }
      else { failures++; verdicts.push("JINJA2 MISMATCH"); showDiff(`${name} vs Python Jinja2`, expected, actual); }
    }
  }
  if (checked === 0) counts.unchecked++;
  const bad = verdicts.some((v) => /MISMATCH|error/.test(v));
  console.log(`${bad ? "FAIL " : checked ? "ok   " : "skip "} ${name}: ${checked ? verdicts.join(", ") : "no reference available"}`);
}
fs.rmSync(tmp, { recursive: true, force: true });
console.log(`\n${counts.fixtures} fixtures: ${counts.hf} identical to @huggingface/jinja ${jinjaVersion}` +
  `, ${havePython ? counts.jinja2 + " identical to Python Jinja2" : "Python Jinja2 not available"}` +
  `, ${counts.errors} rejected as expected, ${counts.unchecked} without a reference; ${failures} failure(s)`);
process.exit(failures ? 1 : 0);
