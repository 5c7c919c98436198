// Batch jobs of a running `shardlm serve`, checked through the official OpenAI Node.js client (the npm
// package `openai`, unmodified, installed in tests/support/openai). Steps, run by
// tests/integration/batch_jobs_test.sh around a kill -9 and a restart of the cluster:
//
//   make-input FILE N ENDPOINT        writes N greedy request lines (custom_id q0..q{N-1}, max_tokens 8)
//   openai-submit FILE STATE          refusals of unreadable uploads; uploads FILE, creates a batch and
//                                     waits until some but not all lines are done; writes the batch id
//                                     and that count to STATE (JSON)
//   openai-finish FILE STATE          after the restart: the batch resumes (no committed line lost) and
//                                     completes; its output file is checked like `compare`; a batch
//                                     with malformed lines reports each in the error file; interactive
//                                     latency while a batch runs; cancel
//   compare FILE OUTPUT               OUTPUT (result lines) holds exactly one result per line of FILE,
//                                     each equal to the same request sent directly
//
// Common options: --base-url http://HOST:PORT/v1 --api-key KEY --model NAME. Exit status 0 when
// every check passes, 1 otherwise.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(new URL("../openai/package.json", import.meta.url));
const { OpenAI, toFile, BadRequestError, NotFoundError } = require("openai");

const positional = [];
const opts = { "base-url": "", "api-key": "", model: "tiny" };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a.startsWith("--")) {
    opts[a.slice(2)] = process.argv[++i];
  } else {
    positional.push(a);
  }
}
const [step, ...args] = positional;

const client = new OpenAI({ baseURL: opts["base-url"], apiKey: opts["api-key"] || "none", maxRetries: 0, timeout: 60_000 });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function requestLine(i, endpoint, model) {
  const body =
    endpoint === "/v1/chat/completions"
      ? {
          model,
          messages: [
            { role: "system", content: "You are terse." },
            { role: "user", content: `Fact number ${i} about the sea, please.` },
          ],
          max_tokens: 8,
          temperature: 0,
        }
      : { model, prompt: `The sea, fact ${i}:`, max_tokens: 8, temperature: 0 };
  return { custom_id: `q${i}`, method: "POST", url: endpoint, body };
}

function readLines(path) {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
}

// The text of a response body of either endpoint.
function textOf(body) {
  const c = body.choices[0];
  return c.message !== undefined ? c.message.content : c.text;
}

async function direct(line) {
  return line.url === "/v1/chat/completions"
    ? client.chat.completions.create(line.body)
    : client.completions.create(line.body);
}

// Every input line has exactly one result, status 200, equal to the same request sent directly.
async function compare(inputLines, outputLines) {
  assert.equal(outputLines.length, inputLines.length, "one result line per input line");
  const byId = new Map();
  for (const r of outputLines) {
    assert.ok(!byId.has(r.custom_id), `custom_id ${r.custom_id} appears twice`);
    byId.set(r.custom_id, r);
  }
  let same = 0;
  for (const line of inputLines) {
    const r = byId.get(line.custom_id);
    assert.ok(r, `no result for ${line.custom_id}`);
    assert.equal(r.error, null, `${line.custom_id}: error ${JSON.stringify(r.error)}`);
    assert.equal(r.response.status_code, 200);
    assert.match(r.id, /^batch_req_/);
    const body = r.response.body;
    const d = await direct(line);
    assert.equal(textOf(body), textOf(d), `${line.custom_id}: batch and direct text differ`);
    assert.equal(body.choices[0].finish_reason, d.choices[0].finish_reason, `${line.custom_id}: finish_reason`);
    assert.deepEqual(body.usage, d.usage, `${line.custom_id}: usage`);
    assert.equal(body.model, d.model);
    assert.equal(body.object, d.object);
    same++;
  }
  return same;
}

async function waitFor(id, pred, timeoutMs, what) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const b = await client.batches.retrieve(id);
    if (pred(b)) return b;
    if (Date.now() > until) throw new Error(`batch ${id}: ${what} did not happen within ${timeoutMs} ms (status ${b.status}, ${JSON.stringify(b.request_counts)})`);
    await sleep(50);
  }
}

async function contentLines(fileId) {
  const res = await client.files.content(fileId);
  return (await res.text())
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l));
}

async function expectBadRequest(promise, pattern, what) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof BadRequestError, `${what}: expected BadRequestError, got ${e && e.constructor && e.constructor.name}: ${e}`);
    assert.match(e.message, pattern, what);
    return;
  }
  assert.fail(`${what}: the upload was accepted`);
}

async function openaiSubmit(file, statePath) {
  // Unreadable files are refused at upload, saying why.
  await expectBadRequest(client.files.create({ file: await toFile(Buffer.from(""), "empty.jsonl"), purpose: "batch" }),
    /no requests/, "empty file");
  await expectBadRequest(client.files.create({ file: await toFile(Buffer.from([0xff, 0xfe, 0x00, 0x41]), "bin.jsonl"), purpose: "batch" }),
    /not UTF-8/, "binary file");
  await expectBadRequest(client.files.create({ file: await toFile(Buffer.from("a,b,c\n1,2,3\n"), "x.csv"), purpose: "batch" }),
    /not JSONL/, "CSV file");
  await expectBadRequest(client.files.create({ file: await toFile(Buffer.from(readFileSync(file)), "in.jsonl"), purpose: "fine-tune" }),
    /purpose/, "wrong purpose");

  const uploaded = await client.files.create({ file: await toFile(readFileSync(file), "batch_input.jsonl"), purpose: "batch" });
  assert.equal(uploaded.object, "file");
  assert.equal(uploaded.purpose, "batch");
  assert.equal(uploaded.bytes, readFileSync(file).length);
  const again = await client.files.retrieve(uploaded.id);
  assert.equal(again.filename, "batch_input.jsonl");
  const back = await (await client.files.content(uploaded.id)).text();
  assert.equal(back, readFileSync(file, "utf8"), "the uploaded file reads back unchanged");

  const batch = await client.batches.create({
    input_file_id: uploaded.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
    metadata: { test: "restart" },
  });
  assert.equal(batch.object, "batch");
  assert.equal(batch.status, "in_progress");
  assert.equal(batch.request_counts.total, readLines(file).length);
  // Wait until some lines are done, then hand over to the kill.
  const mid = await waitFor(batch.id, (b) => b.request_counts.completed >= 20 || b.status !== "in_progress", 60_000, "20 lines done");
  assert.equal(mid.status, "in_progress", "the batch finished before the cluster could be killed");
  assert.ok(mid.request_counts.completed < mid.request_counts.total);
  writeFileSync(statePath, JSON.stringify({ batch: batch.id, completed: mid.request_counts.completed }));
  console.log(`batch ${batch.id}: ${mid.request_counts.completed}/${mid.request_counts.total} done before the kill`);
}

async function latency(n) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await client.chat.completions.create({
      model: opts.model,
      messages: [{ role: "user", content: `Interactive question ${i}.` }],
      max_tokens: 8,
      temperature: 0,
    });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

async function openaiFinish(file, statePath) {
  const state = JSON.parse(readFileSync(statePath, "utf8"));
  const inputLines = readLines(file);
  // Nothing committed before the kill is lost: the restarted server starts where the state says.
  const resumed = await client.batches.retrieve(state.batch);
  assert.ok(resumed.request_counts.completed >= state.completed,
    `completed went back from ${state.completed} to ${resumed.request_counts.completed}`);
  assert.equal(resumed.metadata.test, "restart");
  console.log(`after the restart: ${resumed.status}, ${resumed.request_counts.completed}/${resumed.request_counts.total} done`);
  const done = await waitFor(state.batch, (b) => b.status === "completed", 120_000, "completion");
  assert.equal(done.request_counts.completed, inputLines.length);
  assert.equal(done.request_counts.failed, 0);
  assert.equal(done.error_file_id, null);
  assert.ok(done.completed_at >= done.created_at);
  const outFile = await client.files.retrieve(done.output_file_id);
  assert.equal(outFile.purpose, "batch_output");
  const output = await contentLines(done.output_file_id);
  const same = await compare(inputLines, output);
  console.log(`output: ${output.length} results, unique custom_ids, ${same} equal to the direct request`);

  const list = await client.batches.list({ limit: 5 });
  assert.ok(list.data.some((b) => b.id === state.batch), "the batch is listed");

  // Malformed lines: each reported in the error file with its line number; the rest runs.
  const lines = [
    JSON.stringify(requestLine(0, "/v1/chat/completions", opts.model)),
    "{not json",
    JSON.stringify({ custom_id: "no-body", method: "POST", url: "/v1/chat/completions" }),
    JSON.stringify({ ...requestLine(1, "/v1/chat/completions", opts.model), custom_id: "q0" }),
    JSON.stringify({ ...requestLine(2, "/v1/completions", opts.model) }),
    JSON.stringify({ custom_id: "bad-field", method: "POST", url: "/v1/chat/completions", body: { model: opts.model, messages: "hi" } }),
    JSON.stringify({ custom_id: "other-model", method: "POST", url: "/v1/chat/completions", body: { model: "nope", messages: [{ role: "user", content: "x" }] } }),
    JSON.stringify(requestLine(3, "/v1/chat/completions", opts.model)),
  ];
  const bad = await client.files.create({ file: await toFile(Buffer.from(lines.join("\n") + "\n"), "bad.jsonl"), purpose: "batch" });
  const badBatch = await client.batches.create({ input_file_id: bad.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  const badDone = await waitFor(badBatch.id, (b) => b.status === "completed", 60_000, "completion");
  assert.equal(badDone.request_counts.total, 8);
  assert.equal(badDone.request_counts.completed, 2);
  assert.equal(badDone.request_counts.failed, 6);
  const errors = await contentLines(badDone.error_file_id);
  const byLine = new Map(errors.map((e) => [e.error.line, e]));
  assert.deepEqual([...byLine.keys()].sort((a, b) => a - b), [2, 3, 4, 5, 6, 7]);
  assert.match(byLine.get(2).error.message, /^line 2: not valid JSON/);
  assert.match(byLine.get(3).error.message, /^line 3: 'body' is required/);
  assert.match(byLine.get(4).error.message, /^line 4: custom_id 'q0' is already used on line 1/);
  assert.match(byLine.get(5).error.message, /^line 5: 'url' is '\/v1\/completions' but the batch's endpoint/);
  assert.equal(byLine.get(6).response.status_code, 400);
  assert.match(byLine.get(6).error.message, /^line 6: .*messages/);
  assert.equal(byLine.get(7).response.status_code, 404);
  assert.equal(byLine.get(7).response.body.error.code, "model_not_found");
  const good = await contentLines(badDone.output_file_id);
  assert.deepEqual(good.map((r) => r.custom_id), ["q0", "q3"]);
  console.log(`malformed lines: ${errors.length} reported with line numbers, ${good.length} ran`);

  // Interactive latency while a batch runs, then cancel that batch.
  const idle = await latency(5);
  const big = await client.files.create({ file: await toFile(readFileSync(file), "again.jsonl"), purpose: "batch" });
  const running = await client.batches.create({ input_file_id: big.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  await waitFor(running.id, (b) => b.request_counts.completed >= 1 || b.status !== "in_progress", 30_000, "a first line done");
  const busy = await latency(5);
  const during = await client.batches.retrieve(running.id);
  console.log(`interactive median latency: ${idle.toFixed(1)} ms idle, ${busy.toFixed(1)} ms while a batch runs ` +
    `(batch at ${during.request_counts.completed}/${during.request_counts.total})`);
  assert.ok(busy < 10 * idle + 1000, `interactive latency collapsed while a batch runs: ${busy} ms vs ${idle} ms idle`);
  const cancelling = await client.batches.cancel(running.id);
  assert.ok(["cancelling", "cancelled", "completed"].includes(cancelling.status), cancelling.status);
  const cancelled = await waitFor(running.id, (b) => b.status === "cancelled" || b.status === "completed", 30_000, "cancel");
  if (cancelled.status === "cancelled") {
    assert.ok(cancelled.cancelled_at >= cancelled.created_at);
    const partial = cancelled.output_file_id ? await contentLines(cancelled.output_file_id) : [];
    assert.equal(partial.length, cancelled.request_counts.completed);
    assert.ok(partial.length < inputLines.length);
    const stillCancelled = await client.batches.retrieve(running.id);
    assert.equal(stillCancelled.request_counts.completed, cancelled.request_counts.completed, "lines ran after the cancel");
    console.log(`cancelled at ${partial.length}/${inputLines.length}`);
  }
  try {
    await client.batches.retrieve("batch_doesnotexist");
    assert.fail("an unknown batch was found");
  } catch (e) {
    assert.ok(e instanceof NotFoundError, `${e}`);
  }
}

try {
  if (step === "make-input") {
    const [path, n, endpoint] = args;
    const lines = [];
    for (let i = 0; i < Number(n); i++) lines.push(JSON.stringify(requestLine(i, endpoint, opts.model)));
    writeFileSync(path, lines.join("\n") + "\n");
  } else if (step === "openai-submit") {
    await openaiSubmit(args[0], args[1]);
  } else if (step === "openai-finish") {
    await openaiFinish(args[0], args[1]);
  } else if (step === "compare") {
    const same = await compare(readLines(args[0]), readLines(args[1]));
    console.log(`${same} results, unique custom_ids, each equal to the direct request`);
  } else {
    throw new Error(`unknown step '${step}'`);
  }
} catch (e) {
  console.error(`FAIL ${step}: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
}
